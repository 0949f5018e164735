# Shared by the reproduction scripts: run one stage unless it finished before.
# A stage is done when its marker runs/.done/<name> exists; an interrupted stage reruns (the
# benchmark scripts resume their own checkpoints, so little work is lost).
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p runs/.done
stage() {
  local name="$1"; shift
  if [ -f "runs/.done/$name" ]; then echo "[done] $name"; return 0; fi
  echo "[run ] $name: $*"
  "$@"
  touch "runs/.done/$name"
}
