"""Rank selection from singular values: AIC, the Gavish-Donoho optimal hard threshold (Gavish &
Donoho 2014, "The optimal hard threshold for singular values is 4/sqrt(3)") and the largest gap.

The Gavish-Donoho formulas are written here because no kept library ships them; they are checked
against the published closed form."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from neuralfactor.core.validation import (
    check_matrix,
    check_option,
    check_positive_float,
    check_rank,
)

__all__ = [
    "aic_rank",
    "gap_rank",
    "gavish_donoho_lambda",
    "gavish_donoho_omega",
    "gavish_donoho_rank",
    "gavish_donoho_threshold",
    "marchenko_pastur_median",
    "select_rank",
    "GAP_CRITERIA",
    "RANK_METHODS",
]

RankMethod = Literal["aic", "gavish-donoho", "gap"]
RANK_METHODS: tuple[str, ...] = ("aic", "gavish-donoho", "gap")
GapCriterion = Literal["ratio", "difference"]
GAP_CRITERIA: tuple[str, ...] = ("ratio", "difference")


def _svals(X: Tensor | np.ndarray, caller: str) -> tuple[Tensor, int, int]:
    X = check_matrix(X, caller=caller)
    if X.ndim != 2:
        raise ValueError(f"{caller} works on one matrix (m, n). Got shape {tuple(X.shape)}.")
    m, n = X.shape
    return torch.linalg.svdvals(X.double()), m, n


def aic_rank(
    X: Tensor, *, sigma: float | None = None, max_rank: int | None = None
) -> tuple[int, Tensor]:
    """Rank minimizing Akaike's criterion for ``X = rank-r signal + i.i.d. N(0, sigma^2) noise``.

    ``AIC(r) = RSS_r / sigma^2 + 2 k_r`` (-2 log-likelihood + 2 x parameters, constants
    dropped) with ``RSS_r = sum_{i > r} s_i^2`` (the Eckart-Young residual) and
    ``k_r = r (m + n - r)`` free parameters of a rank-``r`` matrix.

    Parameters
    ----------
    X : Tensor (m, n)
    sigma : float, optional
        The noise level. When ``None`` it is estimated robustly from the median singular
        value, ``sigma = median(s) / sqrt(max(m, n) mu_beta)`` with ``mu_beta`` the
        Marchenko-Pastur median (as in Gavish & Donoho 2014, eq. (10)).
    max_rank : int, optional (default ``min(m, n)``)

    Returns
    -------
    (rank, aic) with ``aic`` of shape ``(max_rank + 1,)`` for r = 0..max_rank.

    Notes
    -----
    The profile-likelihood form ``N log(RSS_r / N) + 2 k_r`` (sigma fitted per r) is *not*
    used: as ``r -> min(m, n)`` its ``log RSS_r -> -inf`` and it selected rank 199 of 200 for
    a noisy rank-5 200 x 1000 matrix. With a fixed sigma, AIC keeps directions with
    ``s_r^2 > 2 sigma^2 (m + n - 2r + 1)``. Compare the noise edge ``sigma (sqrt(m) +
    sqrt(n))``: for strongly rectangular matrices the AIC threshold lies above it, but for
    near-square ones it lies *below* it and AIC keeps one or more pure-noise directions
    (it over-selects). Gavish-Donoho's threshold is the MSE-optimal choice.
    """
    s, m, n = _svals(X, "aic_rank")
    k = min(m, n)
    max_rank = (
        k if max_rank is None else check_rank(max_rank, (m, n), caller="aic_rank", name="max_rank")
    )
    if sigma is None:
        beta = k / max(m, n)
        sigma = float(torch.median(s)) / math.sqrt(max(m, n) * marchenko_pastur_median(beta))
        if sigma == 0.0:  # more than half the singular values vanish: use the smallest > 0
            pos = s[s > s[0] * max(m, n) * torch.finfo(torch.float64).eps]
            sigma = float(pos[-1]) * 1e-3 if pos.numel() else 1.0
    else:
        sigma = check_positive_float(sigma, name="sigma", caller="aic_rank")
    s2 = s.square()
    tail = torch.cat(
        [torch.flip(torch.cumsum(torch.flip(s2, [0]), 0), [0]), torch.zeros(1, dtype=torch.float64)]
    )  # tail[r] = sum_{i >= r}
    r = torch.arange(max_rank + 1, dtype=torch.float64)
    aic = tail[: max_rank + 1] / sigma**2 + 2 * r * (m + n - r)
    return int(torch.argmin(aic)), aic


def gavish_donoho_lambda(beta: float) -> float:
    """Optimal hard-threshold coefficient for known noise (Gavish & Donoho 2014, eq. (11)).

    ``lambda*(beta) = sqrt(2 (beta + 1) + 8 beta / (beta + 1 + sqrt(beta^2 + 14 beta + 1)))``
    with ``beta = min(m, n) / max(m, n)``; ``lambda*(1) = 4 / sqrt(3)``.
    """
    b = _check_beta(beta, "gavish_donoho_lambda")
    return math.sqrt(2 * (b + 1) + 8 * b / (b + 1 + math.sqrt(b * b + 14 * b + 1)))


def _check_beta(beta: Any, caller: str) -> float:
    b = check_positive_float(beta, name="beta", caller=caller)
    if b > 1:
        raise ValueError(
            f"The 'beta' parameter of {caller} must be in (0, 1] (min(m, n) / max(m, n)). Got {b}."
        )
    return b


def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law with aspect ratio ``beta`` in (0, 1] (variance 1).

    Solved numerically (SciPy ``quad`` + ``brentq``) on the support
    ``[(1 - sqrt(beta))^2, (1 + sqrt(beta))^2]``.
    """
    from scipy.integrate import quad
    from scipy.optimize import brentq

    b = _check_beta(beta, "marchenko_pastur_median")
    lo, hi = (1 - math.sqrt(b)) ** 2, (1 + math.sqrt(b)) ** 2

    def density(t: float) -> float:
        return math.sqrt(max((hi - t) * (t - lo), 0.0)) / (2 * math.pi * b * t)

    def cdf_minus_half(x: float) -> float:
        return quad(density, lo, x, limit=200)[0] - 0.5

    return float(brentq(cdf_minus_half, lo, hi, xtol=1e-13))


def gavish_donoho_omega(beta: float, *, exact: bool = False) -> float:
    """Threshold coefficient for unknown noise: ``tau = omega(beta) * median(s)``.

    ``exact=False`` (default): the published approximation
    ``omega(beta) ~ 0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43`` (Gavish & Donoho 2014,
    eq. (5)); ``exact=True``: ``lambda*(beta) / sqrt(mu_beta)`` with ``mu_beta`` the
    Marchenko-Pastur median (eq. (9)).
    """
    b = _check_beta(beta, "gavish_donoho_omega")
    if exact:
        return gavish_donoho_lambda(b) / math.sqrt(marchenko_pastur_median(b))
    return 0.56 * b**3 - 0.95 * b**2 + 1.82 * b + 1.43


def gavish_donoho_threshold(X: Tensor, sigma: float | None = None) -> float:
    """The Gavish-Donoho optimal hard threshold for the singular values of ``X`` (m x n).

    Known noise level ``sigma`` (entries of the noise i.i.d. with variance ``sigma^2``):
    ``tau = lambda*(beta) sqrt(max(m, n)) sigma``. Unknown noise: ``tau = omega(beta) *
    median(s)``. Here ``beta = min(m, n) / max(m, n)``.

    Notes
    -----
    The ``sqrt`` is of the *larger* dimension: the noise singular values concentrate in
    ``sigma (sqrt(max) +- sqrt(min))``. (The ``optht`` package's known-noise branch was seen
    to use ``sqrt(min(m, n))``, which keeps ~all noise directions for a 200 x 1000 matrix.)
    Reference: M. Gavish and D. L. Donoho, The optimal hard threshold for singular values is
    4/sqrt(3), IEEE Trans. Inf. Theory 60 (2014) 5040-5053.
    """
    s, m, n = _svals(X, "gavish_donoho_threshold")
    beta = min(m, n) / max(m, n)
    if sigma is not None:
        sigma = check_positive_float(sigma, name="sigma", caller="gavish_donoho_threshold")
        return gavish_donoho_lambda(beta) * math.sqrt(max(m, n)) * sigma
    return gavish_donoho_omega(beta) * float(torch.median(s))


def gavish_donoho_rank(X: Tensor, sigma: float | None = None) -> int:
    """Number of singular values of ``X`` above :func:`gavish_donoho_threshold`."""
    s, _, _ = _svals(X, "gavish_donoho_rank")
    return int((s > gavish_donoho_threshold(X, sigma)).sum())


def gap_rank(
    X: Tensor, *, max_rank: int | None = None, criterion: GapCriterion = "ratio"
) -> tuple[int, Tensor]:
    """Rank at the largest singular-value gap.

    ``criterion="ratio"`` (default) maximizes ``s_r / s_{r+1}`` (scale-free: the log-gap);
    ``"difference"`` maximizes ``s_r - s_{r+1}``. Exactly zero singular values count as
    an infinite ratio. Searches ``r = 1..max_rank`` (default ``max(1, min(m, n) // 2)``:
    the signal is assumed to occupy at most half the spectrum; searching to the end lets the
    smallest singular values of a square noise matrix, which approach 0, win the ratio: it
    chose rank 299 for a noisy rank-5 300 x 300 matrix).

    Returns ``(rank, gaps)`` with ``gaps[r - 1]`` the criterion at ``r``.
    """
    check_option(criterion, GAP_CRITERIA, name="criterion", caller="gap_rank")
    s, m, n = _svals(X, "gap_rank")
    k = min(m, n)
    if k < 2:
        return 1, torch.zeros(0, dtype=torch.float64)
    max_rank = (
        max(1, k // 2)
        if max_rank is None
        else min(check_rank(max_rank, (m, n), caller="gap_rank", name="max_rank"), k - 1)
    )
    a, b = s[:max_rank], s[1 : max_rank + 1]
    if criterion == "ratio":
        tiny = torch.finfo(torch.float64).tiny
        gaps = torch.where(b > 0, a / b.clamp_min(tiny), torch.full_like(a, math.inf))
        gaps = torch.where(a > 0, gaps, torch.zeros_like(a))
    else:
        gaps = a - b
    return int(torch.argmax(gaps)) + 1, gaps


def select_rank(
    X: Tensor,
    method: RankMethod = "gavish-donoho",
    *,
    sigma: float | None = None,
    max_rank: int | None = None,
) -> int:
    """Choose a rank by ``"aic"``, ``"gavish-donoho"`` (default) or ``"gap"``; at least 1."""
    check_option(method, RANK_METHODS, name="method", caller="select_rank")
    if method == "aic":
        r = aic_rank(X, sigma=sigma, max_rank=max_rank)[0]
    elif method == "gap":
        r = gap_rank(X, max_rank=max_rank)[0]
    else:
        r = gavish_donoho_rank(X, sigma)
        if max_rank is not None:
            r = min(r, max_rank)
    return max(int(r), 1)
