"""Learned GFMM LU vs LAPACK and classical preconditioners (docs/results/learned-lu.md).

Run (about 15 minutes of one core; `--optimizer lm --steps 60` for the Levenberg-Marquardt table):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/lu_table.py --out runs/lu_table.json

Every row trains one LUNetwork (L-BFGS, float64, init L = I, U = block-upper(A)) and evaluates it
in the same run as LAPACK (float32/float64) and the none / Jacobi / ILU(0) / AMG preconditioners.
Records carry thread counts and os.getloadavg() (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from typing import get_args

import numpy as np
import scipy
import scipy.sparse as sp
import torch

from neuralfactor.core.timing import pinned_threads, time_interleaved
from neuralfactor.io import write_json
from neuralfactor.lu.evaluate import evaluate_learned
from neuralfactor.lu.gfmm import DiagMode
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import OPERATORS, make_operator
from neuralfactor.lu.precond import iteration_counts
from neuralfactor.lu.solve import IllConditionedFactorsWarning, LUSolver
from neuralfactor.lu.train import LUTrainConfig, parse_precond_stages, train_lu

SPD = {"laplacian-1d", "laplacian-2d", "biharmonic-1d", "biharmonic-2d", "rbf"}


def one_run(
    op: str,
    n: int,
    leaf: int,
    dim: int,
    diag: str,
    cfg: LUTrainConfig,
    label: str,
    symmetric: bool = False,
) -> dict:
    A = make_operator(op, n)
    Ad = A.toarray() if sp.issparse(A) else A
    model = LUNetwork(n, leaf, dim=dim, diag=diag, dtype="float64", symmetric=symmetric)
    load0 = os.getloadavg()
    res = train_lu(A, model, cfg)
    # the precond. stages as recorded: weight, steps and the error after each stage
    stage_log = [
        {"precond_weight": w, "steps": st["steps"], "rel_fro": st["rel_fro"]}
        for (w, _), st in zip(cfg.precond_stages, res.stages[1:], strict=True)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedFactorsWarning)
        row = evaluate_learned(A, model, samples=100)
    row.update(
        {
            "operator": op,
            "n": n,
            "leaf": leaf,
            "dim": dim,
            "diag": diag,
            "label": label,
            "optimizer": cfg.optimizer,
            "iterations": cfg.steps * (cfg.inner if cfg.optimizer == "lbfgs" else 1)
            if not cfg.blockwise
            else None,
            "steps": cfg.steps + sum(k for _, k in cfg.precond_stages),
            "cg_iters": cfg.cg_iters if cfg.optimizer == "lm" else None,
            "train_seconds": res.seconds,
            "train_rel_fro": res.rel_fro,
            "blockwise": cfg.blockwise,
            "transpose_loss": cfg.transpose_loss,
            "symmetric": symmetric,
            "precond_weight": cfg.precond_weight,
            "stages": stage_log,
            "loadavg_train": load0,
        }
    )
    rng = np.random.default_rng(0)
    b = Ad @ rng.standard_normal(n)
    try:
        solver = LUSolver(model)
    except ValueError as exc:
        solver = None
        row["learned_precond_error"] = str(exc)
    pcs = ("none", "jacobi", "ilu0", "spilu", "amg") + (("learned",) if solver is not None else ())
    row["gmres"] = iteration_counts(A, b, solver=solver, preconditioners=pcs, method="gmres")
    row["gmres_right"] = iteration_counts(
        A, b, solver=solver, preconditioners=pcs, method="gmres-right"
    )
    if op in SPD:
        row["cg"] = iteration_counts(A, b, preconditioners=("none", "jacobi", "amg"), method="cg")
    row["loadavg_end"] = os.getloadavg()
    return row


def regime(n: int, leaf: int = 32) -> dict:
    """Parameter count and solve time of exact near-field factors (1-D Laplacian Cholesky,
    block-bidiagonal, so the GFMM holds it exactly) vs LAPACK lu_solve, same run."""
    import scipy.linalg as sla

    A = make_operator("laplacian-1d", n).toarray()
    C = np.linalg.cholesky(A)
    m = LUNetwork(n, leaf, diag="full")
    m.L.set_near_from(torch.as_tensor(C))
    m.U.set_near_from(torch.as_tensor(C.T))
    s = LUSolver(m)
    B = A @ np.random.default_rng(0).standard_normal((16, n)).T
    lu = sla.lu_factor(A)
    pair = time_interleaved(  # both solves in the same rounds
        {"learn": lambda: s.solve(B.T), "lapack": lambda: sla.lu_solve(lu, B)}, min_rounds=5
    )
    t_learn, t_lapack = pair.stats["learn"], pair.stats["lapack"]
    x_learn, x_lapack = pair.results["learn"], pair.results["lapack"]
    err = np.linalg.norm(np.asarray(x_learn).T - x_lapack) / np.linalg.norm(x_lapack)
    return {
        "n": n,
        "leaf": leaf,
        "params_LU": m.num_parameters(),
        "dense": n * n,
        "ratio": m.num_parameters() / n**2,
        "solve16_structured_s": t_learn.median,
        "solve16_lapack_s": t_lapack.median,
        "agree": float(err),
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lu_table.json")
    ap.add_argument("--steps", type=int, default=100, help="L-BFGS steps of 20 iterations")
    ap.add_argument("--optimizer", default="lbfgs", help="lbfgs or lm (Levenberg-Marquardt)")
    ap.add_argument("--cg-iters", type=int, default=100, help="lm: CG iterations per step")
    ap.add_argument("--operators", nargs="*", default=list(OPERATORS))
    ap.add_argument(
        "--diag",
        default="triangular",
        choices=list(get_args(DiagMode)),
        help="diagonal blocks of the main rows (unit: unit-diagonal L)",
    )
    ap.add_argument(
        "--symmetric", action="store_true", help="learn L only, U = L^T (SPD operators)"
    )
    ap.add_argument(
        "--precond-weight",
        type=float,
        default=0.0,
        help="lm: weight of the preconditioned residual term (LUTrainConfig.precond_weight)",
    )
    ap.add_argument(
        "--stages",
        default="",
        help="lm: further stages WEIGHT:STEPS,... after --steps at --precond-weight "
        "(LUTrainConfig.precond_stages)",
    )
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--no-2d", action="store_true")
    ap.add_argument("--no-regime", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    out = {
        "device": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "env_threads": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
        "rows": [],
        "ablation": [],
        "two_d": [],
        "regime": [],
    }
    with pinned_threads(1) as info:
        out["threads"] = info
        if args.optimizer == "lm":
            cfg = LUTrainConfig(
                optimizer="lm",
                steps=args.steps,
                cg_iters=args.cg_iters,
                lr=1e-3,
                eval_every=5,
                precond_weight=args.precond_weight,
                precond_stages=parse_precond_stages(args.stages),
            )
        else:
            cfg = LUTrainConfig(optimizer="lbfgs", steps=args.steps, inner=20, eval_every=10)
        for op in args.operators:
            r = one_run(op, 256, 32, 1, args.diag, cfg, "main", symmetric=args.symmetric)
            out["rows"].append(r)
            print(
                op,
                f"{r['op_err_fro']:.2e}",
                {k: v["iters"] for k, v in r["gmres"].items()},
                f"{time.time() - t0:.0f}s",
                flush=True,
            )
            write_json(args.out, out)
        if not args.no_ablation:
            for label, diag, c in [
                ("full-diag e2e", "full", cfg),
                (
                    "blockwise+transpose",
                    "triangular",
                    LUTrainConfig(
                        optimizer="lbfgs",
                        blockwise=True,
                        transpose_loss=True,
                        block_steps=args.steps // 8,
                        eval_every=5,
                    ),
                ),
                (
                    "adam e2e",
                    "triangular",
                    LUTrainConfig(optimizer="adam", lr=1e-3, steps=args.steps * 20, eval_every=200),
                ),
            ]:
                r = one_run("laplacian-1d", 256, 32, 1, diag, c, label)
                out["ablation"].append(r)
                print(label, f"{r['op_err_fro']:.2e}", f"{time.time() - t0:.0f}s", flush=True)
                write_json(args.out, out)
        if not args.no_2d:
            for op in ("laplacian-2d", "convdiff-2d", "biharmonic-2d"):
                r = one_run(op, 256, 16, 2, "triangular", cfg, "2-D quad-tree, 4x4 patches")
                out["two_d"].append(r)
                print("2d", op, f"{r['op_err_fro']:.2e}", f"{time.time() - t0:.0f}s", flush=True)
                write_json(args.out, out)
        for n in () if args.no_regime else (256, 1024, 4096):
            out["regime"].append(regime(n))
            write_json(args.out, out)
    out["total_seconds"] = time.time() - t0
    write_json(args.out, out)


if __name__ == "__main__":
    main()
