"""Identifiability of a rank-r subspace: principal angles, the spectral gap and the Wedin bound
(Wedin 1972, "Perturbation bounds in connection with singular value decomposition"), and
low-rank matrix powers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.metrics import principal_angles
from neuralfactor.core.validation import (
    check_matrix,
    check_positive_int,
    check_rank,
)

__all__ = ["Identifiability", "identifiability", "lowrank_power"]


@dataclass(frozen=True)
class Identifiability:
    """Principal angles between two estimated subspaces, with the spectral gap behind them.

    angles : (*, r) principal angles in radians, ascending
    max_angle : (*,) the largest angle (``sin`` of it is the subspace distance)
    gap : (*,) ``s_r - s_{r+1}`` of the reference matrix, or None
    wedin_bound : (*,) ``||E||_2 / gap`` (Wedin's sin-theta bound for a perturbation ``E``),
        or None when no perturbation is given
    """

    angles: Tensor
    max_angle: Tensor
    gap: Tensor | None
    wedin_bound: Tensor | None


def identifiability(
    A: Tensor,
    B: Tensor,
    *,
    X: Tensor | None = None,
    rank: int | None = None,
    perturbation: Tensor | None = None,
) -> Identifiability:
    """Compare two estimated subspaces (columns of ``A`` and ``B``) and relate them to the gap.

    Uses :func:`neuralfactor.core.metrics.principal_angles`. With ``X`` and ``rank`` the gap
    ``s_r - s_{r+1}`` of ``X`` is reported: a rank-r subspace is identifiable (stable) when the
    gap is large compared with the perturbation; with ``perturbation`` (the difference
    between two observed matrices) Wedin's bound ``sin(theta_max) <= ||E||_2 / gap`` is given.
    """
    angles = principal_angles(A, B)
    gap = wedin = None
    if X is not None:
        X = check_matrix(X, caller="identifiability")
        r = check_rank(rank if rank is not None else A.shape[-1], X.shape, caller="identifiability")
        s = torch.linalg.svdvals(X.double())
        nxt = s[..., r] if r < s.shape[-1] else torch.zeros_like(s[..., 0])
        gap = s[..., r - 1] - nxt
        if perturbation is not None:
            e = torch.linalg.matrix_norm(perturbation.double(), ord=2)
            wedin = torch.where(gap > 0, e / gap, torch.full_like(e, math.inf))
    return Identifiability(angles, angles[..., -1], gap, wedin)


def lowrank_power(lr: LowRank, p: int) -> LowRank:
    """``A^p`` of ``A = U V`` (U m x r, V r x m) as ``U (V U)^{p-1} V``; O(m r^2 + r^3 log p).

    ``p >= 1``. Only square ``A`` has powers. The ``r x r`` core is raised with
    :func:`torch.linalg.matrix_power` (repeated squaring).
    """
    if not isinstance(lr, LowRank):
        raise TypeError(
            f"The 'lr' parameter of lowrank_power must be a LowRank. Got {type(lr).__name__}."
        )
    p = check_positive_int(p, name="p", caller="lowrank_power")
    m, n = lr.shape[-2:]
    if m != n:
        raise ValueError(f"lowrank_power needs a square matrix. Got shape {lr.shape} ({m} x {n}).")
    U, V = lr.factors()
    core = torch.linalg.matrix_power(V @ U, p - 1)
    return LowRank(U @ core, V)
