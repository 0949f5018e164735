# Shared by the reproduction scripts: run one stage unless it finished before.
# A stage is done when its marker runs/.done/<name> exists; an interrupted stage reruns (the
# benchmark scripts resume their own checkpoints, so little work is lost).
# With NF_DRY_RUN=1 nothing runs and nothing is written: every stage and every step after the
# stages prints one line, `[dry-run] NAME<TAB>` and its arguments quoted by `printf %q`.
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
dry_run() { [ "${NF_DRY_RUN:-0}" = 1 ]; }
dry_run || mkdir -p runs/.done
print_dry() {
  printf '[dry-run] %s\t' "$1"; shift
  printf '%q ' "$@"; printf '\n'
}
stage() {
  local name="$1"; shift
  if dry_run; then print_dry "$name" "$@"; return 0; fi
  if [ -f "runs/.done/$name" ]; then echo "[done] $name"; return 0; fi
  echo "[run ] $name: $*"
  "$@"
  touch "runs/.done/$name"
}
# A step after the stages (copying records, writing a page): cheap, so it runs every time (no
# marker); printed, not run, under NF_DRY_RUN=1.
run_after() {
  local name="$1"; shift
  if dry_run; then print_dry "$name" "$@"; return 0; fi
  echo "[run ] $name: $*"
  "$@"
}
