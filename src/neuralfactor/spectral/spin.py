"""SpIN-style baseline: Cholesky-whitened Rayleigh objective with a moving-average covariance.

Spectral Inference Networks (Pfau, Petersen, Agarwal, Barrett & Stachenfeld, ICLR 2019)
maximize ``tr(L^{-1} Pi L^{-T})`` with ``Sigma = <f_i, f_j> = L L^T`` and
``Pi = <f_i, T f_j>``; the whitened functions ``L^{-1} f`` are the eigenfunctions and the
diagonal of ``Lambda = L^{-1} Pi L^{-T}`` their eigenvalues. Two devices make it order the
modes and use minibatches: *gradient masking* (the ``k``-th diagonal entry only moves
function ``k``; functions ``< k`` enter it through stop-gradients) and a *moving average of
``Sigma``* in place of the noisy batch covariance.

This reimplementation keeps both, on the same operators, samplers and training loop as
NestedLoRA. It differs from the original in one stated way: instead of also averaging the
Jacobian of ``Sigma`` (the original's bi-level update), the covariance enters as
``Sigma_avg + (Sigma_batch - sg(Sigma_batch))``, i.e. value from the moving average,
gradient from the current batch (a straight-through estimator).

Cost: O(B L^2) for the moments plus O(L^4) for the ``L`` masked Cholesky factorizations
(negligible for ``L <= 16``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["spin_loss", "spin_whiten"]


def _masked(full: Tensor, left: Tensor, k: int) -> Tensor:
    """Leading (k+1, k+1) block: entries among modes < k detached, row/col k live in mode k."""
    M = full.detach()[: k + 1, : k + 1].clone()
    M[:k, k] = left[:k, k]
    M[k, :k] = left[:k, k]
    M[k, k] = full[k, k]
    return M


def spin_loss(
    F: Tensor, TF: Tensor, w: Tensor, sigma_avg: Tensor, *, decay: float, initialized: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """SpIN objective on one batch.

    Parameters
    ----------
    F, TF : Tensor of shape (B, L)
        Function values and the (self-adjoint) operator applied to them.
    w : Tensor of shape (B,)
        Monte Carlo weights (see :mod:`neuralfactor.spectral.operators`).
    sigma_avg : Tensor of shape (L, L)
        Moving-average covariance from previous steps (not modified here).
    decay : float in [0, 1)
        Moving-average decay ``beta``: ``Sigma_avg <- beta Sigma_avg + (1 - beta) Sigma_batch``.
    initialized : bool
        Whether ``sigma_avg`` holds an average yet (if not, the batch covariance is used).

    Returns
    -------
    loss : scalar tensor ``-sum_k Lambda_kk`` (to minimize; top eigenvalues of ``T``)
    eigenvalues : Tensor (L,), detached ``Lambda_kk``
    new_sigma_avg : Tensor (L, L), detached, the updated moving average
    """
    wF = w[:, None] * F
    S_full = F.mT @ wF
    S_left = F.detach().mT @ wF  # <sg f_i, f_j>
    Pi_full = 0.5 * (F.mT @ (w[:, None] * TF) + TF.mT @ wF)
    Pi_left = F.detach().mT @ (w[:, None] * TF)  # <sg f_i, T f_j>, live in j
    S_batch = S_full.detach()
    new_avg = decay * sigma_avg + (1 - decay) * S_batch if initialized else S_batch
    shift_full = new_avg - S_batch  # value from the average, gradient from the batch
    S_full = S_full + shift_full
    S_left = S_left + shift_full
    L = F.shape[1]
    diag = []
    eye = torch.eye(L, dtype=F.dtype, device=F.device)
    for k in range(L):
        Sk = _masked(S_full, S_left, k)
        Pk = _masked(Pi_full, Pi_left, k)
        C = torch.linalg.cholesky(Sk + 1e-10 * eye[: k + 1, : k + 1] * Sk.diagonal().mean())
        Ci = torch.linalg.solve_triangular(C, eye[: k + 1, : k + 1], upper=False)
        diag.append(Ci[k] @ Pk @ Ci[k])
    lam = torch.stack(diag)
    return -lam.sum(), lam.detach(), new_avg.detach()


def spin_whiten(F: Tensor, sigma: Tensor) -> Tensor:
    """Whitened functions ``F L^{-T}`` with ``sigma = L L^T``: the SpIN eigenfunctions, (B, L)."""
    C = torch.linalg.cholesky(sigma)
    return torch.linalg.solve_triangular(C, F.mT, upper=False).mT
