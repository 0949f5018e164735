"""``neuralfactor demo``: the main job, a complete small study on the embedded defaults.

Stages (each reused when already finished, so a second run is instant and an interrupted run
resumes where it stopped):

1. simulate a strong-Landau dataset (64x128 by default; 32x64 with ``quick``);
2. train ConvMF at a few ranks and a nested ConvMF (interpolation split), and ConvMF on the
   extrapolation split;
3. evaluate each against the classical baselines in one timed run per model;
4. render the HTML report from the saved records.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    nx: int = 64
    nv: int = 128
    t_end: float = 40.0
    save_every: int = 8
    ranks: tuple[int, ...] = (4, 8)
    extrapolation_rank: int = 8
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 25
    baselines: tuple[str, ...] = (
        "svd",
        "svds-arpack",
        "rsvd",
        "rsvd-gemm",
        "warm-subspace",
        "pod-basis",
    )

    @classmethod
    def quick(cls) -> DemoConfig:
        return cls(
            nx=32,
            nv=64,
            t_end=20.0,
            save_every=8,
            ranks=(4,),
            extrapolation_rank=4,
            epochs=3,
            batch_size=10,
        )


def _check_writable(out: Path) -> None:
    import os

    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise PermissionError(f"Cannot write the demo output to {out}: {probe} is not writable.")


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    device: str = "auto",
    progress: bool = True,
    log=print,
) -> Path:
    """Run (or resume) the demo into ``out``; return the path of the HTML report."""
    import torch

    from neuralfactor import __version__
    from neuralfactor.amortized.factorizer import TrainSettings
    from neuralfactor.amortized.study import StudyConfig, evaluate_run, train_model
    from neuralfactor.core.timing import pinned_threads
    from neuralfactor.core.validation import resolve_device
    from neuralfactor.data.store import partial_path
    from neuralfactor.io import read_json, write_json
    from neuralfactor.report.html import render_report
    from neuralfactor.vlasov import SimulationConfig, simulate_to_store

    out = Path(out)
    _check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = DemoConfig.quick() if quick else DemoConfig()
    dev = resolve_device(device)
    meta_path = out / "demo.json"
    meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
    if meta.get("config") not in (
        None,
        asdict(cfg) | {"ranks": list(cfg.ranks), "baselines": list(cfg.baselines)},
    ):
        raise FileExistsError(
            f"{out} holds a demo with another configuration ({'quick' if not quick else 'full'}); "
            f"use another --out."
        )
    meta.update(
        {
            "config": asdict(cfg),
            "version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "device": str(dev),
            "started": meta.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
        }
    )
    write_json(meta_path, meta)
    t0 = time.time()

    data = out / "data.zarr"
    if not data.exists():
        log(f"[1/4] simulating strong Landau damping on a {cfg.nx}x{cfg.nv} grid to t={cfg.t_end}")
        simulate_to_store(
            SimulationConfig(
                ic="landau-strong", nx=cfg.nx, nv=cfg.nv, t_end=cfg.t_end, save_every=cfg.save_every
            ),
            data,
            resume=partial_path(data).exists(),
            device=dev.type,
        )
    else:
        log("[1/4] simulation: reusing " + str(data))
    settings = TrainSettings(
        epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, device=str(dev.type)
    )
    jobs = [
        (
            f"interpolation-convmf-r{k}",
            StudyConfig(str(data), k, split="interpolation", settings=settings),
        )
        for k in cfg.ranks
    ]
    jobs.append(
        (
            f"interpolation-nested-r{max(cfg.ranks)}",
            StudyConfig(str(data), max(cfg.ranks), nested=True, settings=settings),
        )
    )
    jobs.append(
        (
            f"extrapolation-convmf-r{cfg.extrapolation_rank}",
            StudyConfig(
                str(data), cfg.extrapolation_rank, split="extrapolation", settings=settings
            ),
        )
    )
    for i, (name, sc) in enumerate(jobs, 1):
        run = out / name
        done = (run / "model" / "meta.json").exists()
        log(f"[2/4] training {name} ({i}/{len(jobs)})" + (": reusing" if done else ""))
        resume = (run / "ckpt" / "last").exists() and not done
        # One thread on CPU, as recorded in demo.json: with two threads on a 2-core machine
        # shared with anything else, training ran up to 6x slower (spin-waiting threads).
        with pinned_threads(1 if dev.type == "cpu" else None) as info:
            meta["threads"] = info["torch_threads"]  # read from the run, not typed
            train_model(sc, run, resume=resume, progress=progress)
    for name, sc in jobs:
        run = out / name
        ranks = cfg.ranks if sc.nested else (None,)
        for k in ranks:
            rec = run / ("records.jsonl" if k is None else f"records-r{k}.jsonl")
            if rec.exists():
                continue
            log(
                f"[3/4] evaluating {name}"
                + (f" at rank {k}" if k else "")
                + " against "
                + ", ".join(cfg.baselines)
            )
            evaluate_run(run, baselines=cfg.baselines, device=str(dev.type), rank=k, threads=1)
    # demo.json is final before the report reads it: the report is a pure function of the
    # files it is rendered from (``neuralfactor report`` rewrites it byte for byte)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["last_run_seconds"] = round(time.time() - t0, 1)
    write_json(meta_path, meta)
    log("[4/4] writing the report")
    return render_report(out)
