"""Closed-form spectra and eigenfunctions (2-D hydrogen, oscillator) and a polar quadrature.

2-D hydrogen, ``T = Laplacian + 1/|x|`` (i.e. ``-H`` with ``H = -Laplacian - 1/|x|``): bound
states ``lambda_n = 1 / (4 (n + 1/2)^2) = 1 / (2n + 1)^2``, ``n = 0, 1, ...``, degeneracy
``2n + 1``, eigenfunctions (real basis, ``rho = 2 |x| / (2n + 1)``, ``0 <= m <= n``)

    psi_{n,m}(x) = rho^m exp(-rho / 2) L_{n-m}^{(2m)}(rho) * {1 | cos(m theta), sin(m theta)}

(Yang, Guo, Chan & Chuang, Phys. Rev. A 43, 1186 (1991), rescaled from ``-1/2 Laplacian``).

Harmonic oscillator, ``H = -Laplacian + |x|^2`` on R^2: levels ``2k + 2``, degeneracy ``k + 1``,
eigenfunctions ``h_a(x) h_b(y)``, ``a + b = k``, ``h_a(t) = H_a(t) exp(-t^2 / 2)``.

``polar_quadrature`` integrates over R^2 with Gauss–Laguerre in ``r`` (the ``r`` Jacobian
cancels the Coulomb singularity) and the trapezoid rule in ``theta`` (spectral for periodic
integrands).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "hydrogen_2d_levels",
    "hydrogen_2d_eigenfunctions",
    "oscillator_2d_levels",
    "oscillator_2d_eigenfunctions",
    "true_spectrum",
    "polar_quadrature",
]


def _genlaguerre(k: int, alpha: float, x: Tensor) -> Tensor:
    """Generalized Laguerre polynomial ``L_k^{(alpha)}(x)`` by the three-term recurrence."""
    prev, cur = torch.ones_like(x), 1.0 + alpha - x
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, ((2 * j + 1 + alpha - x) * cur - (j + alpha) * prev) / (j + 1)
    return cur


def _hermite(k: int, t: Tensor) -> Tensor:
    """Physicists' Hermite polynomial ``H_k(t)`` by its three-term recurrence.

    Written here, not :func:`torch.special.hermite_polynomial_h`, because that function has no
    derivative: the autograd Laplacian of the analytic eigenfunctions differentiates this twice.
    """
    prev, cur = torch.ones_like(t), 2 * t
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, 2 * t * cur - 2 * j * prev
    return cur


def hydrogen_2d_levels(groups: int, shift: float = 0.0) -> list[tuple[float, int]]:
    """``[(shift + lambda_n, 2n + 1)]`` for ``n < groups``: eigenvalues of ``shift - H``, where
    ``lambda_n`` are those of ``-H = Laplacian + 1/|x|``."""
    return [(shift + 1.0 / (4.0 * (n + 0.5) ** 2), 2 * n + 1) for n in range(groups)]


def oscillator_2d_levels(groups: int, shift: float) -> list[tuple[float, int]]:
    """``[(shift - (2k + 2), k + 1)]`` for ``k < groups`` (eigenvalues of ``shift - H``)."""
    return [(shift - (2.0 * k + 2.0), k + 1) for k in range(groups)]


def hydrogen_2d_eigenfunctions(x: Tensor, groups: int) -> Tensor:
    """Unnormalized real eigenfunctions at ``x`` (B, 2) -> (B, sum(2n+1)), grouped by ``n``."""
    r = torch.linalg.vector_norm(x, dim=-1)
    theta = torch.atan2(x[:, 1], x[:, 0])
    cols = []
    for n in range(groups):
        rho = 2.0 * r / (2 * n + 1)
        for m in range(n + 1):
            R = rho**m * torch.exp(-rho / 2) * _genlaguerre(n - m, 2.0 * m, rho)
            if m == 0:
                cols.append(R)
            else:
                cols += [R * torch.cos(m * theta), R * torch.sin(m * theta)]
    return torch.stack(cols, -1)


def oscillator_2d_eigenfunctions(x: Tensor, groups: int) -> Tensor:
    """Unnormalized eigenfunctions ``h_a(x) h_b(y)`` (B, 2) -> (B, sum(k+1)), grouped by ``k``."""
    g = torch.exp(-(x * x).sum(-1) / 2)
    cols = []
    for k in range(groups):
        for a in range(k + 1):
            cols.append(_hermite(a, x[:, 0]) * _hermite(k - a, x[:, 1]) * g)
    return torch.stack(cols, -1)


def true_spectrum(problem: str, modes: int, *, shift: float = 0.0) -> tuple[Tensor, Tensor, int]:
    """True top eigenvalues of ``T = shift - H`` for the first ``modes`` states, their group
    ids, and the number of complete groups needed to cover them (float64)."""
    levels: list[tuple[float, int]] = []
    groups = 0
    while sum(d for _, d in levels) < modes:
        groups += 1
        levels = (
            hydrogen_2d_levels(groups, shift)
            if problem == "hydrogen-2d"
            else oscillator_2d_levels(groups, shift)
        )
    vals = [v for v, d in levels for _ in range(d)]
    gid = [i for i, (_, d) in enumerate(levels) for _ in range(d)]
    return torch.tensor(vals, dtype=torch.float64), torch.tensor(gid), groups


def polar_quadrature(
    n_r: int = 96, n_theta: int = 32, scale: float = 2.0, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Nodes (n_r n_theta, 2) and weights so that ``int_{R^2} h dx ~ sum_k w_k h(x_k)``.

    Gauss–Laguerre in ``r`` with length ``scale`` (exact for ``poly(r) exp(-r / scale)`` up to
    degree ``2 n_r - 1``), trapezoid in ``theta``. Choose ``scale`` near the slowest decay
    length of the integrands.
    """
    xg, wg = np.polynomial.laguerre.laggauss(n_r)
    r = scale * xg
    wr = scale * wg * np.exp(xg) * r  # includes the Jacobian r
    th = 2 * np.pi * np.arange(n_theta) / n_theta
    R, TH = np.meshgrid(r, th, indexing="ij")
    pts = np.stack([R * np.cos(TH), R * np.sin(TH)], -1).reshape(-1, 2)
    w = (wr[:, None] * np.full(n_theta, 2 * math.pi / n_theta)[None, :]).reshape(-1)
    return torch.as_tensor(pts, dtype=dtype), torch.as_tensor(w, dtype=dtype)
