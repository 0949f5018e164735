"""``neuralfactor simulate``: run the Vlasov-Poisson solver and stream frames to a MatrixStore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        help="fd5/lowrank/dlr: relative truncation tolerance, per unit of simulated time "
        "unless --truncate-per stage (1e-5: the original data's value and the lowrank/dlr "
        "default).",
    ),
    truncate_per: str = typer.Option(
        None,
        "--truncate-per",
        help="With --truncate-tol: 'time' (default; every stage truncates at tol*dt, so the "
        "error is bounded per unit of time whatever the step) or 'stage' (every stage at tol, "
        "the original data's rule: a perturbation of relative size alpha at wave number k is "
        "then only carried when tol < alpha*k*dt).",
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
    mass_correction: bool = typer.Option(
        None,
        "--mass-correction/--no-mass-correction",
        help="Truncating schemes (fd5 with a truncation, lowrank, dlr): restore the total mass "
        "after every truncation (default on); --no-mass-correction is the original data's "
        "plain truncation.",
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
    from neuralfactor.vlasov import SimulationConfig, SimulationInterrupted, simulate_to_store

    fields = {"ic": ic, "nx": nx, "nv": nv, "t_end": t_end, "dt": dt, "save_every": save_every,
              "ensemble": ensemble, "seed": seed, "scheme": scheme, "dtype": dtype, "vmax": vmax,
              "length": length, "truncate_tol": truncate_tol, "truncate_rank": truncate_rank,
              "truncate_with": truncate_with, "mass_correction": mass_correction,
              "truncate_per": truncate_per}  # fmt: skip
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
    with _progress() as on_step:
        try:
            res = simulate_to_store(
                cfg, out, resume=resume, overwrite=overwrite, chunk_frames=chunk_frames,
                device=device, on_step=on_step, on_warning=_warn,
            )  # fmt: skip
        except SimulationInterrupted as exc:
            interrupted = exc
        else:
            interrupted = None
    if interrupted is not None:
        _warn(str(interrupted), prefix="")
        raise typer.Exit(130)
    _print_summary(out, res)


def _warn(message: str, prefix: str = "warning: ") -> None:
    from neuralfactor.cli import err_console

    err_console.print(prefix + message, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar of the steps; yields the ``on_step(step, n_steps)`` that moves it."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from neuralfactor.cli import err_console, state

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
    task = None

    def on_step(step: int, n_steps: int) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task("steps", total=n_steps, completed=step)
        progress.update(task, completed=step)

    with progress:
        yield on_step


def _print_summary(out: Path, res) -> None:
    from rich.table import Table

    from neuralfactor.cli import console
    from neuralfactor.data.store import partial_path

    cfg, store = res.config, res.store
    table = Table(
        title=f"{out}: {store.shape[0]} run(s) x {store.shape[1]} frames of "
        f"{cfg.nx}x{cfg.nv}, t in [0, {cfg.n_steps * cfg.dt:.4g}]"
    )
    table.add_column("quantity (run 0)")
    table.add_column("t = 0", justify="right")
    table.add_column("t = end", justify="right")
    table.add_column("max |q(t) - q(0)| / |q(0)|", justify="right")
    for key, (first, last, rel) in res.conservation.items():
        note = " (rel. to mass)" if key == "momentum" else ""
        table.add_row(key + note, f"{first:.10g}", f"{last:.10g}", f"{rel:.3e}")
    console.print(table)
    console.print(
        f"checksum {store.metadata['checksum'][:16]}...  device {res.device}  scheme "
        f"{cfg.scheme}  dt {cfg.dt:.6g}  ({partial_path(out).name} removed)"
    )


def register(app: typer.Typer) -> None:
    """Add ``neuralfactor simulate`` to the app."""
    app.command("simulate")(simulate)
