"""``neuralfactor lu``: train GFMM-structured LU factors, and ``neuralfactor lu evaluate RUN``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _train(
    operator: str,
    n: int,
    leaf: int,
    dim: int,
    band: int,
    diag: str,
    dtype: str,
    optimizer: str,
    steps: int,
    inner: int,
    lr: float | None,
    transpose_loss: bool,
    blockwise: bool,
    block_steps: int,
    polish_steps: int,
    seed: int,
    out: Path,
    resume: bool,
    overwrite: bool,
    cg_iters: int,
    symmetric: bool = False,
    precond_weight: float = 0.0,
    precond_stages: str = "",
    preset: str = "best",
) -> None:
    import json

    import torch

    from neuralfactor.cli import console, state
    from neuralfactor.io import read_json, write_json
    from neuralfactor.lu.model import LUNetwork
    from neuralfactor.lu.operators import make_operator
    from neuralfactor.lu.train import lu_preset, parse_precond_stages, train_lu
    from neuralfactor.train.checkpoint import save_checkpoint

    settings = lu_preset(
        preset,
        diag=diag,
        optimizer=optimizer,
        steps=steps,
        inner=inner,
        lr=lr,
        cg_iters=cg_iters,
        precond_weight=precond_weight,
        precond_stages=parse_precond_stages(precond_stages),
        transpose_loss=transpose_loss,
        blockwise=blockwise,
        block_steps=block_steps,
        polish_steps=polish_steps,
    )
    cfg, diag = settings.train, settings.diag
    run = {
        "operator": operator,
        "n": n,
        "leaf": leaf,
        "dim": dim,
        "band": band,
        "diag": diag,
        "dtype": dtype,
        "seed": seed,
        "train": cfg.__dict__,
    }
    if symmetric:
        run["symmetric"] = True
    run = json.loads(json.dumps(run))  # as written to config.json (tuples -> lists)
    if (out / "config.json").exists():
        if resume:
            old = read_json(out / "config.json")
            if old != run:
                raise ValueError(
                    f"--resume: {out}/config.json was written with different settings; rerun "
                    f"with the same options or choose another --out."
                )
        elif not overwrite:
            raise FileExistsError(
                f"{out} already holds a run; pass --resume to continue it or --overwrite."
            )
    A = make_operator(operator, n)
    model = LUNetwork(
        n, leaf, dim=dim, band=band, diag=diag, dtype=dtype, seed=seed, symmetric=symmetric
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", run)
    torch.set_num_threads(1)
    res = train_lu(
        A,
        model,
        cfg,
        checkpoint_dir=out / "ckpt",
        resume=resume,
        progress=not state["quiet"],
        meta={"operator": operator},
    )
    save_checkpoint(
        out / "model",
        model,
        init_args=model.init_args,
        meta={"operator": operator, "rel_fro": res.rel_fro},
    )
    write_json(
        out / "train.json",
        {
            "rel_fro": res.rel_fro,
            "seconds": res.seconds,
            "params": model.num_parameters(),
            "dense": n * n,
            "stages": res.stages,
        },
    )
    console.print(
        f"trained {operator} n={n} leaf={leaf}: ||A - LU||_F/||A||_F = "
        f"{res.rel_fro:.3e} in {res.seconds:.1f} s; {model.num_parameters()} weights "
        f"(dense n^2 = {n * n}); saved to {out}"
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


def _evaluate(run_dir: Path, samples: int, method: str) -> None:
    import numpy as np

    from neuralfactor.cli import console
    from neuralfactor.io import read_json, write_json
    from neuralfactor.lu.evaluate import evaluate_lapack, evaluate_learned
    from neuralfactor.lu.model import LUNetwork
    from neuralfactor.lu.operators import make_operator
    from neuralfactor.lu.precond import iteration_counts
    from neuralfactor.lu.solve import LUSolver
    from neuralfactor.train.checkpoint import load_model

    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not an lu run (no config.json); train one with "
            f"`neuralfactor lu --out {run_dir}`."
        )
    cfg = read_json(run_dir / "config.json")
    model, _ = load_model(run_dir / "model", expected_class=LUNetwork)
    A = make_operator(cfg["operator"], cfg["n"])
    rows = [
        evaluate_learned(A, model, samples=samples),
        evaluate_lapack(A, "float32", samples=samples),
        evaluate_lapack(A, "float64", samples=samples),
    ]
    b = A @ np.random.default_rng(0).standard_normal(cfg["n"])
    try:
        solver = LUSolver(model)
        its = iteration_counts(A, b, solver=solver, method=method)
    except ValueError as exc:
        its = {"error": str(exc)}
    write_json(
        run_dir / "metrics.json",
        {"operator": cfg["operator"], "rows": rows, "iterations": its, "method": method},
    )
    from neuralfactor.cli._tables import print_table

    cols = ("method", "op_err_2", "op_err_fro", "cond_LU", "sol_err_median", "bwd_err_median")
    print_table(
        f"{cfg['operator']} n={cfg['n']} leaf={cfg['leaf']}",
        [*cols, "params"],
        [
            [
                *(
                    f"{r[c]:.2e}" if isinstance(r.get(c), float) else str(r.get(c, "-"))
                    for c in cols
                ),
                str(r.get("params", "-")),
            ]
            for r in rows
        ],
        justify=["left"] + ["right"] * len(cols),
        caption=_LU_LEGEND,
    )
    if "error" in its:
        console.print(f"learned preconditioner unavailable: {its['error']}")
    else:
        console.print(
            f"{method} iterations to 1e-8 (relative residual) per preconditioner: "
            + ", ".join(
                f"{k} {int(v['iters'])}{'' if v['converged'] else ' (not converged)'}"
                for k, v in its.items()
            )
        )
        console.print(_PRECOND_LEGEND, style="dim")
    console.print(f"metrics written to {run_dir / 'metrics.json'}")


def register(app: typer.Typer) -> None:
    lu = typer.Typer(
        help="Learned FMM-structured LU factors: `neuralfactor lu --operator laplacian-1d --out "
        "RUN` trains, `neuralfactor lu evaluate RUN` measures.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @lu.callback()
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
        transpose_loss: bool = typer.Option(
            False, "--transpose-loss", help="Add the transpose loss."
        ),
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
        if overwrite and resume:
            raise ValueError("Pass either --overwrite or --resume, not both.")
        if out is None:
            raise ValueError(
                "The '--out' option of `neuralfactor lu` is required to train "
                "(e.g. --out runs/lu-lap1d)."
            )
        _train(
            operator,
            n,
            leaf,
            dim,
            band,
            diag,
            dtype,
            optimizer,
            steps,
            inner,
            lr,
            transpose_loss,
            blockwise,
            block_steps,
            polish_steps,
            seed,
            out,
            resume,
            overwrite,
            cg_iters,
            symmetric,
            precond_weight,
            precond_stages,
            preset,
        )

    @lu.command("evaluate")
    def lu_evaluate(
        run: Path = typer.Argument(..., help="Run directory written by `neuralfactor lu`."),
        samples: int = typer.Option(100, help="Random solutions x (b = A x) per metric."),
        method: str = typer.Option(
            "gmres", help="Krylov method: gmres (left-preconditioned), gmres-right or cg."
        ),
    ) -> None:
        """All metrics vs LAPACK, and Krylov iterations with every preconditioner."""
        _evaluate(run, samples, method)

    app.add_typer(lu, name="lu")
