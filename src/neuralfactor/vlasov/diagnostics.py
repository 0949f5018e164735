"""Diagnostics of phase-space frames and the analytic references they are checked against.

* :func:`phase_space_diagnostics`: electric energy, mass, momentum, kinetic and total energy,
  L2 norm, entropy per ensemble member, batched, in float64.
* :func:`fit_rate`: damping/growth rate (and frequency) of ``log ||E||`` over a time window,
  through the local maxima ("peaks", for oscillating modes) or by least squares on the curve
  ("lsq", for purely growing modes).
* :func:`dispersion_root`: a root of the kinetic dispersion relation of a plasma of drifting
  Maxwellian electron populations, through the plasma dispersion function
  ``Z(z) = i sqrt(pi) w(z)`` (``scipy.special.wofz``).
* :func:`numerical_rank`: singular values of every frame above ``rtol * s_max``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DIAGNOSTIC_NAMES",
    "RateFit",
    "dispersion_relation",
    "dispersion_root",
    "field_energy",
    "fit_rate",
    "numerical_rank",
    "phase_space_diagnostics",
]

#: Names of the per-frame diagnostics, in the order they are stored.
DIAGNOSTIC_NAMES: tuple[str, ...] = (
    "electric_energy",
    "e_norm",
    "mass",
    "momentum",
    "kinetic_energy",
    "total_energy",
    "l2_norm",
    "entropy",
    "min_f",
)


def field_energy(E: Tensor, hx: float) -> Tensor:
    """Electric energy ``1/2 int E^2 dx`` of fields ``E`` (*, m) on a uniform periodic grid."""
    return 0.5 * hx * E.double().square().sum(-1)


def phase_space_diagnostics(
    f: Tensor, E: Tensor, v: Tensor, hx: float, hv: float
) -> dict[str, Tensor]:
    """Conserved quantities and norms of frames ``f`` (B, m, n) with fields ``E`` (B, m).

    Returns float64 tensors of shape (B,): ``electric_energy`` (1/2 int E^2 dx), ``e_norm``
    (``||E||_2 = sqrt(int E^2 dx)``, the quantity whose rates are fitted), ``mass`` (int f),
    ``momentum`` (int f v), ``kinetic_energy`` (1/2 int f v^2), ``total_energy`` (kinetic +
    electric; conserved by the exact dynamics), ``l2_norm`` (sqrt(int f^2), a Casimir),
    ``entropy`` (-int f log f over f > 0, a Casimir) and ``min_f`` (negative values appear
    when the scheme undershoots). Cost O(B m n).
    """
    fd = f.double()
    vd = v.double()
    dA = hx * hv
    ee = field_energy(E, hx)
    pos = fd.clamp_min(0.0)
    ent = -(torch.where(pos > 0, pos * torch.log(torch.where(pos > 0, pos, 1.0)), 0.0)).sum(
        (-2, -1)
    )
    ke = 0.5 * dA * (fd * vd.square()).sum((-2, -1))
    return {
        "electric_energy": ee,
        "e_norm": torch.sqrt(2.0 * ee),
        "mass": dA * fd.sum((-2, -1)),
        "momentum": dA * (fd * vd).sum((-2, -1)),
        "kinetic_energy": ke,
        "total_energy": ke + ee,
        "l2_norm": torch.sqrt(dA * fd.square().sum((-2, -1))),
        "entropy": dA * ent,
        "min_f": fd.flatten(-2).amin(-1),
    }


@dataclass(frozen=True)
class RateFit:
    """Result of :func:`fit_rate`: ``log y ~ intercept + rate * t`` on ``window``.

    ``frequency`` is ``pi / mean spacing of successive peaks`` (|E| peaks twice per period) for
    the ``peaks`` method, ``nan`` for ``lsq``. ``t_points`` are the times used in the fit.
    """

    rate: float
    frequency: float
    intercept: float
    method: str
    window: tuple[float, float]
    t_points: tuple[float, ...]

    @property
    def n_points(self) -> int:
        return len(self.t_points)


def _peaks(t: np.ndarray, logy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior local maxima refined by a parabola through the three samples around each."""
    i = np.nonzero((logy[1:-1] > logy[:-2]) & (logy[1:-1] >= logy[2:]))[0] + 1
    y0, y1, y2 = logy[i - 1], logy[i], logy[i + 1]
    h = t[i + 1] - t[i]
    den = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den != 0, 0.5 * (y0 - y2) / den, 0.0)
    tp = t[i] + off * h
    yp = y1 - 0.25 * (y0 - y2) * off
    return tp, yp


def fit_rate(
    t: Sequence[float] | np.ndarray | Tensor,
    y: Sequence[float] | np.ndarray | Tensor,
    *,
    window: tuple[float, float] | None = None,
    method: str = "peaks",
    max_peaks: int | None = None,
) -> RateFit:
    """Fit ``y ~ exp(rate t)`` on ``window`` = (t0, t1) by least squares on ``log y``.

    Parameters
    ----------
    t, y : 1-D arrays of the same length (times, e.g. ``e_norm`` per frame), y > 0.
    window : (t0, t1), default the whole range. The rate of strong Landau damping depends
        strongly on it: always state it.
    method : ``"peaks"`` fits a line through the local maxima of ``log y`` (refined by a
        parabola), the standard estimate for oscillating modes, and returns the frequency from
        their spacing; ``"lsq"`` fits every sample (purely growing modes, e.g. two-stream).
    max_peaks : with ``"peaks"``, use only the first ``max_peaks`` maxima in the window.
    """
    t = np.asarray(t.cpu() if isinstance(t, Tensor) else t, dtype=np.float64).ravel()
    y = np.asarray(y.cpu() if isinstance(y, Tensor) else y, dtype=np.float64).ravel()
    if t.shape != y.shape or t.size < 3:
        raise ValueError(
            f"fit_rate needs t and y of the same length >= 3. Got {t.size} and {y.size}."
        )
    if method not in ("peaks", "lsq"):
        raise ValueError(
            f"The 'method' parameter of fit_rate must be one of ['peaks', 'lsq']. Got {method!r}."
        )
    t0, t1 = (float(t[0]), float(t[-1])) if window is None else map(float, window)
    if not t0 < t1:
        raise ValueError(f"The 'window' parameter of fit_rate must satisfy t0 < t1. Got {window}.")
    sel = (t >= t0) & (t <= t1)
    if np.any(y[sel] <= 0) or not np.all(np.isfinite(y[sel])):
        raise ValueError("fit_rate needs finite y > 0 in the window (it fits log y).")
    logy = np.log(np.where(y > 0, y, np.nan))
    if method == "lsq":
        tt, ll = t[sel], logy[sel]
        freq = math.nan
    else:
        tp, yp = _peaks(t, logy)
        keep = (tp >= t0) & (tp <= t1)
        tt, ll = tp[keep], yp[keep]
        if max_peaks is not None:
            tt, ll = tt[:max_peaks], ll[:max_peaks]
        freq = math.pi / float(np.mean(np.diff(tt))) if tt.size >= 2 else math.nan
    if tt.size < 2:
        raise ValueError(
            f"fit_rate found {tt.size} point(s) in the window {(t0, t1)} with method {method!r}; "
            f"widen the window or save frames more often."
        )
    rate, intercept = np.polyfit(tt, ll, 1)
    return RateFit(
        float(rate), float(freq), float(intercept), method, (t0, t1), tuple(float(s) for s in tt)
    )


def dispersion_relation(
    omega: complex, k: float, species: Sequence[tuple[float, float, float]]
) -> complex:
    """Kinetic dielectric function ``eps(k, omega)`` of Maxwellian electron populations.

    ``species`` lists (density n_s, drift u_s, thermal velocity vt_s) with sum n_s = 1 (so the
    plasma frequency is 1). ``eps = 1 + sum_s n_s / (k vt_s)^2 (1 + z_s Z(z_s))``,
    ``z_s = (omega - k u_s) / (sqrt(2) k vt_s)``, ``Z(z) = i sqrt(pi) w(z)`` (Fried & Conte).
    """
    from scipy.special import wofz

    eps = 1.0 + 0.0j
    for n_s, u_s, vt_s in species:
        z = (omega - k * u_s) / (math.sqrt(2.0) * k * vt_s)
        Z = 1j * math.sqrt(math.pi) * wofz(z)
        eps += n_s / (k * vt_s) ** 2 * (1.0 + z * Z)
    return complex(eps)


def dispersion_root(
    k: float, species: Sequence[tuple[float, float, float]], guess: complex
) -> complex:
    """A root ``omega`` of :func:`dispersion_relation` near ``guess`` (secant iteration).

    Examples: Landau damping at k = 0.5, ``species=[(1, 0, 1)]``, guess 1.4 - 0.15j gives
    1.4156 - 0.1533j; two-stream at k = 0.2, ``[(0.5, 2.4, 1), (0.5, -2.4, 1)]``, guess 0.2j.
    """
    from scipy.optimize import newton

    guess = complex(guess)
    if not (math.isfinite(guess.real) and math.isfinite(guess.imag)):
        raise ValueError(f"The 'guess' parameter of dispersion_root must be finite. Got {guess}.")
    try:
        root = newton(lambda w: dispersion_relation(w, k, species), guess, tol=1e-13, maxiter=200)
    except RuntimeError as exc:
        raise RuntimeError(f"dispersion_root did not converge from guess {guess}: {exc}") from None
    root = complex(root)
    if abs(dispersion_relation(root, k, species)) > 1e-8:
        raise RuntimeError(f"dispersion_root did not converge from guess {guess} (got {root}).")
    return root


def numerical_rank(frames: Tensor, rtol: float = 1e-3) -> Tensor:
    """Number of singular values above ``rtol * s_max`` for every frame of ``frames`` (*, m, n).

    Cost O(min(m, n)^2 max(m, n)) per frame (batched LAPACK). Computed in float64.
    """
    return torch.linalg.matrix_rank(frames.double(), rtol=rtol)
