"""1D1V Vlasov-Poisson solver, batched over an ensemble, in torch (CPU or CUDA).

Solves ``df/dt + v df/dx + E df/dv = 0``, ``E = -dphi/dx``, ``-d^2 phi/dx^2 = rho - 1``,
``rho = int f dv`` (electrons over a neutralising background; dE/dx = rho - 1), periodic in x
on [0, L), on an m x n grid (rows = positions ``x_i = i L/m``, columns = velocities
``v_j = -vmax + j 2 vmax / n``). Frames have shape (B, m, n): B ensemble members advance
together; nothing loops over members.

Four schemes behind one interface (:class:`VlasovSolver`; ``VlasovSolver(config)`` builds the
factored schemes' subclasses from :mod:`neuralfactor.vlasov.lowrank`):

``spectral`` (default, the validation reference)
    Strang splitting: half step in x, full step in v, half step in x, each an exact shift by
    FFT phase multiplication (Cheng & Knorr 1976, with spectral interpolation); the field from
    an FFT Poisson solve. Unconditionally stable, second order in time, spectral in space,
    periodic in v as well (f must vanish at +-vmax). Mass is conserved to round-off (the zero
    modes are never touched). Half steps in x between two unsaved steps are fused. It keeps
    fine filaments, so its frames reach high numerical rank; it recurs at ``2 pi / (k dv)``.
    Cost per step O(B m n log(mn)).

``fd5``
    The scheme of the original ConvMF data: fifth-order *linear* upwind finite differences
    (the WENO5 linear weights 1/10, 6/10, 3/10; stencils split by the sign of v in x and of E
    in v), the field by FFT, two SSP-RK2 steps then the three-step second-order SSP multistep
    ``u^{n+1} = 3/4 (u^n + 2 dt F(u^n)) + 1/4 u^{n-2}``, and optionally a truncated SVD of f
    after every stage keeping ``||f - f_r||_F <= tol ||f||_F`` (the original truncated in
    hierarchical Tucker format, which for a matrix is a truncated SVD). Periodic in v.
    Dissipative: filaments are damped, so frames keep a lower numerical rank. Cost per step
    O(B m n) (+ an O(B m n min(m, n)) SVD per stage when truncating). The truncation can be
    any factorizer at a tolerance or a fixed rank
    (:class:`~neuralfactor.vlasov.truncation.Truncation`).

``lowrank``
    The same fd5 stepping on factors ``f = U diag(S) V^T`` that are never multiplied out,
    recompressed after every stage by QR + a small SVD (Guo & Qiu 2022), O(B (m + n) R^2).

``dlr``
    Dynamical low-rank integration of the fd5 semi-discretization by the rank-adaptive BUG
    integrator (Ceruti, Kusch & Lubich 2022), first order in time.

References: C. Z. Cheng and G. Knorr, J. Comput. Phys. 22 (1976) 330; S. Gottlieb, C.-W. Shu
and E. Tadmor, SIAM Rev. 43 (2001) 89 (SSP methods); G.-S. Jiang and C.-W. Shu, J. Comput.
Phys. 126 (1996) 202 (WENO5 linear weights).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import torch
from torch import Tensor

from neuralfactor.core.validation import (
    as_generator,
    check_option,
    check_positive_float,
    check_positive_int,
    resolve_device,
)
from neuralfactor.vlasov.diagnostics import phase_space_diagnostics
from neuralfactor.vlasov.initial import BOUNDARY_TOL, get_initial_condition
from neuralfactor.vlasov.truncation import Truncation

__all__ = [
    "DTYPES",
    "FACTORED_SCHEMES",
    "FD5_CFL_LIMIT",
    "GRID_SCHEMES",
    "LOWRANK_DEFAULT_TOL",
    "PRESETS",
    "SCHEMES",
    "SPECTRAL_DT_LIMIT",
    "TRUNCATE_PER",
    "Frame",
    "SimulationConfig",
    "SimulationDivergedError",
    "SimulationResult",
    "unit_mass_maxwellian",
    "SolverState",
    "VlasovSolver",
    "VlasovWarning",
    "make_solver",
    "simulate",
    "stage_tolerance",
]

Scheme = Literal["spectral", "fd5", "lowrank", "dlr"]
SCHEMES: tuple[str, ...] = ("spectral", "fd5", "lowrank", "dlr")
#: Schemes whose state is kept factored (``f = U diag(S) V^T``).
FACTORED_SCHEMES: tuple[str, ...] = ("lowrank", "dlr")
#: Schemes whose state is the full m x n grid (the others keep factors).
GRID_SCHEMES: tuple[str, ...] = ("spectral", "fd5")
#: Tolerance of the factored-state scheme when neither a tolerance nor a rank is given
#: (the original ConvMF data's truncation tolerance).
LOWRANK_DEFAULT_TOL = 1e-5
#: What ``truncate_tol`` is relative to: ``"time"`` (the default) a tolerance per unit of
#: simulated time, each truncation at ``tol * dt``; ``"stage"`` the tolerance of every truncation
#: itself (the original ConvMF data's rule, and the only one before ``truncate_per`` existed).
TRUNCATE_PER: tuple[str, ...] = ("time", "stage")


def stage_tolerance(tol: float, per: str, dt: float) -> float:
    """The relative tolerance of each truncation for ``truncate_tol=tol`` per ``per`` (one of
    :data:`TRUNCATE_PER`) at step ``dt``: ``tol * dt`` per unit of time, ``tol`` per stage."""
    return tol * dt if per == "time" else tol


#: Config fields added after the first stores were written; left out of :meth:`to_dict` at
#: the value a store written before them means, so those stores still resume, and restored
#: at that value by :meth:`SimulationConfig.from_dict` (``truncate_per`` only where a tolerance
#: is set: a config without one carries None).
_OPTIONAL_FIELDS: dict[str, Any] = {
    "truncate_rank": None,
    "truncate_with": None,
    "mass_correction": False,
    "truncate_per": "stage",
}
DTypeName = Literal["float64", "float32"]
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}

#: Above this dt (in units of 1/omega_p) Strang splitting's phase error on the plasma
#: oscillation (~ omega^3 dt^2 / 24 per unit time) exceeds ~0.1 rad over t = 40.
SPECTRAL_DT_LIMIT = 0.1
#: CFL number ``dt (vmax / hx + max|E| / hv)`` above which fd5 is warned about. Measured
#: (weak Landau, 32x64, t = 30): CFL 0.44 stable, 0.47 slowly growing, 0.5 diverged; see
#: docs/results/vlasov-validation.md. The original rule dt = min(hx, hv)/20 gives ~0.2.
FD5_CFL_LIMIT = 0.4

#: Named configurations reproducing the original ConvMF study's data (strong Landau damping,
#: dt = min(hx, hv) / 20, T = 40, every step saved).
PRESETS: dict[str, dict[str, Any]] = {
    "convmf-64x128": {
        "ic": "landau-strong",
        "nx": 64,
        "nv": 128,
        "t_end": 40.0,
        "dt": None,
        "save_every": 1,
    },
    "convmf-128x256": {
        "ic": "landau-strong",
        "nx": 128,
        "nv": 256,
        "t_end": 40.0,
        "dt": None,
        "save_every": 1,
    },
}


class VlasovWarning(UserWarning):
    """A run that will complete but whose results may be wrong (recurrence, large dt)."""


class SimulationDivergedError(RuntimeError):
    """NaN or Inf appeared in the field; ``step`` and ``t`` say where."""

    def __init__(self, message: str, *, step: int, t: float) -> None:
        super().__init__(message)
        self.step = step
        self.t = t


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a run; JSON round-trips (:meth:`to_dict` / :meth:`from_dict`).

    ``None`` fields are resolved at construction: ``length`` and ``vmax`` from the initial
    condition's defaults, ``dt`` to ``min(hx, hv) / 20`` (the original data's rule) and
    ``ic_params`` to the full parameter set, so a stored config is complete.

    Parameters
    ----------
    ic : name of an initial condition (see ``available_initial_conditions()``).
    nx, nv : grid sizes m (positions, rows) and n (velocities, columns).
    t_end : final time; the run makes ``floor(t_end / dt)`` steps, rounded down to a multiple
        of ``save_every``.
    dt : time step.
    save_every : save a frame every this many steps (frame 0 is the initial condition).
    scheme : ``"spectral"`` or ``"fd5"``.
    dtype : ``"float64"`` (default) or ``"float32"``.
    seed : seeds the random initial conditions (``random-smooth``).
    ensemble : number of runs B advanced together.
    length, vmax : domain [0, length) x [-vmax, vmax).
    ic_params : overrides of the initial condition's parameters (``alpha``, ``k``, ...).
    truncate_tol : fd5, lowrank, dlr: relative Frobenius tolerance of the truncation (the
        original data used 1e-5), per unit of simulated time by default (``truncate_per``);
        ``None`` means no truncation (fd5) or ``truncate_rank`` (lowrank, dlr; with neither,
        they use 1e-5).
    truncate_per : with ``truncate_tol`` only: ``"time"`` (default) or ``"stage"``. ``"time"``
        truncates every stage at ``truncate_tol * dt`` (:attr:`stage_tol`), so the truncation
        error a run accumulates is bounded by about ``truncate_tol`` per unit of simulated time
        whatever the step. ``"stage"`` truncates every stage at ``truncate_tol`` itself (the
        original ConvMF data's rule): its bound grows like ``tol / dt``, and a direction a step
        adds at a relative size below ``tol`` is dropped at every stage and never grows. A
        perturbation ``alpha`` of a rank-one equilibrium adds its new direction at about
        ``alpha k dt`` per step, so per stage it is only carried while ``tol < alpha k dt``
        (weak Landau damping, alpha = 0.01, k = 0.5: at dt = 5e-4 a per-stage 1e-5 keeps rank 1
        and loses the damping; per unit time it needs ``tol < alpha k``, grid-independent;
        docs/results/low-rank-solvers.md). The rank-adaptive integrators' error bounds carry
        the same tolerance-over-step term (Ceruti, Kusch & Lubich 2022, "A rank-adaptive robust
        integrator for dynamical low-rank approximation").
    truncate_rank : fd5, lowrank, dlr: a fixed rank instead of a tolerance, in
        [1, min(m, n)].
    truncate_with : fd5 only: label of the factorizer that truncates (``"svd"``, ``"rsvd"``,
        ``"warm-subspace"``, a trained model directory, ...). ``None`` is the exact SVD. The
        solver is handed the factorizer itself (see :class:`~neuralfactor.vlasov.truncation.
        Truncation`); the label is recorded so a resumed run can check it.
    mass_correction : truncating schemes only (lowrank, dlr, and fd5 with a truncation; default
        True there): after every truncation add the rank-one term ``c w(v)`` (c uniform in x, w a
        unit-mass Maxwellian) that restores the untruncated stage's total mass, so mass is
        conserved to round-off (a truncation alone moves ``int f`` by up to ``tol ||f||``).
        ``False`` is the original ConvMF data's plain truncation.
    """

    ic: str = "landau-strong"
    nx: int = 64
    nv: int = 128
    t_end: float = 40.0
    dt: float | None = None
    save_every: int = 1
    scheme: str = "spectral"
    dtype: str = "float64"
    seed: int = 0
    ensemble: int = 1
    length: float | None = None
    vmax: float | None = None
    ic_params: Mapping[str, float] = field(default_factory=dict)
    truncate_tol: float | None = None
    truncate_rank: int | None = None
    truncate_with: str | None = None
    mass_correction: bool | None = None
    truncate_per: str | None = None

    def __post_init__(self) -> None:
        c = "SimulationConfig"
        ic = get_initial_condition(self.ic)
        params = ic.resolve_params(self.ic_params)
        object.__setattr__(self, "ic_params", dict(sorted(params.items())))
        min_grid = 4 if self.scheme == "spectral" else 8
        check_positive_int(self.nx, name="nx", caller=c, minimum=min_grid)
        check_positive_int(self.nv, name="nv", caller=c, minimum=min_grid)
        check_positive_int(self.save_every, name="save_every", caller=c)
        check_positive_int(self.ensemble, name="ensemble", caller=c)
        check_positive_int(self.seed, name="seed", caller=c, minimum=0)
        check_option(self.scheme, SCHEMES, name="scheme", caller=c)
        check_option(self.dtype, DTYPES, name="dtype", caller=c)
        length = ic.default_length(params) if self.length is None else self.length
        vmax = ic.vmax if self.vmax is None else self.vmax
        object.__setattr__(self, "length", check_positive_float(length, name="length", caller=c))
        object.__setattr__(self, "vmax", check_positive_float(vmax, name="vmax", caller=c))
        dt = min(self.hx, self.hv) / 20.0 if self.dt is None else self.dt
        object.__setattr__(self, "dt", check_positive_float(dt, name="dt", caller=c))
        t_end = check_positive_float(self.t_end, name="t_end", caller=c)
        object.__setattr__(self, "t_end", t_end)
        if t_end < self.dt:
            raise ValueError(
                f"The 't_end' parameter of {c} must be >= dt={self.dt:g} (at least one step). "
                f"Got {t_end:g}."
            )
        self._check_truncation(c)
        need = ic.required_vmax(params)
        if self.vmax < need:
            raise ValueError(
                f"The velocity range [-{self.vmax:g}, {self.vmax:g}] is too small for initial "
                f"condition {self.ic!r}: f at |v| = vmax exceeds {BOUNDARY_TOL:g} x max f; vmax "
                f"must be at least {math.ceil(need * 100) / 100:g}."
            )

    def _check_truncation(self, c: str) -> None:
        lowrank = self.scheme in FACTORED_SCHEMES
        for name in ("truncate_tol", "truncate_rank"):
            if getattr(self, name) is not None and self.scheme not in ("fd5", *FACTORED_SCHEMES):
                raise ValueError(
                    f"The '{name}' parameter of {c} applies only to scheme 'fd5', "
                    f"'lowrank' or 'dlr'. Got {getattr(self, name)!r} with scheme {self.scheme!r}."
                )
        if self.truncate_tol is not None and self.truncate_rank is not None:
            raise ValueError(
                f"Pass either 'truncate_tol' or 'truncate_rank' to {c}, not both. Got "
                f"truncate_tol={self.truncate_tol!r}, truncate_rank={self.truncate_rank!r}."
            )
        if lowrank and self.truncate_tol is None and self.truncate_rank is None:
            object.__setattr__(self, "truncate_tol", LOWRANK_DEFAULT_TOL)
        if self.truncate_tol is not None:
            tol = check_positive_float(self.truncate_tol, name="truncate_tol", caller=c)
            if tol >= 1:
                raise ValueError(
                    f"The 'truncate_tol' parameter of {c} must be in (0, 1). Got {tol}."
                )
            object.__setattr__(self, "truncate_tol", tol)
        self._check_truncate_per(c)
        if self.truncate_rank is not None:
            r = check_positive_int(self.truncate_rank, name="truncate_rank", caller=c)
            k = min(self.nx, self.nv)
            if r > k:
                raise ValueError(
                    f"The 'truncate_rank' parameter of {c} must be at most min(nx, nv)={k}. "
                    f"Got {r}; lower the rank or refine the grid."
                )
        if self.truncate_with is not None:
            if self.scheme != "fd5":
                raise ValueError(
                    f"The 'truncate_with' parameter of {c} applies only to scheme 'fd5' (the "
                    f"factored scheme recompresses exactly). Got {self.truncate_with!r} with "
                    f"scheme {self.scheme!r}."
                )
            if self.truncate_tol is None and self.truncate_rank is None:
                raise ValueError(
                    f"The 'truncate_with' parameter of {c} needs 'truncate_tol' or "
                    f"'truncate_rank'. Got truncate_with={self.truncate_with!r} alone."
                )
            if not isinstance(self.truncate_with, str) or not self.truncate_with:
                raise ValueError(
                    f"The 'truncate_with' parameter of {c} must be a factorizer name or a "
                    f"model directory. Got {self.truncate_with!r}."
                )
        mc = self.mass_correction
        truncating = lowrank or (
            self.scheme == "fd5"
            and (self.truncate_tol is not None or self.truncate_rank is not None)
        )
        if mc is None:
            mc = truncating
        if not isinstance(mc, bool):
            raise TypeError(f"The 'mass_correction' parameter of {c} must be a bool. Got {mc!r}.")
        if mc and not truncating:
            raise ValueError(
                f"The 'mass_correction' parameter of {c} applies only to schemes 'lowrank' and "
                f"'dlr', and to scheme 'fd5' with a truncation (truncate_tol or truncate_rank). "
                f"Got True with scheme {self.scheme!r} and no truncation."
            )
        object.__setattr__(self, "mass_correction", mc)

    def _check_truncate_per(self, c: str) -> None:
        per = self.truncate_per
        if self.truncate_tol is None:
            if per is not None:
                raise ValueError(
                    f"The 'truncate_per' parameter of {c} applies only with 'truncate_tol'. Got "
                    f"truncate_per={per!r} and truncate_tol=None."
                )
            return
        per = "time" if per is None else per
        check_option(per, TRUNCATE_PER, name="truncate_per", caller=c)
        object.__setattr__(self, "truncate_per", per)
        if not self.stage_tol < 1:
            raise ValueError(
                f"The truncation tolerance per stage of {c}, truncate_tol * dt = "
                f"{self.stage_tol:g}, must be below 1; lower truncate_tol or dt."
            )

    @property
    def stage_tol(self) -> float | None:
        """The relative tolerance of each truncation: ``truncate_tol * dt`` per unit of time,
        ``truncate_tol`` per stage, None without a tolerance."""
        if self.truncate_tol is None:
            return None
        return stage_tolerance(self.truncate_tol, str(self.truncate_per), float(self.dt))

    @property
    def truncates(self) -> bool:
        """Whether frames are truncated (a tolerance or a rank is set)."""
        return self.truncate_tol is not None or self.truncate_rank is not None

    # -- derived quantities -------------------------------------------------------------------
    @property
    def hx(self) -> float:
        return float(self.length) / self.nx

    @property
    def hv(self) -> float:
        return 2.0 * float(self.vmax) / self.nv

    @property
    def k(self) -> float:
        """Fundamental wavenumber of the initial condition."""
        return float(self.ic_params["k"])

    @property
    def n_steps(self) -> int:
        """Steps actually made: floor(t_end / dt) rounded down to a multiple of save_every."""
        steps = int(math.floor(self.t_end / self.dt * (1 + 1e-12)))
        return (steps // self.save_every) * self.save_every

    @property
    def n_frames(self) -> int:
        """Saved frames, including the initial condition."""
        return self.n_steps // self.save_every + 1

    @property
    def recurrence_time(self) -> float:
        """``2 pi / (k dv)``: when the spectral scheme's free streaming recurs."""
        return 2.0 * math.pi / (self.k * self.hv)

    def cfl(self, max_e: float = 0.0) -> float:
        """``dt (vmax / hx + max|E| / hv)``, the advection CFL number."""
        return self.dt * (float(self.vmax) / self.hx + max_e / self.hv)

    def warnings(self, max_e: float = 0.0) -> list[str]:
        """Conditions that do not stop a run but may spoil it (each names its limit)."""
        out = []
        if self.scheme == "spectral" and self.n_steps * self.dt > self.recurrence_time:
            out.append(
                f"the run (t_end={self.t_end:g}) is longer than the recurrence time 2 pi / (k dv) "
                f"= {self.recurrence_time:.4g} of the spectral scheme (k={self.k:g}, "
                f"dv={self.hv:.4g}); increase nv to push it back."
            )
        if self.scheme == "spectral" and self.dt > SPECTRAL_DT_LIMIT:
            out.append(
                f"dt={self.dt:g} exceeds the accuracy limit {SPECTRAL_DT_LIMIT:g} of the "
                f"Strang-split spectral scheme (phase error of the plasma oscillation)."
            )
        if self.scheme != "spectral" and self.cfl(max_e) > FD5_CFL_LIMIT:
            out.append(
                f"dt={self.dt:g} gives a CFL number dt (vmax/hx + max|E|/hv) = "
                f"{self.cfl(max_e):.3g} above the fd5 stability limit {FD5_CFL_LIMIT:g}; use "
                f"dt <= {FD5_CFL_LIMIT / (float(self.vmax) / self.hx + max_e / self.hv):.3g}."
            )
        return out

    # -- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ic_params"] = dict(self.ic_params)
        for key, default in _OPTIONAL_FIELDS.items():
            if d[key] in (default, None):
                del d[key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimulationConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"Unknown SimulationConfig field(s) {sorted(unknown)}; expected "
                f"some of {sorted(names)}."
            )
        given = dict(d)
        d = {**_OPTIONAL_FIELDS, **given}
        if "truncate_per" not in given and given.get("truncate_tol") is None:
            d["truncate_per"] = None  # no tolerance stored: none, or the default's ("time")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> SimulationConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SimulationConfig:
        """A named preset (``convmf-64x128``, ``convmf-128x256``) with field overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> SimulationConfig:
        """A copy with ``changes``; dropping the tolerance drops its ``truncate_per``."""
        if changes.get("truncate_tol", self.truncate_tol) is None:
            changes.setdefault("truncate_per", None)
        return replace(self, **changes)


_FACTOR_KEY = re.compile(r"factors\.(\d+)\.([USV])")
_TRUNCATION_PREFIX = "truncation."
_TRANSPOSED = ".mT"


@dataclass(frozen=True)
class SolverState:
    """Where a run stands after ``step`` steps: ``f`` (B, m, n) and, for fd5, the multistep
    history ``(u^{n-1}, u^{n-2})`` (empty for spectral), the factors of the factored schemes and
    the carried state of a stateful truncation. Enough to resume bit-identically on the same
    device with the same number of torch threads (:meth:`VlasovSolver.conditions`).

    :meth:`exact_tensors` and :meth:`from_tensors` turn what is not dense (factors, truncation
    state) into named tensors and back, for a store's state file."""

    step: int
    f: Tensor
    history: tuple[Tensor, ...] = ()
    #: lowrank scheme: the factored state and history, each ``(U, S, V)`` with
    #: ``f = U diag(S) V^T`` (U (B, m, r), S (B, r), V (B, n, r)); dlr: the state only; empty
    #: otherwise.
    factors: tuple[tuple[Tensor, Tensor, Tensor], ...] = ()
    #: fd5 with a stateful truncation (a working rank that adapts, a warm-started factorizer's
    #: basis): its state after this step (:meth:`Truncation.carried_state`); None otherwise.
    truncation: dict[str, Tensor] | None = None

    def exact_tensors(self) -> dict[str, Tensor]:
        """The factors (``factors.<i>.U``, ``.S``, ``.V``) and the truncation state
        (``truncation.<name>``) as named tensors (empty for the dense schemes)."""
        named = {
            f"factors.{i}.{k}": t
            for i, fac in enumerate(self.factors)
            for k, t in zip("USV", fac, strict=True)
        }
        for k, t in (self.truncation or {}).items():
            named[_TRUNCATION_PREFIX + k] = t
        out = {}
        for k, t in named.items():
            # keep the layout: a column-major matrix (LAPACK's singular vectors) is saved as
            # its row-major transpose, and restored as a view of the same strides, because
            # BLAS rounds a product differently when an operand arrives transposed
            if t.ndim >= 2 and not t.is_contiguous() and t.mT.is_contiguous():
                out[k + _TRANSPOSED] = t.mT
            else:
                out[k] = t
        return out

    @classmethod
    def from_tensors(
        cls, step: int, f: Tensor, history: tuple[Tensor, ...], tensors: dict[str, Tensor]
    ) -> SolverState:
        """The state of :meth:`exact_tensors` back, with the dense ``f`` and ``history``.

        Raises
        ------
        ValueError
            unknown names, an incomplete factor, or factors whose shapes do not fit ``f``.
        """
        facs: dict[int, dict[str, Tensor]] = {}
        trunc: dict[str, Tensor] = {}
        for key, t in tensors.items():
            if key.endswith(_TRANSPOSED) and t.ndim >= 2:
                key, t = key[: -len(_TRANSPOSED)], t.mT
            hit = _FACTOR_KEY.fullmatch(key)
            if hit:
                facs.setdefault(int(hit[1]), {})[hit[2]] = t
            elif key.startswith(_TRUNCATION_PREFIX):
                trunc[key[len(_TRUNCATION_PREFIX) :]] = t
            else:
                raise ValueError(f"Unknown solver-state tensor {key!r}.")
        B, m, n = f.shape
        factors = []
        for i in range(len(facs)):
            U, S, V = (facs.get(i, {}).get(k) for k in "USV")
            if U is None or S is None or V is None:
                raise ValueError(f"Solver-state factor {i} is incomplete or missing.")
            r = S.shape[-1] if S.ndim == 2 else -1
            if U.shape != (B, m, r) or S.shape != (B, r) or V.shape != (B, n, r):
                raise ValueError(
                    f"Solver-state factor {i} has shapes U {tuple(U.shape)}, S {tuple(S.shape)}, "
                    f"V {tuple(V.shape)}; frames of shape {(B, m, n)} need (B, m, r), (B, r), "
                    f"(B, n, r)."
                )
            factors.append((U, S, V))
        return cls(step, f, history, tuple(factors), trunc or None)


@dataclass(frozen=True)
class Frame:
    """A saved frame: ``index`` (0 = initial condition), ``step``, ``t``, ``f`` (B, m, n),
    ``diagnostics`` (name -> (B,) float64) and the :class:`SolverState` to resume from."""

    index: int
    step: int
    t: float
    f: Tensor
    diagnostics: dict[str, Tensor]
    state: SolverState


# fifth-order upwind derivative weights (x 1/60) for offsets -3..+3, from the WENO5 linear
# weights 1/10, 6/10, 3/10; _W_MINUS is the mirror image for negative speed.
_W_PLUS = (-2.0, 15.0, -60.0, 20.0, 30.0, -3.0, 0.0)
_W_MINUS = (0.0, 3.0, -30.0, -20.0, 60.0, -15.0, 2.0)


def unit_mass_maxwellian(v: Tensor, hv: float) -> Tensor:
    """``w(v) ∝ exp(-v^2 / 2)`` on the grid ``v``, normalized to unit mass: ``hv sum_j w_j = 1``
    (the profile of the mass correction after a truncation)."""
    w = torch.exp(-0.5 * v.square())
    return w / (hv * w.sum())


class VlasovSolver:
    """Batched Vlasov-Poisson stepping for one :class:`SimulationConfig` on one device.

    >>> cfg = SimulationConfig(ic="landau-weak", nx=32, nv=64, t_end=1.0, save_every=10)
    >>> for frame in VlasovSolver(cfg).run():
    ...     print(frame.t, frame.diagnostics["e_norm"])

    Construction emits :class:`VlasovWarning` for the conditions in
    :meth:`SimulationConfig.warnings`.
    """

    def __new__(cls, config: SimulationConfig, *args: Any, **kwargs: Any) -> VlasovSolver:
        # schemes 'lowrank' and 'dlr' keep factors: VlasovSolver(config) builds their class
        scheme = getattr(config, "scheme", None)
        if cls is VlasovSolver and scheme in FACTORED_SCHEMES:
            from neuralfactor.vlasov.lowrank import DLRVlasovSolver, LowRankVlasovSolver

            return super().__new__(LowRankVlasovSolver if scheme == "lowrank" else DLRVlasovSolver)
        return super().__new__(cls)

    def __init__(
        self,
        config: SimulationConfig,
        *,
        device: str | torch.device = "cpu",
        truncation: Truncation | None = None,
    ) -> None:
        if not isinstance(config, SimulationConfig):
            raise TypeError(
                f"The 'config' parameter of VlasovSolver must be a SimulationConfig. "
                f"Got {type(config).__name__}."
            )
        self.config = config
        self.truncation = self._make_truncation(config, truncation)
        self.device = resolve_device(device)
        self.dtype = DTYPES[config.dtype]
        cdt = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        m, n = config.nx, config.nv
        kw = {"device": self.device, "dtype": self.dtype}
        self.x = torch.arange(m, **kw) * config.hx
        self.v = -config.vmax + torch.arange(n, **kw) * config.hv
        self.hx, self.hv, self.dt = config.hx, config.hv, float(config.dt)
        kx = 2 * math.pi / config.length * torch.arange(m // 2 + 1, **kw)
        self._kv = 2 * math.pi / (2 * config.vmax) * torch.arange(n // 2 + 1, **kw)
        # Poisson: dE/dx = rho - 1  ->  E_hat = rho_hat / (i k); zero mean, no Nyquist mode.
        inv = torch.zeros(m // 2 + 1, dtype=cdt, device=self.device)
        inv[1:] = 1.0 / (1j * kx[1:].to(cdt))
        if m % 2 == 0:
            inv[-1] = 0.0
        self._poisson = inv
        if config.scheme == "spectral":  # O(mn) tables: only the spectral scheme needs them
            # exact x-shifts f(x - v tau): multiply the x-spectrum by exp(-i k v tau)
            arg = -kx[:, None] * self.v[None, :]
            ones = torch.ones_like(arg)
            self._shift_half = torch.polar(ones, arg * (0.5 * self.dt))
            self._shift_full = torch.polar(ones, arg * self.dt)
        self._vpos = (self.v > 0)[None, :]  # upwind side in x, per column
        self._wp = torch.tensor(_W_PLUS, **kw) / 60.0
        self._wm = torch.tensor(_W_MINUS, **kw) / 60.0
        #: profile of the mass correction after a truncation (hv sum_j w_j = 1)
        self._w = unit_mass_maxwellian(self.v, self.hv)
        f0 = self.initial_condition(as_generator(config.seed)) if config.ensemble <= 64 else None
        max_e = float(self.electric_field(f0).abs().max()) if f0 is not None else 0.0
        for msg in config.warnings(max_e):
            warnings.warn(msg, VlasovWarning, stacklevel=2)

    # -- building blocks ----------------------------------------------------------------------
    def initial_condition(self, generator: torch.Generator | int | None = None) -> Tensor:
        """f0 of the config on the grid, shape (B, m, n); ``generator`` defaults to the seed."""
        cfg = self.config
        ic = get_initial_condition(cfg.ic)
        gen = None
        if ic.random:
            src = cfg.seed if generator is None else generator
            gen = as_generator(src, device="cpu")
        f0 = ic(self.x.cpu().double(), self.v.cpu().double(), cfg.ic_params, cfg.ensemble, gen)
        return f0.to(device=self.device, dtype=self.dtype).contiguous()

    def density(self, f: Tensor) -> Tensor:
        """``rho(x) = int f dv``, shape (B, m)."""
        return f.sum(-1) * self.hv

    def electric_field(self, f: Tensor) -> Tensor:
        """E (B, m) from the FFT Poisson solve of ``dE/dx = rho - 1`` (zero mean)."""
        return self.field_from_density(self.density(f))

    def field_from_density(self, rho: Tensor) -> Tensor:
        """E (B, m) of a density ``rho`` (B, m) by the FFT Poisson solve."""
        rho_hat = torch.fft.rfft(rho, dim=-1)
        return torch.fft.irfft(rho_hat * self._poisson, n=self.config.nx, dim=-1)

    def diagnostics(self, f: Tensor, E: Tensor | None = None) -> dict[str, Tensor]:
        """:func:`~neuralfactor.vlasov.diagnostics.phase_space_diagnostics` of ``f``."""
        if E is None:
            E = self.electric_field(f)
        return phase_space_diagnostics(f, E, self.v, self.hx, self.hv)

    def _x_shift(self, f: Tensor, phase: Tensor) -> Tensor:
        fh = torch.fft.rfft(f, dim=-2)
        return torch.fft.irfft(fh * phase, n=self.config.nx, dim=-2)

    def _v_shift(self, f: Tensor, E: Tensor) -> Tensor:
        fh = torch.fft.rfft(f, dim=-1)
        arg = (-self.dt) * E[..., None] * self._kv
        return torch.fft.irfft(
            fh * torch.polar(torch.ones_like(arg), arg), n=self.config.nv, dim=-1
        )

    def _check(self, E: Tensor, step: int) -> None:
        if not bool(torch.isfinite(E).all()):
            t = step * self.dt
            raise SimulationDivergedError(
                f"NaN/Inf appeared in the electric field at step {step} (t={t:.6g}); the "
                f"simulation diverged (try a smaller dt, currently {self.dt:g}, or the "
                f"'spectral' scheme).",
                step=step,
                t=t,
            )

    def _upwind(self, f: Tensor, dim: int, h: float, positive: Tensor) -> Tensor:
        """Fifth-order linear upwind derivative along ``dim`` (periodic), stencil chosen by
        ``positive`` (broadcastable to f: True where the advection speed is > 0)."""
        N = f.shape[dim]
        fp = torch.cat([f.narrow(dim, N - 3, 3), f, f.narrow(dim, 0, 3)], dim=dim)
        w = torch.where(positive[..., None], self._wp, self._wm)  # (..., 7)
        out = None
        for o in range(7):
            term = fp.narrow(dim, o, N) * w[..., o]
            out = term if out is None else out + term
        return out / h

    def _rhs(self, f: Tensor, step: int) -> Tensor:
        """F(f) = -v df/dx - E df/dv."""
        E = self.electric_field(f)
        self._check(E, step)
        # x-derivative: speed v_j per column -> weights broadcast over rows (1, n)
        fx = self._upwind(f, -2, self.hx, self._vpos)
        fv = self._upwind(f, -1, self.hv, (E > 0)[..., None])
        return -(self.v * fx) - E[..., None] * fv

    @staticmethod
    def _make_truncation(cfg: SimulationConfig, truncation: Truncation | None) -> Truncation | None:
        if cfg.scheme != "fd5" or not cfg.truncates:
            if truncation is not None:
                raise ValueError(
                    f"A truncation was passed to VlasovSolver but the config does not truncate "
                    f"with it (scheme {cfg.scheme!r}, truncate_tol={cfg.truncate_tol!r}, "
                    f"truncate_rank={cfg.truncate_rank!r}); set truncate_tol or truncate_rank "
                    f"with scheme 'fd5'."
                )
            return None
        if truncation is None:
            if cfg.truncate_with not in (None, "svd-exact"):
                raise ValueError(
                    f"The config truncates with {cfg.truncate_with!r}: build that factorizer "
                    f"and pass truncation=Truncation(factorizer, ...) to VlasovSolver (the "
                    f"solver resolves no factorizer names; neuralfactor.vlasov.make_truncation "
                    f"does)."
                )
            return Truncation(tol=cfg.stage_tol, rank=cfg.truncate_rank)
        if not isinstance(truncation, Truncation):
            got = type(truncation).__name__
            raise TypeError(
                f"The 'truncation' parameter of VlasovSolver must be a Truncation. Got {got}."
            )
        if (truncation.tol, truncation.rank) != (cfg.stage_tol, cfg.truncate_rank):
            raise ValueError(
                f"The truncation ({truncation!r}) does not match the config (tolerance per "
                f"stage {cfg.stage_tol!r} = truncate_tol={cfg.truncate_tol!r} per "
                f"{cfg.truncate_per}, truncate_rank={cfg.truncate_rank!r}); build it with "
                f"the config's stage_tol or rank."
            )
        truncation.check_shape(cfg.nx, cfg.nv)
        return truncation

    def _truncate(self, f: Tensor) -> tuple[Tensor, Tensor]:
        """Truncate every member (``||f - f_r||_F <= tol ||f||_F`` or a fixed rank) with the
        solver's :class:`Truncation`; returns (f_r, ranks).

        With ``mass_correction`` the term ``c w(v)`` (c uniform in x, ``w`` the unit-mass
        Maxwellian of :func:`unit_mass_maxwellian`) restores the total mass of ``f``: the
        correction of the low-rank schemes, applied to the full grid. Ranks exclude it.
        """
        f_r, ranks = self.truncation(f)
        if self.config.mass_correction:
            c = (f - f_r).sum((-2, -1), keepdim=True) / self.config.nx  # uniform in x
            f_r = f_r + c * (self._w * self.hv)
        return f_r, ranks

    # -- stepping -----------------------------------------------------------------------------
    def _spectral_block(self, f: Tensor, step: int, k: int) -> Tensor:
        """``k`` Strang steps from ``step``, the inner half steps in x fused into full ones."""
        f = self._x_shift(f, self._shift_half)
        for s in range(k):
            E = self.electric_field(f)
            self._check(E, step + s + 1)
            f = self._v_shift(f, E)
            f = self._x_shift(f, self._shift_full if s < k - 1 else self._shift_half)
        # irfft along rows leaves f column-major; a resumed run starts from a row-major copy,
        # and multithreaded FFTs round differently on the two layouts: keep states canonical.
        return f.contiguous()

    def _fd5_step(self, st: SolverState) -> tuple[SolverState, Tensor | None]:
        dt, n = self.dt, st.step
        trunc = self.truncation is not None
        ranks = None
        u = st.f
        if n < 2:  # SSP-RK2 start
            u1 = u + dt * self._rhs(u, n + 1)
            if trunc:
                u1, ranks = self._truncate(u1)
            new = 0.5 * u + 0.5 * (u1 + dt * self._rhs(u1, n + 1))
        else:
            u_nm2 = st.history[1]
            new = 0.75 * (u + (2 * dt) * self._rhs(u, n + 1)) + 0.25 * u_nm2
        if trunc:
            new, ranks = self._truncate(new)
        u_nm1 = st.history[0] if st.history else u
        return SolverState(n + 1, new, (u, u_nm1)), ranks

    def run(
        self,
        f0: Tensor | None = None,
        *,
        state: SolverState | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> Iterator[Frame]:
        """Advance and yield every saved frame (frame 0 = ``f0`` unless resuming).

        Parameters
        ----------
        f0 : (B, m, n) initial frames; default :meth:`initial_condition`. Any batch size B.
        state : resume from this :class:`SolverState` (from a yielded :class:`Frame`); the
            first frame yielded is the next one saved after it. Bit-identical to not stopping.
        on_step : called with the step number after every step (progress bars).

        Raises
        ------
        SimulationDivergedError
            when NaN/Inf appears; every frame before it has been yielded.
        """
        cfg = self.config
        K = cfg.save_every
        if state is None:
            f = self.initial_condition() if f0 is None else f0
            if f.ndim != 3 or tuple(f.shape[1:]) != (cfg.nx, cfg.nv):
                raise ValueError(
                    f"The 'f0' parameter of VlasovSolver.run must have shape "
                    f"(B, {cfg.nx}, {cfg.nv}). Got {tuple(f.shape)}."
                )
            f = self._canonical(f)
            if self.truncation is not None:
                self.truncation.reset()
            state = self._initial_state(f)
            yield self._frame(state)
        elif state.step % K:
            raise ValueError(
                f"Can resume only from a saved step (a multiple of save_every={K}). "
                f"Got step {state.step}."
            )
        else:
            state = replace(
                state,
                f=None if state.f is None else self._canonical(state.f),
                history=tuple(self._canonical(h) for h in state.history),
                # factors keep their layout (a store's are contiguous copies of the run's)
                factors=tuple(
                    tuple(t.to(device=self.device, dtype=self.dtype) for t in fac)
                    for fac in state.factors
                ),
            )
            if state.truncation is not None and self.truncation is not None:
                self.truncation.load_carried_state(state.truncation, device=self.device)
        while state.step < cfg.n_steps:
            if cfg.scheme == "spectral":
                f = self._spectral_block(state.f, state.step, K)
                state = SolverState(state.step + K, f, ())
                if on_step is not None:
                    on_step(state.step)
                ranks = None
            else:
                for _ in range(K):
                    state, ranks = self._step(state)
                    if on_step is not None:
                        on_step(state.step)
            yield self._frame(state, ranks)

    def _initial_state(self, f: Tensor) -> SolverState:
        return SolverState(0, f, ())

    def _step(self, st: SolverState) -> tuple[SolverState, Tensor | None]:
        return self._fd5_step(st)

    @property
    def carries_state(self) -> bool:
        """Whether a state is more than its dense ``f`` and history (factors, a stateful
        truncation): a store then needs :meth:`SolverState.exact_tensors` to resume
        bit-identically."""
        return self.truncation is not None and self.truncation.stateful

    def conditions(self) -> dict[str, Any]:
        """What besides the config decides the rounding of a run: the device and the number
        of torch threads (one-threaded and multithreaded FFTs split the work, and so round,
        differently). A run resumed under other conditions is not bit-identical to an
        uninterrupted one; under the same conditions it is."""
        return {"device": str(self.device), "torch_threads": torch.get_num_threads()}

    def _canonical(self, f: Tensor) -> Tensor:
        """A private row-major copy of ``f`` on the run's device and dtype.

        Multithreaded FFTs (MKL, cuFFT) may round differently for different memory layouts
        and alignments of the same values; a state read back from a store (NumPy memory,
        row-major) must enter the stepping exactly as the uninterrupted run's own state does
        (allocated by torch, row-major), or a resumed run drifts at round-off level.
        """
        f = f.to(device=self.device, dtype=self.dtype)
        return f.clone(memory_format=torch.contiguous_format)

    def _frame(self, state: SolverState, ranks: Tensor | None = None) -> Frame:
        E = self.electric_field(state.f)
        self._check(E, state.step)
        diag = self.diagnostics(state.f, E)
        if self.truncation is not None:
            if ranks is None:  # the initial condition is not truncated: the rank it would keep
                ranks = self._truncate(state.f)[1]
            diag["truncation_rank"] = ranks.double()
            if self.truncation.stateful:  # after the frame's own truncation, if any
                state = replace(state, truncation=self.truncation.carried_state())
        return Frame(
            state.step // self.config.save_every,
            state.step,
            state.step * self.dt,
            state.f,
            diag,
            state,
        )


def make_solver(
    config: SimulationConfig,
    *,
    device: str | torch.device = "cpu",
    truncation: Truncation | None = None,
) -> VlasovSolver:
    """The solver of ``config.scheme`` (``VlasovSolver(config)`` is the same):
    :class:`VlasovSolver` for the grid schemes,
    :class:`~neuralfactor.vlasov.lowrank.LowRankVlasovSolver` for ``lowrank``,
    :class:`~neuralfactor.vlasov.lowrank.DLRVlasovSolver` for ``dlr``."""
    return VlasovSolver(config, device=device, truncation=truncation)


@dataclass(frozen=True)
class SimulationResult:
    """In-memory result of :func:`simulate`: ``t`` (T,), ``frames`` (B, T, m, n) or None,
    ``diagnostics`` name -> (B, T) float64."""

    config: SimulationConfig
    t: Tensor
    frames: Tensor | None
    diagnostics: dict[str, Tensor]


def simulate(
    config: SimulationConfig,
    *,
    device: str | torch.device = "cpu",
    f0: Tensor | None = None,
    keep_frames: bool = True,
    truncation: Truncation | None = None,
) -> SimulationResult:
    """Run ``config`` to the end in memory (small runs, tests, validation).

    Frames are kept on the run's device; for long or large runs stream frames to a
    :class:`~neuralfactor.data.store.MatrixStore` instead
    (:func:`~neuralfactor.vlasov.run.simulate_to_store`, ``neuralfactor simulate``).
    """
    solver = make_solver(config, device=device, truncation=truncation)
    ts, fs, ds = [], [], []
    for fr in solver.run(f0):
        ts.append(fr.t)
        if keep_frames:
            fs.append(fr.f)
        ds.append(fr.diagnostics)
    diag = {k: torch.stack([d[k] for d in ds], dim=1) for k in ds[0]}
    frames = torch.stack(fs, dim=1) if keep_frames else None
    return SimulationResult(config, torch.tensor(ts, dtype=torch.float64), frames, diag)
