"""Warm-started subspace iteration for time-ordered frames (``warm-subspace``).

Consecutive frames of a simulation change slowly, so the right singular subspace of frame t is
an excellent start for frame t + 1: one subspace iteration (two products with the frame) per
frame then lands within a hair of the optimum. This is the classical method a learned
factorizer of a time series has to beat.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuralfactor.classical._kernels import (
    gram_orthonormalize,
    power_of_two_scale,
    refill_zero_columns,
    rescale,
    subspace_step,
)
from neuralfactor.core.factorizer import BaseFactorizer, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    as_generator,
    check_matrix,
    check_positive_int,
    check_rank,
)

__all__ = ["WarmSubspace", "warm_subspace_from"]


def warm_subspace_from(
    X: Tensor, basis: Tensor, rank: int, *, n_iter: int = 1
) -> tuple[LowRank, Tensor]:
    """Batched form: factorize every matrix of ``X`` (*, m, n) starting from ``basis``.

    ``basis`` (*, n, l) or (n, l) (broadcast), l >= rank, spans a guess of the right singular
    subspace (e.g. the previous frames' bases, or a global POD basis). Returns the
    factorization and the refined bases (*, n, l). Cost per matrix: ``2 n_iter`` products with
    X plus O((m + n) l^2).
    """
    X = check_matrix(X, caller="warm_subspace_from")
    rank = check_rank(rank, X.shape, caller="warm_subspace_from")
    check_positive_int(n_iter, name="n_iter", caller="warm_subspace_from")
    if basis.ndim < 2 or basis.shape[-2] != X.shape[-1] or basis.shape[-1] < rank:
        raise ValueError(
            f"The 'basis' parameter of warm_subspace_from must have shape (*, n={X.shape[-1]}, l) "
            f"with l >= rank={rank}. Got {tuple(basis.shape)}."
        )
    return subspace_step(X, basis.to(X.dtype), rank, n_iter=n_iter)


class WarmSubspace(BaseFactorizer):
    """Streaming subspace iteration that carries its basis across calls.

    Input ``(m, n)`` is one frame; ``(T, m, n)`` is T consecutive frames, processed in time
    order; ``(*E, T, m, n)`` is an ensemble of independent streams advanced together (time is
    always dim -3). The right basis (l = rank + extra columns) of the last frame is kept, so
    calling ``factorize`` frame by frame gives the same result as one call on the stack.
    The first frame of a stream is started cold from a Gaussian sketch with ``cold_iter``
    iterations. Call :meth:`reset` to start a new stream.

    Parameters
    ----------
    rank : int
    extra : int, default 5 -- basis columns beyond ``rank`` (a gap makes iteration converge).
    n_iter : int, default 1 -- subspace iterations per frame (2 products with the frame each).
    cold_iter : int, default 4 -- iterations on the first frame.
    seed : int -- for the cold-start sketch.

    Notes
    -----
    A frame of lower rank than the basis (an initial condition, say) leaves directions the
    iteration cannot reach; they are refilled with random directions so the stream regains
    rank, converging over the next few frames (one iteration each).

    The time loop is sequential by nature (frame t needs frame t - 1's basis); each step is
    batched over the ensemble. When frames are not time-ordered or change abruptly, use
    ``rsvd-gemm`` instead: the warm start is then no better than a random one.
    """

    name = "warm-subspace"

    def __init__(
        self, rank: int, *, extra: int = 5, n_iter: int = 1, cold_iter: int = 4, seed: int = 0
    ) -> None:
        super().__init__(rank)
        self.extra = check_positive_int(extra, name="extra", caller=self.name, minimum=0)
        self.n_iter = check_positive_int(n_iter, name="n_iter", caller=self.name)
        self.cold_iter = check_positive_int(cold_iter, name="cold_iter", caller=self.name)
        self.seed = seed
        self.reset()

    def reset(self) -> WarmSubspace:
        """Forget the carried basis; the next frame is started cold."""
        self.basis: Tensor | None = None
        self._gen: torch.Generator | None = None
        return self

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None:  # one stream, one generator: looped calls == one batched call
            self._gen = as_generator(self.seed, device)
        return self._gen

    def _cold_basis(self, X: Tensor, width: int) -> Tensor:
        gen = self._generator(X.device)
        omega = torch.randn(X.shape[-2], width, generator=gen, device=X.device, dtype=X.dtype)
        return refill_zero_columns(gram_orthonormalize(X.mT @ omega), gen)

    def _factorize(self, X: Tensor) -> LowRank:
        m, n = X.shape[-2:]
        width = min(self.rank + self.extra, m, n)
        frames = X if X.ndim >= 3 else X.unsqueeze(0)  # (*E, T, m, n)
        ens = tuple(frames.shape[:-3])
        basis = self.basis
        if basis is not None and (
            tuple(basis.shape) != (*ens, n, width) or basis.device != X.device
        ):
            raise ValueError(
                f"warm-subspace carries a basis of shape {tuple(basis.shape)} from earlier frames, "
                f"but these frames need {(*ens, n, width)} on {X.device}; call reset() to start a "
                f"new stream."
            )
        Us, Vs = [], []
        for t in range(frames.shape[-3]):
            Xt, inv = power_of_two_scale(frames[..., t, :, :])  # no Gram overflow/underflow
            gen = self._generator(X.device)
            if basis is None:
                start, iters = self._cold_basis(Xt, width), self.cold_iter
            else:
                start, iters = basis.to(X.dtype), self.n_iter
            lr, basis = subspace_step(Xt, start, self.rank, n_iter=iters, generator=gen)
            lr = rescale(lr, inv)
            Us.append(lr.U)
            Vs.append(lr.V)
        self.basis = basis
        U, V = torch.stack(Us, dim=-3), torch.stack(Vs, dim=-3)
        if X.ndim == 2:
            U, V = U[0], V[0]
        return LowRank(U, V)


register_factorizer("warm-subspace", WarmSubspace)
