"""Factored-state step-and-truncate Vlasov-Poisson solver (scheme ``lowrank``).

The distribution is kept as ``f = U diag(S) V^T`` (U (B, m, r) over positions, V (B, n, r)
over velocities) and never formed during stepping. The right-hand side of the ``fd5`` scheme,
``F(f) = -v df/dx - E df/dv`` with fifth-order linear upwind differences, is applied to the
factors:

* ``v df/dx``: the x-derivative acts on U and the multiplication by v on V. The upwind side
  depends on the sign of v (per column of f), so the term is
  ``(D+ U) S (diag(v+) V)^T + (D- U) S (diag(v-) V)^T`` (v+ = max(v, 0), v- = min(v, 0)).
* ``E df/dv``: the v-derivative acts on V and E(x) multiplies U; the side depends on the sign
  of E (per row): ``(diag(E+) U) S (D+ V)^T + (diag(E-) U) S (D- V)^T``.

A stage ``u + dt F(u)`` is then a sum of five rank-r terms (six with the multistep's
``u^{n-2}``), and is recompressed by QR of the stacked U's and of the stacked V's and an SVD of
the small core, cost O((m + n) R^2 + R^3) with R = 5r..6r, truncated to the relative Frobenius
tolerance of a stage (``SimulationConfig.stage_tol``: ``truncate_tol * dt`` per unit of time by
default, or ``truncate_tol`` per stage) or a fixed rank, as the full-grid ``fd5`` scheme does
with a full SVD. The time
integrator, the stages that are truncated and the field solve are those of ``fd5``, so at full
rank the two agree to round-off. The field needs only the density
``rho(x) = hv U (S * (V^T 1))``, O((m + n) r).

Mass. Upwind differences are periodic telescoping sums, so the untruncated stage conserves
mass exactly; the truncation does not (it changes ``int f`` by up to ``tol ||f||``). With
``mass_correction`` (the default) the rank-one term ``c w(v)``, uniform in x, is added after
every truncation, w a Maxwellian with ``hv sum_j w_j = 1`` and c the mean over x of
``rho_stage - rho_r``: the total mass of the untruncated stage is restored to round-off and
the field is untouched (the rank carried is r + 1). A local correction
``(rho_stage - rho_r)(x) w(v)``, the mass part of the local macroscopic conservation (LoMaC)
of Guo & Qiu (2024), was tried first and rejected: at rank 3 it re-injects every stage's
truncated density as a Maxwellian, not phase-mixed, perturbation, and weak Landau damping
(64x128, tol 1e-5, t in [2, 25]) came out at rate -0.1328 instead of -0.1536 (uncorrected and
fd5 + SVD) against the root -0.1534.

Cost per step O(B (m + n) R^2 + B R^3), memory O(B (m + n) R) (+ one dense m x n frame at each
saved step, for the store and the diagnostics).

References: W. Guo and J.-M. Qiu, "A low rank tensor representation of linear transport and
nonlinear Vlasov solutions and their associated flow maps", J. Comput. Phys. 458 (2022)
111089; W. Guo and J.-M. Qiu, "A local macroscopic conservative (LoMaC) low rank tensor method
for the Vlasov dynamics", SIAM J. Sci. Comput. 46(1) (2024) A232.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain

import torch
from torch import Tensor

from neuralfactor.vlasov.solver import (
    Frame,
    SimulationConfig,
    SolverState,
    VlasovSolver,
)
from neuralfactor.vlasov.truncation import select_rank

__all__ = ["DLRVlasovSolver", "Factors", "LowRankVlasovSolver", "column_major", "recompress"]

#: ``(U, S, V)``: ``f = U diag(S) V^T``, U (B, m, r), S (B, r), V (B, n, r).
Factors = tuple[Tensor, Tensor, Tensor]


def column_major(B: int, N: int, K: int, like: Tensor) -> Tensor:
    """An uninitialized (B, N, K) tensor stored column by column (its ``.mT`` contiguous): the
    layout LAPACK works on, so :func:`recompress` with ``overwrite=True`` factors it in place."""
    return torch.empty(B, K, N, dtype=like.dtype, device=like.device).mT


def _qr(A: Tensor, overwrite: bool) -> tuple[Tensor, Tensor]:
    """Reduced QR of A (B, N, K). With ``overwrite`` and A column-major with N >= K, A is
    overwritten by Q (LAPACK geqrf, then orgqr on the same storage): the same calls as
    ``torch.linalg.qr``, so the same Q and R bit for bit, without its N x K copy."""
    B, N, K = A.shape
    if not (overwrite and N >= K and A.mT.is_contiguous()):
        return torch.linalg.qr(A)
    tau = A.new_empty(B, K)
    torch.geqrf(A, out=(A, tau))
    R = torch.triu(A[..., :K, :], out=column_major(B, K, K, A))  # a copy, laid out as Q's R
    torch.linalg.householder_product(A, tau, out=A)
    return A, R


def recompress(
    U: Tensor,
    S: Tensor,
    V: Tensor,
    *,
    tol: float | None = None,
    rank: int | None = None,
    overwrite: bool = False,
) -> tuple[Factors, Tensor]:
    """Truncated SVD of ``U diag(S) V^T`` from its (non-orthogonal) factors.

    QR of ``U`` (B, m, K) and ``V`` (B, n, K), SVD of the K x K core; cost
    O((m + n) K^2 + K^3). Keeps the smallest rank with ``||f - f_r||_F <= tol ||f||_F`` per
    member (S zeroed beyond it; the factors have the batch's largest rank as columns), or the
    fixed ``rank``. Returns the orthonormal factors and the ranks (B,).

    ``overwrite=True`` lets the QR work in the storage of ``U`` and ``V`` (their contents are
    destroyed) when they are column-major (:func:`column_major`): the working memory is then
    the two stacks, not the stacks and their copies. Results are bit-identical either way.
    """
    Qu, Ru = _qr(U, overwrite)
    Qv, Rv = _qr(V, overwrite)
    core = (Ru * S[..., None, :]) @ Rv.mT
    del Ru, Rv
    Uc, s, Vch = torch.linalg.svd(core)
    if rank is not None:
        r = min(rank, s.shape[-1])
        ranks = torch.full(s.shape[:-1], r, dtype=torch.long, device=s.device)
    else:
        norm = s.square().sum(-1).sqrt()
        ranks = select_rank(s, tol * norm)
    r_max = int(ranks.max())
    keep = torch.arange(r_max, device=s.device) < ranks[..., None]
    U_new = Qu @ Uc[..., :r_max]
    V_new = Qv @ Vch[..., :r_max, :].mT
    return (U_new, s[..., :r_max] * keep, V_new), ranks.cpu()


class LowRankVlasovSolver(VlasovSolver):
    """Factored-state ``fd5`` stepping with recompression after every stage.

    Use through :func:`~neuralfactor.vlasov.solver.make_solver` or ``simulate`` with
    ``scheme="lowrank"`` and ``truncate_tol`` (default 1e-5, per unit of simulated time unless
    ``truncate_per="stage"``) or ``truncate_rank``. Frames are
    yielded dense (``Frame.f``, formed only at saved steps) with the factors in
    ``Frame.state.factors``; diagnostic ``truncation_rank`` is the rank kept by the last
    truncation (without the mass-correction column).

    Notes
    -----
    The initial condition is factored once by an SVD of the initial grid (truncated to the
    tolerance). A run resumed from a yielded :class:`~neuralfactor.vlasov.solver.Frame` is
    bit-identical, and so is one resumed from a store: ``simulate_to_store`` saves the factors
    of the state and of the multistep history with every flush
    (:meth:`~neuralfactor.vlasov.solver.SolverState.exact_tensors`). A state with dense frames
    only (a store written before the factors were saved) is re-factored by an exact SVD and
    agrees to round-off. Do not use it for full-rank runs: the stacked factors are then
    5-6 x min(m, n) wide and a step costs more than a full-grid step.
    """

    scheme = "lowrank"

    def __init__(
        self,
        config: SimulationConfig,
        *,
        device: str | torch.device = "cpu",
        truncation: object = None,
    ) -> None:
        if truncation is not None:
            raise ValueError(
                f"The factored {self.scheme!r} scheme recompresses exactly (QR + small SVD); it takes "
                "no truncation factorizer (use scheme 'fd5' for that)."
            )
        want = self.scheme
        if not isinstance(config, SimulationConfig) or config.scheme != want:
            got = config.scheme if isinstance(config, SimulationConfig) else type(config).__name__
            raise ValueError(
                f"{type(self).__name__} needs a SimulationConfig with scheme {want!r}. Got {got!r}."
            )
        super().__init__(config, device=device)
        self.tol = config.stage_tol
        self.rank = config.truncate_rank
        kw = {"device": self.device, "dtype": self.dtype}
        self._v_pos = self.v.clamp_min(0.0)
        self._v_neg = self.v.clamp_max(0.0)
        self._ones_v = torch.ones(config.nv, **kw)
        self._true_x = torch.ones(1, 1, dtype=torch.bool, device=self.device)
        self._false_x = torch.zeros(1, 1, dtype=torch.bool, device=self.device)

    @property
    def carries_state(self) -> bool:
        """Always: the factors are the state (the dense frames are their products)."""
        return True

    # -- factored building blocks ---------------------------------------------------------------
    def factored_density(self, U: Tensor, S: Tensor, V: Tensor) -> Tensor:
        """``rho(x) = int f dv = hv U (S * (V^T 1))``, shape (B, m); O((m + n) r)."""
        return self.hv * (U @ (S * (V.mT @ self._ones_v)).unsqueeze(-1)).squeeze(-1)

    def _diff(self, X: Tensor, h: float, positive: bool) -> Tensor:
        """Upwind derivative of every column of X (B, N, r) along N (periodic).

        The arithmetic of the full-grid stencil (``VlasovSolver._upwind``: the same products
        summed in the same order, then divided by h), accumulated in place: three N x r
        arrays live (the padded copy, the sum, one product) instead of five.
        """
        N = X.shape[-2]
        fp = torch.cat([X.narrow(-2, N - 3, 3), X, X.narrow(-2, 0, 3)], dim=-2)
        side = self._true_x if positive else self._false_x
        w = torch.where(side[..., None], self._wp, self._wm)
        out = fp.narrow(-2, 0, N) * w[..., 0]
        term = torch.empty_like(out)
        for o in range(1, 7):
            out.add_(torch.mul(fp.narrow(-2, o, N), w[..., o], out=term))
        return out.div_(h)

    def _stage_terms(self, fac: Factors, step: int, scale: float) -> Iterator[Factors]:
        """The four rank-r terms of ``scale * F(u)`` for u = ``fac``, made one at a time (a
        consumer that does not keep them holds one term's temporaries at once)."""
        U, S, V = fac
        E = self.field_from_density(self.factored_density(U, S, V))
        self._check(E, step)
        ss = -scale * S
        Ep, En = E.clamp_min(0.0)[..., None], E.clamp_max(0.0)[..., None]
        yield self._diff(U, self.hx, True), ss, V * self._v_pos[:, None]
        yield self._diff(U, self.hx, False), ss, V * self._v_neg[:, None]
        yield U * Ep, ss, self._diff(V, self.hv, True)
        yield U * En, ss, self._diff(V, self.hv, False)

    def _combine(
        self, lead: list[Factors], u: Factors, step: int, scale: float
    ) -> tuple[Factors, Tensor, Tensor]:
        """Recompress ``sum(lead) + scale * F(u)``; returns (factors, ranks, density before).

        The terms are written one at a time into column-major stacks (B, m, K) and (B, n, K)
        that the QR then overwrites (``recompress(..., overwrite=True)``): the step's working
        memory is the two stacks and the small core, O((m + n) K + K^2), not the terms, the
        stacks and the QR's copies of them (three times as much). Same values as
        concatenating the terms.
        """
        K = sum(t[1].shape[-1] for t in lead) + 4 * u[1].shape[-1]
        (B, m, _), n = u[0].shape, u[2].shape[-2]
        U, V = column_major(B, m, K, u[0]), column_major(B, n, K, u[2])
        S = u[1].new_empty(B, K)
        col = 0
        for A, s, W in chain(lead, self._stage_terms(u, step, scale)):
            w = s.shape[-1]
            U[..., col : col + w] = A
            S[..., col : col + w] = s
            V[..., col : col + w] = W
            col += w
        del A, s, W
        rho = self.factored_density(U, S, V)
        fac, ranks = recompress(U, S, V, tol=self.tol, rank=self.rank, overwrite=True)
        if self.config.mass_correction:
            fac = self._correct_mass(fac, rho)
        return fac, ranks, rho

    def _correct_mass(self, fac: Factors, rho: Tensor) -> Factors:
        U, S, V = fac
        # uniform in x: the total mass of ``rho`` is restored, the field is not touched
        d = (rho - self.factored_density(U, S, V)).mean(-1, keepdim=True).expand_as(rho)
        B = U.shape[0]
        one = torch.ones(B, 1, dtype=S.dtype, device=S.device)
        w = self._w.expand(B, -1)[..., None]
        # density of d(x) w(v): hv sum_j d_i w_j = d_i
        return (
            torch.cat([U, d[..., None]], dim=-1),
            torch.cat([S, one], dim=-1),
            torch.cat([V, w], dim=-1),
        )

    @staticmethod
    def dense(fac: Factors) -> Tensor:
        U, S, V = fac
        return (U * S[..., None, :]) @ V.mT

    # -- stepping -------------------------------------------------------------------------------
    def factor_initial(self, f: Tensor) -> tuple[Factors, Tensor]:
        """Factor the initial grid once (exact SVD truncated like every stage)."""
        Uf, s, Vh = torch.linalg.svd(f, full_matrices=False)
        return recompress(Uf, s, Vh.mT, tol=self.tol, rank=self.rank)

    @staticmethod
    def _factor_dense(f: Tensor, tol: float) -> Factors:
        Uf, s, Vh = torch.linalg.svd(f, full_matrices=False)
        return recompress(Uf, s, Vh.mT, tol=tol)[0]

    def _initial_state(self, f: Tensor) -> SolverState:
        fac, _ = self.factor_initial(f)
        return SolverState(0, f, (), (fac,))

    def _step(self, st: SolverState) -> tuple[SolverState, Tensor | None]:
        if not st.factors:  # resumed from dense frames (a store): factor them once, exactly
            eps = 100 * torch.finfo(self.dtype).eps
            facs = tuple(self._factor_dense(x, eps) for x in (st.f, *st.history))
            st = SolverState(st.step, st.f, st.history, facs)
        dt, n = self.dt, st.step
        u = st.factors[0]
        if n < 2:  # SSP-RK2 start
            u1, ranks, _ = self._combine([u], u, n + 1, dt)
            half = (u[0], 0.5 * u[1], u[2])
            u1h = (u1[0], 0.5 * u1[1], u1[2])
            new, ranks, _ = self._combine([half, u1h], u1, n + 1, 0.5 * dt)
        else:
            u_nm2 = st.factors[2]
            u75 = (u[0], 0.75 * u[1], u[2])
            old = (u_nm2[0], 0.25 * u_nm2[1], u_nm2[2])
            new, ranks, _ = self._combine([u75, old], u, n + 1, 1.5 * dt)
        u_nm1 = st.factors[1] if len(st.factors) > 1 else u
        # f is formed only when a frame is saved (see _frame); None between saved steps
        return SolverState(n + 1, None, (), (new, u, u_nm1)), ranks

    def _frame(self, state: SolverState, ranks: Tensor | None = None) -> Frame:
        fac = state.factors[0]
        f = self.dense(fac)
        hist = tuple(self.dense(x) for x in state.factors[1:3]) if len(state.factors) > 1 else ()
        state = SolverState(state.step, f, hist, state.factors)
        if ranks is None:  # frame 0 (or a resumed state): the rank the truncation keeps
            ranks = self.factor_initial(f)[1]
        ranks = ranks.cpu()
        E = self.electric_field(f)
        self._check(E, state.step)
        diag = self.diagnostics(f, E)
        diag["truncation_rank"] = ranks.double()
        return Frame(
            state.step // self.config.save_every, state.step, state.step * self.dt, f, diag, state
        )


class DLRVlasovSolver(LowRankVlasovSolver):
    """Dynamical low-rank integration (scheme ``dlr``): the rank-adaptive BUG integrator.

    One step from ``f0 = U0 diag(S0) V0^T`` (Ceruti, Kusch & Lubich 2022, Algorithm 1):

    1. K-step: ``K' = F(K V0^T) V0``, ``K(0) = U0 diag(S0)``; ``Û = orth([K(dt), U0])``.
    2. L-step: ``L' = F(U0 L^T)^T U0``, ``L(0) = V0 diag(S0)``; ``V̂ = orth([L(dt), V0])``.
    3. S-step (Galerkin in the augmented bases): ``Ŝ' = Ûᵀ F(Û Ŝ V̂ᵀ) V̂``,
       ``Ŝ(0) = Ûᵀ U0 diag(S0) V0ᵀ V̂``.
    4. Truncation of the 2r x 2r ``Ŝ(dt)`` by its SVD to the tolerance (or the fixed rank),
       then, with ``mass_correction``, the uniform rank-one mass correction of the factored
       scheme back to the step's initial mass (the Galerkin S-step itself moves mass
       slightly, the truncation too).

    ``F`` is the ``fd5`` right-hand side (fifth-order linear upwind differences, FFT field),
    applied to factors as in :class:`LowRankVlasovSolver`; each substep is integrated with the
    three-stage third-order SSP Runge-Kutta scheme (Shu & Osher 1988), the field recomputed
    from the current factors at every stage. Cost per step O((m + n) r^2 + r^3) with r the
    rank; no m x n array is formed. The integrator is first order in dt (robust to small
    singular values; its error does not depend on them), so it differs from ``fd5`` by
    O(dt) at any rank; with full bases (rank min(m, n)) it equals a dense SSP-RK3 step of the
    same semi-discretization to round-off.

    A run resumed from a yielded frame's state, or from a store (which saves the factors with
    every flush), is bit-identical. One resumed from a dense frame only (a store written before
    the factors were saved) starts from the frame's singular vectors: the basis directions
    with zero singular value that the interrupted run carried are replaced by others, so the
    continuation agrees with an uninterrupted run to the truncation tolerance, not to
    round-off.

    References: G. Ceruti, J. Kusch and C. Lubich, "A rank-adaptive robust integrator for
    dynamical low-rank approximation", BIT Numer. Math. 62 (2022) 1149; L. Einkemmer and C.
    Lubich, "A low-rank projector-splitting integrator for the Vlasov-Poisson equation",
    SIAM J. Sci. Comput. 40(5) (2018) B1330; C.-W. Shu and S. Osher, J. Comput. Phys. 77
    (1988) 439.
    """

    scheme = "dlr"

    def _project(
        self, terms: Iterable[Factors], left: Tensor | None, right: Tensor | None
    ) -> Tensor:
        """``sum_k [left^T] A_k diag(s_k) B_k^T [right]`` of factored terms."""
        out = None
        for A, s, B in terms:
            a = A if left is None else left.mT @ A
            b = B if right is None else right.mT @ B
            t = (a * s[..., None, :]) @ b.mT
            out = t if out is None else out + t
        return out

    @staticmethod
    def _ssp_rk3(y: Tensor, rhs, dt: float) -> Tensor:
        y1 = y + dt * rhs(y)
        y2 = 0.75 * y + 0.25 * (y1 + dt * rhs(y1))
        return y / 3.0 + (2.0 / 3.0) * (y2 + dt * rhs(y2))

    def _F_terms(self, U: Tensor, V: Tensor, step: int) -> Iterator[Factors]:
        """Terms of ``F(U V^T)`` (``-1`` scale folded in by ``_stage_terms``)."""
        ones = torch.ones(U.shape[:-1][:-1] + (U.shape[-1],), dtype=U.dtype, device=U.device)
        return self._stage_terms((U, ones, V), step, 1.0)

    #: Basis vectors kept at least (with zero singular values beyond the tolerance's rank). A
    #: separable initial condition (1 + a cos kx) M(v) is a stationary point of the projected
    #: K- and L-steps (F(f0) V0 = 0 and U0^T F(f0) = 0 by parity), so from rank-1 factors the
    #: BUG integrator never grows the rank; measured: two-stream (alpha 1e-3) at 32x64 stayed
    #: at rank 1 with growth rate 0 when the basis was cut to the tolerance's rank.
    min_rank = 8

    def _initial_state(self, f: Tensor) -> SolverState:
        Uf, s, Vh = torch.linalg.svd(f, full_matrices=False)
        if self.rank is not None:  # fixed rank: keep r basis vectors even where S is 0
            r = self.rank
        else:
            need = int(self.factor_initial(f)[1].max())
            r = min(max(need, self.min_rank), s.shape[-1])
        fac = (Uf[..., :r], s[..., :r], Vh[..., :r, :].mT)
        return SolverState(0, f, (), (fac,))

    def _step(self, st: SolverState) -> tuple[SolverState, Tensor | None]:
        if not st.factors:  # resumed from a dense frame: a fresh basis (see the class notes)
            Uf, s, Vh = torch.linalg.svd(st.f, full_matrices=False)
            eps = 100 * torch.finfo(self.dtype).eps
            need = int(select_rank(s, eps * s.square().sum(-1).sqrt()).max())
            r = min(s.shape[-1], self.rank or max(need, self.min_rank))
            st = SolverState(st.step, st.f, (), ((Uf[..., :r], s[..., :r], Vh[..., :r, :].mT),))
        U0, S0, V0 = st.factors[0]
        n, dt = st.step, self.dt
        # K-step and L-step (both from the same initial factors)
        K = self._ssp_rk3(
            U0 * S0[..., None, :],
            lambda K: self._project(self._F_terms(K, V0, n + 1), None, V0),
            dt,
        )
        L = self._ssp_rk3(
            V0 * S0[..., None, :],
            lambda L: self._project(self._F_terms(U0, L, n + 1), U0, None).mT,
            dt,
        )
        Uh = torch.linalg.qr(torch.cat([K, U0], dim=-1)).Q
        Vh = torch.linalg.qr(torch.cat([L, V0], dim=-1)).Q
        S_hat = ((Uh.mT @ U0) * S0[..., None, :]) @ (V0.mT @ Vh)
        S1 = self._ssp_rk3(
            S_hat,
            lambda S: self._project(self._F_terms(Uh @ S, Vh, n + 1), Uh, Vh),
            dt,
        )
        # truncation of the augmented core; its density before truncation for the correction
        Uc, s, Vch = torch.linalg.svd(S1, full_matrices=False)
        Uf, Vf = Uh @ Uc, Vh @ Vch.mT
        rho = self.factored_density(Uf, s, Vf)
        if self.rank is not None:
            ranks = torch.full(s.shape[:-1], min(self.rank, s.shape[-1]), dtype=torch.long)
            keep_cols = int(ranks.max())
        else:
            ranks = select_rank(s, self.tol * s.square().sum(-1).sqrt()).cpu()
            keep_cols = min(s.shape[-1], max(int(ranks.max()), self.min_rank))
        # basis vectors beyond the tolerance's rank are kept with S = 0 (see min_rank)
        keep = torch.arange(keep_cols) < ranks[..., None]
        fac = (Uf[..., :keep_cols], s[..., :keep_cols] * keep.to(s.device), Vf[..., :keep_cols])
        if self.config.mass_correction:
            # the Galerkin S-step moves mass too (by ~1e-9 per unit time in weak Landau at
            # 32x64): a uniform shift of the target density restores the step's initial mass
            rho0 = self.factored_density(U0, S0, V0)
            rho = rho + (rho0.sum(-1, keepdim=True) - rho.sum(-1, keepdim=True)) / rho.shape[-1]
            U, S, V = self._correct_mass(fac, rho)
            fac = recompress(U, S, V, rank=U.shape[-1])[0]  # orthonormal again, rank r + 1
        return SolverState(n + 1, None, (), (fac,)), ranks
