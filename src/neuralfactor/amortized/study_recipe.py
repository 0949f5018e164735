"""The ConvMF training recipe across ranks and seeds: its models and evaluation records.

One set of training settings (the "recipe": cosine schedule, gradient clipping, warmup, the
training objective) trains one ConvMF per (rank, seed) on the interpolation split of the ConvMF
study (same simulation, split and test frames); each is evaluated on the test frames (plain,
+refine, +subspace; the classical baselines once per rank, with the first seed's model, timed
in the same evaluation). The question: does "ConvMF+refine within 1.10x of the SVD optimum at
every rank" hold for every seed? The page is drawn by :mod:`neuralfactor.report.convmf_recipe`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralfactor.amortized import study_runs as runs
from neuralfactor.amortized.factorizer import OBJECTIVES, TrainSettings
from neuralfactor.amortized.study_runs import Log, StudyJob, int_list, silent

__all__ = ["RecipeConfig", "collect_recipe", "recipe_jobs"]


@dataclass(frozen=True)
class RecipeConfig:
    """The recipe run's command-line arguments (``benchmarks/convmf_recipe.py``).

    ``seed_ranks``: ranks trained with every seed (``None``: all); the others with the first
    seed only. ``note``: a line on how the run went (load, restarts), printed on the page.
    """

    ranks: str = "4,6,8,10,12"
    seeds: str = "0,1,2"
    seed_ranks: str | None = None
    epochs: int = 240
    lr: float = 1e-3
    clip_norm: float = 50.0
    warmup_epochs: int = 5
    objective: str = "factors+projection"
    save_every: int = 4
    root: str = "runs/recipe"
    lanes: int = 1
    note: str = ""

    def __post_init__(self) -> None:
        if not int_list(self.ranks) or not int_list(self.seeds):
            raise ValueError("The recipe needs at least one rank and one seed.")
        int_list(self.seed_ranks or "")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"The 'objective' parameter must be one of {list(OBJECTIVES)}. Got {self.objective!r}."
            )
        if self.lanes < 1:
            raise ValueError(f"The 'lanes' parameter must be >= 1. Got {self.lanes}.")
        self.settings(0)  # invalid training settings are refused before any work

    def settings(self, seed: int) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=25,
            device="cpu",
            schedule="cosine",
            grad_clip=self.clip_norm,
            warmup_epochs=self.warmup_epochs,
            objective=self.objective,
            seed=seed,
        )

    def seeds_of(self) -> dict[int, list[int]]:
        """The seeds trained at each rank."""
        ranks, seeds = int_list(self.ranks), int_list(self.seeds)
        multi = set(ranks if self.seed_ranks is None else int_list(self.seed_ranks))
        return {k: seeds if k in multi else seeds[:1] for k in ranks}


def recipe_jobs(config: RecipeConfig, data: str | Path) -> list[StudyJob]:
    """The models of the run, the highest ranks (the hardest, likeliest misses) first."""
    seeds_of = config.seeds_of()
    return [
        StudyJob(str(data), "interpolation", k, False, config.settings(sd))
        for k in sorted(seeds_of, reverse=True)
        for sd in seeds_of[k]
    ]


def collect_recipe(
    config: RecipeConfig, log: Log = silent
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train (``config.lanes`` at once) and evaluate every model of the recipe (resumable).

    Returns the evaluation records (per-frame lists dropped, with their ``seed``) and the run
    records: one ``"kind": "run"`` line (arguments, minutes, cores, batch size) and one
    ``"kind": "health"`` line per model.
    """
    import torch

    t0 = time.time()
    root = Path(config.root)
    root.mkdir(parents=True, exist_ok=True)
    data = runs.simulate_preset(root / "landau64.zarr", config.save_every)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    evals, health = [], []
    first = int_list(config.seeds)[0]
    try:
        runs.train_missing(root, recipe_jobs(config, data), config.lanes, log)
        for k, seeds in config.seeds_of().items():
            for sd in seeds:
                job = StudyJob(str(data), "interpolation", k, False, config.settings(sd))
                out = runs.train_job(root, job, log)
                recs = runs.evaluated(out, baselines=runs.BASELINES if sd == first else ())
                h = runs.model_health(out)
                health.append(
                    {"kind": "health", "rank": k, "seed": sd}
                    | {key: h[key] for key in ("best", "best_step", "final", "stuck")}
                )
                evals += [runs.summary_record(r, seed=sd) for r in recs]
    finally:
        torch.set_num_threads(threads)
    run = {
        "kind": "run",
        "args": {
            "ranks": config.ranks,
            "seeds": config.seeds,
            "seed_ranks": config.seed_ranks,
            "epochs": config.epochs,
            "lr": config.lr,
            "clip_norm": config.clip_norm,
            "warmup_epochs": config.warmup_epochs,
            "objective": config.objective,
            "root": config.root,
            "lanes": config.lanes,
            "note": config.note,
            "save_every": config.save_every,
        },
        "minutes": (time.time() - t0) / 60,
        "batch_size": 25,
        "cpu_count": os.cpu_count(),
    }
    return evals, [run, *health]
