"""Building blocks shared by the randomized, streaming and POD factorizers: two kernels.

- ``"gemm"``: everything is a batched matrix product plus k x k work done in float64 (k = rank
  + oversample, small). No Householder QR and no large SVD, so the same code runs well on GPUs,
  where ``torch.linalg.qr``/``svd`` of many tall matrices loop over the batch.
- ``"lapack"``: Householder QR (``torch.linalg.qr``) and a small SVD in the working precision.
  On a CPU one LAPACK call per matrix is cheaper than two float64 Gram/eigh passes, and it
  needs no zero-column bookkeeping: Householder QR and the SVD always return orthonormal
  columns, even for rank-deficient input.

``kernel="auto"`` picks ``"lapack"`` on the CPU and ``"gemm"`` on every other device
(:func:`resolve_kernel`). Both kernels scale the input by a power of two only when its largest
entry lies outside a safe range (:func:`scale_if_needed`), so normal-range data pays one
max-abs reduction and nothing else.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_option

__all__ = [
    "KERNELS",
    "Kernel",
    "gemm_step",
    "gram_orthonormalize",
    "lapack_step",
    "power_of_two_scale",
    "rayleigh_ritz",
    "refill_zero_columns",
    "rescale",
    "resolve_kernel",
    "ritz_from_projection",
    "scale_if_needed",
    "subspace_step",
]

#: The accepted values of every ``kernel`` parameter.
Kernel = Literal["auto", "lapack", "gemm"]
KERNELS: tuple[str, ...] = ("auto", "lapack", "gemm")


def resolve_kernel(
    kernel: str, device: torch.device, *, caller: str, auto: str | None = None
) -> Literal["lapack", "gemm"]:
    """The kernel to run: ``"auto"`` is ``"lapack"`` on the CPU and ``"gemm"`` elsewhere.

    ``auto`` overrides what ``"auto"`` means for one method (``rsvd-gemm`` pins it to
    ``"gemm"``: its name promises that algorithm on every device).
    """
    check_option(kernel, KERNELS, name="kernel", caller=caller)
    if kernel == "auto":
        if auto is not None:
            return auto  # type: ignore[return-value]
        return "lapack" if device.type == "cpu" else "gemm"
    return kernel  # type: ignore[return-value]


def _safe_range(dtype: torch.dtype) -> tuple[float, float]:
    """Largest-entry range in which neither kernel over- or underflows: 2^(+-emax/4).

    float32: [4.7e-10, 4.3e9]; float64: [1.7e-77, 5.8e76]. Inside it, products with
    orthonormal bases, float64 Gram matrices of float32 data and their inverse square roots
    all stay in the normal range of their dtype.
    """
    e = int(math.log2(torch.finfo(dtype).max)) // 4
    return 2.0**-e, 2.0**e


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


def scale_if_needed(X: Tensor) -> tuple[Tensor, Tensor | None]:
    """:func:`power_of_two_scale` only when some matrix of ``X`` needs it; else ``(X, None)``.

    One max-abs reduction per matrix decides: a nonzero matrix whose largest entry lies outside
    ``2^(+-emax/4)`` of its dtype (subnormal, tiny or huge data) is scaled, the rest of the
    batch with it (exact powers of two, so results are unchanged up to round-off).
    """
    lo, hi = _safe_range(X.dtype)
    Xd = X.detach()  # two reductions, no |X| temporary (half the cost of abs().amax())
    if X.shape[:-2].numel() == 1:
        # one matrix (a streamed frame): one fused min/max pass and one sync, the decision
        # in Python -- the per-op overhead of the batched path is most of a small frame's cost
        low, high = torch.aminmax(Xd)
        a = max(float(high), -float(low))
        if a > hi or 0 < a < lo:
            return power_of_two_scale(X)
        return X, None
    amax = torch.maximum(Xd.amax(dim=(-2, -1)), -Xd.amin(dim=(-2, -1)))
    if bool(((amax > hi) | ((amax < lo) & (amax > 0))).any()):
        return power_of_two_scale(X)
    return X, None


def rescale(lr: LowRank, inv: Tensor | None) -> LowRank:
    """Undo :func:`power_of_two_scale` on a factorization of the scaled matrices.

    ``inv=None`` (nothing was scaled, see :func:`scale_if_needed`) returns ``lr`` unchanged.
    """
    if inv is None:
        return lr
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
    return _gram_orthonormalize(Y, passes=passes)[0]


def _gram_orthonormalize(Y: Tensor, *, passes: int = 2) -> tuple[Tensor, Tensor]:
    """:func:`gram_orthonormalize` and the first pass's Gram eigenvalues (ascending, float64):
    the squared singular values of the input ``Y``, free for convergence checks."""
    k = Y.shape[-1]
    eps = torch.finfo(Y.dtype).eps
    floor = max((k * eps) ** 2, 10 * k * torch.finfo(torch.float64).eps)
    first = None
    for _ in range(passes):
        Yd = Y.double()
        G = Yd.mT @ Yd
        lam, W = torch.linalg.eigh(G)
        if first is None:
            first = lam
        lam_max = lam[..., -1:].clamp_min(torch.finfo(torch.float64).tiny)
        keep = lam > floor * lam_max
        scale = torch.where(keep, lam.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 0.0)
        Y = Y @ (W * scale.unsqueeze(-2)).to(Y.dtype)
    return Y, first


def rayleigh_ritz(X: Tensor, Q: Tensor, rank: int) -> tuple[LowRank, Tensor]:
    """Best rank-``rank`` approximation of ``X`` within span(Q): returns ``(LowRank, B)``.

    ``Q`` (*, m, k) has orthonormal (or zero) columns. With ``B = Q^T X`` (*, k, n) and the
    float64 eigh ``B B^T = W diag(lam) W^T``, the result is ``U = Q W_r`` (orthonormal columns)
    and ``V = W_r^T B = U^T X``, i.e. the projection of X onto its top-r Ritz vectors. ``S`` is
    not stored (no division by small singular values); ``||V[i]||`` are the Ritz values. ``B`` is
    returned for reuse (its transpose spans the next right basis in subspace iteration).
    """
    lr, B, _ = ritz_from_projection(Q, Q.mT @ X, rank)
    return lr, B


def ritz_from_projection(Q: Tensor, B: Tensor, rank: int) -> tuple[LowRank, Tensor, Tensor]:
    """GEMM-kernel Rayleigh-Ritz from an already formed ``B = Q^T X`` (*, k, n).

    Returns ``(LowRank(U, V), B, lam)`` with ``lam`` (*, k) the Ritz energies (squared Ritz
    values) in descending order, float64.
    """
    Bd = B.double()
    lam, W = torch.linalg.eigh(Bd @ Bd.mT)
    Wr = W[..., -rank:].flip(-1).to(B.dtype)
    U = Q @ Wr
    V = Wr.mT @ B
    return LowRank(U, V), B, lam.flip(-1)


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


def lapack_step(
    X: Tensor, P: Tensor, rank: int, *, energies: bool = True
) -> tuple[LowRank, Tensor, Tensor | None, Tensor | None]:
    """One LAPACK-kernel subspace iteration from an orthonormal right basis ``P`` (*, n, l).

    ``Q = qr(X P)`` (Householder), ``Z = X^T Q`` and the small SVD ``Z = V diag(s) W^T`` in
    the working precision: the Ritz triplets of X in span(Q) are ``(Q W, s, V)``, so the result
    is ``U = Q W_r``, ``S = s_r``, ``V_r^T`` and the next right basis is ``V`` itself (all l
    columns, orthonormal, ordered by Ritz value). Two products with X plus
    O(m l^2 + n l^2 + l^3).

    Returns ``(LowRank(U, V_r^T, S), P_next, energy_in, ritz)``: ``energy_in`` (*) is
    ``||X P_r||_F^2`` (the rank-r energy the *incoming* basis captured, ``P_r`` its first r
    columns) and ``ritz`` (*, l) the squared Ritz values, both float64, for convergence checks;
    ``energies=False`` skips them (``None``, ``None``): a fixed iteration count needs neither.
    """
    Q, R = torch.linalg.qr(X @ P)
    V, s, Wt = torch.linalg.svd(X.mT @ Q, full_matrices=False)
    U = Q @ Wt[..., :rank, :].mT
    lr = LowRank(U, V[..., :rank].mT, s[..., :rank])
    if not energies:
        return lr, V, None, None
    energy_in = R[..., :rank].double().square().sum((-2, -1))  # ||X P_r||^2 = ||R_r||^2
    return lr, V, energy_in, s.double().square()


def gemm_step(
    X: Tensor, P: Tensor, rank: int, generator: torch.Generator | None
) -> tuple[LowRank, Tensor, Tensor, Tensor]:
    """One GEMM-kernel subspace iteration; same returns as :func:`lapack_step` (``S`` None).

    ``energy_in`` is here the top-r energy of ``X P`` (from the first Gram pass, free).
    """
    Q, lam_y = _gram_orthonormalize(X @ P)
    lr, B, lam = ritz_from_projection(Q, Q.mT @ X, rank)
    P = refill_zero_columns(gram_orthonormalize(B.mT), generator)
    return lr, P, lam_y[..., -rank:].sum(-1), lam


def subspace_step(
    X: Tensor,
    P: Tensor,
    rank: int,
    *,
    n_iter: int = 1,
    generator: torch.Generator | None = None,
    kernel: Literal["lapack", "gemm"] = "gemm",
) -> tuple[LowRank, Tensor]:
    """Subspace iteration from a right basis ``P`` (*, n, l); returns ``(LowRank, P_next)``.

    One iteration costs two products with ``X`` (``X P`` and ``Q^T X``) plus O((m + n) l^2):
    ``Q = orth(X P)``, Rayleigh-Ritz in span(Q), and the next right basis ``orth(X^T Q)`` taken
    from the ``B = Q^T X`` that Rayleigh-Ritz already formed. ``P`` may broadcast over X's batch.
    With a ``generator``, zero columns of the next basis (directions X did not reach) are
    refilled with random directions (:func:`refill_zero_columns`), so later frames of a
    stream can use them.

    ``kernel="lapack"`` runs :func:`lapack_step` ``n_iter`` times instead (``P`` must then be
    orthonormal; its result carries ``S``, and no column is ever zero, so nothing is refilled).
    """
    if kernel == "lapack":
        for _ in range(n_iter):
            lr, P, _, _ = lapack_step(X, P, rank, energies=False)
        return lr, P
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
