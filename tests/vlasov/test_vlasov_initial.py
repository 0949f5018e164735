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


# every parameter of every condition: a value it refuses and the message naming the rule
BAD_VALUES = {
    "alpha": (1.5, r"must be in \[-1, 1\] \(a larger \|alpha\| makes f0 negative\). Got 1.5"),
    "k": (0.0, r"must be > 0. Got 0"),
    "np": (-0.1, r"must be >= 0. Got -0.1"),
    "nb": (-1.0, r"must be >= 0. Got -1"),
    "vt": (0.0, r"must be > 0. Got 0"),
    "modes": (2.5, r"must be an integer >= 1. Got 2.5"),
    "hermite": (65, r"must be an integer in \[1, 64\]. Got 65"),
}


@pytest.mark.parametrize(
    "name,key",
    [(n, k) for n in ALL for k in get_initial_condition(n).defaults if k in BAD_VALUES],
)
def test_each_parameter_out_of_range_is_refused_by_name(name, key):
    value, match = BAD_VALUES[key]
    with pytest.raises(ValueError, match=rf"The '{key}' parameter of initial condition '{name}' "):
        get_initial_condition(name).resolve_params({key: value})
    with pytest.raises(ValueError, match=match):
        SimulationConfig(ic=name, nx=8, nv=16, t_end=1.0, ic_params={key: value})


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_is_finite_checked(name):
    for key in get_initial_condition(name).defaults:
        with pytest.raises(ValueError, match=rf"'{key}' of initial condition '{name}' must be fin"):
            get_initial_condition(name).resolve_params({key: math.inf})


def test_bump_on_tail_needs_some_electrons_and_edge_values_are_accepted():
    ic = get_initial_condition("bump-on-tail")
    with pytest.raises(ValueError, match=r"'np' and 'nb' .* are both 0 \(no electrons\)"):
        ic.resolve_params({"np": 0.0, "nb": 0.0})
    # the edges of each range are valid input
    assert ic.resolve_params({"np": 0.0, "alpha": -1.0})["np"] == 0.0
    rs = get_initial_condition("random-smooth")
    assert rs.resolve_params({"modes": 1, "hermite": 64}) == {
        "alpha": 0.3, "k": 0.5, "modes": 1.0, "hermite": 64.0
    }  # fmt: skip
    cfg = SimulationConfig(ic="random-smooth", nx=16, nv=64, t_end=1.0, ic_params={"hermite": 64})
    f0 = VlasovSolver(cfg).initial_condition()
    assert bool(torch.isfinite(f0).all()) and bool((f0 >= 0).all())


def test_alpha_at_one_keeps_f0_non_negative():
    for name in ALL:
        cfg = SimulationConfig(ic=name, nx=16, nv=64, t_end=1.0, ic_params={"alpha": 1.0})
        assert float(VlasovSolver(cfg).initial_condition().min()) >= 0.0, name
