"""The value every factorizer returns: a batched low-rank factorization X ~ U @ V."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LowRank", "svd_flip"]


@dataclass(frozen=True)
class LowRank:
    """A batched rank-``r`` factorization of matrices of shape ``(*, m, n)``.

    Parameters
    ----------
    U : Tensor of shape (*, m, r)
    V : Tensor of shape (*, r, n)
    S : Tensor of shape (*, r), optional
        Singular values. When given, ``U`` has orthonormal columns, ``V`` orthonormal rows and
        the approximation is ``U @ diag(S) @ V`` (a truncated SVD, ``V`` playing ``Vh``). When
        ``None`` the approximation is ``U @ V``.

    Notes
    -----
    ``factors()`` always returns a pair ``(A, B)`` with ``X ~ A @ B`` whichever form is
    stored, so code that does not care about singular values never branches on ``S``.
    Leading (batch) dimensions of ``U``, ``V`` and ``S`` must be equal; dtype and device too.
    """

    U: Tensor
    V: Tensor
    S: Tensor | None = None

    def __post_init__(self) -> None:
        U, V, S = self.U, self.V, self.S
        if not isinstance(U, Tensor) or not isinstance(V, Tensor):
            raise TypeError(
                f"LowRank needs tensors U and V. Got {type(U).__name__} and {type(V).__name__}."
            )
        if U.ndim < 2 or V.ndim < 2:
            raise ValueError(
                f"LowRank needs U of shape (*, m, r) and V of shape (*, r, n). Got U "
                f"{tuple(U.shape)} and V {tuple(V.shape)}."
            )
        if U.shape[-1] != V.shape[-2]:
            raise ValueError(
                f"LowRank: U has {U.shape[-1]} columns but V has {V.shape[-2]} rows; both must "
                f"equal the rank. Got U {tuple(U.shape)}, V {tuple(V.shape)}."
            )
        if U.shape[:-2] != V.shape[:-2]:
            raise ValueError(
                f"LowRank: U and V must have the same batch shape. Got {tuple(U.shape[:-2])} "
                f"and {tuple(V.shape[:-2])}."
            )
        if U.dtype != V.dtype or U.device != V.device:
            raise ValueError(
                f"LowRank: U and V must share dtype and device. Got {U.dtype}/{U.device} and "
                f"{V.dtype}/{V.device}."
            )
        if S is not None:
            if not isinstance(S, Tensor) or tuple(S.shape) != (*U.shape[:-2], U.shape[-1]):
                got = tuple(S.shape) if isinstance(S, Tensor) else type(S).__name__
                raise ValueError(
                    f"LowRank: S must have shape {(*U.shape[:-2], U.shape[-1])}. Got {got}."
                )
            if S.dtype != U.dtype or S.device != U.device:
                raise ValueError("LowRank: S must share dtype and device with U and V.")

    # ------------------------------------------------------------------ shape information
    @property
    def rank(self) -> int:
        """The number of columns of ``U`` (the nominal rank; see ``metrics.effective_rank``)."""
        return int(self.U.shape[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape ``(*, m, n)`` of the approximated matrices."""
        return (*self.U.shape[:-1], self.V.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.U.shape[:-2])

    @property
    def dtype(self) -> torch.dtype:
        return self.U.dtype

    @property
    def device(self) -> torch.device:
        return self.U.device

    # ------------------------------------------------------------------ algebra
    def factors(self) -> tuple[Tensor, Tensor]:
        """``(A, B)`` with ``X ~ A @ B``; ``S`` (if any) is folded into ``A``."""
        if self.S is None:
            return self.U, self.V
        return self.U * self.S.unsqueeze(-2), self.V

    def reconstruct(self) -> Tensor:
        """The dense approximation of shape ``(*, m, n)``. Costs O(m n r) per matrix."""
        A, B = self.factors()
        return A @ B

    def truncate(self, rank: int) -> LowRank:
        """The leading ``rank`` components (the best rank-``rank`` part when ``S`` is sorted)."""
        if not 1 <= rank <= self.rank:
            raise ValueError(
                f"The 'rank' parameter of LowRank.truncate must be in [1, {self.rank}]. Got {rank}."
            )
        S = None if self.S is None else self.S[..., :rank]
        return LowRank(self.U[..., :rank], self.V[..., :rank, :], S)

    def to(self, *args, **kwargs) -> LowRank:
        """Move/cast like :meth:`torch.Tensor.to`."""
        S = None if self.S is None else self.S.to(*args, **kwargs)
        return LowRank(self.U.to(*args, **kwargs), self.V.to(*args, **kwargs), S)

    def __getitem__(self, index) -> LowRank:
        """Index the batch dimensions: ``lr[3]`` is the factorization of the 4th matrix."""
        if not self.batch_shape:
            raise IndexError("LowRank of a single matrix has no batch dimension to index.")
        idx = index if isinstance(index, tuple) else (index,)
        S = None if self.S is None else self.S[(*idx, Ellipsis, slice(None))]
        return LowRank(
            self.U[(*idx, Ellipsis, slice(None), slice(None))],
            self.V[(*idx, Ellipsis, slice(None), slice(None))],
            S,
        )

    def __repr__(self) -> str:
        s = "" if self.S is None else ", with S"
        return (
            f"LowRank(shape={self.shape}, rank={self.rank}, dtype="
            f"{str(self.dtype).removeprefix('torch.')}, device={self.device}{s})"
        )


def svd_flip(lr: LowRank) -> LowRank:
    """The sign convention of every factorizer: each column of ``U`` has its largest entry > 0.

    Column ``i`` of ``U`` and row ``i`` of ``V`` are multiplied by the same sign, so
    ``U @ diag(S) @ V`` (or ``U @ V`` without ``S``) is unchanged exactly and singular factors
    become unique for distinct singular values: results, stored factors and checksums agree
    across seeds and methods. This is scikit-learn's ``svd_flip`` with ``u_based_decision``
    (Pedregosa et al. 2011, "Scikit-learn: Machine learning in Python"), batched.

    Ties are resolved deterministically: among the entries within a relative ``sqrt(eps)`` of a
    column's largest magnitude (equal up to round-off), the first (lowest row index) decides.
    A zero column keeps its sign.

    Parameters
    ----------
    lr : LowRank of shape (*, m, n) and rank r

    Returns
    -------
    LowRank with the same ``S`` and flipped ``U``, ``V``. Cost O((m + n) r) per matrix.
    """
    U, V = lr.U, lr.V
    if U.numel() == 0:
        return lr
    absU = U.detach().abs()
    amax = absU.amax(dim=-2, keepdim=True)  # (*, 1, r)
    rtol = torch.finfo(U.dtype).eps ** 0.5
    near = absU >= amax * (1 - rtol)  # entries tied with the largest up to round-off
    idx = near.to(torch.uint8).argmax(dim=-2, keepdim=True)  # the first of them
    pick = U.detach().gather(-2, idx)
    sign = torch.where(pick < 0, -1.0, 1.0).to(U.dtype)  # (*, 1, r); zero columns keep +1
    return LowRank(U * sign, V * sign.mT, lr.S)
