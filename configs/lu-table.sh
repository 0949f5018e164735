#!/usr/bin/env bash
# The Levenberg-Marquardt and learned-Cholesky runs of docs/results/learned-lu.md (every
# operator at n = 256, leaf 32; the budgets the page lists), their records copied to
# docs/results/records/, then the page written from the records.
# One command from the repository root: bash configs/lu-table.sh
cd "$(dirname "$0")/.."
. configs/_stage.sh
common=(--no-ablation --no-2d --no-regime)
stage lu-lm-a python benchmarks/lu_table.py --optimizer lm --steps 60 --out runs/lu_lm_a.json \
  --operators laplacian-1d biharmonic-1d biharmonic-2d rbf "${common[@]}"
stage lu-lm-b python benchmarks/lu_table.py --optimizer lm --steps 60 --out runs/lu_lm_b.json \
  --operators convdiff-1d laplacian-2d convdiff-2d "${common[@]}"
stage lu-lm-c python benchmarks/lu_table.py --optimizer lm --steps 150 --out runs/lu_lm_c.json \
  --operators biharmonic-2d "${common[@]}"
stage lu-lm-d python benchmarks/lu_table.py --optimizer lm --steps 150 --out runs/lu_lm_d.json \
  --operators biharmonic-1d "${common[@]}"
stage lu-lm-e python benchmarks/lu_table.py --optimizer lm --steps 150 --out runs/lu_lm_e.json \
  --operators rbf "${common[@]}"
stage lu-lm-f python benchmarks/lu_table.py --optimizer lm --steps 300 --out runs/lu_lm_f.json \
  --operators biharmonic-1d "${common[@]}"
stage lu-lm-g python benchmarks/lu_table.py --optimizer lm --steps 400 --out runs/lu_lm_g.json \
  --operators rbf "${common[@]}"
stage lu-lm-unit python benchmarks/lu_table.py --optimizer lm --steps 150 --diag unit \
  --out runs/lu_lm_unit.json --operators rbf "${common[@]}"
stage lu-sym-rbf-a python benchmarks/lu_table.py --optimizer lm --steps 100 --symmetric \
  --precond-weight 0.03 --operators rbf "${common[@]}" --out runs/lu_sym_rbf_a.json
stage lu-sym-rbf python benchmarks/lu_table.py --optimizer lm --steps 100 --symmetric \
  --precond-weight 0.03 --stages 0.01:30,0.003:40,0.001:60 --operators rbf "${common[@]}" \
  --out runs/lu_sym_rbf_b.json
run_after lu-records cp runs/lu_lm_*.json runs/lu_sym_rbf_a.json runs/lu_sym_rbf_b.json \
  docs/results/records/
run_after lu-page python benchmarks/lu_report.py --from-records
