"""NestedLoRA: the nested low-rank approximation objective behind NeuralSVD.

For a compact operator ``T`` and ``L`` pairs of functions ``(f_l, g_l)`` the low-rank
approximation loss (Schmidt 1907; Eckart & Young 1936 in the matrix case) is

    L(f, g) = -2 sum_l <g_l, T f_l> + sum_{l, l'} <f_l, f_l'> <g_l, g_l'>
            = ||T - sum_l g_l (x) f_l||^2_HS - ||T||^2_HS,

minimized by any basis of the top-``L`` singular subspace. **Nesting** removes the rotation
freedom: with ``L_k`` the loss of the first ``k`` pairs,

* *joint*: minimize ``sum_k w_k L_k`` (``w_k > 0``), so that every prefix is optimal at once;
* *sequential*: mode ``k`` descends ``L_k`` with modes ``< k`` held fixed (stop-gradient).

Either way the minimizer is ``f_l = sqrt(s_l) v_l``, ``g_l = sqrt(s_l) u_l`` in the order of
the singular values ``s_1 >= s_2 >= ...`` (Ryu, Xu, Erol, Bu, Zheng & Wornell, "Operator SVD
with neural networks via nested low-rank approximation", ICML 2024). In the self-adjoint EVD
form ``g = f`` and the minimizer is ``f_l = sqrt(lambda_l) phi_l`` for the top positive
eigenvalues.

Everything here works on *moments*: the vector ``c_l = <g_l, T f_l>`` and the Gram matrices
``P = <f_i, f_j>``, ``Q = <g_i, g_j>``, whether exact (finite matrices) or minibatch
estimates. The quadratic term is a product of two expectations; its unbiased minibatch
estimate multiplies Gram matrices from **two independent halves** of the batch (pass a pair
``(P_A, P_B)``), whereas one Gram from the whole batch squared is biased by its variance.
Plain torch autograd differentiates all of it.

Cost: O(B L^2) per Gram from a batch of ``B`` samples, O(L^2) for the loss.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "Nesting",
    "NESTINGS",
    "gram",
    "nested_weights",
    "nestedlora_loss",
    "nestedlora_loss_evd",
    "prefix_losses",
]

Nesting = Literal["joint", "seq"]
#: allowed values of ``nesting``
NESTINGS: tuple[str, ...] = ("joint", "seq")

GramEstimate = Tensor | tuple[Tensor, Tensor]


def _check_nesting(nesting: str, caller: str) -> None:
    if nesting not in NESTINGS:
        raise ValueError(
            f"The 'nesting' parameter of {caller} must be one of {list(NESTINGS)}. Got {nesting!r}."
        )


def gram(F: Tensor, weights: Tensor | None = None, *, sequential: bool = False) -> Tensor:
    """Monte Carlo (or exact) Gram matrix ``P_ij = <f_i, f_j>`` from samples.

    Parameters
    ----------
    F : Tensor of shape (B, L)
        Function values ``f_l(x_b)`` at ``B`` samples.
    weights : Tensor of shape (B,), optional
        Quadrature/importance weights, so that ``<f, g> ~ sum_b w_b f(x_b) g(x_b)``; ``None``
        means ``1 / B`` (samples from the measure itself).
    sequential : bool
        Build the stop-gradient pattern of sequential nesting: entry ``(i, j)`` with ``i < j``
        is ``<sg(f_i), f_j>`` (gradient to the later mode only), the diagonal is exact, and the
        matrix is symmetric. The *value* is the same as without it.

    Returns
    -------
    Tensor of shape (L, L)
    """
    if F.ndim != 2:
        raise ValueError(f"The 'F' parameter of gram must have shape (B, L). Got {tuple(F.shape)}.")
    W = F if weights is None else F * weights[:, None]
    scale = 1.0 / F.shape[0] if weights is None else 1.0
    if not sequential:
        return (F.mT @ W) * scale
    M = (F.detach().mT @ W) * scale  # M_ij = <sg f_i, f_j>, live in j
    upper = torch.triu(M, 1)
    diag = (F * W).sum(0) * scale
    return upper + upper.mT + torch.diag_embed(diag)


def nested_weights(
    L: int, nesting: Nesting, weights: Tensor | None = None, *, like: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Coefficients ``(a, M)`` with loss ``-2 sum_l a_l c_l + sum_ij M_ij P_ij Q_ij``.

    Joint nesting with positive weights ``w`` (default all ones): ``a_l = sum_{k >= l} w_k``
    and ``M_ij = a_{max(i, j)}``. Sequential nesting: ``a_l = w_l`` and ``M_ij = w_{max(i,j)}``
    (used with sequential Gram matrices, see :func:`gram`).
    """
    dtype = like.dtype if like is not None else torch.float64
    device = like.device if like is not None else None
    if weights is None:
        w = torch.ones(L, dtype=dtype, device=device)
    else:
        w = torch.as_tensor(weights, dtype=dtype, device=device)
        if w.shape != (L,) or not bool((w >= 0).all()) or not bool((w > 0).any()):
            raise ValueError(
                f"The 'weights' parameter must hold {L} non-negative numbers, not all zero. "
                f"Got {w.tolist()}."
            )
    a = w.flip(0).cumsum(0).flip(0) if nesting == "joint" else w
    idx = torch.arange(L, device=device)
    M = a[torch.maximum(idx[:, None], idx[None, :])]
    return a, M


def _pair_product(P: GramEstimate, Q: GramEstimate) -> Tensor:
    """Elementwise estimate of ``P * Q``; unbiased when both are pairs from independent halves."""
    if isinstance(P, tuple) and isinstance(Q, tuple):
        return 0.5 * (P[0] * Q[1] + P[1] * Q[0])
    if isinstance(P, tuple) or isinstance(Q, tuple):
        raise TypeError("Pass both Gram estimates as (half A, half B) pairs, or neither.")
    return P * Q


def nestedlora_loss(
    cross: Tensor,
    P: GramEstimate,
    Q: GramEstimate,
    *,
    nesting: Nesting = "joint",
    weights: Tensor | None = None,
) -> Tensor:
    """NestedLoRA loss (SVD form) from moments.

    Parameters
    ----------
    cross : Tensor of shape (L,)
        ``c_l = <g_l, T f_l>`` (estimated on the whole batch).
    P, Q : Tensor of shape (L, L), or a pair of them
        Gram matrices of ``f`` and ``g`` (see :func:`gram`; build them with
        ``sequential=True`` for ``nesting='seq'``). A pair ``(A, B)`` of estimates from two
        independent halves of the batch gives an unbiased estimate of the quadratic term.
    nesting : {'joint', 'seq'}
    weights : Tensor of shape (L,), optional
        Positive nesting weights (default ones).

    Returns
    -------
    Scalar tensor. For joint nesting it is ``sum_k w_k L_k``; for sequential nesting its value
    is ``sum_l w_l (L_l - L_{l-1})`` (``= L_L`` for unit weights) and its gradient is the
    sequential (stop-gradient) field.
    """
    _check_nesting(nesting, "nestedlora_loss")
    L = cross.shape[-1]
    a, M = nested_weights(L, nesting, weights, like=cross)
    return -2.0 * (a * cross).sum() + (M * _pair_product(P, Q)).sum()


def nestedlora_loss_evd(
    diag: Tensor, P: GramEstimate, *, nesting: Nesting = "joint", weights: Tensor | None = None
) -> Tensor:
    """NestedLoRA loss in the self-adjoint EVD form (``g = f``): ``diag_l = <f_l, T f_l>``.

    With a pair ``(P_A, P_B)`` the quadratic term ``sum M_ij P_ij^2`` is estimated without
    bias as ``sum M_ij P^A_ij P^B_ij``.
    """
    _check_nesting(nesting, "nestedlora_loss_evd")
    L = diag.shape[-1]
    a, M = nested_weights(L, nesting, weights, like=diag)
    if isinstance(P, tuple):
        quad = P[0] * P[1]
    else:
        quad = P * P
    return -2.0 * (a * diag).sum() + (M * quad).sum()


def prefix_losses(cross: Tensor, P: Tensor, Q: Tensor) -> Tensor:
    """The un-nested losses ``L_1, ..., L_L`` of every prefix (no weights), shape (L,)."""
    L = cross.shape[-1]
    out = []
    for k in range(1, L + 1):
        out.append(-2.0 * cross[:k].sum() + (P[:k, :k] * Q[:k, :k]).sum())
    return torch.stack(out)
