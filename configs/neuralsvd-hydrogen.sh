#!/usr/bin/env bash
# The NeuralSVD hydrogen headline of docs/results/neuralsvd.md: NestedLoRA-seq, 9 states of
# 2-D hydrogen, nine chained stages (221,000 steps) ending with all 9 states within 8.2e-4 and
# orthogonality 1.3e-4. Each stage warm-starts from the previous one (--init-from).
# One command from the repository root: bash configs/neuralsvd-hydrogen.sh
cd "$(dirname "$0")/.."
. configs/_stage.sh
h() { python benchmarks/spectral_hydrogen.py --methods nestedlora-seq --radius-feature "$@"; }
stage h1 h --iters 70000 --eval-every 5000 --out runs/spectral_hydrogen_radius
stage h2 h --iters 30000 --lr 1e-3 --eval-every 5000 --init-from runs/spectral_hydrogen_radius \
  --out runs/spectral_hydrogen_radius_cont
stage h3 h --iters 25000 --lr 1e-3 --eval-every 2500 --init-from runs/spectral_hydrogen_radius_cont \
  --reset-modes 8 --seed 1 --out runs/h_reset256
stage h4 h --iters 30000 --lr 1e-3 --eval-every 2500 --init-from runs/h_reset256 --seed 2 \
  --out runs/h_reset256_cont
stage h5 h --iters 10000 --batch 1024 --lr 3e-4 --eval-every 2000 --init-from runs/h_reset256_cont \
  --seed 3 --out runs/h_anneal1024
stage h6 h --iters 10000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice \
  --init-from runs/h_anneal1024 --seed 5 --out runs/h_lattice
stage h7 h --iters 30000 --batch 512 --lr 3e-4 --eval-every 3000 --sampler lattice \
  --init-from runs/h_lattice --seed 6 --out runs/h_lattice2
stage h8 h --iters 12000 --batch 1024 --lr 3e-4 --eval-every 2000 --sampler lattice \
  --init-from runs/h_lattice2 --seed 7 --out runs/h_lattice3
stage h9 h --iters 4000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice --shift 1 \
  --init-from runs/h_lattice3 --seed 8 --out runs/h_shift
