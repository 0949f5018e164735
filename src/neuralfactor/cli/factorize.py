"""``neuralfactor factorize STORE --method M --rank R --out OUT``: every frame of a store, via Dask.

Idempotent: rerunning the same command completes an interrupted run (only the chunks without
a completion marker are computed) or does nothing when ``OUT`` is complete.
"""

from __future__ import annotations

from pathlib import Path

import typer

from neuralfactor.cli import console, state

__all__ = ["register"]


def factorize(
    store: Path = typer.Argument(
        ..., help="MatrixStore (.zarr) written by `neuralfactor simulate`."
    ),
    out: Path = typer.Option(..., help="Output Zarr store for U, V and per-frame diagnostics."),
    method: str = typer.Option("rsvd-gemm", help="Any classical registered factorizer."),
    rank: int = typer.Option(..., help="Rank r of the factors."),
    model: Path = typer.Option(
        None, help="A trained model directory (`neuralfactor train` OUT/model) instead of --method."
    ),
    param: list[str] = typer.Option([], help="Factorizer parameter key=value (repeatable)."),
    scheduler: str = typer.Option(
        "threads", help="threads | processes | synchronous | a dask.distributed address tcp://..."
    ),
    workers: int = typer.Option(None, help="Local threads/processes (default: all cores)."),
    threads: int = typer.Option(1, help="torch/BLAS threads inside each task."),
    connect_timeout: float = typer.Option(10.0, help="Seconds to wait for a --scheduler address."),
    overwrite: bool = typer.Option(
        False, help="Replace an OUT made with another method/rank/input."
    ),
) -> None:
    """Factorize every frame of a store chunk by chunk with Dask (resumable; Dask progress bar)."""
    from neuralfactor.cli.approx import _parse_params
    from neuralfactor.distributed.factorize import factorize_store

    if workers is not None and workers < 1:
        raise ValueError(f"The '--workers' option must be an int >= 1. Got {workers}.")
    if threads < 1:
        raise ValueError(f"The '--threads' option must be an int >= 1. Got {threads}.")
    params = _parse_params(param)
    if model is not None:
        from neuralfactor.amortized.factorizer import LearnedFactorizer

        if not (model / "meta.json").exists():
            raise FileNotFoundError(f"{model} is not a trained model directory (no meta.json).")
        f = LearnedFactorizer.load(model, device="cpu", **params)
        if rank != f.rank:
            raise ValueError(f"The model at {model} has rank {f.rank}; use --rank {f.rank}.")
        factorizer, rank_arg, params = f, None, None
    else:
        factorizer, rank_arg = method, rank
    res = factorize_store(
        store,
        factorizer,
        out,
        rank=rank_arg,
        params=params,
        scheduler=scheduler,
        workers=workers,
        overwrite=overwrite,
        progress=not state["quiet"],
        torch_threads=threads,
        connect_timeout=connect_timeout,
    )
    if res.chunks_computed == 0:
        console.print(f"{out} is already complete ({res.method}, rank {res.rank}); nothing to do.")
    else:
        resumed = f", {res.chunks_skipped} already done" if res.chunks_skipped else ""
        console.print(
            f"factorized {res.n_runs} x {res.n_frames} frames with {res.method} rank {res.rank} "
            f"in {res.seconds:.2f} s ({res.chunks_computed} chunks computed{resumed}; "
            f"{res.frames_per_second:.1f} frames/s, scheduler {res.scheduler})"
        )
    from neuralfactor.cli._tables import ratio_text

    summary = {**res.to_dict(), "frames": res.n_runs * res.n_frames}
    console.print(f"scaled loss mean {res.scaled_loss_mean:.4g}; {ratio_text(summary)}")
    console.print(f"factors in {out}")


def register(app: typer.Typer) -> None:
    app.command("factorize")(factorize)
