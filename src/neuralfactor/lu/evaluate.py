"""Metrics of a learned LU against LAPACK, with honest solution errors.

Solution and backward errors use right-hand sides ``b = A x`` with *known* random ``x`` and are
reported per sample (median and max over samples), never summed, never self-consistent.
Condition numbers are computed in float64.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.linalg as sla
import torch

from neuralfactor.lu.model import LUNetwork, as_dense_operator
from neuralfactor.lu.solve import IllConditionedFactorsWarning, LUSolver, factor_conditioning

__all__ = ["evaluate_lapack", "evaluate_learned", "solve_errors"]


def solve_errors(A: np.ndarray, X: np.ndarray, Xhat: np.ndarray) -> dict[str, float]:
    """Per-sample relative solution error ``||x - xh|| / ||x||`` and backward error
    ``||b - A xh|| / (||A||_2 ||xh|| + ||b||)`` (rows of ``X`` are samples), median and max."""
    B = X @ A.T
    with np.errstate(all="ignore"):
        fe = np.linalg.norm(X - Xhat, axis=1) / np.linalg.norm(X, axis=1)
        nA = np.linalg.norm(A, 2)
        be = np.linalg.norm(B - Xhat @ A.T, axis=1) / (
            nA * np.linalg.norm(Xhat, axis=1) + np.linalg.norm(B, axis=1)
        )
    fe = np.where(np.isfinite(fe), fe, np.inf)
    be = np.where(np.isfinite(be), be, np.inf)
    return {
        "sol_err_median": float(np.median(fe)),
        "sol_err_max": float(fe.max()),
        "bwd_err_median": float(np.median(be)),
        "bwd_err_max": float(be.max()),
    }


def _samples(n: int, k: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, n, generator=g, dtype=torch.float64).numpy()


def evaluate_lapack(
    A: Any, dtype: str = "float64", *, samples: int = 100, seed: int = 0
) -> dict[str, Any]:
    """``scipy.linalg.lu_factor`` in ``dtype``: operator and solution errors on the same samples."""
    Ad = as_dense_operator(A, caller="evaluate_lapack")
    npd = np.float32 if dtype == "float32" else np.float64
    lu, piv = sla.lu_factor(Ad.astype(npd), check_finite=False)
    Lf = np.tril(lu, -1).astype(np.float64) + np.eye(len(Ad))
    Uf = np.triu(lu).astype(np.float64)
    perm = np.arange(len(Ad))  # LAPACK's row interchanges as a permutation: A[perm] = L U
    for i, p in enumerate(piv):
        perm[[i, p]] = perm[[p, i]]
    PLU = (Lf @ Uf)[np.argsort(perm)]
    E = Ad - PLU
    X = _samples(len(Ad), samples, seed)
    Xh = sla.lu_solve((lu, piv), (X @ Ad.T).astype(npd).T, check_finite=False).T.astype(np.float64)
    out = {
        "method": f"lapack-{dtype}",
        "dtype": dtype,
        "op_err_2": float(np.linalg.norm(E, 2) / np.linalg.norm(Ad, 2)),
        "op_err_fro": float(np.linalg.norm(E) / np.linalg.norm(Ad)),
        "cond_LU": float(np.linalg.cond(PLU)),
        "params": int(len(Ad) ** 2),
    }
    out.update(solve_errors(Ad, X, Xh))
    return out


def evaluate_learned(
    A: Any, model: LUNetwork, *, samples: int = 100, seed: int = 0, cond: bool = True
) -> dict[str, Any]:
    """All metrics of a trained model on operator ``A`` (original ordering).

    Keys: ``op_err_2``, ``op_err_fro`` (relative), ``cond_A``, ``cond_L``, ``cond_U``,
    ``cond_LU`` (float64), solution/backward errors of the structured solve and after one step
    of iterative refinement, ``params`` (L + U) and ``dense_params`` (n^2), and ``solve_error``
    (the message) when a diagonal block is singular.
    """
    Ad = as_dense_operator(A, caller="evaluate_learned")
    n = len(Ad)
    Ld, Ud = (m.double().numpy() for m in model.dense_factors())
    LU = Ld @ Ud
    if model.perm is not None:
        inv = np.argsort(model.perm)
        LU = LU[np.ix_(inv, inv)]
    E = Ad - LU
    out: dict[str, Any] = {
        "method": f"learned-{str(model.dtype).removeprefix('torch.')}",
        "dtype": str(model.dtype).removeprefix("torch."),
        "op_err_2": float(np.linalg.norm(E, 2) / np.linalg.norm(Ad, 2)),
        "op_err_fro": float(np.linalg.norm(E) / np.linalg.norm(Ad)),
        "params": model.num_parameters(),
        "dense_params": n * n,
    }
    if cond:
        out["cond_A"] = float(np.linalg.cond(Ad))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IllConditionedFactorsWarning)
            c = factor_conditioning(model, rel_error=out["op_err_2"])
        out.update({k: c[k] for k in ("cond_L", "cond_U", "cond_LU")})
        out["meaningless_warning"] = bool(caught)
    X = _samples(n, samples, seed)
    try:
        solver = LUSolver(model)
    except ValueError as exc:
        out["solve_error"] = str(exc)
        nan = math.inf
        out.update(
            {"sol_err_median": nan, "sol_err_max": nan, "bwd_err_median": nan, "bwd_err_max": nan}
        )
        return out
    B = X @ Ad.T
    Xh = np.asarray(solver.solve(B), dtype=np.float64)
    out.update(solve_errors(Ad, X, Xh))
    Xr = solver.refine(Ad, B, Xh, steps=1)
    r = solve_errors(Ad, X, Xr)
    out.update({f"refined_{k}": v for k, v in r.items()})
    return out
