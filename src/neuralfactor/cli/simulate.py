"""``neuralfactor simulate``: run the Vlasov-Poisson solver and stream frames to a MatrixStore."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "simulate"]


def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Output store, e.g. runs/landau.zarr."),
    ic: str = typer.Option(None, "--ic", help="Initial condition (default landau-strong)."),
    preset: str = typer.Option(
        None,
        "--preset",
        help="convmf-64x128 or convmf-128x256 (grid, dt, T of the original study).",
    ),
    nx: int = typer.Option(None, "--nx", help="Grid points in x (rows m). Default 64."),
    nv: int = typer.Option(None, "--nv", help="Grid points in v (columns n). Default 128."),
    t_end: float = typer.Option(None, "--t-end", help="Final time. Default 40."),
    dt: float = typer.Option(None, "--dt", help="Time step. Default min(hx, hv)/20."),
    save_every: int = typer.Option(None, "--save-every", help="Save every K steps. Default 1."),
    ensemble: int = typer.Option(1, "--ensemble", help="Runs advanced together (batch)."),
    seed: int = typer.Option(0, "--seed", help="Seed of random initial conditions."),
    scheme: str = typer.Option("spectral", "--scheme", help="spectral, fd5 or lowrank."),
    truncate_tol: float = typer.Option(
        None,
        "--truncate-tol",
        help="fd5/lowrank: relative truncation tolerance (original: 1e-5; lowrank default).",
    ),
    truncate_rank: int = typer.Option(
        None, "--rank", "--truncate-rank", help="fd5/lowrank: fixed rank instead of a tolerance."
    ),
    truncate_with: str = typer.Option(
        None,
        "--truncate-with",
        help="fd5: factorizer that truncates (svd, rsvd, warm-subspace, or a trained model "
        "directory, optionally +refine). Default: the exact SVD.",
    ),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    k: float = typer.Option(None, "--k", help="Wavenumber of the perturbation (all ICs)."),
    alpha: float = typer.Option(
        None, "--alpha", help="Amplitude of the perturbation, |alpha| <= 1 (all ICs)."
    ),
    v0: float = typer.Option(None, "--v0", help="two-stream: beam velocities +-v0."),
    np_: float = typer.Option(None, "--np", help="bump-on-tail: density of the bulk, >= 0."),
    nb: float = typer.Option(None, "--nb", help="bump-on-tail: height of the bump, >= 0."),
    vb: float = typer.Option(None, "--vb", help="bump-on-tail: drift velocity of the bump."),
    vt: float = typer.Option(None, "--vt", help="bump-on-tail: thermal speed of the bump, > 0."),
    modes: float = typer.Option(
        None, "--modes", help="random-smooth: Fourier modes in x (an integer >= 1)."
    ),
    hermite: float = typer.Option(
        None, "--hermite", help="random-smooth: Hermite functions in v (an integer in [1, 64])."
    ),
    vmax: float = typer.Option(None, "--vmax", help="Velocity box [-vmax, vmax]."),
    length: float = typer.Option(None, "--length", help="Period in x (default 2 pi / k)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    chunk_frames: int = typer.Option(None, "--chunk-frames", help="Frames per storage chunk."),
) -> None:
    """Simulate 1D1V Vlasov-Poisson and write the frames (T, m, n) per run to a Zarr store."""
    import warnings

    from neuralfactor import __version__
    from neuralfactor.cli import console, err_console, state
    from neuralfactor.core.validation import resolve_device
    from neuralfactor.data.store import MatrixStoreWriter, partial_path
    from neuralfactor.vlasov import (
        DIAGNOSTIC_NAMES,
        SimulationConfig,
        SimulationDivergedError,
        SolverState,
        VlasovSolver,
        VlasovWarning,
    )

    if overwrite and resume:
        raise ValueError("Pass either --overwrite or --resume, not both.")
    fields = {
        "ic": ic,
        "nx": nx,
        "nv": nv,
        "t_end": t_end,
        "dt": dt,
        "save_every": save_every,
        "ensemble": ensemble,
        "seed": seed,
        "scheme": scheme,
        "dtype": dtype,
        "vmax": vmax,
        "length": length,
        "truncate_tol": truncate_tol,
        "truncate_rank": truncate_rank,
        "truncate_with": truncate_with,
    }
    fields = {key: val for key, val in fields.items() if val is not None}
    # validated (and refused when --ic has no such parameter) by the initial condition itself
    given = {"k": k, "alpha": alpha, "v0": v0, "np": np_, "nb": nb, "vb": vb, "vt": vt,
             "modes": modes, "hermite": hermite}  # fmt: skip
    params = {key: val for key, val in given.items() if val is not None}
    if params:
        fields["ic_params"] = params
    if preset is not None:
        cfg = SimulationConfig.from_preset(preset, **fields)
    else:
        cfg = SimulationConfig(**fields)
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got {device!r}.")
    dev = resolve_device(device)

    truncation = None
    if cfg.truncate_with is not None:
        from neuralfactor.cli.truncation import make_truncation

        truncation = make_truncation(
            cfg.truncate_with,
            tol=cfg.truncate_tol,
            rank=cfg.truncate_rank,
            frame_shape=(cfg.nx, cfg.nv),
            device=str(dev),
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VlasovWarning)
        solver = VlasovSolver(cfg, device=dev, truncation=truncation)
    for w in caught:
        err_console.print(f"warning: {w.message}", markup=False, highlight=False)

    diag_names = list(DIAGNOSTIC_NAMES) + (["truncation_rank"] if cfg.truncates else [])
    history = 2 if cfg.scheme in ("fd5", "lowrank") else 0
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
    if resume:
        writer = MatrixStoreWriter.resume(out, allow_empty=True)
        stored = writer.metadata.get("config", {})
        if stored != cfg.to_dict():
            diff = sorted(
                key
                for key in set(stored) | set(cfg.to_dict())
                if stored.get(key) != cfg.to_dict().get(key)
            )
            raise ValueError(
                f"--resume: the options differ from the interrupted run's config in "
                f"{diff} (stored: {[stored.get(key) for key in diff]}); pass the "
                f"same options."
            )
        was, now = writer.metadata.get("conditions"), solver.conditions()
        if was is not None and was != now and writer.frames_written > 0:
            err_console.print(
                f"warning: the run started with {was} and resumes with {now}; the frames from "
                f"here on may differ at round-off from an uninterrupted run (resume under the "
                f"same conditions, e.g. OMP_NUM_THREADS={was.get('torch_threads')}, for "
                f"bit-identical frames).",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if writer.frames_written == 0:  # stopped before its first flush: start over
            frames = solver.run()
            done = 0
        else:
            start = SolverState(
                writer.step,
                writer.last_frame().to(dev, solver.dtype),
                tuple(h.to(dev, solver.dtype) for h in writer.last_history()),
            )
            frames = solver.run(state=start)
            done = writer.step
    else:
        writer = MatrixStoreWriter.create(
            out,
            n_runs=cfg.ensemble,
            n_frames=cfg.n_frames,
            matrix_shape=(cfg.nx, cfg.nv),
            dtype=solver.dtype,
            diagnostics=diag_names,
            metadata=metadata,
            history=history,
            chunk_frames=chunk_frames,
            overwrite=overwrite,
        )
        frames = solver.run()
        done = 0

    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("simulate"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=state["quiet"],
        transient=True,
    )
    interrupted = False
    with progress:
        task = progress.add_task("steps", total=cfg.n_steps, completed=done)
        try:
            for fr in frames:
                writer.append(fr.f, fr.t, fr.diagnostics, step=fr.step, history=fr.state.history)
                progress.update(task, completed=fr.step)
        except SimulationDivergedError as exc:
            kept = writer.mark_failed(str(exc))
            raise RuntimeError(
                f"{exc} The {writer.frames_written} frames saved before it are kept "
                f"in {kept} (open with MatrixStore.open(..., "
                f"allow_partial=True))."
            ) from None
        except KeyboardInterrupt:
            writer.flush()  # Ctrl-C: keep every finished frame, resumable
            interrupted = True
        except BaseException:
            writer.flush()  # interrupted: keep what was computed, resumable
            raise
    if interrupted:
        err_console.print(
            f"Interrupted at step {writer.step} of {cfg.n_steps} (t = {writer.step * cfg.dt:.6g}); "
            f"{writer.frames_written} of {cfg.n_frames} frames are saved in {writer.partial}. "
            f"Run the same command with --resume to continue.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
    store = writer.finalize()

    import numpy as np
    from rich.table import Table

    diag = [run.diagnostics for run in store]  # (T,) float64 per run: small
    table = Table(
        title=f"{out}: {store.shape[0]} run(s) x {store.shape[1]} frames of "
        f"{cfg.nx}x{cfg.nv}, t in [0, {cfg.n_steps * cfg.dt:.4g}]"
    )
    table.add_column("quantity (run 0)")
    table.add_column("t = 0", justify="right")
    table.add_column("t = end", justify="right")
    table.add_column("max |q(t) - q(0)| / |q(0)|", justify="right")
    for key in ("mass", "momentum", "total_energy", "l2_norm", "entropy"):
        rel = 0.0
        for d in diag:
            q = d[key]
            ref = abs(d["mass"][0]) if key == "momentum" else max(abs(q[0]), 1e-300)
            rel = max(rel, float(np.max(np.abs(q - q[0])) / ref))
        note = " (rel. to mass)" if key == "momentum" else ""
        table.add_row(
            key + note, f"{diag[0][key][0]:.10g}", f"{diag[0][key][-1]:.10g}", f"{rel:.3e}"
        )
    console.print(table)
    console.print(
        f"checksum {store.metadata['checksum'][:16]}...  device {dev}  scheme "
        f"{cfg.scheme}  dt {cfg.dt:.6g}  ({partial_path(out).name} removed)"
    )


def register(app: typer.Typer) -> None:
    """Add ``neuralfactor simulate`` to the app."""
    app.command("simulate")(simulate)
