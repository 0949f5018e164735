"""The learned-LU study's measurements: one table row, one size-regime row.

``benchmarks/lu_table.py`` parses its arguments and calls these; the records they return are
the rows of ``docs/results/records/lu_*.json``, from which the results page is written
(:mod:`neuralfactor.report.learned_lu`).
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from neuralfactor.core.timing import time_interleaved
from neuralfactor.lu.evaluate import evaluate_learned
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import make_operator
from neuralfactor.lu.precond import iteration_counts
from neuralfactor.lu.run import LURunConfig
from neuralfactor.lu.solve import IllConditionedFactorsWarning, LUSolver
from neuralfactor.lu.train import train_lu

__all__ = ["SPD_OPERATORS", "environment", "size_regime", "table_row"]

#: the symmetric positive-definite test operators (plain CG is reported for these)
SPD_OPERATORS = frozenset({"laplacian-1d", "laplacian-2d", "biharmonic-1d", "biharmonic-2d", "rbf"})
_CLASSICAL = ("none", "jacobi", "ilu0", "spilu", "amg")


def environment() -> dict[str, Any]:
    """Versions and thread settings of this process, for a record."""
    import scipy

    return {
        "device": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "env_threads": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
    }


def _row_settings(config: LURunConfig, label: str) -> dict[str, Any]:
    cfg = config.train
    return {
        "operator": config.operator,
        "n": config.n,
        "leaf": config.leaf,
        "dim": config.dim,
        "diag": config.diag,
        "label": label,
        "optimizer": cfg.optimizer,
        "iterations": None
        if cfg.blockwise
        else cfg.steps * (cfg.inner if cfg.optimizer == "lbfgs" else 1),
        "steps": cfg.steps + sum(k for _, k in cfg.precond_stages),
        "cg_iters": cfg.cg_iters if cfg.optimizer == "lm" else None,
        "blockwise": cfg.blockwise,
        "transpose_loss": cfg.transpose_loss,
        "symmetric": config.symmetric,
        "precond_weight": cfg.precond_weight,
    }


def table_row(config: LURunConfig, label: str = "main", *, samples: int = 100) -> dict[str, Any]:
    """Train one :class:`LUNetwork` on ``config.operator`` and measure it, in one run.

    The row holds every metric of :func:`~neuralfactor.lu.evaluate.evaluate_learned` on
    ``samples`` random solutions, the training settings and result (``train_seconds``,
    ``train_rel_fro``, the error after each preconditioned stage), the load average before
    and after, and the GMRES iteration counts (left and right preconditioning) of every
    preconditioner on one right-hand side ``b = A x`` (plain and preconditioned CG too for the
    SPD operators). The learned preconditioner is left out (``learned_precond_error``) when a
    diagonal block of the factors is singular.
    """
    cfg = config.train
    A = make_operator(config.operator, config.n)
    Ad = A.toarray() if sp.issparse(A) else A
    args = config.model_args()
    model = LUNetwork(args.pop("n"), args.pop("leaf"), **args)
    load0 = os.getloadavg()
    res = train_lu(A, model, cfg)
    stage_log = [  # the precond. stages as recorded: weight, steps, error after the stage
        {"precond_weight": w, "steps": st["steps"], "rel_fro": st["rel_fro"]}
        for (w, _), st in zip(cfg.precond_stages, res.stages[1:], strict=True)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedFactorsWarning)
        row = evaluate_learned(A, model, samples=samples)
    row.update(_row_settings(config, label))
    row.update(
        {
            "train_seconds": res.seconds,
            "train_rel_fro": res.rel_fro,
            "stages": stage_log,
            "loadavg_train": load0,
        }
    )
    b = Ad @ np.random.default_rng(0).standard_normal(config.n)
    try:
        solver: LUSolver | None = LUSolver(model)
    except ValueError as exc:
        solver = None
        row["learned_precond_error"] = str(exc)
    pcs = _CLASSICAL + (("learned",) if solver is not None else ())
    for key, method in (("gmres", "gmres"), ("gmres_right", "gmres-right")):
        row[key] = iteration_counts(A, b, solver=solver, preconditioners=pcs, method=method)
    if config.operator in SPD_OPERATORS:
        row["cg"] = iteration_counts(A, b, preconditioners=("none", "jacobi", "amg"), method="cg")
    row["loadavg_end"] = os.getloadavg()
    return row


def size_regime(n: int, leaf: int = 32) -> dict[str, Any]:
    """Weights and solve time of exact near-field factors against LAPACK, same run.

    The 1-D Laplacian's Cholesky factor is block-bidiagonal, so the GFMM holds it exactly in
    its near field; its structured solve of 16 right-hand sides is timed interleaved with
    ``scipy.linalg.lu_solve`` (:func:`~neuralfactor.core.timing.time_interleaved`), and the
    two solutions are compared.
    """
    import scipy.linalg as sla

    A = make_operator("laplacian-1d", n).toarray()
    C = np.linalg.cholesky(A)
    m = LUNetwork(n, leaf, diag="full")
    m.L.set_near_from(torch.as_tensor(C))
    m.U.set_near_from(torch.as_tensor(C.T))
    s = LUSolver(m)
    B = A @ np.random.default_rng(0).standard_normal((16, n)).T
    lu = sla.lu_factor(A)
    pair = time_interleaved(
        {"learn": lambda: s.solve(B.T), "lapack": lambda: sla.lu_solve(lu, B)}, min_rounds=5
    )
    x_learn, x_lapack = pair.results["learn"], pair.results["lapack"]
    err = np.linalg.norm(np.asarray(x_learn).T - x_lapack) / np.linalg.norm(x_lapack)
    return {
        "n": n,
        "leaf": leaf,
        "params_LU": m.num_parameters(),
        "dense": n * n,
        "ratio": m.num_parameters() / n**2,
        "solve16_structured_s": pair.stats["learn"].median,
        "solve16_lapack_s": pair.stats["lapack"].median,
        "agree": float(err),
        "loadavg": os.getloadavg(),
    }
