"""``neuralfactor demo``: the main job, a complete small study on the embedded defaults.

Stages (each reused when already finished, so a second run is instant and an interrupted run
resumes where it stopped):

1. simulate a strong-Landau dataset (64x128 by default; 32x64 with ``quick``);
2. train ConvMF at a few ranks and a nested ConvMF (interpolation split), and ConvMF on the
   extrapolation split; beside each ConvMF, the learned sketch encoder (``sketch``) on the
   same frames;
3. evaluate each ConvMF, with its sketch encoder, against the classical baselines in one
   timed run;
4. render the HTML report from the saved records.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "longest_first", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates and trains.

    The simulation saves every ``save_every``-th step (default 4, the ConvMF study's data):
    for the same number of optimizer steps, more distinct frames brought the rank-8 model
    closer to the optimum than more passes over fewer frames did.

    The models train with the ConvMF recipe (the defaults of
    :class:`~neuralfactor.amortized.factorizer.TrainSettings`: Adam 1e-3, linear warmup then a
    cosine decay, gradient norm clipped to 50, the ``factors+projection`` objective) in batches
    of ``batch_size`` frames (with so few epochs, smaller batches than the recipe's 25 came
    closer to the optimum for the same time). The budget goes by rank: ``epochs`` for the
    ConvMF models of the largest interpolation rank (the headline model, which needs the most
    steps), ``other_epochs`` (``None``: ``epochs``) for the others. Both splits of a rank get
    the same budget, so the interpolation/extrapolation comparison at ``extrapolation_rank``
    is fair. ``lanes`` trainings run at once on the CPU, one thread each, in separate
    processes, the longest first (on a GPU they run one after another): the headline model
    takes one lane, the two models of ``extrapolation_rank`` and the sketch encoders the
    other. ``benchmarks/demo_timing.py`` measures the run time against the 5-minute target
    (``quick``: 1 minute) on a 2-core CPU, and states the result either way.
    ``nested`` adds one nested ConvMF at the largest rank, evaluated at every rank (in
    ``quick``, which exercises the whole pipeline; off by default, where its training and two
    evaluations would not fit the budget).

    Beside every ConvMF the demo trains the learned sketch encoder
    (:class:`~neuralfactor.amortized.SketchMF`: it reads ``X Omega`` with a learned
    ``Omega`` of ``rank + sketch_oversample`` columns) for ``sketch_epochs`` epochs at
    ``sketch_lr`` (``None``: its documented rate,
    :func:`~neuralfactor.amortized.factorizer.default_lr`), batch 25. It trains in seconds.

    ``timing_seconds`` caps each evaluation's interleaved timing rounds (the harness's
    minimum number of rounds still holds; ``None``: the harness default, 30 s).
    """

    nx: int = 64
    nv: int = 128
    t_end: float = 40.0
    save_every: int = 4
    ranks: tuple[int, ...] = (4, 8)
    extrapolation_rank: int = 4
    epochs: int = 48
    other_epochs: int | None = 20
    batch_size: int = 10
    lanes: int = 2
    nested: bool = False
    sketch_epochs: int = 10
    sketch_lr: float | None = None  # None: the model's documented rate (default_lr)
    sketch_oversample: int = 15
    #: seconds of timing rounds per evaluation (tiny quick-mode frames time in microseconds,
    #: whose spread settles slowly)
    timing_seconds: float | None = 5.0
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
            epochs=8,
            other_epochs=None,
            batch_size=10,
            nested=True,
            sketch_epochs=20,
            timing_seconds=3.0,
        )


def _loadavg() -> float:
    from neuralfactor.core.timing import loadavg

    return round(loadavg(), 2)


def _check_writable(out: Path) -> None:
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
    from neuralfactor.amortized.factorizer import TrainSettings, default_lr
    from neuralfactor.amortized.study import StudyConfig, evaluate_run
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
            "loadavg_before": _loadavg(),
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
        epochs=cfg.epochs, batch_size=cfg.batch_size, device=str(dev.type)
    )  # every other setting is the recipe: TrainSettings' defaults
    stages = {"simulate": round(time.time() - t0, 1)}
    sketch = replace(
        settings, epochs=cfg.sketch_epochs, lr=cfg.sketch_lr or default_lr("sketch"), batch_size=25
    )
    jobs = _jobs(cfg, str(data), settings, StudyConfig, sketch)
    with pinned_threads(1 if dev.type == "cpu" else None) as info:
        meta["threads"] = info["torch_threads"]  # read from the run, not typed
        t1 = time.time()
        lanes = max(1, min(cfg.lanes, os.cpu_count() or 1)) if dev.type == "cpu" else 1
        meta["lanes"] = lanes
        _train_all(out, jobs, lanes, progress, log)
        stages["train"] = round(time.time() - t1, 1)
        t1 = time.time()
        _evaluate(out, cfg, jobs, dev.type, log, evaluate_run)
        stages["evaluate"] = round(time.time() - t1, 1)
    # demo.json is final before the report reads it: the report is a pure function of the
    # files it is rendered from (``neuralfactor report`` rewrites it byte for byte)
    _record_run(meta, t0, stages)
    write_json(meta_path, meta)
    log("[4/4] writing the report")
    t1 = time.time()
    page = render_report(out)
    # the report does not read the run entries: recording its time keeps it a pure function
    meta["runs"][-1]["stages_seconds"]["report"] = round(time.time() - t1, 1)
    meta["runs"][-1]["seconds"] = round(time.time() - t0, 1)
    write_json(meta_path, meta)
    return page


def _record_run(meta: dict[str, Any], t0: float, stages: dict[str, float]) -> None:
    """Mark ``meta`` finished and append this invocation's entry to ``meta["runs"]``: its wall
    time per stage, threads, CPU count and the 1-minute load average before and after."""
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["last_run_seconds"] = round(time.time() - t0, 1)
    meta.setdefault("runs", []).append(
        {
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)),
            "seconds": meta["last_run_seconds"],
            "stages_seconds": stages,
            "threads": meta["threads"],
            "cpu_count": os.cpu_count(),
            "loadavg_before": meta.pop("loadavg_before", None),
            "loadavg_after": _loadavg(),
        }
    )


def _train_job(sc: Any, run: str, progress: bool, threads: int | None = None) -> float:
    """Train (or resume) one unfinished model into ``run`` (:func:`_train_all` skips the finished
    ones); its wall seconds. Runs in the demo's process (``threads`` None: the demo's setting)
    or in a lane's worker process (one thread)."""
    from neuralfactor.amortized.study import train_model
    from neuralfactor.core.timing import pinned_threads

    t0 = time.time()
    resume = (Path(run) / "ckpt" / "last").exists()
    with pinned_threads(threads):
        train_model(sc, run, resume=resume, progress=progress)
    return time.time() - t0


def _lane_init() -> None:
    """A lane's worker leaves Ctrl-C to the demo, which stops the lanes itself, and dies with
    the demo (Linux): a killed demo leaves no orphan training racing the rerun for a run
    directory."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc
        pass


def _lane_job(job: tuple[str, Any, str]) -> tuple[str, float]:
    name, sc, run = job
    return name, _train_job(sc, run, False, threads=1)


def longest_first(todo: list[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
    """The lanes' order for ``(index, name, StudyConfig)`` jobs: by epochs, a ConvMF epoch
    counted as 100 sketch epochs (its step costs that much more), ties in the demo's order."""
    return sorted(
        todo, key=lambda j: -j[2].settings.epochs * (1 if j[2].model == "sketch" else 100)
    )


def _train_all(out: Path, jobs: list[tuple[str, Any]], lanes: int, progress: bool, log) -> None:
    """Train every job; with ``lanes`` > 1 in that many worker processes at once, the longest
    first (epochs x model: a ConvMF step costs far more than a sketch step), so the headline
    model takes one lane while the others share the rest. Each job resumes its own
    checkpoints (written atomically), so an interrupted or killed demo continues where every
    lane stopped."""
    todo = []
    for i, (name, sc) in enumerate(jobs, 1):
        if (out / name / "model" / "meta.json").exists():
            log(f"[2/4] training {name} ({i}/{len(jobs)}): reusing")
        else:
            todo.append((i, name, sc))
    if lanes == 1 or len(todo) <= 1:
        for i, name, sc in todo:
            log(f"[2/4] training {name} ({i}/{len(jobs)})")
            _train_job(sc, str(out / name), progress)
        return
    import multiprocessing as mp

    todo = longest_first(todo)
    log(f"[2/4] training {', '.join(n for _, n, _ in todo)} on {lanes} lanes, longest first")
    ctx = mp.get_context("spawn")  # no fork of a process whose thread pools are running
    pool = ctx.Pool(lanes, initializer=_lane_init)
    try:
        work = [(name, sc, str(out / name)) for _, name, sc in todo]
        for name, seconds in pool.imap_unordered(_lane_job, work):
            log(f"[2/4] trained {name} in {seconds:.0f} s")
        pool.close()
    except BaseException:
        pool.terminate()  # Ctrl-C or a failed training: stop every lane now
        raise
    finally:
        pool.join()


def _jobs(
    cfg: DemoConfig, data: str, settings: Any, StudyConfig: Any, sketch: Any
) -> list[tuple[str, Any]]:
    """(run directory name, StudyConfig) of every model the demo trains, in training order:
    the ConvMF models, then a sketch encoder beside each plain ConvMF (same split and rank)."""
    plain = [("interpolation", k) for k in cfg.ranks]
    plain.append(("extrapolation", cfg.extrapolation_rank))
    other = replace(settings, epochs=cfg.other_epochs or cfg.epochs)
    head = max(cfg.ranks)  # the budget goes by rank: both splits of a rank get the same
    jobs = [
        (
            f"{s}-convmf-r{k}",
            StudyConfig(data, k, split=s, settings=settings if k == head else other),
        )
        for s, k in plain
    ]
    if cfg.nested:
        k = max(cfg.ranks)
        jobs.insert(
            len(cfg.ranks),
            (f"interpolation-nested-r{k}", StudyConfig(data, k, nested=True, settings=settings)),
        )
    kw = {"oversample": cfg.sketch_oversample}
    jobs += [
        (
            f"{s}-sketch-r{k}",
            StudyConfig(data, k, model="sketch", split=s, settings=sketch, model_kwargs=kw),
        )
        for s, k in plain
    ]
    return jobs


def _evaluate(
    out: Path, cfg: DemoConfig, jobs: list[tuple[str, Any]], device: str, log, evaluate_run
) -> None:
    """Evaluate every model against the baselines (once) and save the report's snapshots."""
    from neuralfactor.report.snapshots import SNAPSHOTS_FILE, save_snapshots

    for name, sc in jobs:
        if sc.model != "convmf":  # evaluated beside the ConvMF of its split and rank
            continue
        run = out / name
        beside = () if sc.nested else (out / name.replace("-convmf-", "-sketch-"),)
        for k in cfg.ranks if sc.nested else (None,):
            rec = run / ("records.jsonl" if k is None else f"records-r{k}.jsonl")
            if rec.exists():
                continue
            at = f" at rank {k}" if k else ""
            also = f" (with {beside[0].name})" if beside else ""
            log(f"[3/4] evaluating {name}{at}{also} against " + ", ".join(cfg.baselines))
            evaluate_run(
                run, baselines=cfg.baselines, device=device, rank=k, threads=1,
                max_seconds=cfg.timing_seconds, with_runs=beside,
            )  # fmt: skip
    # the frames shown in the report: the largest interpolation rank and the extrapolation run
    for name, sc in jobs:
        show = (
            sc.model == "convmf"
            and not sc.nested
            and (sc.split == "extrapolation" or sc.rank == max(cfg.ranks))
        )
        if show and not (out / name / SNAPSHOTS_FILE).exists():
            save_snapshots(out / name)
