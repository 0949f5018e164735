"""Runs of a study under one root directory: naming, parallel training lanes, health, records.

A study trains many models (:func:`neuralfactor.amortized.study.train_model`), each in its own
run directory ``root / run_name(...)``, and evaluates each once
(:func:`neuralfactor.amortized.study.evaluate_run`). Everything here takes the root directory
as an argument; nothing keeps state between calls, so worker processes (``lanes``) need no
shared globals. Finished models and evaluations are reused: a study resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuralfactor.amortized.factorizer import TrainSettings
from neuralfactor.amortized.study import DEFAULT_BASELINES, StudyConfig, evaluate_run, train_model
from neuralfactor.io import read_json, read_jsonl

__all__ = [
    "BASELINES",
    "Log",
    "StudyJob",
    "evaluated",
    "history_health",
    "int_list",
    "load_average",
    "model_health",
    "run_name",
    "silent",
    "simulate_preset",
    "summary_record",
    "train_job",
    "train_missing",
]

#: The classical baselines every study evaluation times beside the learned model.
BASELINES = DEFAULT_BASELINES
Log = Callable[[str], None]


def silent(_: str) -> None:
    """The default ``log``: progress lines are dropped."""
    return None


def int_list(text: str) -> list[int]:
    """``'4,8,12'`` -> ``[4, 8, 12]``; an empty string gives ``[]``
    (:func:`neuralfactor.core.validation.parse_list`)."""
    from neuralfactor.core.validation import parse_list

    return list(parse_list(text, "ranks", int))


@dataclass(frozen=True)
class StudyJob:
    """One model of a study: the store, the split, the rank, nested or not, the settings."""

    data: str
    split: str
    rank: int
    nested: bool
    settings: TrainSettings

    @property
    def name(self) -> str:
        return run_name(self.split, self.rank, self.nested, self.settings)


def run_name(split: str, rank: int, nested: bool, settings: TrainSettings) -> str:
    """The run directory's name: split, model kind, the settings that differ, rank."""
    kind = "nested" if nested else "convmf"
    sched = "" if settings.schedule == "constant" else f"-{settings.schedule}"
    if settings.grad_clip is not None:  # clipped runs carry their clip norm and epoch count
        sched += f"-clip{settings.grad_clip:g}-e{settings.epochs}"
    if settings.warmup_epochs:
        sched += f"-w{settings.warmup_epochs}"
    if settings.objective != "factors":
        sched += "-proj"
    if settings.seed != 0:
        sched += f"-s{settings.seed}"
    return f"{split}-{kind}{sched}-r{rank}"


def simulate_preset(path: str | Path, save_every: int, preset: str = "convmf-64x128") -> Path:
    """The study's data: the simulation preset ``preset`` saved every ``save_every`` steps into
    the store ``path`` on the CPU (kept if it exists), through
    :func:`neuralfactor.vlasov.simulate_to_store` (what ``neuralfactor simulate --preset`` runs).
    """
    from neuralfactor.vlasov import SimulationConfig, simulate_to_store

    path = Path(path)
    if path.exists():
        return path
    config = SimulationConfig.from_preset(preset, save_every=save_every)
    simulate_to_store(config, path, device="cpu")
    return path


def train_job(root: str | Path, job: StudyJob, log: Log = silent) -> Path:
    """Train ``job`` into ``root / job.name`` (resumes a checkpoint; reuses a finished model)."""
    out = Path(root) / job.name
    cfg = StudyConfig(
        data=str(job.data),
        rank=job.rank,
        model="convmf",
        nested=job.nested,
        split=job.split,
        settings=job.settings,
    )
    resume = (out / "ckpt" / "last").exists() and not (out / "model").exists()
    t0 = time.time()
    train_model(cfg, out, resume=resume, progress=False)
    log(f"[{time.strftime('%H:%M:%S')}] trained {out.name} ({time.time() - t0:.0f} s)")
    return out


def _lane(args: tuple[str, StudyJob]) -> str:
    """One training in a worker process: 1 thread, the root passed explicitly."""
    root, job = args
    torch.set_num_threads(1)
    return train_job(root, job).name


def train_missing(
    root: str | Path, jobs: Sequence[StudyJob], lanes: int, log: Log = silent
) -> list[str]:
    """Train the jobs that have no model yet, ``lanes`` processes at once (1 thread each).

    With one lane (or at most one job missing) nothing is trained here: the caller's
    sequential loop trains them. Returns the names of the runs trained.
    """
    todo = [j for j in jobs if not (Path(root) / j.name / "model").exists()]
    if lanes <= 1 or len(todo) <= 1:
        return []
    import multiprocessing as mp

    done = []
    with mp.get_context("spawn").Pool(lanes) as pool:
        for name in pool.imap_unordered(_lane, [(str(root), j) for j in todo]):
            log(f"lane finished {name}")
            done.append(name)
    return done


def evaluated(
    out: str | Path, rank: int | None = None, baselines: tuple[str, ...] = BASELINES
) -> list[dict[str, Any]]:
    """The run's evaluation records, evaluating it first (against ``baselines``) if needed."""
    out = Path(out)
    name = "records.jsonl" if rank is None else f"records-r{rank}.jsonl"
    if not (out / name).exists():
        evaluate_run(out, baselines=baselines, rank=rank, repeats=3, threads=1)
    return read_jsonl(out / name)


def history_health(h: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Best and last evaluation of a training history, its lowest training loss, and flags.

    'diverged': the last validation is above twice the best; 'stuck': the training loss never
    fell below half its first evaluation's (the run never left its starting plateau).
    """
    if not h:
        raise ValueError("The training history is empty: the model was never evaluated.")
    best, last = min(h, key=lambda e: e["metric"]), h[-1]
    low = min(e["loss"] for e in h)
    return {
        "best": best,
        "last": last,
        "low": low,
        "diverged": last["metric"] > 2 * best["metric"],
        "stuck": low > 0.5 * h[0]["loss"],
    }


def model_health(out: str | Path) -> dict[str, Any]:
    """The health record of a trained run (from ``model/meta.json``): flat, JSON-ready.

    ``evaluated_step`` is the step whose weights the model holds (the best validation epoch
    with ``restore_best``, else the last); ``reexported``: the run keeps its final-step weights
    in ``model-last/`` (a model re-exported from its best checkpoint).
    """
    out = Path(out)
    meta = read_json(out / "model" / "meta.json")
    h = meta["history"]
    hh = history_health(h)
    kept = hh["best"] if meta["factorizer"]["settings"].get("restore_best", False) else hh["last"]
    return {
        "kind": "health",
        "run": out.name,
        "best": hh["best"]["metric"],
        "best_step": hh["best"]["step"],
        "final": hh["last"]["metric"],
        "final_step": hh["last"]["step"],
        "diverged": hh["diverged"],
        "stuck": hh["stuck"],
        "first_loss": h[0]["loss"],
        "low_loss": hh["low"],
        "evaluated_step": kept["step"],
        "reexported": (out / "model-last").exists(),
    }


def summary_record(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A committed-size copy of an evaluation record: per-frame lists and times dropped.

    The one statistic of the per-frame lists that a page quotes, the Spearman rank correlation
    between the method's per-frame loss and the per-frame optimum, is kept as ``spearman``.
    NaN becomes ``None`` (strict JSON).
    """
    from scipy.stats import spearmanr

    out = {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in record.items()
        if k != "t" and not k.startswith("per_frame")
    }
    if "per_frame_loss" in record and len(record["per_frame_loss"]) > 1:
        rho = spearmanr(record["per_frame_loss"], record["per_frame_optimum"]).statistic
        out["spearman"] = None if math.isnan(rho) else float(rho)
    return {**out, **extra}


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
