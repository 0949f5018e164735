"""Each classical factorizer's Contract holds where its sketch does not cover the matrix.

The property suite draws matrices up to 12x12, where rank + oversample often spans the whole
range and the randomized methods are exact; here the matrices are larger than the sketch and
the spectra flat (the hard case for range finders), so the stated multiples are exercised.
"""

import pytest
import torch
from tests.helpers import planted

import neuralfactor as nf
from neuralfactor.core.factorizer import factorizer_contract

LEARNED_PREFIXES = ("convmf", "fork", "danmf", "matvec", "sketch")
CLASSICAL = [n for n in nf.available_factorizers() if not n.startswith(LEARNED_PREFIXES)]


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_contract_bound_on_flat_and_decaying_spectra(name, dtype):
    c = factorizer_contract(name)
    g = torch.Generator().manual_seed(5)
    flat = torch.randn(3, 60, 80, generator=g, dtype=torch.float64)  # unrelated frames
    slow = planted((3, 60, 80), rank=60, decay=0.97, generator=g)
    for X in (flat, slow):
        X = (X.abs() if c.nonnegative else X).to(dtype)
        assert c.is_valid(X, 5)
        f = nf.make_factorizer(name, rank=5)
        if getattr(f, "requires_fit", False):
            f.fit(X)
        lr = f.factorize(X)
        Xd = X.double()
        s = torch.linalg.svdvals(Xd)
        loss = ((Xd - lr.reconstruct().double()) ** 2).sum((-2, -1)) / (s**2).sum(-1)
        bound = c.loss_bound(X, s, 5)
        assert bool((loss <= bound).all()), (name, loss, bound, c.accuracy)


def test_contract_validity_and_bound_are_exact():
    c = factorizer_contract("nmf")
    X = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    assert c.is_valid(X, 1) and c.is_valid(X, 2)
    assert not c.is_valid(-X, 1)  # nonnegative only
    assert not c.is_valid(X, 0) and not c.is_valid(X, 3) and not c.is_valid(X, True)
    assert not c.is_valid(X.int(), 1)
    Xn = X.clone()
    Xn[0, 0] = float("nan")
    assert not c.is_valid(Xn, 1)
    s = torch.tensor([4.0, 3.0], dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    sub = 10 * 2 * torch.finfo(torch.float64).smallest_normal * eps / 4.0
    # NMF: relative to the rank-1 optimum 9/25, plus round-off 100 eps max(m, n), plus 1e-8
    expected = 9 / 25 + 100 * eps * 2 + sub + 1e-8
    assert float(c.loss_bound(X, s, 2)) == pytest.approx(expected, rel=1e-15)
    exact = factorizer_contract("svd")
    assert float(exact.loss_bound(X, s, 1)) == pytest.approx(9 / 25 + 200 * eps + sub, rel=1e-15)
    assert "1 <= rank <= min(m, n)" in exact.preconditions()
    with pytest.raises(ValueError, match=r"Unknown factorizer 'nope'; expected one of \["):
        factorizer_contract("nope")
