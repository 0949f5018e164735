"""ConvMF training recipe across ranks and seeds (interpolation, 64x128 strong Landau, CPU).

Run:  OMP_NUM_THREADS=1 python benchmarks/convmf_recipe.py --ranks 4,6,8,10,12 --seeds 0,1,2
        --seed-ranks 8,10,12 --epochs 240 --warmup-epochs 5 --objective factors+projection
        --lanes 2      (the command of docs/results/convmf-recipe.md; ~100 min on 2 cores)

Trains one ConvMF per (rank, seed) with one set of training settings (the "recipe": cosine
schedule, gradient clipping, optional warmup and training objective) on the interpolation split
of the ConvMF study (same simulation, split and test frames), evaluates each on the
test frames (plain, +refine, +subspace; the classical baselines once per rank, with the seed-0
model, timed in the same run) and writes the records (per-frame lists and frame times dropped)
to ``docs/results/convmf-recipe.jsonl``, the run record (command, conditions, training health)
to ``docs/results/records/convmf-recipe-run.jsonl``, then the page
``docs/results/convmf-recipe.md`` from them. ``--from-records`` rewrites the page alone, byte
for byte, training and measuring nothing. Resumable:
trained models and evaluations under ``--root`` are reused. The question it answers: does the target
"ConvMF+refine within 1.10x of the SVD optimum at every rank" hold for every seed, not one?
The work is done by :mod:`neuralfactor.amortized.study_recipe` and
:mod:`neuralfactor.report.convmf_recipe`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--from-records",
        action="store_true",
        help="only rewrite the page from docs/results/convmf-recipe.jsonl and the run record "
        "(records/convmf-recipe-run.jsonl, else records/convmf-recipe-legacy.jsonl); trains and "
        "measures nothing",
    )
    ap.add_argument("--ranks", default="4,6,8,10,12")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--seed-ranks",
        default=None,
        help="Ranks trained with every seed (default: all); the others with the first seed only.",
    )
    ap.add_argument("--epochs", type=int, default=240)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip-norm", type=float, default=50.0)
    ap.add_argument("--warmup-epochs", type=int, default=5)
    ap.add_argument("--objective", default="factors+projection")
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--root", default="runs/recipe")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--lanes", type=int, default=1)
    ap.add_argument("--note", default="", help="A line on how the run went (load, restarts).")
    return ap


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def recipe_config(args: argparse.Namespace):
    """The validated :class:`~neuralfactor.amortized.study_recipe.RecipeConfig` of a parsed
    command line (``ValueError`` if refused); builds it only, trains nothing."""
    from neuralfactor.amortized.study_recipe import RecipeConfig

    fields = {k: v for k, v in vars(args).items() if k not in ("from_records", "out")}
    return RecipeConfig(**fields)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from neuralfactor.report import convmf_recipe

    if args.from_records:
        page = convmf_recipe.write_from_records(HERE / "docs" / "results")
        print(f"wrote {page}")
        return 0
    try:
        config = recipe_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    page = convmf_recipe.run_convmf_recipe(config, args.out, log=lambda x: print(x, flush=True))
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
