"""``neuralfactor.vlasov.validation``: the study behind docs/results/vlasov-validation.md
(the full run is minutes; these check its pieces on small problems)."""

import json
from pathlib import Path

import numpy as np
import pytest

from neuralfactor.vlasov import SimulationConfig, VlasovSolver
from neuralfactor.vlasov.validation import (
    LANDAU_FREQ,
    LANDAU_RATE,
    conservation,
    dispersion_records,
    ensemble_records,
    numpy_spectral_block,
    scheme_name,
    stability_records,
)

LEGACY = Path(__file__).resolve().parents[2] / "docs/results/records/vlasov-validation-legacy.jsonl"


def _legacy_keys(section):
    recs = [json.loads(line) for line in LEGACY.read_text().splitlines()]
    return [list(r) for r in recs if r["section"] == section][0][:-1]  # all but "source"


@pytest.mark.parametrize("m,n", [(16, 32), (32, 64)])
def test_numpy_reference_is_the_solvers_spectral_step(m, n):
    fn, K = numpy_spectral_block(m, n, steps=6)
    assert K == 6
    cfg = SimulationConfig(ic="landau-strong", nx=m, nv=n, t_end=1.0)
    solver = VlasovSolver(cfg)
    ours = solver._spectral_block(solver.initial_condition(), 0, K)[0].numpy()
    # the same Strang/FFT step in two FFT libraries: equal to float64 round-off
    np.testing.assert_allclose(fn(), ours, rtol=0, atol=1e-13)


def test_dispersion_roots_match_the_published_values():
    recs, roots = dispersion_records()
    assert [r["case"] for r in recs] == ["Landau", "two-stream", "bump-on-tail"]
    assert list(recs[0]) == _legacy_keys("dispersion")
    # published to 4 digits (Sonnendrücker 2013)
    assert roots["Landau"].real == pytest.approx(LANDAU_FREQ, abs=1e-3)
    assert roots["Landau"].imag == pytest.approx(LANDAU_RATE, abs=1e-3)
    assert roots["two-stream"].imag == pytest.approx(0.2258, abs=1e-3)
    assert abs(roots["two-stream"].real) < 1e-10  # purely growing


def test_conservation_of_planted_diagnostics():
    d = {
        "mass": np.array([2.0, 2.0 + 1e-3, 2.0 - 4e-3]),
        "total_energy": np.array([1.0, 1.5, 1.25]),
        "l2_norm": np.array([4.0, 3.0, 3.0]),
        "entropy": np.array([2.0, 2.5, 3.0]),
        "min_f": np.array([0.0, -1e-3, -2e-3]),
    }
    assert conservation(np.arange(3.0), d) == {
        "mass_rel_err": pytest.approx(2e-3, rel=1e-12),
        "energy_rel_drift": 0.5,
        "l2_rel_change": -0.25,
        "entropy_rel_change": 0.5,
        "min_f": -2e-3,
    }
    assert scheme_name("fd5", 1e-5) == "fd5 + SVD 1e-05" and scheme_name("fd5", None) == "fd5"


def test_ensemble_equals_singles_on_a_small_grid():
    recs = ensemble_records(nx=16, nv=32, t_end=0.5, N=3)
    assert [r["scheme"] for r in recs] == ["spectral", "fd5", "fd5 + SVD 1e-05"]
    assert list(recs[0]) == _legacy_keys("ensemble")
    for r in recs:
        assert r["N"] == 3 and r["max_abs_diff"] <= 1e-12, r


def test_stability_records_a_stable_and_a_diverging_step():
    recs = stability_records(cfls=(0.3, 5.0), nx=16, nv=32, t_end=30.0)
    stable, blown = recs
    assert list(stable) == _legacy_keys("stability")
    assert stable["diverged_step"] is None and stable["max_l2_ratio"] <= 1 + 1e-12
    assert isinstance(blown["diverged_step"], int) and blown["max_l2_ratio"] is None
    base = SimulationConfig(ic="landau-weak", nx=16, nv=32, t_end=30.0, scheme="fd5")
    assert stable["dt"] == pytest.approx(0.3 * base.hx / base.vmax, rel=1e-15)
