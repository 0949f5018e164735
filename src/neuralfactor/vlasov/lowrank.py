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
tolerance (or a fixed rank) as the full-grid ``fd5`` scheme does with a full SVD. The time
integrator, the stages that are truncated and the field solve are those of ``fd5``, so at full
rank the two agree to round-off. The field needs only the density
``rho(x) = hv U (S * (V^T 1))``, O((m + n) r).

Mass. Upwind differences are periodic telescoping sums, so the untruncated stage conserves
mass exactly; the truncation does not (it changes ``int f`` by up to ``tol ||f||``). With
``mass_correction`` (the default) the rank-one term ``(rho_stage - rho_r)(x) w(v)`` is added
after every truncation, w a Maxwellian with ``hv sum_j w_j = 1``: the density of the
untruncated stage is restored, hence the field and the mass to round-off (the rank carried is
r + 1). This is the mass part of the local macroscopic conservation of Guo & Qiu (2024).

Cost per step O(B (m + n) R^2 + B R^3), memory O(B (m + n) R) (+ one dense m x n frame at each
saved step, for the store and the diagnostics).

References: W. Guo and J.-M. Qiu, "A low rank tensor representation of linear transport and
nonlinear Vlasov solutions and their associated flow maps", J. Comput. Phys. 458 (2022)
111089; W. Guo and J.-M. Qiu, "A local macroscopic conservative (LoMaC) low rank tensor method
for the Vlasov dynamics", SIAM J. Sci. Comput. 46(1) (2024) A232.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuralfactor.vlasov.solver import (
    Frame,
    SimulationConfig,
    SolverState,
    VlasovSolver,
)
from neuralfactor.vlasov.truncation import select_rank

__all__ = ["Factors", "LowRankVlasovSolver", "recompress"]

#: ``(U, S, V)``: ``f = U diag(S) V^T``, U (B, m, r), S (B, r), V (B, n, r).
Factors = tuple[Tensor, Tensor, Tensor]


def recompress(
    U: Tensor, S: Tensor, V: Tensor, *, tol: float | None = None, rank: int | None = None
) -> tuple[Factors, Tensor]:
    """Truncated SVD of ``U diag(S) V^T`` from its (non-orthogonal) factors.

    QR of ``U`` (B, m, K) and ``V`` (B, n, K), SVD of the K x K core; cost
    O((m + n) K^2 + K^3). Keeps the smallest rank with ``||f - f_r||_F <= tol ||f||_F`` per
    member (S zeroed beyond it; the factors have the batch's largest rank as columns), or the
    fixed ``rank``. Returns the orthonormal factors and the ranks (B,).
    """
    Qu, Ru = torch.linalg.qr(U)
    Qv, Rv = torch.linalg.qr(V)
    core = (Ru * S[..., None, :]) @ Rv.mT
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
    ``scheme="lowrank"`` and ``truncate_tol`` (default 1e-5) or ``truncate_rank``. Frames are
    yielded dense (``Frame.f``, formed only at saved steps) with the factors in
    ``Frame.state.factors``; diagnostic ``truncation_rank`` is the rank kept by the last
    truncation (without the mass-correction column).

    Notes
    -----
    The initial condition is factored once by an SVD of the initial grid (truncated to the
    tolerance). A run resumed from a yielded :class:`~neuralfactor.vlasov.solver.Frame` is
    bit-identical; one resumed from dense frames (a store) is re-factored by an exact SVD and
    agrees to round-off. Do not use it for full-rank runs: the stacked factors are then
    5-6 x min(m, n) wide and a step costs more than a full-grid step.
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        device: str | torch.device = "cpu",
        truncation: object = None,
    ) -> None:
        if truncation is not None:
            raise ValueError(
                "The factored 'lowrank' scheme recompresses exactly (QR + small SVD); it takes "
                "no truncation factorizer (use scheme 'fd5' for that)."
            )
        if not isinstance(config, SimulationConfig) or config.scheme != "lowrank":
            got = config.scheme if isinstance(config, SimulationConfig) else type(config).__name__
            raise ValueError(
                f"LowRankVlasovSolver needs a SimulationConfig with scheme 'lowrank'. Got {got!r}."
            )
        super().__init__(config, device=device)
        self.tol = config.truncate_tol
        self.rank = config.truncate_rank
        kw = {"device": self.device, "dtype": self.dtype}
        self._v_pos = self.v.clamp_min(0.0)
        self._v_neg = self.v.clamp_max(0.0)
        self._ones_v = torch.ones(config.nv, **kw)
        w = torch.exp(-0.5 * self.v.square())
        self._w = w / (self.hv * w.sum())  # hv sum_j w_j = 1
        self._true_x = torch.ones(1, 1, dtype=torch.bool, device=self.device)
        self._false_x = torch.zeros(1, 1, dtype=torch.bool, device=self.device)

    # -- factored building blocks ---------------------------------------------------------------
    def factored_density(self, U: Tensor, S: Tensor, V: Tensor) -> Tensor:
        """``rho(x) = int f dv = hv U (S * (V^T 1))``, shape (B, m); O((m + n) r)."""
        return self.hv * (U @ (S * (V.mT @ self._ones_v)).unsqueeze(-1)).squeeze(-1)

    def _diff(self, X: Tensor, h: float, positive: bool) -> Tensor:
        """Upwind derivative of every column of X (B, N, r) along N (periodic)."""
        return self._upwind(X, -2, h, self._true_x if positive else self._false_x)

    def _stage_terms(self, fac: Factors, step: int, scale: float) -> list[Factors]:
        """The four rank-r terms of ``scale * F(u)`` for u = ``fac``."""
        U, S, V = fac
        E = self.field_from_density(self.factored_density(U, S, V))
        self._check(E, step)
        ss = -scale * S
        Ep, En = E.clamp_min(0.0)[..., None], E.clamp_max(0.0)[..., None]
        return [
            (self._diff(U, self.hx, True), ss, V * self._v_pos[:, None]),
            (self._diff(U, self.hx, False), ss, V * self._v_neg[:, None]),
            (U * Ep, ss, self._diff(V, self.hv, True)),
            (U * En, ss, self._diff(V, self.hv, False)),
        ]

    def _combine(self, terms: list[Factors]) -> tuple[Factors, Tensor, Tensor]:
        """Recompress a sum of factored terms; returns (factors, ranks, density before)."""
        U = torch.cat([t[0] for t in terms], dim=-1)
        S = torch.cat([t[1] for t in terms], dim=-1)
        V = torch.cat([t[2] for t in terms], dim=-1)
        rho = self.factored_density(U, S, V)
        fac, ranks = recompress(U, S, V, tol=self.tol, rank=self.rank)
        if self.config.mass_correction:
            fac = self._correct_mass(fac, rho)
        return fac, ranks, rho

    def _correct_mass(self, fac: Factors, rho: Tensor) -> Factors:
        U, S, V = fac
        d = rho - self.factored_density(U, S, V)  # (B, m)
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
            u1, ranks, _ = self._combine([u, *self._stage_terms(u, n + 1, dt)])
            half = (u[0], 0.5 * u[1], u[2])
            u1h = (u1[0], 0.5 * u1[1], u1[2])
            new, ranks, _ = self._combine([half, u1h, *self._stage_terms(u1, n + 1, 0.5 * dt)])
        else:
            u_nm2 = st.factors[2]
            u75 = (u[0], 0.75 * u[1], u[2])
            old = (u_nm2[0], 0.25 * u_nm2[1], u_nm2[2])
            new, ranks, _ = self._combine([u75, old, *self._stage_terms(u, n + 1, 1.5 * dt)])
        u_nm1 = st.factors[1] if len(st.factors) > 1 else u
        # f is formed only when a frame is saved (see _frame); None between saved steps
        return SolverState(n + 1, None, (), (new, u, u_nm1)), ranks

    def _frame(self, state: SolverState, ranks: Tensor | None = None) -> Frame:
        fac = state.factors[0]
        f = self.dense(fac)
        hist = tuple(self.dense(x) for x in state.factors[1:3]) if len(state.factors) > 1 else ()
        state = SolverState(state.step, f, hist, state.factors)
        if ranks is None:
            ranks = (fac[1] != 0).sum(-1).cpu()
            if self.config.mass_correction and state.step > 0:
                ranks = ranks - 1
        E = self.electric_field(f)
        self._check(E, state.step)
        diag = self.diagnostics(f, E)
        diag["truncation_rank"] = ranks.double()
        return Frame(
            state.step // self.config.save_every, state.step, state.step * self.dt, f, diag, state
        )
