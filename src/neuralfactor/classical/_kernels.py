"""GEMM-only building blocks shared by the randomized, streaming and POD factorizers.

Everything here is a batched matrix product plus k x k work done in float64 (k = rank +
oversample, small). No Householder QR and no large SVD, so the same code runs well on GPUs,
where ``torch.linalg.qr``/``svd`` of many tall matrices loop over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank

__all__ = [
    "gram_orthonormalize",
    "power_of_two_scale",
    "rayleigh_ritz",
    "refill_zero_columns",
    "rescale",
    "subspace_step",
]


def power_of_two_scale(X: Tensor) -> tuple[Tensor, Tensor]:
    """Scale each matrix of ``X`` (*, m, n) by a power of two so that max |x| lies in [0.5, 1).

    Returns ``(Xs, inv)`` with ``X = Xs * inv`` exactly (``inv`` of shape (*, 1, 1), X's
    dtype). Scaling by a power of two is exact in floating point, so normal-range input gives
    the same factorization up to round-off, while huge entries (whose Gram matrices overflow)
    and tiny or subnormal float32 entries (whose inverse square roots overflow the dtype) no
    longer turn into Inf/NaN inside the GEMM kernels. A zero matrix is left unscaled.
    """
    amax = X.detach().abs().amax(dim=(-2, -1), keepdim=True).double()
    _, exp = torch.frexp(amax)
    exp = torch.where(amax > 0, exp, torch.zeros_like(exp)).double()
    # Two half steps: 2**-exp alone can overflow float64 for subnormal float64 input.
    a = torch.floor(-exp / 2)
    Xs = (X.double() * torch.exp2(a) * torch.exp2(-exp - a)).to(X.dtype)
    return Xs, torch.exp2(exp).to(X.dtype)


def rescale(lr: LowRank, inv: Tensor) -> LowRank:
    """Undo :func:`power_of_two_scale` on a factorization of the scaled matrices."""
    if lr.S is not None:
        return LowRank(lr.U, lr.V, lr.S * inv[..., 0])
    return LowRank(lr.U, lr.V * inv)


def gram_orthonormalize(Y: Tensor, *, passes: int = 2) -> Tensor:
    """Orthonormalize the columns of ``Y`` (*, m, k) with Gram matrices and a float64 eigh.

    Each pass forms ``G = Y^T Y`` in float64, takes ``G = W diag(lam) W^T`` and maps
    ``Y <- Y W diag(lam^-1/2)``. Directions with ``lam <= (k eps)^2 lam_max`` (eps of ``Y``'s
    dtype) carry no information at that precision; their columns are set to **zero** instead of
    being amplified noise, so rank-deficient input gives zero columns, never Inf/NaN. Two passes
    (as in CholeskyQR2) bring the orthogonality defect to round-off.

    The float64 eigh resolves eigenvalues of ``G`` only to about ``eps64 * lam_max``, so the
    threshold is at least ``10 k eps64`` relative: like every Gram/Cholesky-QR method this
    resolves directions whose singular values exceed ~1e-7 of the largest (a square-rooted
    float64 precision). Lost directions contribute < 1e-13 of ``||Y||^2``; when the optimum
    itself is that small, use Householder QR (``rsvd``).

    Plain Cholesky-QR breaks down on numerically low-rank float32 input (``G`` is singular to
    working precision); the float64 eigh with thresholding does not. Cost O(m k^2) per pass.
    """
    k = Y.shape[-1]
    eps = torch.finfo(Y.dtype).eps
    floor = max((k * eps) ** 2, 10 * k * torch.finfo(torch.float64).eps)
    for _ in range(passes):
        Yd = Y.double()
        G = Yd.mT @ Yd
        lam, W = torch.linalg.eigh(G)
        lam_max = lam[..., -1:].clamp_min(torch.finfo(torch.float64).tiny)
        keep = lam > floor * lam_max
        scale = torch.where(keep, lam.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 0.0)
        Y = Y @ (W * scale.unsqueeze(-2)).to(Y.dtype)
    return Y


def rayleigh_ritz(X: Tensor, Q: Tensor, rank: int) -> tuple[LowRank, Tensor]:
    """Best rank-``rank`` approximation of ``X`` within span(Q): returns ``(LowRank, B)``.

    ``Q`` (*, m, k) has orthonormal (or zero) columns. With ``B = Q^T X`` (*, k, n) and the
    float64 eigh ``B B^T = W diag(lam) W^T``, the result is ``U = Q W_r`` (orthonormal columns)
    and ``V = W_r^T B = U^T X``, i.e. the projection of X onto its top-r Ritz vectors. ``S`` is
    not stored (no division by small singular values); ``||V[i]||`` are the Ritz values. ``B`` is
    returned for reuse (its transpose spans the next right basis in subspace iteration).
    """
    B = Q.mT @ X
    Bd = B.double()
    lam, W = torch.linalg.eigh(Bd @ Bd.mT)
    Wr = W[..., -rank:].flip(-1).to(X.dtype)
    U = Q @ Wr
    V = Wr.mT @ B
    return LowRank(U, V), B


def refill_zero_columns(P: Tensor, generator: torch.Generator | None) -> Tensor:
    """Replace the zero columns of an orthonormal-or-zero basis by fresh random directions.

    :func:`gram_orthonormalize` zeroes directions that a rank-deficient matrix does not
    reach. In subspace iteration a zero column stays zero forever, so a stream that starts on
    a low-rank frame (e.g. an initial condition of rank 2) would never regain rank. Refilled
    columns are Gaussian (from ``generator``), made orthogonal to the kept ones and
    orthonormalized; nothing is drawn when no column is zero.
    """
    if generator is None:
        return P
    zero = P.square().sum(-2) < 0.25  # (*, l): columns are either ~unit or exactly 0
    if not bool(zero.any()):
        return P
    R = torch.randn(P.shape, generator=generator, device=P.device, dtype=P.dtype)
    R = R - P @ (P.mT @ R)
    P = torch.where(zero.unsqueeze(-2), R, P)
    return gram_orthonormalize(P)


def subspace_step(
    X: Tensor, P: Tensor, rank: int, *, n_iter: int = 1, generator: torch.Generator | None = None
) -> tuple[LowRank, Tensor]:
    """Subspace iteration from a right basis ``P`` (*, n, l); returns ``(LowRank, P_next)``.

    One iteration costs two products with ``X`` (``X P`` and ``Q^T X``) plus O((m + n) l^2):
    ``Q = orth(X P)``, Rayleigh-Ritz in span(Q), and the next right basis ``orth(X^T Q)`` taken
    from the ``B = Q^T X`` that Rayleigh-Ritz already formed. ``P`` may broadcast over X's batch.
    With a ``generator``, zero columns of the next basis (directions X did not reach) are
    refilled with random directions (:func:`refill_zero_columns`), so later frames of a
    stream can use them.
    """
    lr = None
    for it in range(n_iter):
        Q = gram_orthonormalize(X @ P)
        if it == n_iter - 1:
            lr, B = rayleigh_ritz(X, Q, rank)
        else:
            B = Q.mT @ X
        P = refill_zero_columns(gram_orthonormalize(B.mT), generator)
    assert lr is not None  # n_iter >= 1 is validated by callers
    return lr, P
