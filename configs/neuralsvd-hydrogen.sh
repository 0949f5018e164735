#!/usr/bin/env bash
# The NeuralSVD hydrogen run of docs/results/neuralsvd.md: 9 states of 2-D hydrogen by
# NestedLoRA-seq, with the SpIN-style baseline on the same stages, in nine chained stages
# (221,000 steps per method). Each stage warm-starts from the previous one (--init-from) and
# writes its records to docs/results/records/ (--record-as); the page is then regenerated.
# One command from the repository root, resumable (a finished stage is skipped, an interrupted
# one resumes from its checkpoints): bash configs/neuralsvd-hydrogen.sh
# The first runs and side runs of the page's "Runs beside the chain", the samplers' Gram errors
# and the two trajectories follow the chain. Not rerun by it: the Monte Carlo control (stopped
# by hand at 6,000 of 10,000 steps in its session; its record stays as committed).
cd "$(dirname "$0")/.."
. configs/_stage.sh
h() { python benchmarks/spectral_hydrogen.py --methods nestedlora-seq,spin --radius-feature "$@"; }
r=spectral_hydrogen
stage h1 h --iters 70000 --eval-every 5000 --out runs/h_radius --record-as ${r}_radius
stage h2 h --iters 30000 --lr 1e-3 --eval-every 5000 --init-from runs/h_radius --out runs/h_cont \
  --record-as ${r}_radius_cont
stage h3 h --iters 25000 --lr 1e-3 --eval-every 2500 --init-from runs/h_cont --reset-modes 8 \
  --seed 1 --out runs/h_reset256 --record-as ${r}_reset
stage h4 h --iters 30000 --lr 1e-3 --eval-every 2500 --init-from runs/h_reset256 --seed 2 \
  --out runs/h_reset256_cont --record-as ${r}_reset_cont
stage h5 h --iters 10000 --batch 1024 --lr 3e-4 --eval-every 2000 --init-from runs/h_reset256_cont \
  --seed 3 --out runs/h_anneal1024 --record-as ${r}_anneal1024
stage h6 h --iters 10000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice \
  --init-from runs/h_anneal1024 --seed 5 --out runs/h_lattice --record-as ${r}_lattice
stage h7 h --iters 30000 --batch 512 --lr 3e-4 --eval-every 3000 --sampler lattice \
  --init-from runs/h_lattice --seed 6 --out runs/h_lattice2 --record-as ${r}_lattice2
stage h8 h --iters 12000 --batch 1024 --lr 3e-4 --eval-every 2000 --sampler lattice \
  --init-from runs/h_lattice2 --seed 7 --out runs/h_lattice3 --record-as ${r}_lattice3
stage h9 h --iters 4000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice --shift 1 \
  --init-from runs/h_lattice3 --seed 8 --out runs/h_shift --record-as ${r}_shift
# beside the chain: the first runs (no |x| input) and the side runs of the page
b() { python benchmarks/spectral_hydrogen.py "$@"; }
stage h_first b --iters 12000 --methods nestedlora-seq,spin,nestedlora-joint --out runs/h_first \
  --record-as ${r}
stage h_side1024 b --methods nestedlora-seq --radius-feature --iters 12000 --batch 1024 --lr 1e-3 \
  --eval-every 2000 --init-from runs/h_cont --reset-modes 8 --seed 1 --out runs/h_reset1024 \
  --record-as ${r}_reset1024
for s in 0 1; do
  stage h_scratch_s$s b --methods nestedlora-seq --radius-feature --iters 12000 --batch 1024 \
    --lr 1e-3 --eval-every 2000 --sampler lattice --shift $s --seed 0 --out runs/h_scratch_s$s \
    --record-as ${r}_scratch_s$s
done
stage h_samplers python benchmarks/spectral_samplers.py
# the last stage evaluated along the way (two learning rates), and the exact-ground-state
# diagnostic from the stage-6 model
o() { python benchmarks/spectral_oracle_mode0.py "$@"; }
rec=docs/results/records
stage h_traj_3e-4 o runs/h_lattice3/nestedlora-seq 4000 3e-4 $rec/${r}_shift_trajectory.json \
  learned 1 --key lr_3e-4
stage h_traj_1e-4 o runs/h_lattice3/nestedlora-seq 4000 1e-4 $rec/${r}_shift_trajectory.json \
  learned 1 --key lr_1e-4
stage h_oracle o runs/h_lattice/nestedlora-seq 3000 3e-4 $rec/${r}_oracle_mode0-nestedlora-seq.json \
  oracle
python benchmarks/spectral_page.py --from-records
