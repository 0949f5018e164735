"""``neuralfactor bench``: time and score factorizers, peers in the same run."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralfactor.cli import console, state

DEFAULT_METHODS = (
    "svd,scipy-gesdd,svds-arpack,sklearn-rsvd,torch-lowrank,rsvd,rsvd-gemm,warm-subspace,pod-basis"
)


def _parse_sizes(sizes: list[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for s in sizes:
        try:
            m, n = (int(v) for v in s.lower().split("x"))
        except ValueError:
            raise ValueError(f"The '--size' option takes MxN, e.g. 128x256. Got {s!r}.") from None
        out.append((m, n))
    return tuple(out)


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"The '{name}' option takes comma-separated integers. Got {text!r}."
        ) from None


def bench(
    methods: str = typer.Option(DEFAULT_METHODS, help="Comma-separated factorizer names."),
    size: list[str] = typer.Option(["128x256"], "--size", help="MxN; repeat for several."),
    ranks: str = typer.Option("6,12,30", help="Comma-separated ranks."),
    batches: str = typer.Option("1,1024", help="Comma-separated batch sizes."),
    data: str = typer.Option("evolving", help="Synthetic data: planted | evolving."),
    data_file: Path | None = typer.Option(
        None, "--data-file", help=".npy of frames (T, m, n) instead of synthetic data."
    ),
    dtype: str = typer.Option("float32", help="float32 | float64."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    threads: int = typer.Option(1, help="torch and BLAS threads (0: leave unpinned)."),
    repeats: int = typer.Option(3, help="Timed repeats (median reported)."),
    max_call_seconds: float = typer.Option(
        2.0, help="Time a sub-batch when a call would exceed this."
    ),
    seed: int = typer.Option(0),
    out: Path | None = typer.Option(None, help="Append records to this JSON-lines file."),
) -> None:
    """Benchmark factorizers on synthetic or saved frames; prints a table, writes JSON lines."""
    import numpy as np
    import torch
    from rich.table import Table

    from neuralfactor.bench.runner import BenchConfig, run_bench
    from neuralfactor.bench.tables import COLUMNS, rows_for_display
    from neuralfactor.io import append_jsonl

    frames = None
    if data_file is not None:
        if not data_file.is_file():
            raise FileNotFoundError(f"--data-file {data_file} does not exist.")
        try:
            frames = torch.from_numpy(np.load(data_file, allow_pickle=False))
        except ValueError as exc:
            raise ValueError(
                f"--data-file {data_file} is not a readable .npy array: {exc}"
            ) from None
        if frames.ndim != 3:
            raise ValueError(
                f"--data-file must hold frames of shape (T, m, n). Got {tuple(frames.shape)}."
            )
    config = BenchConfig(
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        sizes=_parse_sizes(size) if frames is None else (tuple(frames.shape[-2:]),),
        ranks=_ints(ranks, "--ranks"),
        batches=_ints(batches, "--batches"),
        data=data,
        dtype=dtype,
        device=device,
        threads=threads or None,
        repeats=repeats,
        max_call_seconds=max_call_seconds,
        seed=seed,
    )
    records = []

    def on_record(rec):
        records.append(rec)
        if out is not None:
            append_jsonl(out, [rec])
        if not state["quiet"]:
            console.print(
                f"  {rec['method']:>14} {rec['m']}x{rec['n']} r={rec['rank']} "
                f"b={rec['batch']}: {rec['seconds_per_matrix'] * 1e6:.1f} us/matrix, "
                f"ratio {rec['ratio_mean']:.4f}",
                highlight=False,
            )

    run_bench(config, on_record=on_record, frames=frames)
    table = Table(
        title=f"neuralfactor bench ({dtype}, {records[0]['device']}, "
        f"threads={config.threads}, baseline scipy-gesdd)"
    )
    for c in COLUMNS:
        table.add_column(c)
    for row in rows_for_display(records):
        table.add_row(*row)
    console.print(table)
    if out is not None:
        console.print(f"records appended to {out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
