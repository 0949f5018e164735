"""Named initial conditions for 1D1V Vlasov-Poisson, batched over an ensemble.

Every initial condition is a pure function ``f0(x, v, params, batch, generator) -> (B, m, n)``
on the phase-space grid (rows = positions x, columns = velocities v), registered under a name
with its standard parameters and domain as defaults. Electrons are normalised so that the
spatial mean of the density is 1 (plasma frequency 1, neutralising ion background 1).

=================  =====================================================================
name               f0(x, v)
=================  =====================================================================
``landau-strong``  (1 + a cos kx) M(v),  a=0.5, k=0.5, x in [0, 4pi], v in [-2pi, 2pi]
``landau-weak``    same with a=0.01 (the original data used 0.015)
``two-stream``     (1 + a cos kx) (M(v - v0) + M(v + v0)) / 2,  a=1e-3, k=0.2, v0=2.4,
                   x in [0, 10pi], v in [-9, 9]
``two-stream-v2``  (1 + a cos kx) v^2 M(v),  a=0.01, k=0.5, x in [0, 4pi], v in [-8, 8]
``bump-on-tail``   (1 + a cos kx) (np M(v) + nb M((v - vb) / vt)),  np=0.9, nb=0.2,
                   vb=4.5, vt=0.5, a=0.04, k=0.3, x in [0, 20pi/3], v in [-9, 9]
``random-smooth``  M(v) (1 + sum of random low Fourier modes in x times low Hermite
                   functions in v), amplitude ``a`` in max-norm, drawn per member from a seed
=================  =====================================================================

Parameters admit (:data:`PARAMETER_RULES`): ``|alpha| <= 1`` (f0 >= 0), ``k > 0``,
``np, nb >= 0`` (not both 0), ``vt > 0``, ``v0`` and ``vb`` any finite number, ``modes`` an
integer >= 1, ``hermite`` an integer in [1, 64].

``M(v) = exp(-v^2/2) / sqrt(2 pi)``. References: Cheng & Knorr, J. Comput. Phys. 22 (1976);
Filbet & Sonnendruecker, Comput. Phys. Commun. 150 (2003) (bump-on-tail parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BOUNDARY_TOL",
    "MAX_HERMITE",
    "PARAMETER_RULES",
    "InitialCondition",
    "available_initial_conditions",
    "get_initial_condition",
    "maxwellian",
]

#: f at |v| = vmax, relative to max f, above which the velocity box is too small.
BOUNDARY_TOL = 1e-6

_SQRT_2PI = math.sqrt(2.0 * math.pi)

#: Highest Hermite function of ``random-smooth``: He_l(v) / sqrt(l!) overflows float64 at
#: |v| ~ 60 from l ~ 200 on.
MAX_HERMITE = 64


def _is_count(value: float, hi: float = math.inf) -> bool:
    return float(value).is_integer() and 1 <= value <= hi


#: What every parameter name admits (the same meaning in every initial condition that has
#: it): a predicate and the phrase completing "must be ...". Values are also finite numbers.
PARAMETER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "alpha": (lambda a: abs(a) <= 1.0, "in [-1, 1] (a larger |alpha| makes f0 negative)"),
    "k": (lambda k: k > 0, "> 0"),
    "v0": (lambda v: True, "a finite number"),
    "np": (lambda n: n >= 0, ">= 0"),
    "nb": (lambda n: n >= 0, ">= 0"),
    "vb": (lambda v: True, "a finite number"),
    "vt": (lambda v: v > 0, "> 0"),
    "modes": (_is_count, "an integer >= 1"),
    "hermite": (lambda h: _is_count(h, MAX_HERMITE), f"an integer in [1, {MAX_HERMITE}]"),
}


def maxwellian(v: Tensor, *, drift: float = 0.0, vt: float = 1.0) -> Tensor:
    """Unit-density Maxwellian ``exp(-(v - drift)^2 / (2 vt^2)) / (sqrt(2 pi) vt)``."""
    return torch.exp(-0.5 * ((v - drift) / vt) ** 2) / (_SQRT_2PI * vt)


def _modulation(x: Tensor, p: Mapping[str, Any]) -> Tensor:
    """``1 + alpha cos(k x)`` as a column (m, 1)."""
    return (1.0 + p["alpha"] * torch.cos(p["k"] * x))[:, None]


def _landau(x, v, p, batch, generator):
    f = _modulation(x, p) * maxwellian(v)[None, :]
    return f.expand(batch, -1, -1).clone()


def _two_stream(x, v, p, batch, generator):
    prof = 0.5 * (maxwellian(v, drift=p["v0"]) + maxwellian(v, drift=-p["v0"]))
    return (_modulation(x, p) * prof[None, :]).expand(batch, -1, -1).clone()


def _two_stream_v2(x, v, p, batch, generator):
    prof = v**2 * maxwellian(v)
    return (_modulation(x, p) * prof[None, :]).expand(batch, -1, -1).clone()


def _bump_on_tail(x, v, p, batch, generator):
    # np M(v) + nb exp(-(v-vb)^2/(2 vt^2))/sqrt(2pi): the bump carries density nb*vt.
    prof = p["np"] * maxwellian(v) + p["nb"] * p["vt"] * maxwellian(v, drift=p["vb"], vt=p["vt"])
    return (_modulation(x, p) * prof[None, :]).expand(batch, -1, -1).clone()


def _random_smooth(x, v, p, batch, generator):
    """Maxwellian times (1 + a * P / max|P|), P a random smooth field, one draw per member.

    P(x, v) = sum_{j=1..modes} sum_{l=0..hermite-1} c_{jl} cos(j k x + phi_{jl}) He_l(v) / l!^(1/2)
    with c_{jl} ~ N(0, 1) / (j^2 (l + 1)): smooth in x and v, zero spatial mean (mass = 1 exactly).
    """
    modes, nh = int(p["modes"]), int(p["hermite"])
    dev, dt = x.device, x.dtype
    c = torch.randn(batch, modes, nh, generator=generator, device=dev, dtype=dt)
    phi = 2 * math.pi * torch.rand(batch, modes, nh, generator=generator, device=dev, dtype=dt)
    j = torch.arange(1, modes + 1, device=dev, dtype=dt)
    ell = torch.arange(nh, device=dev, dtype=dt)
    c = c / (j[:, None] ** 2 * (ell[None, :] + 1.0))
    # probabilists' Hermite polynomials He_l(v), normalised by sqrt(l!)
    he = [torch.ones_like(v), v.clone()]
    for n in range(1, nh - 1):
        he.append(v * he[n] - n * he[n - 1])
    he_t = torch.stack(he[:nh]) / torch.sqrt(torch.exp(torch.lgamma(ell + 1.0)))[:, None]  # (nh, n)
    # cos(j k x + phi) = cos(jkx) cos(phi) - sin(jkx) sin(phi)
    jkx = p["k"] * j[:, None] * x[None, :]  # (modes, m)
    a_cos = c * torch.cos(phi)
    a_sin = -c * torch.sin(phi)
    P = torch.einsum("bjl,jm,ln->bmn", a_cos, torch.cos(jkx), he_t) + torch.einsum(
        "bjl,jm,ln->bmn", a_sin, torch.sin(jkx), he_t
    )
    # the max over the velocity box of |P| M is what bounds positivity; normalise P M / M
    scale = P.abs().flatten(1).amax(dim=1).clamp_min(torch.finfo(dt).tiny)[:, None, None]
    return maxwellian(v)[None, None, :] * (1.0 + p["alpha"] * P / scale)


@dataclass(frozen=True)
class InitialCondition:
    """A named initial condition: its formula, default parameters and default domain.

    ``length`` is the period in x (default ``2 pi / k``), ``vmax`` the half-width of the
    velocity box [-vmax, vmax]. ``k`` is the fundamental wavenumber used for the recurrence
    time ``2 pi / (k dv)`` of the spectral scheme.
    """

    name: str
    fn: Callable[..., Tensor]
    defaults: Mapping[str, float]
    vmax: float
    description: str
    length: float | None = None
    random: bool = False

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Defaults updated by ``overrides``, each checked against :data:`PARAMETER_RULES`.

        Unknown names and values out of range raise ``ValueError`` (non-numbers ``TypeError``)
        naming the parameter, the initial condition, the admitted range and the value given.
        """
        params = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise ValueError(
                    f"Unknown parameter {key!r} for initial condition {self.name!r}; expected "
                    f"one of {sorted(params)}."
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"The parameter {key!r} of initial condition {self.name!r} must be a number. "
                    f"Got {value!r}."
                )
            if not math.isfinite(float(value)):
                raise ValueError(
                    f"The parameter {key!r} of initial condition {self.name!r} must be finite. "
                    f"Got {value!r}."
                )
            params[key] = float(value)
        for key, value in params.items():
            ok, phrase = PARAMETER_RULES[key]
            if not ok(value):
                raise ValueError(
                    f"The {key!r} parameter of initial condition {self.name!r} must be "
                    f"{phrase}. Got {value:g}."
                )
        if "np" in params and params["np"] + params["nb"] == 0:
            raise ValueError(
                f"The 'np' and 'nb' parameters of initial condition {self.name!r} are both 0 "
                f"(no electrons); give at least one a positive density."
            )
        return params

    def default_length(self, params: Mapping[str, float]) -> float:
        return self.length if self.length is not None else 2.0 * math.pi / params["k"]

    def __call__(
        self,
        x: Tensor,
        v: Tensor,
        params: Mapping[str, float],
        batch: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Evaluate f0 on the grid: ``x`` (m,), ``v`` (n,) -> ``(batch, m, n)``."""
        if self.random and generator is None:
            raise ValueError(f"Initial condition {self.name!r} is random and needs a generator.")
        return self.fn(x, v, params, batch, generator)

    def required_vmax(self, params: Mapping[str, float], *, tol: float = BOUNDARY_TOL) -> float:
        """Smallest vmax with max_x f(x, +-vmax) <= tol * max f (scanned on a fine v grid).

        For ``random-smooth`` the Maxwellian envelope (amplitude 1 + alpha) is used.
        """
        v = torch.linspace(-60.0, 60.0, 24001, dtype=torch.float64)
        x = torch.linspace(0.0, 2 * math.pi / params["k"], 33, dtype=torch.float64)
        if self.random:
            prof = (1.0 + abs(params["alpha"])) * maxwellian(v)
        else:
            prof = self.fn(x, v, params, 1, None)[0].abs().amax(dim=0)
        big = prof > tol * prof.max()
        return float(v[big].abs().max())


_REGISTRY: dict[str, InitialCondition] = {}


def _register(ic: InitialCondition) -> None:
    unruled = sorted(set(ic.defaults) - set(PARAMETER_RULES))
    if unruled:
        raise ValueError(f"Initial condition {ic.name!r}: no PARAMETER_RULES entry for {unruled}.")
    _REGISTRY[ic.name] = ic


_register(
    InitialCondition(
        "landau-strong",
        _landau,
        {"alpha": 0.5, "k": 0.5},
        2 * math.pi,
        "Strong (nonlinear) Landau damping, the original ConvMF data's setting.",
    )
)
_register(
    InitialCondition(
        "landau-weak",
        _landau,
        {"alpha": 0.01, "k": 0.5},
        2 * math.pi,
        "Weak (linear) Landau damping; rate -0.1533, frequency 1.4156 at k=0.5.",
    )
)
_register(
    InitialCondition(
        "two-stream",
        _two_stream,
        {"alpha": 1e-3, "k": 0.2, "v0": 2.4},
        9.0,
        "Two Maxwellian beams at +-v0 (the original data's setting).",
    )
)
_register(
    InitialCondition(
        "two-stream-v2",
        _two_stream_v2,
        {"alpha": 0.01, "k": 0.5},
        8.0,
        "Two-stream variant f0 = (1 + a cos kx) v^2 M(v).",
    )
)
_register(
    InitialCondition(
        "bump-on-tail",
        _bump_on_tail,
        {"alpha": 0.04, "k": 0.3, "np": 0.9, "nb": 0.2, "vb": 4.5, "vt": 0.5},
        9.0,
        "Bump-on-tail (Filbet & Sonnendruecker 2003 parameters).",
    )
)
_register(
    InitialCondition(
        "random-smooth",
        _random_smooth,
        {"alpha": 0.3, "k": 0.5, "modes": 3, "hermite": 4},
        2 * math.pi,
        "Smoothed random perturbation of a Maxwellian, one draw per ensemble member.",
        random=True,
    )
)


def available_initial_conditions() -> list[str]:
    """Names of the registered initial conditions, sorted."""
    return sorted(_REGISTRY)


def get_initial_condition(name: str) -> InitialCondition:
    """Look up an initial condition; an unknown name lists the known ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"Unknown initial condition {name!r}; expected one of {available_initial_conditions()}."
        )
    return _REGISTRY[name]
