"""Diagnostics against closed forms: rate fits, dispersion roots, moments, numerical rank."""

import math

import numpy as np
import pytest
import torch

from neuralfactor.vlasov import (
    dispersion_relation,
    dispersion_root,
    fit_rate,
    maxwellian,
    numerical_rank,
    phase_space_diagnostics,
)


def test_fit_rate_peaks_recovers_planted_rate_and_frequency():
    t = np.linspace(0, 30, 6001)
    y = np.exp(-0.1533 * t) * np.abs(np.cos(1.4156 * t + 0.3))
    fit = fit_rate(t, y, window=(1, 25), method="peaks")
    # parabolic peak refinement on a 0.005 grid: errors ~ h^2 * curvature, far below 1e-4
    assert fit.rate == pytest.approx(-0.1533, rel=1e-4)
    assert fit.frequency == pytest.approx(1.4156, rel=1e-4)
    assert all(1 <= s <= 25 for s in fit.t_points) and fit.n_points >= 10


def test_fit_rate_max_peaks_and_lsq():
    t = np.linspace(0, 10, 1001)
    fit = fit_rate(t, 3.0 * np.exp(0.2258 * t), method="lsq")
    assert fit.rate == pytest.approx(0.2258, rel=1e-12) and math.isnan(fit.frequency)
    assert fit.intercept == pytest.approx(math.log(3.0), rel=1e-12)
    y = np.exp(-0.29 * t) * np.abs(np.cos(1.5 * t))
    assert fit_rate(t, y, method="peaks", max_peaks=4).n_points == 4


def test_fit_rate_errors():
    t = np.linspace(0, 1, 11)
    with pytest.raises(ValueError, match="same length >= 3"):
        fit_rate(t, t[:5])
    with pytest.raises(ValueError, match=r"'method' parameter of fit_rate must be one of"):
        fit_rate(t, np.exp(t), method="fft")
    with pytest.raises(ValueError, match="t0 < t1"):
        fit_rate(t, np.exp(t), window=(0.5, 0.2))
    with pytest.raises(ValueError, match="found 0 point"):
        fit_rate(t, np.exp(t), method="peaks")
    with pytest.raises(ValueError, match="finite y > 0"):
        fit_rate(t, -np.exp(t), method="lsq")


def test_landau_root_matches_literature():
    # Landau damping at k = 0.5: omega = 1.4156 - 0.1533 i (e.g. Sonnendruecker's lecture
    # notes, Cheng & Knorr 1976); 4 printed digits.
    w = dispersion_root(0.5, [(1.0, 0.0, 1.0)], 1.4 - 0.15j)
    assert w.real == pytest.approx(1.4156, abs=1e-4)
    assert w.imag == pytest.approx(-0.1533, abs=1e-4)
    assert abs(dispersion_relation(w, 0.5, [(1.0, 0.0, 1.0)])) < 1e-10


def test_two_stream_root_is_purely_growing():
    w = dispersion_root(0.2, [(0.5, 2.4, 1.0), (0.5, -2.4, 1.0)], 0.2j)
    assert abs(w.real) < 1e-10
    assert w.imag == pytest.approx(0.2258, abs=1e-4)


def test_dispersion_root_reports_failure():
    with pytest.raises(ValueError, match="'guess' parameter of dispersion_root must be finite"):
        dispersion_root(0.5, [(1.0, 0.0, 1.0)], complex("nan"))


def test_phase_space_moments_of_a_maxwellian():
    m, n, L, vmax = 16, 256, 2 * math.pi, 10.0
    v = -vmax + torch.arange(n, dtype=torch.float64) * (2 * vmax / n)
    f = maxwellian(v, drift=0.5)[None, None, :].expand(2, m, n)
    E = torch.zeros(2, m, dtype=torch.float64)
    d = phase_space_diagnostics(f, E, v, L / m, 2 * vmax / n)
    # closed forms: mass L, momentum L u, kinetic energy L (1 + u^2) / 2, L2^2 = L / (2 sqrt(pi))
    # (periodic trapezoid rule on a Gaussian: exponentially accurate, so 1e-12)
    torch.testing.assert_close(
        d["mass"], torch.full((2,), L, dtype=torch.float64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        d["momentum"], torch.full((2,), 0.5 * L, dtype=torch.float64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        d["kinetic_energy"], torch.full((2,), L * 1.25 / 2, dtype=torch.float64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        d["l2_norm"] ** 2,
        torch.full((2,), L / (2 * math.sqrt(math.pi)), dtype=torch.float64),
        rtol=1e-12,
        atol=0,
    )
    # entropy of a unit Maxwellian: (1 + log(2 pi)) / 2 per unit length
    torch.testing.assert_close(
        d["entropy"],
        torch.full((2,), L * (1 + math.log(2 * math.pi)) / 2, dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    assert float(d["electric_energy"].abs().max()) == 0.0


def test_numerical_rank_of_planted_matrices(gen):
    U = torch.linalg.qr(torch.randn(3, 40, 7, generator=gen, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(3, 30, 7, generator=gen, dtype=torch.float64)).Q
    s = torch.tensor([1.0, 0.5, 0.1, 0.02, 5e-3, 2e-4, 1e-6], dtype=torch.float64)
    X = U @ torch.diag(s) @ V.mT
    assert numerical_rank(X, rtol=1e-3).tolist() == [5, 5, 5]
    assert numerical_rank(X, rtol=1e-5).tolist() == [6, 6, 6]
