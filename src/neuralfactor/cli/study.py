"""``neuralfactor train`` and ``neuralfactor evaluate``: the amortized-factorization study."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralfactor.cli import console, state


def train(
    data: Path = typer.Option(..., help="MatrixStore (.zarr) written by `neuralfactor simulate`."),
    out: Path = typer.Option(..., help="Run directory for the checkpoint, config and split."),
    model: str = typer.Option(
        "convmf", help="convmf | fork | danmf | sketch (reads X Omega: two products per frame)."
    ),
    rank: int = typer.Option(12, help="Rank r of the factors."),
    split: str = typer.Option("interpolation", help="interpolation | extrapolation."),
    nested: bool = typer.Option(False, help="Nested loss: one model for every rank <= r."),
    preset: str = typer.Option(
        "best",
        help="best: the recipe of docs/results/convmf-recipe.md (240 epochs, lr 1e-3, cosine, "
        "warmup 5, grad clip 50, factors+projection); original: the original study (120 "
        "epochs, lr 1e-4, constant rate, no clipping, factors). Options given explicitly "
        "override the preset.",
    ),
    epochs: int = typer.Option(None, help="Training epochs (default 240; original study: 120)."),
    lr: float = typer.Option(
        None,
        help="Peak Adam learning rate (default: the model's documented rate, 1e-3 for convmf, "
        "fork and danmf, 1e-2 for sketch; original study: 1e-4).",
    ),
    batch_size: int = typer.Option(25, help="Batch size (original study: 25)."),
    schedule: str = typer.Option(
        None,
        help="Learning-rate schedule: cosine (to 0; the default) | constant (original study).",
    ),
    warmup_epochs: int = typer.Option(
        None,
        help="Linear learning-rate warmup from 1% of --lr over this many epochs (0: off; "
        "default 5, at most a tenth of --epochs; original study: 0).",
    ),
    grad_clip: float = typer.Option(
        None,
        help="Clip the global gradient norm to this value (0: off; default 50; original "
        "study: off).",
    ),
    objective: str = typer.Option(
        None,
        help="Training loss: factors+projection (the default: adds the least-squares refit's "
        "loss ||X - QQ^T X||^2, Q = orth(U), so U is trained for +refine) | factors (original "
        "study, ||X - UV||^2).",
    ),
    restore_best: bool = typer.Option(
        True,
        "--restore-best/--keep-last",
        help="End with the weights of the best validation epoch (default) or of the last step.",
    ),
    patience: int = typer.Option(
        0, help="Early stopping after this many epochs without validation improvement (0: off)."
    ),
    frame_stride: int = typer.Option(1, help="Use every k-th saved frame."),
    run: int = typer.Option(0, help="Which run of the store."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    dtype: str = typer.Option("float32", help="float32 | float64 | bfloat16 (GPU)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in --out."),
    overwrite: bool = typer.Option(False, help="Replace a run in --out with another config."),
    distributed: bool = typer.Option(
        False,
        "--distributed",
        help="Data-parallel (DDP) under torchrun; --batch-size is the global batch.",
    ),
    threads: int = typer.Option(
        0,
        help="torch/BLAS threads per process. 0 (the default) chooses: 1 on a machine with "
        "<= 2 cores (spin-waiting thread pools made a demo training 15x slower there), else one "
        "per physical core.",
    ),
) -> None:
    """Train a factorization network on frames of a simulation."""
    from neuralfactor.amortized.factorizer import LEARNING_RATES, default_lr, train_preset
    from neuralfactor.amortized.study import StudyConfig
    from neuralfactor.distributed.run import train_run

    given = {"epochs": epochs, "lr": lr, "schedule": schedule, "warmup_epochs": warmup_epochs,
             "grad_clip": grad_clip, "objective": objective}  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}  # None: the preset's value
    if preset == "best" and "lr" not in given and model in LEARNING_RATES:
        given["lr"] = default_lr(model)  # the recipe at the model's own rate (an unknown
        # model name is refused below, with a suggestion)
    if given.get("grad_clip") == 0:
        given["grad_clip"] = None  # --grad-clip 0: off
    settings = train_preset(
        preset, **given, batch_size=batch_size, patience=patience or None, seed=seed,
        device=device, dtype=dtype, restore_best=restore_best,
    )  # fmt: skip
    config = StudyConfig(
        data=str(data), rank=rank, model=model, nested=nested, split=split, run=run,
        frame_stride=frame_stride, settings=settings,
    )  # fmt: skip
    res = train_run(
        config, out, resume=resume, overwrite=overwrite, distributed=distributed,
        threads=threads, progress=not state["quiet"],
    )  # fmt: skip
    _print_trained(res, rank, restore_best, out)


def _print_trained(res, rank: int, restore_best: bool, out: Path) -> None:
    """One line on the trained model (nothing on the non-zero ranks of a distributed run)."""
    if (f := res.factorizer) is None:
        return
    if res.distributed:
        console.print(f"distributed: {res.world_size} processes")
    metrics = [h["metric"] for h in f.history_]
    last = metrics[-1] if metrics else float("nan")
    kept = min(metrics) if metrics and restore_best else last
    console.print(
        f"trained {f.name} rank {rank} in {f.fit_seconds_:.1f} s; validation scaled loss "
        f"(||X - UV||^2 / ||X||^2, mean over validation frames) {kept:.4g} "
        f"({'best' if restore_best else 'last'} epoch "
        f"kept; last {last:.4g}); model in {out / 'model'}"
    )


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `neuralfactor train`."),
    baselines: str = typer.Option(
        "svd,svds-arpack,rsvd,rsvd-gemm,warm-subspace,pod-basis",
        help="Comma-separated classical factorizers.",
    ),
    device: str = typer.Option("cpu", help="auto | cpu | cuda (all methods on this device)."),
    threads: int = typer.Option(1, help="torch/BLAS threads during timing (0: unpinned)."),
    repeats: int = typer.Option(3, help="Fewest interleaved timing rounds (at least 3)."),
) -> None:
    """Evaluate a trained run on its test frames against classical baselines (records.jsonl)."""
    from neuralfactor.amortized.study import evaluate_run
    from neuralfactor.core.validation import parse_list

    records = evaluate_run(
        run_dir,
        baselines=parse_list(baselines, "--baselines"),
        device=device,
        repeats=repeats,
        threads=threads or None,
    )
    from neuralfactor.cli._tables import fmt_ratio, print_table

    r0 = records[0]
    rows = []
    for r in records:
        us = r["seconds_per_matrix"] * 1e6
        rows.append(
            [
                r["method"],
                f"{r['scaled_loss_mean']:.3e}",
                fmt_ratio(r["ratio_median"]),
                f"{r['within_1_01']:.0%} / {r['within_1_05']:.0%}",
                "-" if us != us else f"{us:.1f}",
                f"{r['fit_seconds']:.1f}" if r["fit_seconds"] else "-",
            ]
        )
    k = r0["roundoff_frames"]
    caption = (
        "ratio: a frame's scaled loss over the truncated SVD's (the optimum at this rank); "
        "median and share of test frames within 1.01x / 1.05x of it"
        + (
            f"; {k} of {r0['n_test']} frames have an optimum at round-off and are left out"
            if k
            else ""
        )
    )
    print_table(
        f"{run_dir}: rank {r0['rank']}, {r0['split']} split, {r0['n_test']} test frames",
        ("method", "scaled loss", "ratio median", "within 1.01 / 1.05", "us / matrix", "fit s"),
        rows,
        justify=["left"] + ["right"] * 5,
        caption=caption,
    )
    console.print(f"records in {Path(run_dir) / 'records.jsonl'}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
