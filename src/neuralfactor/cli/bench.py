"""``neuralfactor bench``: time and score factorizers, peers in the same run."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralfactor.cli import console, state

DEFAULT_METHODS = (
    "svd,scipy-gesdd,svds-arpack,sklearn-rsvd,torch-lowrank,rsvd,rsvd-gemm,warm-subspace,pod-basis"
)


def _parse_sizes(sizes: list[str]) -> tuple[tuple[int, int], ...]:
    from neuralfactor.core.validation import parse_list, parse_shape

    return tuple(shape for s in sizes for shape in parse_list(s, "--size", parse_shape))


SUITES = ("default", "frames")


def _methods(text: str | None) -> tuple[str, ...] | None:
    """``--methods`` as checked factorizer names (a typo gets "did you mean" before any work)."""
    from neuralfactor.core.factorizer import check_factorizer_name

    if text is None:
        return None
    from neuralfactor.core.validation import parse_list

    names = parse_list(text, "--methods")
    if not names:
        raise ValueError("The '--methods' option must name at least one factorizer.")
    return tuple(check_factorizer_name(name) for name in names)


def _run(run, config, out: Path | None, describe, **kwargs) -> list[dict]:
    """Call ``run(config, on_record=...)``: each record is kept, appended to ``out`` and
    printed as one line (unless --quiet); returns the records."""
    from neuralfactor.io import append_jsonl

    records: list[dict] = []

    def on_record(rec: dict) -> None:
        records.append(rec)
        if out is not None:
            append_jsonl(out, [rec])
        if not state["quiet"]:
            console.print(describe(rec), highlight=False)

    run(config, on_record=on_record, **kwargs)
    return records


def _line(rec: dict, extra: str = "") -> str:
    return (
        f"  {rec.get('label', rec['method']):>24} {rec['m']}x{rec['n']} r={rec['rank']} "
        f"b={rec['batch']}{extra}: {rec['seconds_per_matrix'] * 1e6:.1f} us/matrix"
    )


def bench(
    suite: str = typer.Option(
        "default",
        help="default: synthetic/saved frames (--data); frames: simulator frames, every "
        "classical, peer and learned factorizer, memory floor (benchmarks/frames_gpu.py).",
    ),
    methods: str | None = typer.Option(
        None,
        help=f"Comma-separated factorizer names (default suite: {DEFAULT_METHODS}; frames "
        "suite: every classical, peer and learned one).",
    ),
    size: list[str] = typer.Option(["128x256"], "--size", help="MxN; repeat for several."),
    ranks: str = typer.Option("6,12,30", help="Comma-separated ranks."),
    batches: str = typer.Option("1,1024", help="Comma-separated batch sizes."),
    data: str = typer.Option("evolving", help="Synthetic data: planted | evolving."),
    data_file: Path | None = typer.Option(
        None, "--data-file", help=".npy of frames (T, m, n) instead of synthetic data."
    ),
    dtype: str = typer.Option(
        "float32", help="float32 | float64 (frames suite: comma-separated float32, tf32, bf16)."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    threads: int = typer.Option(1, help="torch and BLAS threads (0: leave unpinned)."),
    repeats: int = typer.Option(
        5, help="Fewest interleaved timing rounds, >= 3 (median and IQR reported)."
    ),
    max_call_seconds: float = typer.Option(
        0.25, help="Time a sub-batch when a call would exceed this."
    ),
    max_case_seconds: float = typer.Option(
        20.0, help="Stop timing a case after this many seconds once --repeats rounds are done."
    ),
    seed: int = typer.Option(0),
    train_epochs: int = typer.Option(10, help="frames suite: training epochs of learned ones."),
    train_frames: int = typer.Option(512, help="frames suite: frames that train learned ones."),
    out: Path | None = typer.Option(None, help="Append records to this JSON-lines file."),
) -> None:
    """Benchmark factorizers on synthetic or saved frames; prints a table, writes JSON lines."""
    from neuralfactor.core.validation import check_option, parse_ints

    check_option(suite, SUITES, name="suite", caller="bench")
    if train_epochs < 1 or train_frames < 25:
        raise ValueError(
            f"The frames suite needs --train-epochs >= 1 and --train-frames >= 25. Got "
            f"{train_epochs}, {train_frames}."
        )
    if suite == "frames" and data_file is not None:
        raise ValueError("--data-file applies to the default suite; the frames suite simulates.")
    # the options both suites share, parsed once
    common = {"ranks": parse_ints(ranks, "--ranks"), "batches": parse_ints(batches, "--batches"),
              "device": device, "threads": threads or None, "repeats": repeats,
              "max_call_seconds": max_call_seconds, "max_case_seconds": max_case_seconds,
              "seed": seed}  # fmt: skip
    if suite == "frames":
        _frames_suite(common, _methods(methods), size, dtype, train_epochs, train_frames, out)
    else:
        _default_suite(
            common,
            _methods(DEFAULT_METHODS if methods is None else methods),
            size,
            data,
            dtype,
            data_file,
            out,
        )
    if out is not None:
        console.print(f"records appended to {out}")


def _default_suite(common, names, size, data, dtype, data_file, out) -> None:
    from neuralfactor.bench.runner import BenchConfig, run_bench
    from neuralfactor.bench.tables import COLUMNS, rows_for_display
    from neuralfactor.cli._tables import print_table

    frames = None
    if data_file is not None:
        from neuralfactor.data.npy import load_npy_frames

        frames = load_npy_frames(data_file, name="--data-file")
    sizes = _parse_sizes(size) if frames is None else (tuple(frames.shape[-2:]),)
    config = BenchConfig(methods=names, sizes=sizes, data=data, dtype=dtype, **common)
    records = _run(
        run_bench, config, out, lambda r: _line(r) + f", ratio {r['ratio_mean']:.4f}", frames=frames
    )
    print_table(
        f"neuralfactor bench ({dtype}, {records[0]['device']}, "
        f"threads={config.threads}, baseline scipy-gesdd)",
        [_LABELS.get(c, c) for c in COLUMNS],
        rows_for_display(records),
        justify=["left" if c == "method" else "right" for c in COLUMNS],
        caption=_LEGEND,
    )


def _frames_suite(common, names, size, dtype, train_epochs, train_frames, out) -> None:
    from neuralfactor.bench.frames import FRAME_COLUMNS, FramesConfig, run_frames
    from neuralfactor.cli._tables import print_table
    from neuralfactor.core.validation import parse_list

    config = FramesConfig(
        sizes=_parse_sizes(size), dtypes=parse_list(dtype, "--dtype"),
        methods=names, train_epochs=train_epochs, train_frames=train_frames, **common,
    )  # fmt: skip

    def describe(r: dict) -> str:
        head = _line(r, f" {r['dtype']}")
        return head + f" ({r['x_floor']:.0f}x floor), ratio {r['ratio_mean']:.4f}"

    def on_note(text):
        if not state["quiet"]:
            console.print(f"note: {text}", highlight=False)

    records = _run(run_frames, config, out, describe, on_note=on_note)
    columns = ("size", "rank", "batch", *FRAME_COLUMNS)
    print_table(
        f"neuralfactor bench --suite frames ({records[0]['device']})",
        [_LABELS.get(c, c) for c in columns],
        _frames_rows(records),
        justify=["left" if c in ("method", "family", "dtype") else "right" for c in columns],
        caption=_LEGEND + "; x floor: time / the time to read the frames once (>= 1); "
        "x flop floor: time / (flops / the GEMM rate measured in this run)",
    )


def _frames_rows(records: list[dict]) -> list[list[str]]:
    """Table rows of the frames suite, with the speed-up over float32 scipy-gesdd."""
    from neuralfactor.bench.frames_render import flop_cells

    base = {
        (r["m"], r["n"], r["rank"], r["batch"]): r["seconds_per_matrix"]
        for r in records
        if r["method"] == "scipy-gesdd" and r["dtype"] == "float32"
    }
    rows = []
    for r in records:
        b = base.get((r["m"], r["n"], r["rank"], r["batch"]))
        rows.append(
            [
                f"{r['m']}x{r['n']}",
                str(r["rank"]),
                str(r["batch"]),
                r["method"],
                r["family"],
                r["dtype"],
                str(r["timed_batch"]),
                f"{r['seconds_per_matrix'] * 1e6:.3g}",
                f"{r['floor_seconds_per_matrix'] * 1e6:.3g}",
                f"{r['x_floor']:.3g}",
                *flop_cells(r),
                f"{b / r['seconds_per_matrix']:.3g}" if b else "-",
                f"{r['scaled_loss_mean']:.3g}",
                f"{r['ratio_mean']:.4f}",
                f"{r['ratio_max']:.4f}",
                f"{r['fit_seconds']:.3g}" if r["fit_seconds"] else "-",
            ]
        )
    return rows


#: Terminal labels that say which way is better (the records keep their short keys).
_LABELS = {
    "x baseline": "speed-up vs scipy-gesdd",
    "x scipy-gesdd": "speed-up vs scipy-gesdd",
    "us/matrix": "us / matrix",
}
_LEGEND = (
    "speed-up: scipy-gesdd's time / this method's, same size, rank and batch (> 1: faster); "
    "ratio: scaled loss / the truncated SVD's (>= 1; mean and max over the timed matrices)"
)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
