#!/usr/bin/env bash
# The NeuralSVD hydrogen run of docs/results/neuralsvd.md: 9 states of 2-D hydrogen by
# NestedLoRA-seq, with the SpIN-style baseline on the same stages, in nine chained stages
# (221,000 steps per method). Each stage warm-starts from the previous one of its method
# (--init-from) and writes its records to docs/results/records/ (--record-as, the names the page
# reads); the page is then regenerated.
# One command from the repository root, resumable (a finished stage is skipped, an interrupted
# one resumes from its checkpoints): bash configs/neuralsvd-hydrogen.sh
# The first runs and side runs of the page's "Runs beside the chain", the samplers' Gram errors
# and the two trajectories follow the chain. Not rerun by it: the Monte Carlo control (stopped
# by hand at 6,000 of 10,000 steps in its session; its record stays as committed).
cd "$(dirname "$0")/.."
. configs/_stage.sh
h=(python benchmarks/spectral_hydrogen.py --radius-feature --methods)
r=spectral_hydrogen
stage h1 "${h[@]}" nestedlora-seq,spin --iters 70000 --eval-every 5000 --out runs/h_radius \
  --record-as ${r}_radius
# stages 2-9: each method continues its own chain (SpIN-style under its own --out and records,
# the names the page reads; it gets no --reset-modes: its failed modes are not near zero)
a=(--iters 30000 --lr 1e-3 --eval-every 5000)
stage h2 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_radius --out runs/h_cont \
  --record-as ${r}_radius_cont
stage h2_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_radius --out runs/h_spin_cont \
  --record-as ${r}_spin_cont
a=(--iters 25000 --lr 1e-3 --eval-every 2500 --seed 1)
stage h3 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_cont --reset-modes 8 \
  --out runs/h_reset256 --record-as ${r}_reset
stage h3_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_cont --out runs/h_spin_cont2 \
  --record-as ${r}_spin_cont2
a=(--iters 30000 --lr 1e-3 --eval-every 2500 --seed 2)
stage h4 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_reset256 \
  --out runs/h_reset256_cont --record-as ${r}_reset_cont
stage h4_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_cont2 --out runs/h_spin_cont3 \
  --record-as ${r}_spin_cont3
a=(--iters 10000 --batch 1024 --lr 3e-4 --eval-every 2000 --seed 3)
stage h5 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_reset256_cont \
  --out runs/h_anneal1024 --record-as ${r}_anneal1024
stage h5_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_cont3 \
  --out runs/h_spin_anneal1024 --record-as ${r}_spin_anneal1024
a=(--iters 10000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice --seed 5)
stage h6 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_anneal1024 --out runs/h_lattice \
  --record-as ${r}_lattice
stage h6_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_anneal1024 \
  --out runs/h_spin_lattice --record-as ${r}_spin_lattice
a=(--iters 30000 --batch 512 --lr 3e-4 --eval-every 3000 --sampler lattice --seed 6)
stage h7 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_lattice --out runs/h_lattice2 \
  --record-as ${r}_lattice2
stage h7_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_lattice \
  --out runs/h_spin_lattice2 --record-as ${r}_spin_lattice2
a=(--iters 12000 --batch 1024 --lr 3e-4 --eval-every 2000 --sampler lattice --seed 7)
stage h8 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_lattice2 --out runs/h_lattice3 \
  --record-as ${r}_lattice3
stage h8_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_lattice2 \
  --out runs/h_spin_lattice3 --record-as ${r}_spin_lattice3
a=(--iters 4000 --batch 1024 --lr 3e-4 --eval-every 1000 --sampler lattice --shift 1 --seed 8)
stage h9 "${h[@]}" nestedlora-seq "${a[@]}" --init-from runs/h_lattice3 --out runs/h_shift \
  --record-as ${r}_shift
stage h9_spin "${h[@]}" spin "${a[@]}" --init-from runs/h_spin_lattice3 --out runs/h_spin_shift \
  --record-as ${r}_spin_shift
# beside the chain: the first runs (no |x| input) and the side runs of the page
b=(python benchmarks/spectral_hydrogen.py)
stage h_first "${b[@]}" --iters 12000 --methods nestedlora-seq,spin,nestedlora-joint \
  --out runs/h_first --record-as ${r}
stage h_side1024 "${b[@]}" --methods nestedlora-seq --radius-feature --iters 12000 --batch 1024 \
  --lr 1e-3 --eval-every 2000 --init-from runs/h_cont --reset-modes 8 --seed 1 \
  --out runs/h_reset1024 --record-as ${r}_reset1024
for s in 0 1; do
  stage h_scratch_s$s "${b[@]}" --methods nestedlora-seq --radius-feature --iters 12000 \
    --batch 1024 --lr 1e-3 --eval-every 2000 --sampler lattice --shift $s --seed 0 \
    --out runs/h_scratch_s$s --record-as ${r}_scratch_s$s
done
stage h_samplers python benchmarks/spectral_samplers.py
# the last stage evaluated along the way (two learning rates), and the exact-ground-state
# diagnostic from the stage-6 model
o=(python benchmarks/spectral_oracle_mode0.py)
rec=docs/results/records
stage h_traj_3e-4 "${o[@]}" runs/h_lattice3/nestedlora-seq 4000 3e-4 \
  $rec/${r}_shift_trajectory.json learned 1 --key lr_3e-4
stage h_traj_1e-4 "${o[@]}" runs/h_lattice3/nestedlora-seq 4000 1e-4 \
  $rec/${r}_shift_trajectory.json learned 1 --key lr_1e-4
stage h_oracle "${o[@]}" runs/h_lattice/nestedlora-seq 3000 3e-4 \
  $rec/${r}_oracle_mode0-nestedlora-seq.json oracle
run_after h_page python benchmarks/spectral_page.py --from-records
