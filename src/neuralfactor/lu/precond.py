"""Krylov iteration counts with learned-LU and classical preconditioners, same run, same solver.

Every preconditioner is handed to the same ``scipy.sparse.linalg`` Krylov method (GMRES without
restarts up to ``maxiter`` iterations, or CG for symmetric positive-definite operators with a
symmetric preconditioner) as a ``LinearOperator`` approximating ``A^{-1}``:

* ``none``; ``jacobi`` (``diag(A)^{-1}``);
* ``ilu0``: the textbook zero-fill incomplete LU on A's sparsity pattern (Saad, *Iterative
  Methods for Sparse Linear Systems*, 2nd ed., Alg. 10.4), applied by two sparse triangular
  solves. Hand-written because SciPy has no true ILU(0):
* ``spilu``: ``scipy.sparse.linalg.spilu(A, fill_factor=1, drop_tol=0)``. SuperLU's ILUTP caps
  ``nnz(L) + nnz(U)`` at ``fill_factor * nnz(A)``, and its L stores the unit diagonal, so even a
  tridiagonal matrix loses entries of its exact factors (146 GMRES iterations on the 1-D
  Laplacian where ILU(0) = exact LU needs 1): reported, but not a fair "ILU(0)";
* ``amg``: one V-cycle of smoothed-aggregation AMG (``pyamg.smoothed_aggregation_solver``);
* ``learned``: one structured solve with the learned factors (:class:`LUSolver`).

Iterations are counted by the solver's callback; the reported residual is the true relative
residual ``||b - A x|| / ||b||`` recomputed in float64 after the solve.

``method='gmres'`` is SciPy's GMRES, which preconditions on the *left*: it stops when
``||M (b - A x)|| <= tol ||M b||``, which for an ill-conditioned ``M`` can leave the true
residual far above ``tol`` (counted as not converged). ``method='gmres-right'`` runs the same
GMRES on ``A M`` (right preconditioning, ``x = M y``), whose monitored residual *is* the true
one, so its stopping test is the target itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["PRECONDITIONERS", "Preconditioner", "ilu0", "iteration_counts", "make_preconditioner"]

Preconditioner = Literal["none", "jacobi", "ilu0", "spilu", "amg", "learned"]
PRECONDITIONERS: tuple[str, ...] = ("none", "jacobi", "ilu0", "spilu", "amg", "learned")


def ilu0(A: Any) -> tuple[sp.csr_array, sp.csr_array]:
    """Zero-fill incomplete LU ``A ~ L U`` on the pattern of ``A`` (no pivoting).

    Returns unit-lower ``L`` and upper ``U`` (CSR). Work ``O(sum_i nnz(row i)^2)`` but dense
    ``(n, n)`` work arrays (``O(n^2)`` memory): meant for the n <= a few thousand of this study,
    not for large sparse systems. A dense ``A`` gives its full (unpivoted) LU. Raises
    ``ValueError`` on a zero pivot.
    """
    As = sp.csr_array(A, dtype=np.float64)
    As.sort_indices()
    n = As.shape[0]
    W = As.toarray()
    pattern = As.toarray() != 0
    np.fill_diagonal(pattern, True)
    for i in range(1, n):
        for k in np.flatnonzero(pattern[i, :i]):
            if W[k, k] == 0:
                raise ValueError(f"ILU(0) met a zero pivot at row {k}.")
            W[i, k] /= W[k, k]
            cols = np.flatnonzero(pattern[i, k + 1 :]) + k + 1
            W[i, cols] -= W[i, k] * W[k, cols]
    W = np.where(pattern, W, 0.0)
    L = sp.csr_array(np.tril(W, -1) + np.eye(n))
    U = sp.csr_array(np.triu(W))
    return L, U


def make_preconditioner(name: str, A: Any, solver: Any | None = None) -> spla.LinearOperator | None:
    """Build preconditioner ``name`` for ``A`` (``solver``: an ``LUSolver`` for ``'learned'``)."""
    n = A.shape[0]
    if name == "none":
        return None
    As = sp.csr_array(A)
    if name == "jacobi":
        d = As.diagonal()
        if np.any(d == 0):
            raise ValueError("The Jacobi preconditioner needs a zero-free diagonal of A.")
        return spla.LinearOperator((n, n), matvec=lambda r: r / d, dtype=np.float64)
    if name == "ilu0":
        L, U = ilu0(As)

        def apply(r: np.ndarray) -> np.ndarray:
            y = spla.spsolve_triangular(L, r, lower=True, unit_diagonal=True)
            return spla.spsolve_triangular(U, y, lower=False)

        return spla.LinearOperator((n, n), matvec=apply, dtype=np.float64)
    if name == "spilu":
        ilu = spla.spilu(sp.csc_matrix(As), fill_factor=1, drop_tol=0)
        return spla.LinearOperator((n, n), matvec=ilu.solve, dtype=np.float64)
    if name == "amg":
        import pyamg

        ml = pyamg.smoothed_aggregation_solver(sp.csr_matrix(As))
        return ml.aspreconditioner(cycle="V")
    if name == "learned":
        if solver is None:
            raise ValueError("The 'learned' preconditioner needs solver=LUSolver(model).")

        def apply(r: np.ndarray) -> np.ndarray:
            return np.asarray(
                solver.solve(np.asarray(r, dtype=np.float64).ravel()), dtype=np.float64
            )

        return spla.LinearOperator((n, n), matvec=apply, dtype=np.float64)
    raise ValueError(
        f"The 'preconditioner' parameter must be one of {list(PRECONDITIONERS)}. Got {name!r}."
    )


def _run(
    method: str, A: Any, b: np.ndarray, M: Any, tol: float, maxiter: int
) -> tuple[int, np.ndarray]:
    count = [0]

    def cb(_: Any) -> None:
        count[0] += 1

    if method == "gmres-right" and M is not None:
        n = b.shape[0]
        AM = spla.LinearOperator((n, n), matvec=lambda y: A @ M.matvec(y), dtype=np.float64)
        y, _ = spla.gmres(
            AM, b, rtol=tol, atol=0.0, restart=maxiter, maxiter=1, callback=cb,
            callback_type="pr_norm",
        )  # fmt: skip
        x = M.matvec(y)
    elif method in ("gmres", "gmres-right"):
        x, _ = spla.gmres(
            A,
            b,
            rtol=tol,
            atol=0.0,
            restart=maxiter,
            maxiter=1,
            M=M,
            callback=cb,
            callback_type="pr_norm",
        )
    elif method == "cg":
        x, _ = spla.cg(A, b, rtol=tol, atol=0.0, maxiter=maxiter, M=M, callback=cb)
    else:
        raise ValueError(
            f"The 'method' parameter must be 'gmres', 'gmres-right' or 'cg'. Got {method!r}."
        )
    return count[0], x


def iteration_counts(
    A: Any,
    b: np.ndarray,
    *,
    solver: Any | None = None,
    preconditioners: tuple[str, ...] = PRECONDITIONERS,
    method: str = "gmres",
    tol: float = 1e-8,
    maxiter: int = 1000,
    timer: Callable[[Callable[[], Any]], float] | None = None,
) -> dict[str, dict[str, float]]:
    """Iterations to relative residual ``tol`` for each preconditioner, in one run.

    Returns ``{name: {"iters", "converged", "rel_residual", "setup_s", "solve_s"}}``;
    ``converged`` is 1 when the *true* relative residual is at most ``10 * tol`` (the solvers'
    own estimates can claim convergence when a nearly singular preconditioner ruins the Krylov
    basis); ``iters = maxiter`` with ``converged = 0`` means it ran out of iterations.
    ``setup_s`` and ``solve_s`` are the wall times of the one set-up and the one solve (one-off
    costs reported beside the iteration counts, which are what the preconditioners are ranked
    by; they are not repeated-timing measurements and no speed-up is computed from them).
    """
    import time

    As = sp.csr_array(A) if sp.issparse(A) else np.asarray(A)
    out: dict[str, dict[str, float]] = {}
    for name in preconditioners:
        t0 = time.perf_counter()
        M = make_preconditioner(name, A, solver)
        t1 = time.perf_counter()
        iters, x = _run(method, As, b, M, tol, maxiter)
        t2 = time.perf_counter()
        res = float(np.linalg.norm(b - As @ x) / np.linalg.norm(b))
        out[name] = {
            "iters": iters,
            "converged": float(res <= tol * 10),
            "rel_residual": res,
            "setup_s": t1 - t0,
            "solve_s": t2 - t1,
        }
    return out
