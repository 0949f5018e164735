"""Random-access frames: the learned encoder against the cheapest classical methods, cold.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/random_access.py

Frames of a strong-Landau simulation (64x128 and 128x256, ranks 6 and 12) in random order (no
warm start possible), interpolation and extrapolation splits: ``sketch`` / ``sketch+refine``
(the learned encoder reading X Omega) and ``convmf+refine`` against ``rsvd`` at its cheapest
setting within each band (worst ratio <= 1.05, <= 1.01), ``pod-basis``, ``svds-arpack`` and
``scipy-gesdd``, timed interleaved by the one harness on one thread
(neuralfactor.bench.random_access). Records (JSON lines) go to
docs/results/records/random-access.jsonl; the page docs/results/random-access.md is a pure
function of them: ``--from-records`` rewrites it without measuring. ``--quick`` runs a
seconds-long configuration (tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RECORDS = Path("docs/results/records/random-access.jsonl")
PAGE = Path("docs/results/random-access.md")


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for s in text.split(","):
        try:
            m, n = (int(v) for v in s.lower().split("x"))
        except ValueError:
            sys.exit(f"--sizes takes MxN[,MxN...], e.g. 64x128,128x256; got {text!r}")
        out.append((m, n))
    return tuple(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="64x128,128x256")
    ap.add_argument("--ranks", default="6,12")
    ap.add_argument("--frames", type=int, default=None, help="simulated frames per size (300)")
    ap.add_argument("--sketch-epochs", type=int, default=None, help="default 40")
    ap.add_argument("--convmf-epochs", type=int, default=None, help="default 10")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="16x32, rank 3, 1-2 epochs (tests)")
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--page", type=Path, default=PAGE)
    ap.add_argument("--from-records", action="store_true")
    args = ap.parse_args()
    from neuralfactor.bench.random_access import (
        RandomAccessConfig,
        quick_config,
        run_random_access,
    )
    from neuralfactor.core.validation import parse_ints
    from neuralfactor.io import append_jsonl, atomic_write_text, read_jsonl
    from neuralfactor.report.random_access import random_access_markdown

    if not args.from_records:
        if args.quick:
            config = quick_config(threads=args.threads)
        else:
            given = {
                "frames": args.frames,
                "sketch_epochs": args.sketch_epochs,
                "convmf_epochs": args.convmf_epochs,
            }
            config = RandomAccessConfig(
                sizes=_sizes(args.sizes),
                ranks=parse_ints(args.ranks, "--ranks"),
                threads=args.threads,
                **{k: v for k, v in given.items() if v is not None},
            )
        t0 = time.time()
        partial = args.records.with_suffix(".partial.jsonl")  # survives a killed run
        partial.unlink(missing_ok=True)

        def show(r: dict) -> None:
            append_jsonl(partial, [r])
            print(
                f"{r['m']}x{r['n']} r={r['rank']:>2} {r['split']:<13} {r['label']:<32} "
                f"{r['seconds_per_matrix'] * 1e6:9.1f} us  worst {r['ratio_max']:.4f}  "
                f"[{time.time() - t0:.0f} s]",
                flush=True,
            )

        command = " ".join(["python", "benchmarks/random_access.py", *sys.argv[1:]])
        records = run_random_access(config, command=command, on_record=show)
        text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
        atomic_write_text(args.records, text)
        partial.unlink(missing_ok=True)
        print(f"wrote {args.records} ({time.time() - t0:.0f} s)")
    atomic_write_text(args.page, random_access_markdown(read_jsonl(args.records)))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
