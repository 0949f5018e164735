"""Initial conditions: shapes, normalisation, positivity, parameters and errors."""

import math

import pytest
import torch

from neuralfactor.vlasov import (
    SimulationConfig,
    VlasovSolver,
    available_initial_conditions,
    get_initial_condition,
)

ALL = available_initial_conditions()


def test_registry_lists_every_documented_condition():
    assert set(ALL) == {
        "landau-strong",
        "landau-weak",
        "two-stream",
        "two-stream-v2",
        "bump-on-tail",
        "random-smooth",
    }


@pytest.mark.parametrize("name", ALL)
def test_shape_positivity_and_unit_mean_density(name):
    cfg = SimulationConfig(ic=name, nx=32, nv=128, t_end=1.0, ensemble=3, seed=5)
    f0 = VlasovSolver(cfg).initial_condition()
    assert f0.shape == (3, 32, 128) and f0.dtype == torch.float64
    assert bool((f0 >= 0).all())
    # mean density 1: int f dx dv = L. The v-quadrature of a Gaussian on a periodic box is
    # spectrally accurate, so the error is set by f at the edge (<= 1e-6 x max f by the check).
    mass = f0.sum((-2, -1)) * cfg.hx * cfg.hv
    torch.testing.assert_close(
        mass, torch.full((3,), cfg.length, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_landau_matches_formula():
    cfg = SimulationConfig(ic="landau-strong", nx=16, nv=32, t_end=1.0)
    s = VlasovSolver(cfg)
    f0 = s.initial_condition()[0]
    x, v = s.x, s.v
    want = (
        (1 + 0.5 * torch.cos(0.5 * x))[:, None]
        * torch.exp(-(v**2) / 2)[None]
        / math.sqrt(2 * math.pi)
    )
    torch.testing.assert_close(f0, want, rtol=1e-14, atol=0)
    assert cfg.length == pytest.approx(4 * math.pi) and cfg.vmax == pytest.approx(2 * math.pi)


def test_two_stream_domain_defaults():
    cfg = SimulationConfig(ic="two-stream", nx=16, nv=64, t_end=1.0)
    assert cfg.length == pytest.approx(10 * math.pi) and cfg.vmax == 9.0
    assert cfg.ic_params == {"alpha": 1e-3, "k": 0.2, "v0": 2.4}


def test_random_smooth_is_seeded_and_differs_between_members(seed):
    cfg = SimulationConfig(ic="random-smooth", nx=16, nv=64, t_end=1.0, ensemble=2, seed=seed)
    a = VlasovSolver(cfg).initial_condition()
    b = VlasovSolver(cfg).initial_condition()
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])
    c = VlasovSolver(cfg.replace(seed=seed + 7)).initial_condition()
    assert not torch.allclose(a, c)


def test_random_smooth_needs_generator():
    ic = get_initial_condition("random-smooth")
    x = torch.linspace(0, 1, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="random and needs a generator"):
        ic(x, x, ic.resolve_params(), 1, None)


def test_unknown_condition_lists_known_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown initial condition 'landau'; expected one of "
        r"\['bump-on-tail'",
    ):
        get_initial_condition("landau")


def test_unknown_and_bad_parameters():
    ic = get_initial_condition("landau-weak")
    with pytest.raises(
        ValueError, match=r"Unknown parameter 'beta'.*expected one of \['alpha', 'k'\]"
    ):
        ic.resolve_params({"beta": 1.0})
    with pytest.raises(
        TypeError, match="'alpha' of initial condition 'landau-weak' must be a number"
    ):
        ic.resolve_params({"alpha": "big"})
    with pytest.raises(
        ValueError, match=r"'k' parameter of initial condition 'landau-weak' must be > 0"
    ):
        ic.resolve_params({"k": -1.0})


@pytest.mark.parametrize("name", ALL)
def test_required_vmax_is_inside_the_default_box(name):
    ic = get_initial_condition(name)
    need = ic.required_vmax(ic.resolve_params())
    assert 0 < need <= ic.vmax
