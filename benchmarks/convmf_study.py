"""The ConvMF study on CPU: interpolation and extrapolation on 64x128 strong Landau damping.

Run:  OMP_NUM_THREADS=1 python benchmarks/convmf_study.py [--epochs 40] [--lr 1e-3]
        [--cosine-ranks 4,6,8,10,12 --cosine-extrap-ranks 4,8,12]
Writes runs under runs/study/ (resumable: finished models and evaluations are reused), the
records to docs/results/records/convmf-study.jsonl and convmf-study-run.jsonl, the figures to
docs/results/figures/convmf-*.png and the page docs/results/convmf-study.md from the records.
``--cosine-*`` also trains ConvMF with a cosine learning-rate schedule (otherwise the same
settings) at those ranks and adds a table comparing it with the constant-rate models.
``--clip-*`` does the same for the cosine schedule with gradient-norm clipping (``--clip-norm``)
and its own epoch count (``--clip-epochs``); those runs are named ``*-cosine-clip<norm>-e<epochs>``.
``--lanes 2`` trains the models that are missing in two processes at once (1 thread each).

``--lr-probe`` measures only the learning-rate probe behind the study's choice of learning rate
(ConvMF at rank 6, 6 epochs at lr 1e-3, 3e-4 and 1e-4 on the same data; a few CPU minutes), writes
docs/results/records/convmf-study-lr-probe.jsonl and rewrites the page.
``--from-records`` rewrites the page alone from the committed records, byte for byte, training
and measuring nothing. The work is done by :mod:`neuralfactor.report.convmf_study`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--from-records",
        action="store_true",
        help="only rewrite the page from docs/results/records/convmf-study*.jsonl",
    )
    mode.add_argument(
        "--lr-probe", action="store_true", help="measure only the learning-rate probe"
    )
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--ranks", default="4,6,8,10,12")
    ap.add_argument("--extrap-ranks", default="4,8,12")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--root", default="runs/study", help="Where runs are written (resumable).")
    ap.add_argument("--cosine-ranks", default="", help="Also train cosine-schedule ConvMF here.")
    ap.add_argument("--cosine-extrap-ranks", default="")
    ap.add_argument(
        "--clip-ranks", default="", help="Also train cosine + gradient-clipping ConvMF here."
    )
    ap.add_argument("--clip-extrap-ranks", default="")
    ap.add_argument("--clip-norm", type=float, default=50.0, help="Gradient-norm clip.")
    ap.add_argument("--clip-epochs", type=int, default=None, help="Default: --epochs.")
    ap.add_argument(
        "--clip-seeds", default="", help="Further seeds of the cosine+clip models (robustness)."
    )
    ap.add_argument("--clip-seed-ranks", default="", help="Interpolation ranks for --clip-seeds.")
    ap.add_argument("--lanes", type=int, default=1, help="Train missing models N at a time.")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from neuralfactor.amortized.study_convmf import ConvMFStudyConfig
    from neuralfactor.report import convmf_study

    if args.from_records:
        out = HERE / "docs" / "results"
        page = convmf_study.write_convmf_study(out / "records", out / "convmf-study.md")
        print(f"wrote {page}")
        return 0
    fields = {k: v for k, v in vars(args).items() if k not in ("from_records", "lr_probe", "out")}
    try:
        config = ConvMFStudyConfig(**fields)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = convmf_study.run_lr_probe if args.lr_probe else convmf_study.run_convmf_study
    path = run(config, args.out, log=lambda line: print(line, flush=True))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
