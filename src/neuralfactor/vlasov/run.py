"""Run a simulation into a :class:`~neuralfactor.data.store.MatrixStore`: create, resume, finish.

:func:`simulate_to_store` is the one place that writes a Vlasov-Poisson run to disk (the
``neuralfactor simulate`` command and the demo both call it): frames are streamed to a partial
store as they are computed, an interrupted run resumes bit-identically from its last saved
frame (same device and threads), a diverged run keeps the frames before the failure. Schemes
whose state is more than dense frames (the factors of ``lowrank`` and ``dlr``, the working rank
and warm-start basis of a stateful ``fd5`` truncation) store it beside the frames at every
flush (:meth:`~neuralfactor.data.store.MatrixStoreWriter.append`, ``state``).

:func:`make_truncation` resolves the ``truncate_with`` label of a config (a registered
factorizer name, or a trained model directory, optionally ``+refine``) to the
:class:`~neuralfactor.vlasov.truncation.Truncation` the fd5 stepper uses. Names go through the
core factorizer registry and model directories through
:func:`~neuralfactor.core.factorizer.load_factorizer`, so this package imports no network code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralfactor.vlasov.diagnostics import DIAGNOSTIC_NAMES
from neuralfactor.vlasov.solver import (
    SimulationConfig,
    SimulationDivergedError,
    SolverState,
    VlasovSolver,
    VlasovWarning,
)
from neuralfactor.vlasov.truncation import Truncation

__all__ = [
    "CONSERVED",
    "SimulationInterrupted",
    "StoredSimulation",
    "conservation_table",
    "make_truncation",
    "simulate_to_store",
]

#: Quantities whose drift :class:`StoredSimulation` reports (momentum relative to the mass).
CONSERVED: tuple[str, ...] = ("mass", "momentum", "total_energy", "l2_norm", "entropy")

_REFINE = "+refine"


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another interrupt) stopped :func:`simulate_to_store`; every finished frame
    is kept in the partial store, and the message says how far the run got."""

    def __init__(self, message: str, *, step: int, frames_written: int, partial: Path) -> None:
        super().__init__(message)
        self.step = step
        self.frames_written = frames_written
        self.partial = partial


@dataclass(frozen=True)
class StoredSimulation:
    """What :func:`simulate_to_store` wrote.

    Attributes
    ----------
    store : the finished :class:`~neuralfactor.data.store.MatrixStore`.
    config : the run's :class:`SimulationConfig`.
    device : the device the run was computed on.
    conservation : quantity -> ``(q(0), q(end), max_t |q(t) - q(0)| / |q(0)|)``; values of run
        0, the drift is the largest over the runs (momentum relative to the mass).
    """

    store: Any
    config: SimulationConfig
    device: torch.device
    conservation: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def _model_dir(spec: str) -> tuple[Path, bool] | None:
    """``(model directory, refine)`` when ``spec`` names a trained model, else None."""
    refine = spec.endswith(_REFINE)
    p = Path(spec[: -len(_REFINE)] if refine else spec)
    if not p.exists():
        return None
    for cand in (p, p / "model"):  # a model directory, or a `neuralfactor train` OUT
        if (cand / "meta.json").exists():
            return cand, refine
    raise FileNotFoundError(
        f"--truncate-with {spec!r}: {p} is neither a trained model directory (no meta.json) nor "
        f"a `neuralfactor train` output with a model/ directory."
    )


def _model_truncation(path: Path, refine: bool, tol, rank, frame_shape, device) -> Truncation:
    from neuralfactor.core.factorizer import load_factorizer

    f = load_factorizer(path, device=device, **({"refine": "lstsq"} if refine else {}))
    net = getattr(f, "model_", None) if hasattr(f, "model_") else getattr(f, "model", None)
    built = (int(getattr(net, "m", frame_shape[0])), int(getattr(net, "n", frame_shape[1])))
    if built != tuple(frame_shape):
        raise ValueError(
            f"The model at {path} was built for {built[0]}x{built[1]} frames; this run's "
            f"frames are {frame_shape[0]}x{frame_shape[1]}. Train a model on frames of this "
            f"grid (neuralfactor simulate + train) or change --nx/--nv."
        )
    if rank is not None and rank != f.rank:
        raise ValueError(
            f"The model at {path} has rank {f.rank}; use --rank {f.rank} or --truncate-tol."
        )
    return Truncation(f, tol=tol, rank=rank, name=f"{f.name}:{path}")


def make_truncation(
    spec: str,
    *,
    tol: float | None,
    rank: int | None,
    frame_shape: tuple[int, int],
    device: str = "cpu",
) -> Truncation:
    """A :class:`Truncation` for ``spec``.

    Parameters
    ----------
    spec : a registered factorizer name (``svd``, ``rsvd``, ``warm-subspace``, ...; the working
        rank grows as the tolerance needs) or a trained model directory (or a ``neuralfactor
        train`` output holding ``model/``), optionally suffixed ``+refine`` (least-squares refit
        of V; the model's rank is the working rank, and a stage it cannot compress to ``tol``
        stops the run with a message).
    tol, rank : the truncation's tolerance or fixed rank (see :class:`Truncation`).
    frame_shape : ``(nx, nv)`` of the run; a trained model must have been built for it.
    device : where a trained model is loaded.

    Raises
    ------
    ValueError
        an unknown name, a data-driven name that would need training, a model trained for
        another frame size or rank.
    FileNotFoundError
        an existing path that holds no trained model.
    """
    from neuralfactor.core.factorizer import available_factorizers, make_factorizer

    model = _model_dir(spec)
    if model is not None:
        return _model_truncation(*model, tol, rank, frame_shape, device)
    names = available_factorizers()
    if spec not in names:
        raise ValueError(
            f"Unknown --truncate-with {spec!r}: expected a factorizer name (one of {names}) or "
            f"a trained model directory (neuralfactor train OUT/model, optionally +refine)."
        )
    probe = make_factorizer(spec, rank=1)
    if getattr(probe, "requires_fit", False):
        raise ValueError(
            f"--truncate-with {spec!r} is a data-driven factorizer that needs training: train it "
            f"on frames of this problem (neuralfactor train) and pass its model directory."
        )
    return Truncation(lambda r: make_factorizer(spec, rank=r), tol=tol, rank=rank, name=spec)


def _build_solver(cfg: SimulationConfig, dev: torch.device, warn: Callable[[str], None]):
    truncation = None
    if cfg.truncate_with is not None:
        truncation = make_truncation(
            cfg.truncate_with,
            tol=cfg.stage_tol,
            rank=cfg.truncate_rank,
            frame_shape=(cfg.nx, cfg.nv),
            device=str(dev),
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VlasovWarning)
        solver = VlasovSolver(cfg, device=dev, truncation=truncation)
    for w in caught:
        warn(str(w.message))
    return solver


def _resume(out: Path, cfg: SimulationConfig, solver, dev, warn: Callable[[str], None]):
    """``(writer, frames, first step)`` continuing the partial store of ``out``."""
    from neuralfactor.data.store import MatrixStoreWriter

    writer = MatrixStoreWriter.resume(out, allow_empty=True)
    stored, now_cfg, diff = writer.metadata.get("config", {}), cfg.to_dict(), []
    if stored != now_cfg:
        try:  # compared as resolved configs: a key an older store lacks shows what it means
            stored = asdict(SimulationConfig.from_dict(stored))
            now_cfg = asdict(cfg)
        except (TypeError, ValueError):
            pass
        diff = sorted(
            key for key in set(stored) | set(now_cfg) if stored.get(key) != now_cfg.get(key)
        )
    if diff:
        raise ValueError(
            f"--resume: the options differ from the interrupted run's config in "
            f"{diff} (stored: {[stored.get(key) for key in diff]}); pass the "
            f"same options."
        )
    was, now = writer.metadata.get("conditions"), solver.conditions()
    if was is not None and was != now and writer.frames_written > 0:
        warn(
            f"the run started with {was} and resumes with {now}; the frames from "
            f"here on may differ at round-off from an uninterrupted run (resume under the "
            f"same conditions, e.g. OMP_NUM_THREADS={was.get('torch_threads')}, for "
            f"bit-identical frames)."
        )
    if writer.frames_written == 0:  # stopped before its first flush: start over
        return writer, solver.run(), 0
    f = writer.last_frame().to(dev, solver.dtype)
    history = tuple(h.to(dev, solver.dtype) for h in writer.last_history())
    exact = writer.last_state()
    if exact is not None:
        start = SolverState.from_tensors(writer.step, f, history, exact)
    else:
        start = SolverState(writer.step, f, history)
        if solver.carries_state:
            warn(
                f"the partial store holds no solver state beyond its dense frames (written "
                f"before states were saved); the {cfg.scheme} run continues from its last frame "
                f"re-factored (or with a cold truncation), so it agrees with an uninterrupted run "
                f"to round-off or the truncation tolerance, not bit for bit."
            )
    return writer, solver.run(state=start), writer.step


def _create(out: Path, cfg: SimulationConfig, solver, *, overwrite: bool, chunk_frames):
    from neuralfactor import __version__
    from neuralfactor.data.store import MatrixStoreWriter

    metadata = {
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "version": __version__,
        "producer": "neuralfactor.vlasov",
        "scheme": cfg.scheme,
        "save_every": cfg.save_every,
        "dt": cfg.dt,
        "conditions": solver.conditions(),
    }
    return MatrixStoreWriter.create(
        out,
        n_runs=cfg.ensemble,
        n_frames=cfg.n_frames,
        matrix_shape=(cfg.nx, cfg.nv),
        dtype=solver.dtype,
        diagnostics=list(DIAGNOSTIC_NAMES) + (["truncation_rank"] if cfg.truncates else []),
        metadata=metadata,
        history=2 if cfg.scheme in ("fd5", "lowrank") else 0,
        chunk_frames=chunk_frames,
        overwrite=overwrite,
    )


def _stream(writer, frames, cfg: SimulationConfig, on_step, exact: bool) -> None:
    """Append every frame (with the exact solver state when ``exact``); on a failure keep what
    was computed (and say where)."""
    try:
        for fr in frames:
            state = fr.state.exact_tensors() if exact else None
            writer.append(
                fr.f, fr.t, fr.diagnostics, step=fr.step, history=fr.state.history, state=state
            )
            if on_step is not None:
                on_step(fr.step, cfg.n_steps)
    except SimulationDivergedError as exc:
        kept = writer.mark_failed(str(exc))
        raise RuntimeError(
            f"{exc} The {writer.frames_written} frames saved before it are kept "
            f"in {kept} (open with MatrixStore.open(..., "
            f"allow_partial=True))."
        ) from None
    except KeyboardInterrupt:
        writer.flush()  # Ctrl-C: keep every finished frame, resumable
        raise SimulationInterrupted(
            f"Interrupted at step {writer.step} of {cfg.n_steps} (t = {writer.step * cfg.dt:.6g}); "
            f"{writer.frames_written} of {cfg.n_frames} frames are saved in {writer.partial}. "
            f"Run the same command with --resume to continue.",
            step=writer.step,
            frames_written=writer.frames_written,
            partial=Path(writer.partial),
        ) from None
    except BaseException:
        writer.flush()  # interrupted: keep what was computed, resumable
        raise


def conservation_table(store: Any) -> dict[str, tuple[float, float, float]]:
    """``(q(0), q(end), max relative drift)`` of each :data:`CONSERVED` quantity (see
    :class:`StoredSimulation`); the drift is the largest over the store's runs."""
    diag = [run.diagnostics for run in store]  # (T,) float64 per run: small
    table = {}
    for key in CONSERVED:
        rel = 0.0
        for d in diag:
            q = d[key]
            ref = abs(d["mass"][0]) if key == "momentum" else max(abs(q[0]), 1e-300)
            rel = max(rel, float(np.max(np.abs(q - q[0])) / ref))
        table[key] = (float(diag[0][key][0]), float(diag[0][key][-1]), rel)
    return table


def simulate_to_store(
    config: SimulationConfig,
    out: str | Path,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    chunk_frames: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> StoredSimulation:
    """Simulate ``config`` and stream its frames ``(B, T, m, n)`` to the Zarr store ``out``.

    Every scheme (spectral, fd5 with or without ``truncate_with``, lowrank, dlr) goes through
    here. Frames go to a partial store first (``out.partial``), renamed when complete, so a
    crash never leaves a store that looks finished.

    Parameters
    ----------
    config : the run; stored in full in the store's metadata.
    out : path of the store.
    resume : continue the partial store of an interrupted run with the same config (frames
        bit-identical to an uninterrupted run under the same device and thread count).
    overwrite : replace an existing store.
    chunk_frames : frames per storage chunk (default: the store's choice).
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    on_step : called as ``on_step(step, n_steps)`` at the start and after every saved frame.
    on_warning : receives each warning (CFL, recurrence, other resume conditions); default
        :func:`warnings.warn` with :class:`VlasovWarning`.

    Raises
    ------
    ValueError
        both ``resume`` and ``overwrite``; a config that differs from the interrupted run's;
        a bad device or truncation.
    SimulationInterrupted
        on Ctrl-C, after saving every finished frame (resumable).
    RuntimeError
        when the run diverges (NaN/Inf); the frames before it are kept in the partial store.
    """
    from neuralfactor.core.validation import resolve_device

    def warn(message: str) -> None:
        if on_warning is None:
            warnings.warn(message, VlasovWarning, stacklevel=3)
        else:
            on_warning(message)

    if overwrite and resume:
        raise ValueError("Pass either --overwrite or --resume, not both.")
    if isinstance(device, str) and device not in ("auto", "cpu", "cuda"):
        if not device.startswith("cuda:"):
            raise ValueError(
                f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got {device!r}."
            )
    out, dev = Path(out), resolve_device(device)
    solver = _build_solver(config, dev, warn)
    if resume:
        writer, frames, done = _resume(out, config, solver, dev, warn)
    else:
        writer = _create(out, config, solver, overwrite=overwrite, chunk_frames=chunk_frames)
        frames, done = solver.run(), 0
    if on_step is not None:
        on_step(done, config.n_steps)
    _stream(writer, frames, config, on_step, solver.carries_state)
    store = writer.finalize()
    return StoredSimulation(store, config, dev, conservation_table(store))
