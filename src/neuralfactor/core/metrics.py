"""Accuracy metrics shared by every method, accumulated in float64.

The headline number is the **scaled loss** ``||X - UV||_F^2 / ||X||_F^2`` per matrix and its
**ratio to the optimum**, the scaled loss of the truncated SVD at the same rank (Eckart-Young:
no rank-r matrix does better, so a ratio below 1 - round-off is a bug in the caller).
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_matrix, check_rank

__all__ = [
    "calculated_U",
    "calculated_V",
    "calculated_sigma",
    "effective_rank",
    "optimal_scaled_loss",
    "orthogonality_defect",
    "principal_angles",
    "ratio_summary",
    "ratio_to_optimum",
    "roundoff_floor",
    "relative_spectral_error",
    "scaled_loss",
    "singular_value_gap",
    "subspace_distance",
]


def _dense(approx: LowRank | Tensor) -> Tensor:
    if isinstance(approx, LowRank):
        A, B = approx.factors()
        return A.double() @ B.double()
    return approx.double()


def _check_pair(X: Tensor, approx: LowRank | Tensor, caller: str) -> Tensor:
    X = check_matrix(X, caller=caller, finite=False)
    shape = approx.shape if isinstance(approx, LowRank) else tuple(approx.shape)
    if tuple(shape) != tuple(X.shape):
        raise ValueError(
            f"{caller}: the approximation has shape {tuple(shape)} but X has shape "
            f"{tuple(X.shape)}."
        )
    return X


def scaled_loss(X: Tensor, approx: LowRank | Tensor) -> Tensor:
    """``||X - A||_F^2 / ||X||_F^2`` per matrix, shape ``X.shape[:-2]``, in float64.

    A zero matrix X gives ``0`` when the approximation is zero too, else ``inf``.
    """
    X = _check_pair(X, approx, "scaled_loss")
    Xd = X.double()
    err = (Xd - _dense(approx)).square().sum(dim=(-2, -1))
    ref = Xd.square().sum(dim=(-2, -1))
    return _safe_ratio(err, ref)


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    out = num / den
    zero = den == 0
    if bool(zero.any()):
        out = torch.where(zero & (num == 0), torch.zeros_like(out), out)
        out = torch.where(zero & (num != 0), torch.full_like(out, torch.inf), out)
    return out


def optimal_scaled_loss(X: Tensor, rank: int, *, singular_values: Tensor | None = None) -> Tensor:
    """The Eckart-Young optimum ``sum_{i>r} s_i^2 / sum_i s_i^2`` per matrix (float64).

    Pass precomputed ``singular_values`` (descending, last dim) to avoid recomputing them.
    """
    X = check_matrix(X, caller="optimal_scaled_loss", finite=False)
    rank = check_rank(rank, X.shape, caller="optimal_scaled_loss")
    s = torch.linalg.svdvals(X.double()) if singular_values is None else singular_values.double()
    s2 = s.square()
    return _safe_ratio(s2[..., rank:].sum(-1), s2.sum(-1))


def ratio_to_optimum(
    X: Tensor,
    approx: LowRank | Tensor,
    rank: int | None = None,
    *,
    singular_values: Tensor | None = None,
) -> Tensor:
    """``scaled_loss / optimal_scaled_loss`` per matrix (>= 1 up to round-off).

    Where the optimum is exactly 0 (X of rank <= r) the ratio is 1 if the loss is 0 too and
    ``inf`` otherwise. When the optimum is at round-off level (a planted-rank matrix in
    float32), the ratio measures noise: report the scaled loss instead.
    """
    if rank is None:
        if not isinstance(approx, LowRank):
            raise ValueError("ratio_to_optimum needs 'rank' when the approximation is dense.")
        rank = approx.rank
    loss = scaled_loss(X, approx)
    opt = optimal_scaled_loss(X, rank, singular_values=singular_values)
    out = _safe_ratio(loss, opt)
    both_zero = (opt == 0) & (loss == 0)
    return torch.where(both_zero, torch.ones_like(out), out)


def roundoff_floor(shape: tuple[int, ...], dtype: torch.dtype) -> float:
    """The scaled loss below which an optimum is indistinguishable from round-off.

    ``(max(m, n) * eps)**2`` for matrices of trailing shape ``(m, n)`` computed in ``dtype``:
    an inner product of length k carries a relative error up to about ``k * eps`` (Higham
    2002, *Accuracy and Stability of Numerical Algorithms*, section 3.1), so a relative
    Frobenius error below ``max(m, n) * eps`` cannot be told from the arithmetic's own.
    """
    m, n = int(shape[-2]), int(shape[-1])
    eps = torch.finfo(dtype).eps
    return float((max(m, n) * eps) ** 2)


def ratio_summary(
    loss: Tensor, optimum: Tensor, *, shape: tuple[int, ...], dtype: torch.dtype
) -> dict[str, float | int]:
    """Robust summary of the ratio ``loss / optimum`` over frames.

    A mean of ratios means nothing when some frames have an optimum at round-off level (a
    rank-1 initial condition factorized at rank 4): their ratio is noise over noise (1e11 and
    more) and dominates the mean. Those frames (optimum <= :func:`roundoff_floor`) are counted
    apart, with their largest scaled loss; the others give the median, the share within 1.01
    and 1.05 of the optimum, and the maximum.

    Parameters
    ----------
    loss, optimum : Tensor of shape (T,)
        Per-frame scaled loss of the method and of the truncated SVD at the same rank.
    shape : the frames' shape (only ``m, n`` are used); dtype : the dtype computed in.

    Returns
    -------
    dict with ``frames``, ``roundoff_frames``, ``roundoff_loss_max``, ``ratio_median``,
    ``within_1_01``, ``within_1_05`` (shares in [0, 1]) and ``ratio_max``; NaN where no frame
    is left to summarize.
    """
    loss = torch.as_tensor(loss, dtype=torch.float64).reshape(-1)
    optimum = torch.as_tensor(optimum, dtype=torch.float64).reshape(-1)
    if loss.shape != optimum.shape:
        raise ValueError(
            f"ratio_summary: loss has {loss.numel()} frames but optimum has {optimum.numel()}."
        )
    tiny = optimum <= roundoff_floor(shape, dtype)
    keep = ~tiny
    ratio = loss[keep] / optimum[keep]
    nan = float("nan")
    n = int(ratio.numel())
    return {
        "frames": int(loss.numel()),
        "roundoff_frames": int(tiny.sum()),
        "roundoff_loss_max": float(loss[tiny].max()) if bool(tiny.any()) else nan,
        "ratio_median": float(torch.quantile(ratio, 0.5)) if n else nan,
        "within_1_01": float((ratio <= 1.01).double().mean()) if n else nan,
        "within_1_05": float((ratio <= 1.05).double().mean()) if n else nan,
        "ratio_max": float(ratio.max()) if n else nan,
    }


def relative_spectral_error(X: Tensor, approx: LowRank | Tensor) -> Tensor:
    """``||X - A||_2 / ||X||_2`` per matrix (float64)."""
    X = _check_pair(X, approx, "relative_spectral_error")
    Xd = X.double()
    num = torch.linalg.matrix_norm(Xd - _dense(approx), ord=2)
    return _safe_ratio(num, torch.linalg.matrix_norm(Xd, ord=2))


def effective_rank(approx: LowRank | Tensor, *, rtol: float | None = None) -> Tensor:
    """Numerical rank per matrix: singular values above ``rtol * s_max``.

    For a :class:`LowRank` this costs O((m + n) r^2): the singular values of ``U @ V`` are
    those of ``R_U @ R_V^T`` from thin QRs of ``U`` and ``V^T``. The default ``rtol`` is
    ``max(m, n) * eps`` of the factors' dtype. This is the "rank check" that catches a
    rank-r model which collapsed to rank 1.
    """
    if isinstance(approx, LowRank):
        A, B = approx.factors()
        dtype = A.dtype
        m, n = approx.shape[-2:]
        ru = torch.linalg.qr(A.double(), mode="r").R
        rv = torch.linalg.qr(B.double().mT, mode="r").R
        s = torch.linalg.svdvals(ru @ rv.mT)
    else:
        dtype = approx.dtype
        m, n = approx.shape[-2:]
        s = torch.linalg.svdvals(approx.double())
    if rtol is None:
        rtol = max(m, n) * torch.finfo(dtype).eps
    smax = s[..., :1]
    return (s > rtol * smax).sum(-1) * (smax[..., 0] > 0)


def _orth(A: Tensor) -> Tensor:
    return torch.linalg.qr(A.double()).Q


def principal_angles(A: Tensor, B: Tensor) -> Tensor:
    """Principal angles (radians, ascending) between the column spaces of ``A`` and ``B``.

    ``A``: (*, m, p), ``B``: (*, m, q); returns (*, min(p, q)). Small angles come from sines
    and large ones from cosines (Knyazev & Argentati 2002), so angles near 0 are accurate.
    Sign-, scale- and rotation-invariant within each subspace.
    """
    if A.shape[-2] != B.shape[-2]:
        raise ValueError(
            f"principal_angles: A and B must have the same number of rows. Got {tuple(A.shape)} "
            f"and {tuple(B.shape)}."
        )
    Qa, Qb = _orth(A), _orth(B)
    if Qa.shape[-1] > Qb.shape[-1]:
        Qa, Qb = Qb, Qa
    cos = torch.linalg.svdvals(Qa.mT @ Qb).clamp(0.0, 1.0)  # descending
    theta_c = torch.arccos(cos)  # ascending
    sin = torch.linalg.svdvals(Qa - Qb @ (Qb.mT @ Qa)).clamp(0.0, 1.0)  # descending
    theta_s = torch.arcsin(sin.flip(-1))  # ascending
    return torch.where(theta_c < torch.pi / 4, theta_s, theta_c)


def subspace_distance(A: Tensor, B: Tensor) -> Tensor:
    """Sine of the largest principal angle (0 = same subspace, 1 = an orthogonal direction)."""
    return torch.sin(principal_angles(A, B)[..., -1])


def orthogonality_defect(Q: Tensor, *, rows: bool = False) -> Tensor:
    """``||Q^T Q - I||_F`` per matrix (``||Q Q^T - I||_F`` with ``rows=True``), float64."""
    Qd = Q.double()
    G = Qd @ Qd.mT if rows else Qd.mT @ Qd
    eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    return torch.linalg.matrix_norm(G - eye)


def singular_value_gap(X: Tensor, rank: int) -> Tensor:
    """``s_r - s_{r+1}`` per matrix (``s_r`` when r = min(m, n)): the identifiability margin."""
    X = check_matrix(X, caller="singular_value_gap")
    rank = check_rank(rank, X.shape, caller="singular_value_gap")
    s = torch.linalg.svdvals(X.double())
    nxt = s[..., rank] if rank < s.shape[-1] else torch.zeros_like(s[..., 0])
    return s[..., rank - 1] - nxt


# ------------------------------------------------------------------ least-squares refits
def calculated_V(X: Tensor, U: Tensor) -> LowRank:
    """Keep ``U`` (m x r) and solve ``V = argmin ||X - U V||_F`` by least squares.

    Computed in float64 via a QR of ``U``; returned in X's dtype. This is the best
    approximation with that left factor: its loss isolates how good ``U`` is.
    """
    X = check_matrix(X, caller="calculated_V")
    Q, R = torch.linalg.qr(U.double())
    V = torch.linalg.lstsq(R, Q.mT @ X.double()).solution
    return LowRank(U, V.to(X.dtype))


def calculated_U(X: Tensor, V: Tensor) -> LowRank:
    """Keep ``V`` (r x n) and solve ``U = argmin ||X - U V||_F`` by least squares."""
    X = check_matrix(X, caller="calculated_U")
    sol = calculated_V(X.mT, V.mT)
    return LowRank(sol.V.mT, V)


def calculated_sigma(X: Tensor, U: Tensor, V: Tensor) -> LowRank:
    """Keep the spans of ``U`` and ``V`` and solve for the best r x r core in between.

    Returns ``Q_U @ (Q_U^T X Q_V) @ Q_V^T``: the best approximation of ``X`` whose column
    space lies in span(U) and row space in span(V^T).
    """
    X = check_matrix(X, caller="calculated_sigma")
    Qu, Qv = _orth(U), _orth(V.mT)
    core = Qu.mT @ X.double() @ Qv
    return LowRank(Qu.to(X.dtype), (core @ Qv.mT).to(X.dtype))
