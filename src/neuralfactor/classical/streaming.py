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
    Kernel,
    gemm_step,
    gram_orthonormalize,
    lapack_step,
    refill_zero_columns,
    rescale,
    resolve_kernel,
    scale_if_needed,
    subspace_step,
)
from neuralfactor.core.factorizer import BaseFactorizer, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    as_generator,
    check_matrix,
    check_option,
    check_positive_float,
    check_positive_int,
    check_rank,
)

__all__ = ["WarmSubspace", "warm_subspace_from"]


def warm_subspace_from(
    X: Tensor, basis: Tensor, rank: int, *, n_iter: int = 1, kernel: Kernel = "auto"
) -> tuple[LowRank, Tensor]:
    """Batched form: factorize every matrix of ``X`` (*, m, n) starting from ``basis``.

    ``basis`` (*, n, l) or (n, l) (broadcast), l >= rank, spans a guess of the right singular
    subspace (e.g. the previous frames' bases, or a global POD basis). Returns the
    factorization and the refined bases (*, n, l). Cost per matrix: ``2 n_iter`` products with
    X plus O((m + n) l^2). ``kernel`` as in :class:`WarmSubspace`.
    """
    X = check_matrix(X, caller="warm_subspace_from")
    rank = check_rank(rank, X.shape, caller="warm_subspace_from")
    check_positive_int(n_iter, name="n_iter", caller="warm_subspace_from")
    kern = resolve_kernel(kernel, X.device, caller="warm_subspace_from")
    if basis.ndim < 2 or basis.shape[-2] != X.shape[-1] or basis.shape[-1] < rank:
        raise ValueError(
            f"The 'basis' parameter of warm_subspace_from must have shape (*, n={X.shape[-1]}, l) "
            f"with l >= rank={rank}. Got {tuple(basis.shape)}."
        )
    X, inv = scale_if_needed(X)
    lr, P = subspace_step(X, basis.to(X.dtype), rank, n_iter=n_iter, kernel=kern)
    return rescale(lr, inv), P


def _pick(mask: Tensor, new: Tensor | None, old: Tensor | None) -> Tensor | None:
    if new is None or old is None:
        return new
    return torch.where(mask.reshape(tuple(mask.shape) + (1,) * (new.ndim - mask.ndim)), new, old)


class WarmSubspace(BaseFactorizer):
    """Streaming subspace iteration that carries its basis across calls.

    Input ``(m, n)`` is one frame; ``(T, m, n)`` is T consecutive frames, processed in time
    order; ``(*E, T, m, n)`` is an ensemble of independent streams advanced together (time is
    always dim -3). :meth:`step` takes one frame per stream, ``(*E, m, n)``, and advances every
    stream by one time step in one batched call. The right basis (l = rank + extra columns) of
    the last frame is kept, so calling ``factorize`` frame by frame gives the same result as
    one call on the stack. The first frame of a stream is started cold from a Gaussian sketch
    with ``cold_iter`` iterations. Call :meth:`reset` to start a new stream.

    Parameters
    ----------
    rank : int
    extra : int, default 5 -- basis columns beyond ``rank`` (a gap makes iteration converge).
    n_iter : int, default 1 -- subspace iterations per frame (2 products with the frame each).
    cold_iter : int, default 4 -- iterations on the first frame.
    tol : float or None, default 1e-2 -- adaptive accuracy: after the fixed iterations, a frame
        gets another iteration (up to ``max_iter`` in all) while its estimated excess over the
        optimal error exceeds ``tol`` times that optimum (i.e. estimated ratio to the optimum
        > 1 + tol). ``None``: always exactly ``n_iter`` iterations, no check.
    max_iter : int, default 4 -- cap on iterations per warm frame with ``tol`` (>= n_iter); a
        cold frame gets up to ``cold_iter + max_iter``.
    kernel : {"auto", "lapack", "gemm"}, default "auto" -- ``"lapack"``: Householder QR of
        ``X P`` and a small SVD of ``X^T Q`` in the working precision (whose right factor is
        the next basis); ``"gemm"``: batched GEMMs and float64 Gram/eigh passes only (for
        GPUs); ``"auto"``: ``"lapack"`` on the CPU, ``"gemm"`` elsewhere.
    seed : int -- for the cold-start sketch (and refilled directions, ``"gemm"``).

    Attributes
    ----------
    iterations : Tensor of shape ``X.shape[:-2]`` ((*E, T) for a stack; (*E,) after
        :meth:`step`), int64 -- iterations used per frame in the last call.

    Notes
    -----
    The a-posteriori check uses only products already formed. With ``P_r`` the incoming
    basis's leading r columns, ``E_in = ||X P_r||_F^2`` (from ``X P``) and the new rank-r Ritz
    energy ``E = sum_{i<r} s_i^2`` (from the small factorization of ``X^T Q``) are both lower
    bounds of the optimal captured energy and ``E >= E_in``. Subspace iteration shrinks the
    angles to the optimal subspace by ``(s_l / s_r)^2`` per iteration and the energy deficit
    by its square, ``q = (s_l / s_r)^4`` (``s_l``, ``s_r``: the Ritz values at the basis edge
    and at the rank), so the deficit left is estimated as ``(E - E_in) q / (1 - q)`` (after an
    extra iteration, ``E_in`` is the previous iteration's ``E``; ``q`` is floored at 0.1,
    because after an abrupt change, when the carried basis missed a direction, the
    contraction model does not hold and a small ``q`` would hide the deficit) and compared with
    ``tol (||X||_F^2 - E)``. It is an estimate, not a bound (the tests check it on planted,
    slowly rotating subspaces, where one iteration per frame drifts past 1.01 at rank 30).
    Deficits below ``10 eps ||X||_F^2`` (round-off of the dtype) never trigger an iteration.
    Each check costs a norm of the frame and one device synchronization. (The GEMM kernel
    takes ``E_in`` as the top-r energy of ``X P`` from its first Gram pass.)

    A frame of lower rank than the basis (an initial condition, say) leaves directions the
    iteration cannot reach. The LAPACK kernel keeps an orthonormal completion of them (the
    SVD's), the GEMM kernel refills its zero columns with random directions; either way the
    stream regains rank over the next few frames.

    The time loop is sequential by nature (frame t needs frame t - 1's basis); each step is
    batched over the ensemble, and an extra iteration only changes the streams that need it
    (batched == looped). When frames are not time-ordered or change abruptly, use ``rsvd``
    instead: the warm start is then no better than a random one.
    """

    name = "warm-subspace"

    def __init__(
        self,
        rank: int,
        *,
        extra: int = 5,
        n_iter: int = 1,
        cold_iter: int = 4,
        tol: float | None = 1e-2,
        max_iter: int = 4,
        kernel: Kernel = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__(rank)
        self.extra = check_positive_int(extra, name="extra", caller=self.name, minimum=0)
        self.n_iter = check_positive_int(n_iter, name="n_iter", caller=self.name)
        self.cold_iter = check_positive_int(cold_iter, name="cold_iter", caller=self.name)
        if tol is not None:
            check_positive_float(tol, name="tol", caller=self.name)
            check_positive_int(max_iter, name="max_iter", caller=self.name, minimum=n_iter)
        self.tol, self.max_iter = tol, max_iter
        self.kernel = check_option(
            kernel, ("auto", "lapack", "gemm"), name="kernel", caller=self.name
        )
        self.seed = seed
        self.reset()

    def reset(self) -> WarmSubspace:
        """Forget the carried basis; the next frame is started cold."""
        self.basis: Tensor | None = None
        self._gen: torch.Generator | None = None
        self.iterations: Tensor | None = None
        return self

    def stream_state(self) -> dict[str, Tensor]:
        """What the stream carries to the next frame: ``basis`` (absent before the first
        frame) and ``generator`` (the state of the sketch generator, once drawn from), so a
        stream can be stopped and continued bit-identically (:meth:`load_stream_state`)."""
        out = {}
        if self.basis is not None:
            out["basis"] = self.basis
        if self._gen is not None:
            out["generator"] = self._gen.get_state()
        return out

    def load_stream_state(
        self, state: dict[str, Tensor], *, device: str | torch.device | None = None
    ) -> WarmSubspace:
        """Continue the stream of a :meth:`stream_state` snapshot (tensors moved to
        ``device``, default the basis's)."""
        unknown = sorted(set(state) - {"basis", "generator"})
        if unknown:
            raise ValueError(f"Unknown {self.name} stream-state entries {unknown}.")
        self.reset()
        basis = state.get("basis")
        if basis is not None:
            basis = basis.to(device) if device is not None else basis
            self.basis = basis
        if "generator" in state:
            dev = torch.device(device) if device is not None else torch.device("cpu")
            if basis is not None and device is None:
                dev = basis.device
            self._generator(dev).set_state(state["generator"].to("cpu", torch.uint8))
        return self

    def step(self, X: Tensor) -> LowRank:
        """Advance every stream by one frame: ``X`` (*E, m, n) holds one frame per stream.

        Same as ``factorize(X.unsqueeze(-3))`` without the time axis: one batched call per
        time step for an ensemble of E streams (a 2-D ``X`` is one frame of one stream).
        """
        X = check_matrix(X, caller=self.name)
        lr = self.factorize(X.unsqueeze(-3))
        self.iterations = self.iterations[..., 0]
        return LowRank(
            lr.U.squeeze(-3), lr.V.squeeze(-3), None if lr.S is None else lr.S.squeeze(-2)
        )

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None:  # one stream, one generator: looped calls == one batched call
            self._gen = as_generator(self.seed, device)
        return self._gen

    def _cold_basis(self, X: Tensor, width: int, kernel: str) -> Tensor:
        gen = self._generator(X.device)
        omega = torch.randn(X.shape[-2], width, generator=gen, device=X.device, dtype=X.dtype)
        if kernel == "lapack":
            return torch.linalg.qr(X.mT @ omega).Q
        return refill_zero_columns(gram_orthonormalize(X.mT @ omega), gen)

    def _iterate(self, X: Tensor, P: Tensor, kernel: str):
        if kernel == "lapack":
            return lapack_step(X, P, self.rank, energies=self.tol is not None)
        return gemm_step(X, P, self.rank, self._generator(X.device))

    def _frame(self, X: Tensor, basis: Tensor | None, width: int, kernel: str):
        """Factorize one frame per stream (*E, m, n); returns (LowRank, basis, iterations)."""
        if basis is None:
            P, iters = self._cold_basis(X, width, kernel), self.cold_iter
        else:
            P, iters = basis.to(X.dtype), self.n_iter
        for _ in range(iters):
            lr, P, e_in, ritz = self._iterate(X, P, kernel)
        count = torch.full(X.shape[:-2], iters, dtype=torch.int64, device=X.device)
        if self.tol is None:
            return lr, P, count
        r, eps = self.rank, torch.finfo(X.dtype).eps
        xx = torch.linalg.vector_norm(X, dim=(-2, -1)).double().square()
        cap = self.max_iter if basis is not None else self.cold_iter + self.max_iter
        one = X.ndim == 2  # one stream: decide on Python floats (see _needs_iteration)
        for _ in range(iters, cap):
            e = ritz[..., :r].sum(-1)
            if one:
                v = torch.stack([e, e_in, ritz[-1], ritz[r - 1], xx])
                if not self._needs_iteration(v, eps):
                    break
                lr, P, _, ritz = self._iterate(X, P, kernel)
                e_in = e  # later iterations: the gain over the previous Ritz energy
                count = count + 1
                continue
            q = ritz[..., -1] / ritz[..., r - 1].clamp_min(torch.finfo(torch.float64).tiny)
            q = q.square().clamp(0.1, 0.95)  # floor: see Notes (abrupt changes)
            deficit = (e - e_in).clamp_min(0) * q / (1 - q)
            need = (deficit > self.tol * (xx - e).clamp_min(0)) & (deficit > 10 * eps * xx)
            if not bool(need.any()):
                break
            lr2, P2, _, ritz2 = self._iterate(X, P, kernel)
            e_in2 = e  # later iterations: the gain over the previous Ritz energy
            lr = LowRank(
                _pick(need, lr2.U, lr.U), _pick(need, lr2.V, lr.V), _pick(need, lr2.S, lr.S)
            )
            P, e_in, ritz = _pick(need, P2, P), _pick(need, e_in2, e_in), _pick(need, ritz2, ritz)
            count = count + need.long()
        return lr, P, count

    def _needs_iteration(self, v: Tensor, eps: float) -> bool:
        """The batched check of :meth:`_frame` for one stream, on Python floats.

        ``v`` holds ``(e, e_in, ritz_l, ritz_r, xx)`` in float64; one transfer replaces about
        fifteen operations on 0-d tensors, whose dispatch dominated a small frame's check.
        The arithmetic is the batched path's, operation for operation (IEEE float64, same
        order), so the decisions, and so the results, are the same.
        """
        e, e_in, ritz_l, ritz_r, xx = v.tolist()
        q = ritz_l / max(ritz_r, torch.finfo(torch.float64).tiny)
        q = min(max(q * q, 0.1), 0.95)
        deficit = max(e - e_in, 0.0) * q / (1 - q)
        return deficit > self.tol * max(xx - e, 0.0) and deficit > 10 * eps * xx

    def _factorize(self, X: Tensor) -> LowRank:
        m, n = X.shape[-2:]
        width = min(self.rank + self.extra, m, n)
        kernel = resolve_kernel(self.kernel, X.device, caller=self.name)
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
        Us, Vs, Ss, counts = [], [], [], []
        for t in range(frames.shape[-3]):
            Xt, inv = scale_if_needed(frames[..., t, :, :])  # only subnormal/huge frames
            lr, basis, count = self._frame(Xt, basis, width, kernel)
            lr = rescale(lr, inv)
            Us.append(lr.U)
            Vs.append(lr.V)
            Ss.append(lr.S)
            counts.append(count)
        self.basis = basis
        U, V = torch.stack(Us, dim=-3), torch.stack(Vs, dim=-3)
        S = None if Ss[0] is None else torch.stack(Ss, dim=-2)
        self.iterations = torch.stack(counts, dim=-1)
        if X.ndim == 2:
            U, V, S = U[0], V[0], None if S is None else S[0]
            self.iterations = self.iterations[0]
        return LowRank(U, V, S)


register_factorizer("warm-subspace", WarmSubspace)
