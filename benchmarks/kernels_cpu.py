"""Classical kernels at the CPU's limit: one call measures, records and writes the page.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/kernels_cpu.py

1 thread, float32, smooth evolving 128x256 frames (strong Landau damping from the simulator,
the same spacing as docs/results/performance.md: 512 lead-in frames, then 256 timed), ranks
12 and 30, every method of a rank timed interleaved by the one harness (at least
``--rounds`` rounds and ``--min-run-time`` seconds each). The suite is
:mod:`neuralfactor.bench.kernels`; records (JSON lines) go to
docs/results/records/kernels-cpu.jsonl, and the page docs/results/kernels-cpu.md is a pure
function of them (:mod:`neuralfactor.report.kernels_page`): ``--from-records`` rewrites it
without measuring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RECORDS = Path("docs/results/records/kernels-cpu.jsonl")
PAGE = Path("docs/results/kernels-cpu.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="128x256")
    ap.add_argument("--ranks", default="12,30")
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--lead-in", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=1.0)
    ap.add_argument("--ensembles", default="1,16,64", help="'' to skip")
    ap.add_argument("--records", default=str(RECORDS))
    ap.add_argument("--page", default=str(PAGE))
    ap.add_argument("--from-records", action="store_true")
    args = ap.parse_args()
    from neuralfactor.core.validation import parse_ints
    from neuralfactor.io import atomic_write_text, read_jsonl
    from neuralfactor.report.kernels_page import kernels_markdown

    if not args.from_records:
        from neuralfactor.bench.kernels import KernelsConfig, run_kernels

        m, n = (int(v) for v in args.size.lower().split("x"))
        config = KernelsConfig(
            size=(m, n),
            ranks=parse_ints(args.ranks, "--ranks"),
            frames=args.frames,
            lead_in=args.lead_in,
            threads=args.threads,
            repeats=args.rounds,
            min_run_time=args.min_run_time,
            ensembles=parse_ints(args.ensembles, "--ensembles") if args.ensembles else (),
        )
        records = run_kernels(config, command=" ".join(["python", *sys.argv]))
        text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
        atomic_write_text(args.records, text)
    atomic_write_text(args.page, kernels_markdown(read_jsonl(args.records)))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
