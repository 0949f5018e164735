"""Truncation of phase-space frames by any factorizer, at a tolerance or a fixed rank.

A step-and-truncate solver re-compresses its state after every stage. :class:`Truncation` does
it with any object that has ``factorize(X) -> LowRank`` (the core ``Factorizer`` protocol):
the exact SVD (the default, no factorizer needed), a randomized SVD, a warm-started subspace
iteration that carries the previous stage's basis, or a trained network. Resolving a *name*
or a trained model directory to a factorizer is the caller's job
(:func:`neuralfactor.vlasov.run.make_truncation` does it through the core registry): this
module knows no factorizer by name and imports no network code.

Tolerance-driven rank selection (relative Frobenius ``||f - f_r||_F <= tol ||f||_F``) works
for factorizers of a fixed rank, too: the frame is factorized at a *working rank* R above the
need, the small factors are re-orthogonalized (QR of both factors and an R x R SVD, exact),
and the rank r <= R is the smallest with ``e + tail_r <= tol ||f||``, where
``e = ||f - A B||_F`` is the factorizer's own error (measured exactly, O(mnR)) and ``tail_r``
the exact tail of the small core's singular values beyond r. By the triangle inequality the
bound holds for any factorizer, not only for orthogonal projections. When ``e`` exceeds half
the budget the working rank grows (x2, up to min(m, n)) and the frame is factorized again;
when the selected rank falls well below R, R shrinks (hysteresis: R is kept while r < R/2 is
not reached), so a warm-started factorizer keeps its basis across most stages.

References: W. Guo and J.-M. Qiu, "A low rank tensor representation of linear transport and
nonlinear Vlasov solutions and their associated flow maps", J. Comput. Phys. 458 (2022)
111089 (step-and-truncate with SVD truncation); N. Halko, P.-G. Martinsson and J. A. Tropp,
"Finding structure with randomness", SIAM Rev. 53 (2011) 217 (a factorization of a larger
rank followed by an exact truncation of its small core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank

__all__ = ["ExactSVD", "Truncation", "TruncationError", "orthonormal_core"]


class TruncationError(RuntimeError):
    """A fixed-rank factorizer cannot reach the requested tolerance on a frame."""


class ExactSVD:
    """The exact truncated SVD (``torch.linalg.svd``): the reference truncation.

    Rank-selection is exact with it: its error beyond the working rank is the true tail.
    Cost O(mn min(m, n)) per frame whatever the rank.
    """

    name = "svd"

    def __init__(self, rank: int) -> None:
        self.rank = int(rank)

    def fit(self, frames: Any = None) -> ExactSVD:
        return self

    def factorize(self, X: Tensor) -> LowRank:
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        r = self.rank
        return LowRank(U[..., :r], Vh[..., :r, :], S[..., :r])


def orthonormal_core(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The SVD ``A B = U diag(S) Vᵀ`` of a product of thin factors, without forming it.

    ``A`` (*, m, R), ``B`` (*, R, n). QR of ``A`` and of ``Bᵀ`` and an SVD of the R x R core:
    cost O((m + n) R^2 + R^3). Returns ``U`` (*, m, R), ``S`` (*, R) descending, ``V``
    (*, n, R), all orthonormal columns.
    """
    Qa, Ra = torch.linalg.qr(A)
    Qb, Rb = torch.linalg.qr(B.mT)
    Uc, S, Vch = torch.linalg.svd(Ra @ Rb.mT)
    return Qa @ Uc, S, Qb @ Vch.mT


def _tail_norms(S: Tensor) -> Tensor:
    """``tail[..., i] = sqrt(sum_{j >= i} s_j^2)``, with one extra 0 column at the end."""
    s2 = S.square()
    tail = s2.flip(-1).cumsum(-1).flip(-1)
    return torch.cat([tail, torch.zeros_like(tail[..., :1])], dim=-1).sqrt()


def select_rank(S: Tensor, budget: Tensor) -> Tensor:
    """Smallest r per batch member with ``tail_r <= budget`` (``S`` (*, R) descending)."""
    tail = _tail_norms(S)  # (*, R + 1)
    return (tail > budget[..., None]).sum(-1).clamp_min(1)


class Truncation:
    """Re-compression of frames ``f`` (B, m, n) after a solver stage.

    Parameters
    ----------
    factorizer : None, a factorizer, or a factory ``rank -> factorizer``
        ``None`` is :class:`ExactSVD`. A factorizer instance (anything with ``rank`` and
        ``factorize``) is used at its own rank: with ``tol`` it can only select ranks up to
        it, and a frame it cannot compress to ``tol`` raises :class:`TruncationError`. A
        factory (e.g. ``lambda r: make_factorizer("rsvd", rank=r)``) lets the working rank
        grow and shrink with the need.
    tol : float in (0, 1), optional
        Relative Frobenius tolerance; the rank is chosen per stage and per ensemble member.
    rank : int >= 1, optional
        Fixed rank instead of ``tol`` (exactly one of the two).
    working_rank : int, default 16
        First working rank of a factory in ``tol`` mode.
    name : str, optional
        Label for records (default the factorizer's ``name``).

    Notes
    -----
    A factorizer with a ``reset`` method (a streaming one, ``warm-subspace``) receives each
    ensemble member as its own stream of one frame (input (B, 1, m, n)), so it carries every
    member's basis from stage to stage. That basis and the working rank are the truncation's
    state (:attr:`stateful`): :meth:`carried_state` snapshots them (the solver stores it with
    every saved frame) and :meth:`load_carried_state` restores them, so a resumed run is
    bit-identical. A streaming factorizer must offer ``stream_state()`` and
    ``load_stream_state(state, device)`` for that; one without them restarts cold on resume
    and agrees with an uninterrupted run to the tolerance only. The exact SVD, seeded
    randomized SVDs and trained models at a fixed rank are stateless. The working rank is
    shared by the ensemble (the batch is factorized in one call), so with a factory an
    ensemble run agrees with single runs to the tolerance (measured 3e-10 at tol 1e-4 with
    warm-subspace), with the exact SVD to round-off.
    """

    def __init__(
        self,
        factorizer: Any = None,
        *,
        tol: float | None = None,
        rank: int | None = None,
        working_rank: int = 16,
        name: str | None = None,
    ) -> None:
        if (tol is None) == (rank is None):
            raise ValueError(
                f"Truncation needs exactly one of 'tol' (relative Frobenius tolerance in (0, 1)) "
                f"or 'rank' (an int >= 1). Got tol={tol!r}, rank={rank!r}."
            )
        if tol is not None:
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
                raise ValueError(
                    f"The 'tol' parameter of Truncation must be a float in (0, 1). Got {tol!r}; "
                    f"the original ConvMF data used 1e-5."
                )
            tol = float(tol)
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(
                f"The 'rank' parameter of Truncation must be an int >= 1. Got {rank!r}."
            )
        if isinstance(working_rank, bool) or not isinstance(working_rank, int) or working_rank < 1:
            raise ValueError(
                f"The 'working_rank' parameter of Truncation must be an int >= 1. "
                f"Got {working_rank!r}."
            )
        self.tol, self.rank = tol, rank
        self._factory: Callable[[int], Any] | None = None
        self._fixed: Any = None
        if factorizer is None:
            self._factory = ExactSVD
            self._exact = True
        elif hasattr(factorizer, "factorize"):
            self._fixed = factorizer
            self._exact = False
            fr = int(factorizer.rank)
            if rank is not None and rank != fr:
                raise ValueError(
                    f"Truncation: rank={rank} but the factorizer {getattr(factorizer, 'name', '')!r}"
                    f" has rank {fr}; pass rank={fr} or a factory that builds any rank."
                )
        elif callable(factorizer):
            self._factory = factorizer
            self._exact = False
        else:
            raise TypeError(
                f"The 'factorizer' parameter of Truncation must be None, an object with "
                f"factorize(X) -> LowRank, or a callable rank -> factorizer. Got "
                f"{type(factorizer).__name__}."
            )
        self.working_rank = working_rank
        self._R: int | None = None
        self._current: Any = self._fixed
        probe = self._fixed if self._fixed is not None else None
        self.name = name or getattr(probe, "name", None) or ("svd" if self._exact else "custom")
        #: number of factorizations made (grows when the working rank had to be raised)
        self.calls = 0

    # ------------------------------------------------------------------ helpers
    @property
    def growable(self) -> bool:
        return self._factory is not None

    def check_shape(self, m: int, n: int) -> None:
        """Refuse ranks that do not fit an m x n frame (called by the solvers)."""
        k = min(m, n)
        if self.rank is not None and self.rank > k:
            raise ValueError(
                f"The truncation rank must be at most min(m, n)={k} for {m}x{n} frames. "
                f"Got {self.rank}."
            )
        if self._fixed is not None and int(self._fixed.rank) > k:
            raise ValueError(
                f"The truncation factorizer {self.name!r} has rank {self._fixed.rank}, above "
                f"min(m, n)={k} for {m}x{n} frames."
            )

    @property
    def stateful(self) -> bool:
        """Whether one truncation changes the next: a factory's working rank, a streaming
        factorizer's basis (the exact SVD and fixed non-streaming factorizers do not)."""
        if self._exact:
            return False
        return self.growable or hasattr(self._fixed, "reset")

    def carried_state(self) -> dict[str, Tensor]:
        """A snapshot of the state (working rank, the current factorizer's rank and stream
        state) as named tensors; :meth:`load_carried_state` restores it."""
        out: dict[str, Tensor] = {}
        if self._R is not None:
            out["working_rank"] = torch.tensor(self._R, dtype=torch.int64)
        fac = self._current
        if fac is not None and self.stateful:
            out["factorizer_rank"] = torch.tensor(int(fac.rank), dtype=torch.int64)
            if hasattr(fac, "stream_state"):
                for k, t in fac.stream_state().items():
                    out[f"stream.{k}"] = t.detach().clone()
        return out

    def load_carried_state(
        self, state: dict[str, Tensor], *, device: str | torch.device = "cpu"
    ) -> None:
        """Restore a :meth:`carried_state` snapshot (stream tensors moved to ``device``)."""
        self.reset()
        if "working_rank" in state:
            self._R = int(state["working_rank"])
        if "factorizer_rank" not in state:
            return
        fac = self._factorizer_at(int(state["factorizer_rank"]))
        stream = {k[len("stream.") :]: t for k, t in state.items() if k.startswith("stream.")}
        if hasattr(fac, "load_stream_state"):
            fac.load_stream_state(stream, device=device)

    def reset(self) -> None:
        """Forget carried state (working rank, a streaming factorizer's basis)."""
        self._R = None
        if self._factory is not None:
            self._current = None
        elif hasattr(self._fixed, "reset"):
            self._fixed.reset()

    def _factorizer_at(self, R: int) -> Any:
        if self._fixed is not None:
            return self._fixed
        if self._current is None or int(self._current.rank) != R:
            self._current = self._factory(R)
        return self._current

    def _factorize(self, f: Tensor, R: int) -> tuple[Tensor, Tensor, Tensor]:
        fac = self._factorizer_at(R)
        stream = hasattr(fac, "reset")
        lr = fac.factorize(f.unsqueeze(-3) if stream else f)
        self.calls += 1
        if lr.S is not None:  # singular factors already: no re-orthogonalization needed
            U, S, V = lr.U, lr.S, lr.V.mT
        else:
            U, S, V = orthonormal_core(*lr.factors())
        if stream:
            U, S, V = U.squeeze(-3), S.squeeze(-2), V.squeeze(-3)
        return U.to(f.dtype), S.to(f.dtype), V.to(f.dtype)

    # ------------------------------------------------------------------ the truncation
    def __call__(self, f: Tensor) -> tuple[Tensor, Tensor]:
        """Truncate ``f`` (B, m, n); returns ``(f_r, ranks)`` with ranks (B,) int64."""
        if self._exact and self.tol is not None:
            # one full SVD; the kept part by a mask (the fd5 scheme's historical formula)
            U, S, Vh = torch.linalg.svd(f, full_matrices=False)
            s2 = S.square()
            tail = s2.flip(-1).cumsum(-1).flip(-1)  # tail[i] = sum_{j >= i} s_j^2
            keep = tail > self.tol**2 * s2.sum(-1, keepdim=True)
            self.calls += 1
            return (U * (S * keep)[..., None, :]) @ Vh, keep.sum(-1).cpu()
        U, S, V, ranks = self.factor(f)
        return (U * S[..., None, :]) @ V.mT, ranks

    def factor(self, f: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Truncate ``f`` (B, m, n) and return it factored: ``U`` (B, m, r), ``S`` (B, r),
        ``V`` (B, n, r) (S zeroed beyond each member's rank) and ``ranks`` (B,)."""
        m, n = f.shape[-2:]
        kmax = min(m, n)
        self.check_shape(m, n)
        if self.rank is not None:
            U, S, V = self._factorize(f, self.rank)
            return U, S, V, torch.full(f.shape[:-2], self.rank, dtype=torch.long)
        tol = self.tol
        norm = torch.linalg.matrix_norm(f)  # (B,)
        if self._exact:
            R = kmax
        elif self._fixed is not None:
            R = int(self._fixed.rank)
        else:
            R = min(kmax, self._R or self.working_rank)
        while True:
            U, S, V = self._factorize(f, R)
            if self._exact:  # the true tail beyond R is in S's complement: exact below
                err = torch.zeros_like(norm)
                break
            err = torch.linalg.matrix_norm(f - (U * S[..., None, :]) @ V.mT)
            over = bool((err > 0.5 * tol * norm).any())
            if not over:
                break
            if not self.growable or R >= kmax:
                if bool((err > tol * norm).any()):
                    worst = float((err / norm.clamp_min(torch.finfo(f.dtype).tiny)).max())
                    raise TruncationError(
                        f"The truncation factorizer {self.name!r} at rank {R} leaves a relative "
                        f"error {worst:.3g} > tol={tol:g} on this stage; it cannot reach the "
                        f"tolerance. Use a larger tolerance, a fixed rank, or a factorizer "
                        f"that can raise its rank (svd, rsvd, warm-subspace)."
                    )
                break
            R = min(kmax, 2 * R)
        budget = (tol * norm - err).clamp_min(0.0)
        ranks = select_rank(S, budget)
        r_max = int(ranks.max())
        if self.growable and not self._exact:
            # hysteresis: grow when the need reaches R, shrink only when it falls below R / 2
            want = max(r_max + max(4, r_max // 2), 4)
            if want > R or want < R // 2:
                R = min(kmax, want)
            self._R = R
        keep = torch.arange(r_max, device=f.device) < ranks[..., None]
        S = S[..., :r_max] * keep
        return U[..., :r_max], S, V[..., :r_max], ranks.cpu()

    def __repr__(self) -> str:
        what = f"tol={self.tol:g}" if self.tol is not None else f"rank={self.rank}"
        return f"Truncation({self.name!r}, {what})"
