"""Nuclear-norm methods: the nuclear norm, singular value thresholding (Cai, Candes & Shen 2010,
"A singular value thresholding algorithm for matrix completion") and factored gradient descent on a
nuclear-norm-regularized objective."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    check_matrix,
    check_positive_float,
    check_positive_int,
    check_rank,
)

__all__ = ["NuclearGDResult", "factored_nuclear_gd", "nuclear_norm", "svt"]


def nuclear_norm(X: Tensor) -> Tensor:
    """``||X||_* = sum_i s_i`` per matrix (float64)."""
    X = check_matrix(X, caller="nuclear_norm")
    return torch.linalg.matrix_norm(X.double(), ord="nuc")


def svt(X: Tensor, tau: float | Tensor) -> LowRank:
    """Singular value thresholding: the proximal operator of ``tau ||.||_*``.

    ``svt(X, tau) = argmin_Y 1/2 ||Y - X||_F^2 + tau ||Y||_* = U diag((s - tau)_+) V^T``
    (Cai, Candes & Shen, SIAM J. Optim. 20, 2010, Thm 2.1).

    Parameters
    ----------
    X : Tensor (*, m, n)
    tau : float >= 0, or Tensor of shape ``X.shape[:-2]`` (one threshold per matrix)

    Returns
    -------
    LowRank in SVD form (``S`` = shrunk singular values, zeros kept so shapes are fixed:
    rank ``min(m, n)``; use ``effective_rank`` for the number of nonzero ones).

    Notes
    -----
    Cost: one full SVD, ``O(m n min(m, n))``.
    """
    X = check_matrix(X, caller="svt")
    if isinstance(tau, Tensor):
        if tuple(tau.shape) != tuple(X.shape[:-2]) or bool((tau < 0).any()):
            raise ValueError(
                f"The 'tau' parameter of svt must be >= 0 with shape {tuple(X.shape[:-2])}. "
                f"Got shape {tuple(tau.shape)}."
            )
        t = tau.to(X.dtype)[..., None]
    else:
        t = check_positive_float(tau, name="tau", caller="svt", allow_zero=True)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    return LowRank(U, Vh, (S - t).clamp_min(0))


@dataclass
class NuclearGDResult:
    """Outcome of :func:`factored_nuclear_gd`: factors, objective history, iterations."""

    lowrank: LowRank
    objective: list[float]
    iterations: int
    converged: bool
    grad_norm: float


def factored_nuclear_gd(
    M: Tensor,
    lam: float,
    rank: int,
    *,
    step: float | None = None,
    max_iter: int = 20000,
    tol: float = 1e-10,
    init_scale: float = 0.1,
    seed: int = 0,
) -> NuclearGDResult:
    """Gradient descent on ``f(U, V) = 1/2 ||U V^T - M||_F^2 + lam/2 (||U||_F^2 + ||V||_F^2)``.

    Since ``||X||_* = min_{U V^T = X} (||U||_F^2 + ||V||_F^2) / 2`` (Srebro, Rennie & Jaakkola
    2005), the minimum of ``f`` over ``U`` (m x r), ``V`` (n x r) with ``r >= rank(svt(M, lam))``
    equals ``min_X 1/2 ||X - M||_F^2 + lam ||X||_*``, attained at ``U V^T = svt(M, lam)``;
    weight decay on the factors is nuclear-norm regularization of the product.

    Parameters
    ----------
    M : Tensor (m, n) (or batched (*, m, n); the objective is summed over the batch)
    lam : float > 0, the regularization weight
    rank : int, the factor width ``r`` (take it >= the expected rank of the solution)
    step : float, optional; default ``1 / (3 ||M||_2 + lam)`` (a local Lipschitz bound
        for balanced factors of size up to ``||M||_2``)
    max_iter, tol : stop when ``||grad f||_F <= tol * ||M||_F`` or after ``max_iter`` steps
    init_scale : the factors start as Gaussian times ``init_scale * sqrt(||M||_2 / r)``
    seed : for the initial factors

    Returns
    -------
    NuclearGDResult with ``lowrank = LowRank(U, V^T)``.

    Notes
    -----
    Plain full-batch gradient descent, float64, ``O(m n r)`` per step. Prefer :func:`svt`
    when an SVD is affordable: this is the route that scales to problems where only the
    factored form fits, and the check that weight decay = nuclear norm holds.
    """
    M = check_matrix(M, caller="factored_nuclear_gd", name="M")
    lam = check_positive_float(lam, name="lam", caller="factored_nuclear_gd")
    rank = check_rank(rank, M.shape, caller="factored_nuclear_gd")
    max_iter = check_positive_int(max_iter, name="max_iter", caller="factored_nuclear_gd")
    Md = M.double()
    s1 = float(torch.linalg.matrix_norm(Md, ord=2).max())
    if step is None:
        step = 1.0 / (3.0 * s1 + lam)
    step = check_positive_float(step, name="step", caller="factored_nuclear_gd")
    g = torch.Generator().manual_seed(seed)
    m, n = M.shape[-2:]
    c = init_scale * math.sqrt(max(s1, 1e-300) / rank)
    U = torch.randn(*M.shape[:-2], m, rank, generator=g, dtype=torch.float64) * c
    V = torch.randn(*M.shape[:-2], n, rank, generator=g, dtype=torch.float64) * c
    fro = float(torch.linalg.matrix_norm(Md).square().sum().sqrt())
    history: list[float] = []
    converged, gnorm = False, math.inf
    it = 0
    for it in range(1, max_iter + 1):  # iterations, not matrices: one GD step per pass
        R = U @ V.mT - Md
        gU = R @ V + lam * U
        gV = R.mT @ U + lam * V
        gnorm = float(torch.sqrt(gU.square().sum() + gV.square().sum()))
        if it % 100 == 1:
            obj = 0.5 * R.square().sum() + 0.5 * lam * (U.square().sum() + V.square().sum())
            history.append(float(obj))
        if gnorm <= tol * fro:
            converged = True
            break
        U = U - step * gU
        V = V - step * gV
    lr = LowRank(U.to(M.dtype), V.mT.to(M.dtype))
    return NuclearGDResult(lr, history, it, converged, gnorm)
