"""The ConvMF study: which models it trains, and their evaluation records.

The study trains ConvMF (Kovachki-style convolutional encoder with a factor fork; the
original study's network) on the frames of one strong-Landau-damping simulation, at several
ranks, on an interpolation and an extrapolation split, with the original training settings
("constant") and with training variants (a cosine schedule; cosine with gradient clipping;
further seeds), and evaluates every model on its test frames against the classical baselines
(:func:`neuralfactor.amortized.study.evaluate_run`). :func:`collect_study` does all of it under
one root directory (resumable: finished models and evaluations are reused) and returns the
records; :func:`lr_probe` measures the short learning-rate sweep behind the study's choice of
learning rate. Pages and figures are drawn from the records by
:mod:`neuralfactor.report.convmf_study`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralfactor.amortized.factorizer import TrainSettings, train_preset
from neuralfactor.amortized.study import StudyConfig, load_split_frames, train_model
from neuralfactor.amortized.study_runs import (
    Log,
    StudyJob,
    evaluated,
    int_list,
    load_average,
    model_health,
    silent,
    simulate_preset,
    summary_record,
    train_job,
    train_missing,
)
from neuralfactor.core.metrics import optimal_scaled_loss
from neuralfactor.io import read_json

__all__ = [
    "ConvMFStudyConfig",
    "LR_PROBE",
    "StudyResults",
    "Variant",
    "base_settings",
    "collect_study",
    "lr_probe",
    "study_jobs",
    "study_variants",
]

SPLITS = ("interpolation", "extrapolation")
#: The learning-rate probe: (rank, epochs, learning rates) on the interpolation split.
LR_PROBE = (6, 6, (1e-3, 3e-4, 1e-4))


@dataclass(frozen=True)
class ConvMFStudyConfig:
    """The study's command-line arguments (``benchmarks/convmf_study.py``); ranks as text."""

    epochs: int = 40
    lr: float = 1e-3
    save_every: int = 4
    ranks: str = "4,6,8,10,12"
    extrap_ranks: str = "4,8,12"
    root: str = "runs/study"
    cosine_ranks: str = ""
    cosine_extrap_ranks: str = ""
    clip_ranks: str = ""
    clip_extrap_ranks: str = ""
    clip_norm: float = 50.0
    clip_epochs: int | None = None
    clip_seeds: str = ""
    clip_seed_ranks: str = ""
    lanes: int = 1

    def __post_init__(self) -> None:
        for name in ("ranks", "extrap_ranks", "cosine_ranks", "cosine_extrap_ranks"):
            int_list(getattr(self, name))  # a malformed list is refused before any work
        for name in ("clip_ranks", "clip_extrap_ranks", "clip_seeds", "clip_seed_ranks"):
            int_list(getattr(self, name))
        if not int_list(self.ranks) or not int_list(self.extrap_ranks):
            raise ValueError(
                "The study needs at least one rank per split (--ranks, --extrap-ranks)."
            )
        if self.lanes < 1:
            raise ValueError(f"The 'lanes' parameter must be >= 1. Got {self.lanes}.")
        study_variants(self)  # invalid training settings are refused before any work

    @property
    def split_ranks(self) -> dict[str, list[int]]:
        return {"interpolation": int_list(self.ranks), "extrapolation": int_list(self.extrap_ranks)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Variant:
    """A training variant: label, settings, ranks per split, how it was trained, in tables."""

    label: str
    settings: TrainSettings
    ranks: dict[str, list[int]]
    how: str
    in_table: bool


@dataclass
class StudyResults:
    """What :func:`collect_study` returns.

    records : the full evaluation records of the constant-rate models per split (per-frame
        lists included, for the figures), nested models renamed ``nested*``.
    summaries : every evaluation as a committed-size record with its ``variant`` label.
    health : one health record per trained model. samples : (rank, arrays) per split.
    train_until : per split, the last training time (extrapolation) or ``None``.
    """

    records: dict[str, list[dict]] = field(default_factory=dict)
    summaries: list[dict] = field(default_factory=list)
    health: list[dict] = field(default_factory=list)
    samples: dict[str, list] = field(default_factory=dict)
    train_until: dict[str, float | None] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)


def base_settings(config: ConvMFStudyConfig) -> TrainSettings:
    """The original study's settings (constant rate, no clipping, plain factor loss) at the
    study's epochs and learning rate; the library's defaults are the later recipe."""
    return train_preset("original", epochs=config.epochs, lr=config.lr, batch_size=25, device="cpu")


def study_variants(config: ConvMFStudyConfig) -> list[Variant]:
    """The training variants beside the constant-rate models (cosine, cosine+clip, seeds)."""
    cos = dataclasses.replace(base_settings(config), schedule="cosine")
    clip = dataclasses.replace(
        cos, grad_clip=config.clip_norm, epochs=config.clip_epochs or config.epochs
    )
    variants = [
        Variant(
            "cosine",
            cos,
            {
                "interpolation": int_list(config.cosine_ranks),
                "extrapolation": int_list(config.cosine_extrap_ranks),
            },
            f"lr {config.lr:g} decayed by a cosine, {config.epochs} epochs",
            True,
        ),
        Variant(
            "cosine+clip",
            clip,
            {
                "interpolation": int_list(config.clip_ranks),
                "extrapolation": int_list(config.clip_extrap_ranks),
            },
            f"cosine schedule, gradient norm clipped to {config.clip_norm:g}, {clip.epochs} epochs",
            True,
        ),
    ]
    return variants + [  # seed checks: findings lines and the health table only
        Variant(
            f"cosine+clip seed {sd}",
            dataclasses.replace(clip, seed=sd),
            {"interpolation": int_list(config.clip_seed_ranks)},
            f"the same, initialization and batch order from seed {sd} instead of 0; same split "
            "and test frames",
            False,
        )
        for sd in int_list(config.clip_seeds)
    ]


def study_jobs(config: ConvMFStudyConfig, data: str | Path) -> list[StudyJob]:
    """Every model of the study: constant rate per rank, one nested per split, variants."""
    st, data = base_settings(config), str(data)
    jobs = [StudyJob(data, sp, k, False, st) for sp, rs in config.split_ranks.items() for k in rs]
    jobs += [StudyJob(data, sp, max(rs), True, st) for sp, rs in config.split_ranks.items()]
    return jobs + [
        StudyJob(data, sp, k, False, v.settings)
        for v in study_variants(config)
        for sp, rs in v.ranks.items()
        for k in rs
    ]


def _train_until(run_dir: Path) -> float:
    """The time of the last training frame of an extrapolation run."""
    config = StudyConfig.from_dict(read_json(run_dir / "config.json"))
    split = read_json(run_dir / "split.json")
    _, _, t = load_split_frames(config)
    return float(t[max(split["train"])])


def _collect_constant(config, root, data, res: StudyResults, log: Log) -> None:
    st = base_settings(config)
    for split, rs in config.split_ranks.items():
        res.records[split], res.samples[split] = [], []
        for k in rs:
            out = train_job(root, StudyJob(data, split, k, False, st), log)
            recs = evaluated(out)
            res.records[split] += recs
            res.health.append(model_health(out))
            if k in (rs[0], rs[len(rs) // 2], rs[-1]):
                s = np.load(out / "samples.npz", allow_pickle=False)
                res.samples[split].append((k, {key: s[key] for key in s.files}))
        nout = train_job(root, StudyJob(data, split, max(rs), True, st), log)
        res.health.append(model_health(nout))
        for k in rs:
            res.records[split] += [
                dict(r, method=r["method"].replace("convmf-nested", "nested"))
                for r in evaluated(nout, rank=k)
                if r["kind"] != "classical"
            ]
        res.summaries += [summary_record(r, variant="constant") for r in res.records[split]]
        last = root / StudyJob(data, split, max(rs), False, st).name
        res.train_until[split] = _train_until(last) if split == "extrapolation" else None


def collect_study(config: ConvMFStudyConfig, log: Log = silent) -> StudyResults:
    """Simulate (once), train every model (``config.lanes`` at once) and evaluate each.

    Returns the records (see :class:`StudyResults`) with the run record: the configuration,
    the minutes taken, the cores, the load average at the start and the end.
    """
    import torch

    t0, load0 = time.time(), load_average()
    root = Path(config.root)
    root.mkdir(parents=True, exist_ok=True)
    data = str(simulate_preset(root / "landau64.zarr", config.save_every))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_missing(root, study_jobs(config, data), config.lanes, log)
        res = StudyResults()
        _collect_constant(config, root, data, res, log)
        for v in study_variants(config):
            for split, rs in v.ranks.items():
                for k in rs:
                    out = train_job(root, StudyJob(data, split, k, False, v.settings), log)
                    res.health.append(model_health(out))
                    res.summaries += [
                        summary_record(r, variant=v.label)
                        for r in evaluated(out)
                        if r["kind"] != "classical"
                    ]
    finally:
        torch.set_num_threads(threads)
    res.health.sort(key=lambda h: h["run"])
    res.run = {
        "kind": "run",
        "args": config.to_dict(),
        "minutes": (time.time() - t0) / 60,
        "cpu_count": os.cpu_count(),
        "load_start": load0,
        "load_end": load_average(),
        "reexported_models": sum(h["reexported"] for h in res.health),
    }
    return res


def lr_probe(config: ConvMFStudyConfig, log: Log = silent) -> list[dict[str, Any]]:
    """The learning-rate probe: ConvMF at rank 6 for 6 epochs at lr 1e-3, 3e-4 and 1e-4.

    Same data and interpolation split as the study, the original settings otherwise, 1 thread.
    One record per learning rate: the validation scaled loss after the last epoch and at its
    best, the validation frames' SVD optimum at that rank, the training seconds.
    """
    import torch

    rank, epochs, lrs = LR_PROBE
    root = Path(config.root)
    root.mkdir(parents=True, exist_ok=True)
    data = str(simulate_preset(root / "landau64.zarr", config.save_every))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for lr in lrs:
            st = dataclasses.replace(base_settings(config), epochs=epochs, lr=lr)
            cfg = StudyConfig(data=data, rank=rank, split="interpolation", settings=st)
            run = root / f"lr-probe-r{rank}-e{epochs}-lr{lr:g}"
            load0 = load_average()
            f = train_model(cfg, run, resume=(run / "ckpt" / "last").exists(), progress=False)
            frames, _, _ = load_split_frames(cfg)
            opt = float(optimal_scaled_loss(frames["val"], rank).mean())
            h = f.history_ or read_json(run / "model" / "meta.json")["history"]
            log(f"lr {lr:g}: validation scaled loss {h[-1]['metric']:.4f} (optimum {opt:.4f})")
            out.append(
                {
                    "kind": "lr-probe",
                    "rank": rank,
                    "epochs": epochs,
                    "lr": lr,
                    "split": "interpolation",
                    "val_final": h[-1]["metric"],
                    "val_best": min(e["metric"] for e in h),
                    "val_optimum": opt,
                    "n_val": int(frames["val"].shape[0]),
                    "fit_seconds": f.fit_seconds_,
                    "torch_threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count(),
                    "loadavg_before": load0,
                    "loadavg_after": load_average(),
                    "settings": json.loads(json.dumps(dataclasses.asdict(st))),
                }
            )
    finally:
        torch.set_num_threads(threads)
    return out
