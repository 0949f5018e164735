"""``neuralfactor lu``: train GFMM-structured LU factors, and ``neuralfactor lu evaluate RUN``.

Both commands parse their options and call one library function,
:func:`neuralfactor.lu.run.train_run` or :func:`neuralfactor.lu.run.evaluate_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from neuralfactor.cli import console, state

__all__ = ["register"]


def lu_train(
    ctx: typer.Context,
    operator: str = typer.Option(
        "laplacian-1d", help="Test operator (see neuralfactor.lu.operators)."
    ),
    n: int = typer.Option(256, help="Operator size."),
    leaf: int = typer.Option(32, help="Leaf block size (2-D: patch size p^2)."),
    dim: int = typer.Option(1, help="1: binary tree; 2: quad-tree over patches."),
    band: int = typer.Option(2, help="Bridge reach at interior levels."),
    diag: str = typer.Option(
        None,
        help="'triangular' (entry-wise LU; the default, optimized 4x better on the 1-D "
        "Laplacian, docs/results/learned-lu.md), 'full' (block LU, the original method; "
        "the default of --preset original) or 'unit' (entry-wise LU with unit-diagonal L: "
        "better-conditioned factors, slower training).",
    ),
    dtype: str = typer.Option("float64", help="float32 or float64."),
    optimizer: str = typer.Option(
        None,
        help="lm (Levenberg-Marquardt, reaches the smallest errors; the default), lbfgs "
        "(the default of --preset original) or adam.",
    ),
    steps: int = typer.Option(
        None,
        help="Optimizer steps (L-BFGS: x inner iterations; LM: Gauss-Newton solves). "
        "Default 60 (LM); 250 with --preset original.",
    ),
    preset: str = typer.Option(
        "best",
        help="best: the best-known settings (LM, triangular diagonal blocks, 60 steps); "
        "original: the original method (L-BFGS, block-diagonal factors, 250 x 20 "
        "iterations). Options given explicitly override the preset.",
    ),
    inner: int = typer.Option(20, help="L-BFGS iterations per step."),
    cg_iters: int = typer.Option(100, help="LM: conjugate-gradient iterations per step."),
    symmetric: bool = typer.Option(
        False,
        "--symmetric",
        help="Learn L only, U = L^T (a learned Cholesky L L^T; SPD operators only).",
    ),
    precond_weight: float = typer.Option(
        0.0,
        help="LM: weight of the preconditioned residual L0^-1 (LU - A) U0^-1 (factors "
        "frozen per step); keeps L U as well conditioned as A (the RBF kernel needs it).",
    ),
    precond_stages: str = typer.Option(
        "",
        help="LM: further stages WEIGHT:STEPS,... after --steps, e.g. "
        "0.01:30,0.003:40,0.001:60 (the RBF schedule of docs/results/learned-lu.md).",
    ),
    lr: float = typer.Option(
        None,
        help="Learning rate (default 1.0 L-BFGS, 1e-3 Adam); LM: initial damping (1e-3).",
    ),
    transpose_loss: bool = typer.Option(False, "--transpose-loss", help="Add the transpose loss."),
    blockwise: bool = typer.Option(False, "--blockwise", help="Block-wise training."),
    block_steps: int = typer.Option(30, help="Steps per block-row stage (--blockwise)."),
    polish_steps: int = typer.Option(0, help="End-to-end steps after the block stages."),
    seed: int = typer.Option(0, help="Seed of the initial encoder/decoder maps."),
    out: Path = typer.Option(None, help="Run directory (required to train)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run."),
) -> None:
    """Train L and U so that L U ~ A (identity columns in, A's columns out)."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise ValueError(
            "The '--out' option of `neuralfactor lu` is required to train "
            "(e.g. --out runs/lu-lap1d)."
        )
    from neuralfactor.lu.run import LURunConfig, train_run

    train = {
        "optimizer": optimizer, "steps": steps, "inner": inner, "lr": lr, "cg_iters": cg_iters,
        "precond_weight": precond_weight, "transpose_loss": transpose_loss,
        "blockwise": blockwise, "block_steps": block_steps, "polish_steps": polish_steps,
    }  # fmt: skip
    config = LURunConfig.from_preset(
        preset,
        diag=diag,
        precond_stages=precond_stages,
        train=train,
        operator=operator,
        n=n,
        leaf=leaf,
        dim=dim,
        band=band,
        dtype=dtype,
        seed=seed,
        symmetric=symmetric,
    )
    r = train_run(out, config, resume=resume, overwrite=overwrite, progress=not state["quiet"])
    console.print(
        f"trained {operator} n={n} leaf={leaf}: ||A - LU||_F/||A||_F = "
        f"{r.rel_fro:.3e} in {r.seconds:.1f} s; {r.params} weights "
        f"(dense n^2 = {r.dense}); saved to {out}"
    )


_LU_LEGEND = (
    "learned-*: the trained L and U; lapack-*: scipy.linalg.lu_factor in that precision. "
    "op_err_2 / op_err_fro: ||A - LU|| / ||A|| (spectral / Frobenius); cond_LU: condition "
    "number of LU; sol_err / bwd_err: median relative forward error ||x - x^|| / ||x|| and "
    "backward error of the solve over the random right-hand sides; params: stored numbers "
    "(n^2 for a dense LU)"
)
_PRECOND_LEGEND = (
    "none: no preconditioner; jacobi: diag(A)^-1; ilu0: zero-fill incomplete LU on A's pattern; "
    "spilu: scipy's spilu(fill_factor=1, drop_tol=0), which caps fill at nnz(A) and so drops "
    "entries even of a tridiagonal matrix's exact factors; amg: one smoothed-aggregation "
    "V-cycle; learned: one solve with the trained L and U"
)


def lu_evaluate(
    run: Path = typer.Argument(..., help="Run directory written by `neuralfactor lu`."),
    samples: int = typer.Option(100, help="Random solutions x (b = A x) per metric."),
    method: str = typer.Option(
        "gmres", help="Krylov method: gmres (left-preconditioned), gmres-right or cg."
    ),
) -> None:
    """All metrics vs LAPACK, and Krylov iterations with every preconditioner."""
    from neuralfactor.lu.run import evaluate_run

    m = evaluate_run(run, samples=samples, method=method)
    _print_metrics(m)
    console.print(f"metrics written to {run / 'metrics.json'}")


def _print_metrics(m: dict[str, Any]) -> None:
    from neuralfactor.cli._tables import print_table

    cols = ("method", "op_err_2", "op_err_fro", "cond_LU", "sol_err_median", "bwd_err_median")
    print_table(
        f"{m['operator']} n={m['n']} leaf={m['leaf']}",
        [*cols, "params"],
        [
            [
                *(
                    f"{r[c]:.2e}" if isinstance(r.get(c), float) else str(r.get(c, "-"))
                    for c in cols
                ),
                str(r.get("params", "-")),
            ]
            for r in m["rows"]
        ],
        justify=["left"] + ["right"] * len(cols),
        caption=_LU_LEGEND,
    )
    its, method = m["iterations"], m["method"]
    if "error" in its:
        console.print(f"learned preconditioner unavailable: {its['error']}")
        return
    console.print(
        f"{method} iterations to 1e-8 (relative residual) per preconditioner: "
        + ", ".join(
            f"{k} {int(v['iters'])}{'' if v['converged'] else ' (not converged)'}"
            for k, v in its.items()
        )
    )
    console.print(_PRECOND_LEGEND, style="dim")


def register(app: typer.Typer) -> None:
    lu = typer.Typer(
        help="Learned FMM-structured LU factors: `neuralfactor lu --operator laplacian-1d --out "
        "RUN` trains, `neuralfactor lu evaluate RUN` measures.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    lu.callback()(lu_train)
    lu.command("evaluate")(lu_evaluate)
    app.add_typer(lu, name="lu")
