"""Classical baselines: docs/results/classical-baselines.md and its records.

Measure (about 4 minutes on one core; run in a quiet window):
    OMP_NUM_THREADS=1 python benchmarks/classical_baselines.py
Rewrite the page from the committed records, byte for byte, without measuring:
    python benchmarks/classical_baselines.py --from-records
Add a second run's records (copied to docs/results/records/classical-baselines-rerun.jsonl;
the page then gets a "Reproducibility" section comparing the two runs' speed ratios, and the
summary's ranges the run-to-run term they measure); further runs (copied to ...-rerun2.jsonl,
...) test that term out of sample:
    python benchmarks/classical_baselines.py --from-records --rerun RUN2.jsonl [RUN3.jsonl ...]

The suite and the page live in :mod:`neuralfactor.bench.baselines`; this script parses
arguments, calls it and writes the files.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

RECORDS = Path("docs/results/records/classical-baselines.jsonl")
PAGE = Path("docs/results/classical-baselines.md")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--max-call-seconds", type=float, default=0.1)
    ap.add_argument("--max-case-seconds", type=float, default=10.0)
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--page", type=Path, default=PAGE)
    ap.add_argument(
        "--rerun",
        type=Path,
        nargs="+",
        help="Records of a second (and further) run: copied beside the records; the page "
        "compares the runs.",
    )
    ap.add_argument(
        "--from-records",
        action="store_true",
        help="Rewrite the page from the records (no measurement).",
    )
    args = ap.parse_args(argv)

    from neuralfactor.bench.baselines import (
        baselines_config,
        baselines_page,
        read_records,
        rerun_path,
        run_classical_baselines,
        write_records,
    )
    from neuralfactor.io import atomic_write_text

    if not args.from_records:
        cmd = "OMP_NUM_THREADS=1 python benchmarks/classical_baselines.py"
        for opt in ("device", "dtype", "batches", "max_call_seconds", "max_case_seconds"):
            value = getattr(args, opt)
            if value != ap.get_default(opt):
                cmd += f" --{opt.replace('_', '-')} {shlex.quote(str(value))}"
        config = baselines_config(
            device=args.device,
            dtype=args.dtype,
            batches=tuple(int(b) for b in args.batches.split(",")),
            max_call_seconds=args.max_call_seconds,
            max_case_seconds=args.max_case_seconds,
        )
        records = run_classical_baselines(
            config,
            command=cmd,
            on_record=lambda r: print(
                f"{r['data']:>8} {r['label']:>24} {r['m']}x{r['n']} r={r['rank']:>2} "
                f"b={r['batch']:>4} {r['seconds_per_matrix'] * 1e6:10.1f} us  "
                f"ratio {r['ratio_mean']:.5f}",
                flush=True,
            ),
        )
        write_records(args.records, records)
    records = read_records(args.records)
    for i, path in enumerate(args.rerun or ()):
        write_records(Path(rerun_path(i)), read_records(path))
    runs = []
    while Path(rerun_path(len(runs))).exists():
        runs.append(read_records(rerun_path(len(runs))))
    rerun = runs[0] if runs else None
    atomic_write_text(args.page, baselines_page(records, rerun, more=runs[1:]))
    print(f"wrote {args.page}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
