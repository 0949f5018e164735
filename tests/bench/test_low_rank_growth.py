"""The two-stream growth-rate windows of the low-rank solvers campaign are the validation
page's, and the fit measures a known rate on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralfactor.bench.low_rank_solvers import CASES, _fit_rates, growth_windows
from neuralfactor.vlasov import dispersion_root
from neuralfactor.vlasov.validation import INSTABILITY_CASES, TWO_STREAM


def test_windows_are_the_validation_windows_for_the_case_alpha():
    for case in ("two-stream", "two-stream-a1e-6"):
        ic, params, _, _ = CASES[case]
        want = [tuple(w) for c, a, w in INSTABILITY_CASES if c == ic and a == params["alpha"]]
        assert want, case
        wins, need = growth_windows(case, 1e3)
        assert wins == want and need == want[0][1]


def test_windows_that_end_after_t_end_are_dropped():
    assert growth_windows("two-stream", 10.0) == ([], 26.0)
    assert growth_windows("two-stream", 26.0) == ([(16.0, 26.0)], 26.0)
    assert growth_windows("two-stream", 28.0)[0] == [(16.0, 26.0), (18.0, 27.0)]
    assert growth_windows("two-stream-a1e-6", 28.0) == ([], 40.0)


def _e_norm(t, rate):
    # a growing mode on top of a damped one that dominates before t ~ 10
    return 1e-6 * np.exp(rate * t) + 1e-3 * np.exp(-0.5 * t) * np.abs(np.cos(1.3 * t))


def test_growth_rate_is_fitted_on_the_windows_against_the_root():
    root = dispersion_root(0.2, TWO_STREAM, 0.2j).imag
    t = np.arange(0.0, 41.0, 0.1)
    rec = {}
    _fit_rates(rec, "two-stream-a1e-6", t, {"e_norm": _e_norm(t, 1.01 * root)}, 41.0)
    assert rec["rate_window"] == [20.0, 40.0] and rec["alpha"] == 1e-6
    assert rec["rate_ref"] == pytest.approx(root)
    assert rec["rate_rel_err"] == pytest.approx(0.01, abs=1e-4)
    assert len(rec["rate_fits"]) == 1 and rec["rate_fits"][0][2] == rec["rate"]
    rec = {}
    _fit_rates(rec, "two-stream", t[t <= 28.0], {"e_norm": _e_norm(t[t <= 28.0], root)}, 28.0)
    assert [f[:2] for f in rec["rate_fits"]] == [[16.0, 26.0], [18.0, 27.0]]
    assert abs(rec["rate_rel_err"]) < 5e-3  # the damped mode still weighs a little at t = 16


def test_a_run_that_ends_before_the_window_says_so():
    t = np.arange(0.0, 10.01, 0.1)
    rec = {}
    _fit_rates(rec, "two-stream", t, {"e_norm": np.exp(0.2 * t)}, 10.0)
    assert "rate" not in rec
    assert rec["fit_error"] == "t_end = 10 ends before the validation's window (needs t_end >= 26)"
    wins, need = growth_windows("weak-landau", 40.0)  # no validation window: never fitted
    assert wins == [] and math.isinf(need)
