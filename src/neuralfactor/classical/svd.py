"""Exact truncated SVD (torch / LAPACK gesdd) and Krylov partial SVDs (scipy ``svds``).

Registered factorizers:

- ``svd``: ``torch.linalg.svd`` (batched; on CUDA truly batched only up to 32x32 matrices).
- ``scipy-gesdd``: ``scipy.linalg.svd(lapack_driver='gesdd')``, one matrix at a time.
- ``svds-arpack``, ``svds-propack``, ``svds-lobpcg``: ``scipy.sparse.linalg.svds`` with that
  solver, one matrix at a time (the "faster SVD" of the seed study). Every rank in
  [1, min(m, n)] is accepted: where the Krylov solver cannot deliver (a breakdown after
  retries, or ``rank = min(m, n)`` for ARPACK and LOBPCG) the dense SVD does, by the
  documented rule of :func:`svds`.
"""

from __future__ import annotations

import warnings
from typing import Literal, get_args

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from torch import Tensor

from neuralfactor.core.factorizer import (
    BaseFactorizer,
    Contract,
    FactorizationError,
    register_contract,
    register_factorizer,
)
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    check_matrix,
    check_option,
    check_positive_int,
    check_rank,
)

__all__ = [
    "SVDS_FALLBACKS",
    "SVDS_SOLVERS",
    "ScipyGesdd",
    "Svds",
    "TruncatedSVD",
    "svds",
    "truncated_svd",
]

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


SvdsFallback = Literal["dense", "raise"]
SVDS_FALLBACKS: tuple[str, ...] = get_args(SvdsFallback)


def _dense_svd(a: np.ndarray, rank: int):
    """Leading ``rank`` triplets of ``a`` by LAPACK (gesdd, gesvd if gesdd does not converge)."""
    try:
        u, s, vh = scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:
        u, s, vh = scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesvd")
    return u[:, :rank], s[:rank], vh[:rank]


def _triplets_ok(a: np.ndarray, u: np.ndarray, s: np.ndarray, vh: np.ndarray, tol: float) -> bool:
    """Are ``(u, s, vh)`` finite, orthonormal and singular triplets of ``a`` to working precision?

    Orthonormality to ``10 sqrt(eps)`` and residuals ``||a v_i - s_i u_i||``,
    ``||a^T u_i - s_i v_i||`` at most ``max(tol, sqrt(eps)) ||a||_F`` (eps of ``a``'s dtype,
    checked in float64). A Krylov breakdown returns vectors that fail one of the two by far.
    """
    if not (np.isfinite(u).all() and np.isfinite(s).all() and np.isfinite(vh).all()):
        return False
    eps = float(np.finfo(a.dtype).eps)
    k = s.shape[0]
    ud, sd, vd, ad = (x.astype(np.float64) for x in (u, s, vh, a))
    eye = np.eye(k)
    if np.abs(ud.T @ ud - eye).max() > 10 * np.sqrt(eps):
        return False
    if np.abs(vd @ vd.T - eye).max() > 10 * np.sqrt(eps):
        return False
    if (sd < 0).any():
        return False
    bound = max(tol, np.sqrt(eps)) * np.linalg.norm(ad)
    res_v = np.linalg.norm(ad @ vd.T - ud * sd, axis=0)
    res_u = np.linalg.norm(ad.T @ ud - vd.T * sd, axis=0)
    return bool(max(res_v.max(), res_u.max()) <= bound)


def _check_tol(tol: float, caller: str) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ValueError(
            f"The 'tol' parameter of {caller} must be a float in [0, 1) (0: machine "
            f"precision). Got {tol!r}."
        )
    return float(tol)


def svds(
    X: Tensor,
    rank: int,
    *,
    solver: SvdsSolver = "arpack",
    tol: float = 0.0,
    seed: int = 0,
    retries: int = 5,
    fallback: SvdsFallback = "dense",
) -> LowRank:
    """Partial SVD by ``scipy.sparse.linalg.svds`` (ARPACK, PROPACK or LOBPCG), per matrix.

    Parameters
    ----------
    X : Tensor of shape (*, m, n), float32 or float64, finite
    rank : int in [1, min(m, n)] for every solver
    solver : {"arpack", "propack", "lobpcg"}
    tol : float, default 0 -- scipy's tolerance; 0 asks for machine precision.
    seed : int -- the starting vectors come from it, so results are reproducible.
    retries : int, default 5 -- further starting vectors tried after a breakdown.
    fallback : {"dense", "raise"}, default "dense" -- what happens when the Krylov solver
        cannot deliver the triplets (see the rule below).

    Returns
    -------
    LowRank with orthonormal ``U``, ``V`` and descending singular values ``S``.

    Notes
    -----
    **Fallback rule.** Each matrix is scaled by a power of two (exact) and handed to the Krylov
    solver with a starting vector drawn from ``seed``. Its triplets are accepted when they are
    finite and, after a Rayleigh-Ritz step in the returned right subspace (orthonormal
    factors to round-off), their residuals ``||A v - s u||`` and
    ``||A^T u - s v||`` are at most ``max(tol, sqrt(eps)) ||A||_F``. Otherwise (a breakdown:
    scipy's PROPACK returns non-orthonormal vectors on some starting vectors even for exactly
    rank-``rank`` matrices, ARPACK stops on an exhausted Krylov space when the matrix has
    numerical rank below ``rank``) up to ``retries`` fresh starting vectors are tried. When
    all fail, or when the solver cannot apply at all (``rank = min(m, n)`` for ARPACK and
    LOBPCG, which scipy refuses), the dense LAPACK SVD (``gesdd``) computes the triplets
    (``fallback="dense"``), or ``FactorizationError`` is raised (``fallback="raise"``). An
    all-zero matrix has the exact answer ``S = 0`` with identity columns and needs no solver.

    Krylov methods pay off for large sparse or implicit operators and small ``rank``; for the
    dense 10^2-10^3 sized frames of this project a dense SVD is usually faster.

    References
    ----------
    Lehoucq, Sorensen & Yang (1998), ARPACK Users' Guide. Larsen (1998), Lanczos
    bidiagonalization with partial reorthogonalization (PROPACK). Knyazev (2001), Toward the
    optimal preconditioned eigensolver: LOBPCG.
    """
    X = check_matrix(X, caller=f"svds-{solver}")
    check_option(solver, SVDS_SOLVERS, name="solver", caller="svds")
    check_option(fallback, SVDS_FALLBACKS, name="fallback", caller=f"svds-{solver}")
    check_positive_int(retries, name="retries", caller=f"svds-{solver}", minimum=0)
    _check_tol(tol, f"svds-{solver}")
    rank = check_rank(rank, X.shape, caller=f"svds-{solver}")

    def krylov(a: np.ndarray, attempt: int):
        rng = np.random.default_rng(seed if attempt == 0 else (seed, attempt))
        kwargs = {"k": rank, "solver": solver, "tol": tol, "random_state": rng}
        if solver != "lobpcg":  # scipy wants v0 of length m (PROPACK) or min(m, n) (ARPACK)
            size = a.shape[0] if solver == "propack" else min(a.shape)
            kwargs["v0"] = rng.standard_normal(size).astype(a.dtype)
        try:
            with warnings.catch_warnings():
                # LOBPCG warns that it switches to a dense eigensolver for small problems, and
                # that it stopped before tol; the result is checked below either way.
                warnings.simplefilter("ignore", UserWarning)
                u, s, vh = scipy.sparse.linalg.svds(a, **kwargs)
        except (np.linalg.LinAlgError, scipy.sparse.linalg.ArpackError) as exc:
            return None, str(exc)
        if not (np.isfinite(s).all() and np.isfinite(vh).all()):
            return None, "the solver returned non-finite values"
        # Rayleigh-Ritz in the returned right subspace: exact singular triplets of A within
        # it, orthonormal to round-off (PROPACK's vectors are only semi-orthogonal).
        q = np.linalg.qr(vh.T.astype(np.float64))[0]
        u, s, w = np.linalg.svd(a.astype(np.float64) @ q, full_matrices=False)
        u, s, vh = u.astype(a.dtype), s.astype(a.dtype), (w @ q.T).astype(a.dtype)
        if not _triplets_ok(a, u, s, vh, tol):
            return None, "the returned vectors are not singular vectors to working precision"
        return (u, s, vh), ""

    def one(a: np.ndarray):
        m, n = a.shape
        amax = float(np.abs(a).max())
        if amax == 0:  # exact: S = 0, any orthonormal columns
            return (
                np.eye(m, rank, dtype=a.dtype),
                np.zeros(rank, a.dtype),
                np.eye(rank, n, dtype=a.dtype),
            )
        # Scale by a power of two (exact) so that max |a| is in [0.5, 1): ARPACK and LOBPCG
        # break down on huge (overflowing norms) or tiny (underflowing) entries otherwise.
        exp = int(np.frexp(amax)[1])
        a = (a.astype(np.float64) * 2.0 ** (-exp // 2) * 2.0 ** (-exp - (-exp // 2))).astype(
            a.dtype
        )
        if solver == "propack" or rank < min(m, n):
            for attempt in range(1 + retries):
                out, why = krylov(a, attempt)
                if out is not None:
                    return out[0], out[1] * 2.0**exp, out[2]
            why = f"{why}; {1 + retries} starting vectors tried"
        else:
            why = f"scipy's svds needs rank < min(m, n)={min(m, n)} for {solver}"
        if fallback == "raise":
            raise FactorizationError(
                f"svds-{solver} could not compute {rank} singular triplets of a {m}x{n} matrix "
                f"({why}). Use fallback='dense' (the default) or the 'svd' factorizer."
            )
        u, s, vh = _dense_svd(a, rank)
        return u, s * 2.0**exp, vh

    return _per_matrix(X, one)


class TruncatedSVD(BaseFactorizer):
    """``svd``: exact truncated SVD by ``torch.linalg.svd`` (the optimum every method is scored by).

    Contract: every finite float32/float64 X (*, m, n) with 1 <= rank <= min(m, n) is
    accepted; the scaled loss is the Eckart-Young optimum to round-off (``EXACT_CONTRACT``).
    """

    name = "svd"

    def _factorize(self, X: Tensor) -> LowRank:
        return truncated_svd(X, self.rank)


class ScipyGesdd(BaseFactorizer):
    """``scipy-gesdd``: ``scipy.linalg.svd(lapack_driver='gesdd')`` per matrix (the CPU peer).

    Contract: as ``svd`` (every finite float32/float64 X with 1 <= rank <= min(m, n); exact).
    """

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
    """``svds-<solver>``: ``scipy.sparse.linalg.svds`` per matrix.

    Contract (``SVDS_CONTRACT``): every finite float32/float64 X (*, m, n) with
    1 <= rank <= min(m, n) is accepted, whatever its numerical rank; at ``tol=0`` the scaled
    loss is the Eckart-Young optimum to round-off (the fallback rule of :func:`svds`).
    """

    def __init__(
        self,
        rank: int,
        *,
        solver: SvdsSolver = "arpack",
        tol: float = 0.0,
        seed: int = 0,
        retries: int = 5,
        fallback: SvdsFallback = "dense",
    ) -> None:
        check_option(solver, SVDS_SOLVERS, name="solver", caller="svds")
        self.name = f"svds-{solver}"
        super().__init__(rank)
        check_option(fallback, SVDS_FALLBACKS, name="fallback", caller=self.name)
        check_positive_int(retries, name="retries", caller=self.name, minimum=0)
        _check_tol(tol, self.name)
        self.solver, self.tol, self.seed = solver, tol, seed
        self.retries, self.fallback = retries, fallback

    def _factorize(self, X: Tensor) -> LowRank:
        return svds(
            X,
            self.rank,
            solver=self.solver,
            tol=self.tol,
            seed=self.seed,
            retries=self.retries,
            fallback=self.fallback,
        )


#: The documented contracts (valid inputs and accuracy; see :class:`Contract`).
EXACT_CONTRACT = Contract(accuracy="exact: the Eckart-Young optimum to round-off (LAPACK SVD)")
SVDS_CONTRACT = Contract(
    accuracy=(
        "exact at tol=0 (the default): Krylov triplets accepted at residual sqrt(eps) ||X||_F "
        "after a Rayleigh-Ritz step, else retried from fresh starting vectors, else the dense SVD"
    )
)

register_factorizer("svd", TruncatedSVD)
register_contract("svd", EXACT_CONTRACT)
register_factorizer("scipy-gesdd", ScipyGesdd)
register_contract("scipy-gesdd", EXACT_CONTRACT)
for _solver in SVDS_SOLVERS:
    register_factorizer(
        f"svds-{_solver}",
        lambda rank, _s=_solver, **kw: Svds(rank, solver=_s, **kw),
    )
    register_contract(f"svds-{_solver}", SVDS_CONTRACT)
