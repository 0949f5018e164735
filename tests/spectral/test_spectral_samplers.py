"""sampler_gram_error: the half-batch Gram error of a hydrogen training sampler."""

import pytest
import torch

from neuralfactor.spectral.analytic import hydrogen_2d_eigenfunctions, polar_quadrature
from neuralfactor.spectral.evaluate import sampler_gram_error
from neuralfactor.spectral.operators import SchrodingerOperator


def test_one_draw_matches_the_direct_computation(seed):
    op = SchrodingerOperator("coulomb", sampler="radial", sigma=8.0)
    got = sampler_gram_error(op, batch=64, draws=1, generator=torch.Generator().manual_seed(seed))
    b = op.sample(64, torch.Generator().manual_seed(seed), dtype=torch.float64)
    x, w = polar_quadrature(96, 32, 2.0)
    Q = hydrogen_2d_eigenfunctions(x, 3)
    ref = Q.mT @ (w[:, None] * Q)
    d = ref.diagonal().sqrt()
    E = []
    for part in (slice(0, 32), slice(32, None)):
        P = hydrogen_2d_eigenfunctions(b.x[part], 3)
        E.append((P.mT @ (2 * b.w[part, None] * P) - ref) / (d[:, None] * d[None]))
    E = torch.stack(E)
    assert got["estimates"] == 2
    assert got["rms"] == pytest.approx(float(E.square().mean().sqrt()), rel=1e-12)
    assert got["max"] == pytest.approx(float(E.abs().max()), rel=1e-12)


def test_lattice_is_far_more_accurate_than_monte_carlo(seed):
    err = {}
    for sampler in ("radial", "lattice"):
        op = SchrodingerOperator("coulomb", sampler=sampler, lattice_theta=16)
        gen = torch.Generator().manual_seed(seed)
        err[sampler] = sampler_gram_error(op, batch=1024, draws=5, generator=gen)["rms"]
    # a 32 x 16 polar rule per half integrates these smooth states to ~1e-4 (r.m.s. ~3e-5);
    # 512 Monte Carlo points leave errors of order 1e-1
    assert err["lattice"] < 1e-3 < err["radial"], err


def test_bad_input():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="needs the 2-D hydrogen operator"):
        sampler_gram_error(SchrodingerOperator("harmonic"), batch=64, draws=1, generator=gen)
    with pytest.raises(ValueError, match="'draws'"):
        sampler_gram_error(SchrodingerOperator("coulomb"), batch=64, draws=0, generator=gen)
