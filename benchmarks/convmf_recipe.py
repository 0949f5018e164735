"""ConvMF training recipe across ranks and seeds (interpolation, 64x128 strong Landau, CPU).

Run:  OMP_NUM_THREADS=1 python benchmarks/convmf_recipe.py --ranks 4,6,8,10,12 --seeds 0,1,2
        --seed-ranks 8,10,12 --epochs 240 --warmup-epochs 5 --objective factors+projection
        --lanes 2      (the command of docs/results/convmf-recipe.md; ~100 min on 2 cores)

Trains one ConvMF per (rank, seed) with one set of training settings (the "recipe": cosine
schedule, gradient clipping, optional warmup and training objective) on the interpolation split
of `benchmarks/convmf_study.py` (same simulation, split and test frames), evaluates each on the
test frames (plain, +refine, +subspace; the classical baselines once per rank, with the seed-0
model, timed in the same run) and writes the records (per-frame lists and frame times dropped)
to ``docs/results/convmf-recipe.jsonl``, the run record (command, conditions, training health)
to ``docs/results/records/convmf-recipe-run.jsonl``, then the page
``docs/results/convmf-recipe.md`` from them. ``--from-records`` rewrites the page alone, byte
for byte, training and measuring nothing. Resumable:
trained models and evaluations under ``--root`` are reused. The question it answers: does the target
"ConvMF+refine within 1.10x of the SVD optimum at every rank" hold for every seed, not one?
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import convmf_study as study
import torch

from neuralfactor.amortized.factorizer import OBJECTIVES, TrainSettings
from neuralfactor.io import atomic_write_text
from neuralfactor.report.convmf_recipe import write_convmf_recipe

HERE = Path(__file__).resolve().parent.parent
RUN_RECORDS = HERE / "docs/results/records/convmf-recipe-run.jsonl"
#: the run record of the earlier page (command, note, health), converted from that page
LEGACY = HERE / "docs/results/records/convmf-recipe-legacy.jsonl"


def health(out: Path) -> dict:
    """Best/final validation and the 'stuck' flag of convmf_study's health table."""
    hh = study.history_health(json.loads((out / "model" / "meta.json").read_text())["history"])
    return {
        "best": hh["best"]["metric"],
        "best_step": hh["best"]["step"],
        "final": hh["last"]["metric"],
        "stuck": hh["stuck"],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--from-records",
        action="store_true",
        help="only rewrite the page from docs/results/convmf-recipe.jsonl and the run record "
        f"({RUN_RECORDS.name}, else {LEGACY.name}); trains and measures nothing",
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
    ap.add_argument("--objective", default="factors+projection", choices=OBJECTIVES)
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--root", default="runs/recipe")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--lanes", type=int, default=1)
    ap.add_argument("--note", default="", help="A line on how the run went (load, restarts).")
    args = ap.parse_args()
    out_dir = HERE / "docs/results" if args.from_records else Path(args.out)
    if args.from_records:
        run_path = RUN_RECORDS if RUN_RECORDS.exists() else LEGACY
        write_convmf_recipe(out_dir / "convmf-recipe.jsonl", run_path, out_dir / "convmf-recipe.md")
        print(f"wrote {out_dir / 'convmf-recipe.md'} from {run_path.name}")
        return 0
    t_start = time.time()
    study.ROOT = root = Path(args.root)
    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "landau64.zarr"
    study.simulate(data, args.save_every)
    base = TrainSettings(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=25,
        device="cpu",
        schedule="cosine",
        grad_clip=args.clip_norm,
        warmup_epochs=args.warmup_epochs,
        objective=args.objective,
    )
    ranks, seeds = study.int_list(args.ranks), study.int_list(args.seeds)
    multi = set(ranks if args.seed_ranks is None else study.int_list(args.seed_ranks))
    seeds_of = {k: seeds if k in multi else seeds[:1] for k in ranks}
    settings = {sd: dataclasses.replace(base, seed=sd) for sd in seeds}
    jobs = [  # the highest ranks (the hardest, the likeliest misses) first
        (data, "interpolation", k, False, settings[sd])
        for k in sorted(ranks, reverse=True)
        for sd in seeds_of[k]
    ]
    study.train_missing(jobs, args.lanes)
    recs_out, health_recs = [], []
    for k in ranks:
        for sd in seeds_of[k]:
            out = study.run_one(data, "interpolation", k, False, settings[sd])
            baselines = study.BASELINES if sd == seeds[0] else ()
            recs = study.evaluated(out, baselines=baselines)
            health_recs.append({"kind": "health", "rank": k, "seed": sd, **health(out)})
            recs_out += [
                {
                    **{
                        a: None if isinstance(b, float) and math.isnan(b) else b  # strict JSON
                        for a, b in r.items()
                        if a != "t" and not a.startswith("per_frame")
                    },
                    "seed": sd,
                }
                for r in recs
            ]
    atomic_write_text(
        Path(args.out) / "convmf-recipe.jsonl",
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs_out),
    )
    run = {
        "kind": "run",
        "args": {
            "ranks": args.ranks,
            "seeds": args.seeds,
            "seed_ranks": args.seed_ranks,
            "epochs": args.epochs,
            "lr": args.lr,
            "clip_norm": args.clip_norm,
            "warmup_epochs": args.warmup_epochs,
            "objective": args.objective,
            "root": args.root,
            "lanes": args.lanes,
            "note": args.note,
            "save_every": args.save_every,
        },
        "minutes": (time.time() - t_start) / 60,
        "batch_size": base.batch_size,
        "cpu_count": os.cpu_count(),
        "timing": "every method timed in the same interleaved rounds (median of at least 3)",
        "records_file": RUN_RECORDS.name,
    }
    run_path = Path(args.out) / "records" / RUN_RECORDS.name
    atomic_write_text(
        run_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in [run, *health_recs])
    )
    page = Path(args.out) / "convmf-recipe.md"
    write_convmf_recipe(Path(args.out) / "convmf-recipe.jsonl", run_path, page)
    print(f"wrote {page} in {run['minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
