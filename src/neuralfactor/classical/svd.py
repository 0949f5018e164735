"""Exact truncated SVD (torch / LAPACK gesdd) and Krylov partial SVDs (scipy ``svds``).

Registered factorizers:

- ``svd``: ``torch.linalg.svd`` (batched; on CUDA truly batched only up to 32x32 matrices).
- ``scipy-gesdd``: ``scipy.linalg.svd(lapack_driver='gesdd')``, one matrix at a time.
- ``svds-arpack``, ``svds-propack``, ``svds-lobpcg``: ``scipy.sparse.linalg.svds`` with that
  solver, one matrix at a time (the "faster SVD" of the seed study). ARPACK and LOBPCG need
  ``rank < min(m, n)``.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from torch import Tensor

from neuralfactor.core.factorizer import BaseFactorizer, FactorizationError, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_matrix, check_option, check_rank

__all__ = ["SVDS_SOLVERS", "ScipyGesdd", "Svds", "TruncatedSVD", "svds", "truncated_svd"]

SvdsSolver = Literal["arpack", "propack", "lobpcg"]
SVDS_SOLVERS: tuple[str, ...] = get_args(SvdsSolver)


def truncated_svd(X: Tensor, rank: int) -> LowRank:
    """Best rank-``rank`` approximation by the full SVD (Eckart-Young optimal).

    Parameters
    ----------
    X : Tensor of shape (*, m, n), float32 or float64
    rank : int in [1, min(m, n)]

    Returns
    -------
    LowRank with orthonormal ``U`` (*, m, r), ``V`` (*, r, n) and singular values ``S``.

    Notes
    -----
    Cost O(m n min(m, n)) per matrix regardless of ``rank``; prefer ``rsvd`` / ``rsvd-gemm``
    when rank << min(m, n) and the spectrum decays.
    """
    X = check_matrix(X, caller="truncated_svd")
    rank = check_rank(rank, X.shape, caller="truncated_svd")
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    return LowRank(
        U[..., :rank].contiguous(), Vh[..., :rank, :].contiguous(), S[..., :rank].contiguous()
    )


def _per_matrix(X: Tensor, fn) -> LowRank:
    """Apply a NumPy ``fn(A) -> (U, s, Vh)`` to every matrix of a batch; back to X's device."""
    batch = X.shape[:-2]
    A = X.detach().cpu().numpy().reshape(-1, *X.shape[-2:])
    outs = [fn(a) for a in A]
    U = np.stack([o[0] for o in outs]).reshape(*batch, X.shape[-2], -1)
    S = np.stack([o[1] for o in outs]).reshape(*batch, -1)
    Vh = np.stack([o[2] for o in outs]).reshape(*batch, -1, X.shape[-1])
    to = {"device": X.device, "dtype": X.dtype}
    return LowRank(
        torch.as_tensor(U).to(**to), torch.as_tensor(Vh).to(**to), torch.as_tensor(S).to(**to)
    )


def svds(
    X: Tensor,
    rank: int,
    *,
    solver: SvdsSolver = "arpack",
    tol: float = 0.0,
    seed: int = 0,
) -> LowRank:
    """Partial SVD by ``scipy.sparse.linalg.svds`` (ARPACK, PROPACK or LOBPCG), per matrix.

    ``tol = 0`` asks for machine precision. The starting vector comes from ``seed`` so results
    are reproducible. Singular triplets are returned in descending order.

    Notes
    -----
    Krylov methods pay off for large sparse or implicit operators and small ``rank``; for the
    dense 10^2-10^3 sized frames of this project a dense SVD is usually faster.
    """
    X = check_matrix(X, caller=f"svds-{solver}")
    check_option(solver, SVDS_SOLVERS, name="solver", caller="svds")
    m, n = X.shape[-2:]
    kmax = min(m, n) if solver == "propack" else min(m, n) - 1
    if not 1 <= rank <= kmax:
        raise ValueError(
            f"The 'rank' parameter of svds-{solver} must be an int in [1, {kmax}] for {m}x{n} "
            f"matrices (scipy's svds needs rank < min(m, n) for {solver}). Got {rank}; use "
            f"'svd' for a full-rank factorization."
        )

    def one(a: np.ndarray):
        # Scale by a power of two (exact) so that max |a| is in [0.5, 1): ARPACK and LOBPCG
        # break down on huge (overflowing norms) or tiny (underflowing) entries otherwise.
        amax = float(np.abs(a).max())
        exp = int(np.frexp(amax)[1]) if amax > 0 else 0
        a = (a.astype(np.float64) * 2.0 ** (-exp // 2) * 2.0 ** (-exp - (-exp // 2))).astype(
            a.dtype
        )
        rng = np.random.default_rng(seed)
        kwargs = {"k": rank, "solver": solver, "tol": tol, "random_state": rng}
        if solver != "lobpcg":  # scipy wants v0 of length m (PROPACK) or min(m, n) (ARPACK)
            size = a.shape[0] if solver == "propack" else min(a.shape)
            kwargs["v0"] = rng.standard_normal(size).astype(a.dtype)
        try:
            u, s, vh = scipy.sparse.linalg.svds(a, **kwargs)
        except (np.linalg.LinAlgError, scipy.sparse.linalg.ArpackError) as exc:
            raise FactorizationError(
                f"svds-{solver} failed on a {a.shape[0]}x{a.shape[1]} matrix at rank {rank}: "
                f"{exc} This usually means the matrix has numerical rank below {rank}; use "
                f"'svd' or a smaller rank."
            ) from exc
        order = np.argsort(s)[::-1]
        u, s, vh = u[:, order], s[order], vh[order]
        # PROPACK (and ARPACK near breakdown) can return non-orthonormal "singular vectors"
        # with wrong values for matrices of numerical rank < k, without an error: check.
        otol = 10 * np.sqrt(np.finfo(a.dtype).eps)
        eye = np.eye(rank)
        ok = (
            np.isfinite(s).all()
            and np.abs(u.T.astype(np.float64) @ u - eye).max() <= otol
            and np.abs(vh.astype(np.float64) @ vh.T - eye).max() <= otol
        )
        if not ok:
            raise FactorizationError(
                f"svds-{solver} returned non-orthonormal singular vectors on a "
                f"{a.shape[0]}x{a.shape[1]} matrix at rank {rank} (a breakdown). This usually "
                f"means the matrix has numerical rank below {rank}; use 'svd' or a smaller rank."
            )
        return u, s * 2.0**exp, vh

    return _per_matrix(X, one)


class TruncatedSVD(BaseFactorizer):
    """``svd``: exact truncated SVD by ``torch.linalg.svd`` (the optimum every method is scored by)."""

    name = "svd"

    def _factorize(self, X: Tensor) -> LowRank:
        return truncated_svd(X, self.rank)


class ScipyGesdd(BaseFactorizer):
    """``scipy-gesdd``: ``scipy.linalg.svd(lapack_driver='gesdd')`` per matrix (the CPU peer)."""

    name = "scipy-gesdd"

    def _factorize(self, X: Tensor) -> LowRank:
        r = self.rank

        def one(a: np.ndarray):
            u, s, vh = scipy.linalg.svd(
                a, full_matrices=False, lapack_driver="gesdd", check_finite=False
            )
            return u[:, :r], s[:r], vh[:r]

        return _per_matrix(X, one)


class Svds(BaseFactorizer):
    """``svds-<solver>``: ``scipy.sparse.linalg.svds`` per matrix."""

    def __init__(
        self, rank: int, *, solver: SvdsSolver = "arpack", tol: float = 0.0, seed: int = 0
    ) -> None:
        check_option(solver, SVDS_SOLVERS, name="solver", caller="svds")
        self.name = f"svds-{solver}"
        super().__init__(rank)
        self.solver, self.tol, self.seed = solver, tol, seed

    def _factorize(self, X: Tensor) -> LowRank:
        return svds(X, self.rank, solver=self.solver, tol=self.tol, seed=self.seed)


register_factorizer("svd", TruncatedSVD)
register_factorizer("scipy-gesdd", ScipyGesdd)
for _solver in SVDS_SOLVERS:
    register_factorizer(
        f"svds-{_solver}",
        lambda rank, _s=_solver, **kw: Svds(rank, solver=_s, **kw),
    )
