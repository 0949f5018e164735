"""Property-based tests (Hypothesis) of the public factorization API.

Random shapes (1x1 to 12x12, 0-2 batch dimensions), dtypes, ranks in and out of range,
non-finite entries and degenerate matrices (zero, constant, rank-deficient, huge and tiny
and subnormal scales, 1xn and mx1).

Every registered classical factorizer states a :class:`~neuralfactor.core.factorizer.Contract`
(its valid inputs and accuracy bound, next to the method). For input inside the contract the
factorizer must return a valid ``LowRank`` (shape, dtype, device kept; finite) whose scaled
loss is within the contract's bound: a refusal of valid input is a FAILURE, and so is an
inaccurate result. Input outside it (non-finite entries, rank outside [1, min(m, n)], a
negative entry for NMF) must raise a documented error (ValueError/TypeError/
FactorizationError) with a message, never a raw error from inside torch or scipy and never
output. Per method the session counts inputs tried, valid inputs accepted / refused /
inaccurate, invalid inputs rejected, and the worst ratio to the optimum
(``NEURALFACTOR_RELIABILITY_COUNTS``, see conftest.py).

A learned factorizer (``fork`` and ``fork+refine``, a tiny model fitted once on 8x8 frames)
states no contract: it may refuse input with a documented error, and with refinement (a
least-squares projection) its loss is at most that of the zero matrix. Devices: CPU, and
CUDA when available.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import neuralfactor as nf
from neuralfactor.core.factorizer import FactorizationError, NotFittedError, factorizer_contract

LEARNED_PREFIXES = ("convmf", "fork", "danmf", "matvec", "sketch")
CLASSICAL = [n for n in nf.available_factorizers() if not n.startswith(LEARNED_PREFIXES)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DOCUMENTED = (ValueError, TypeError, FactorizationError, NotFittedError)
UNREFINED_NETWORKS = {"fork"}
KINDS = ["randn", "zero", "const", "rank-deficient", "one-hot", "nonfinite"]


@st.composite
def matrices(draw, m=None, n=None):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    m = m or draw(st.integers(1, 12))
    n = n or draw(st.integers(1, 12))
    kind = draw(st.sampled_from(KINDS))
    lo, hi = (-44, 37) if dtype == torch.float32 else (-320, 300)
    exp = draw(st.one_of(st.just(0), st.integers(lo, hi)))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, m, n, generator=g, dtype=torch.float64)
    if kind == "zero":
        X.zero_()
    elif kind == "const":
        X.fill_(1.0)
    elif kind == "rank-deficient":
        k = draw(st.integers(1, max(1, min(m, n) - 1)))
        X = X[..., :k] @ torch.randn(*batch, k, n, generator=g, dtype=torch.float64)
    elif kind == "one-hot":
        X.zero_()
        X[..., draw(st.integers(0, m - 1)), draw(st.integers(0, n - 1))] = 1.0
    X = (X * 10.0**exp).to(dtype)  # may round to 0/subnormal (tiny) - part of the test
    if kind == "nonfinite":
        X.view(-1)[draw(st.integers(0, X.numel() - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
    # mostly valid ranks, sometimes out of range on either side
    rank = draw(st.one_of(st.integers(1, min(m, n)), st.integers(-1, min(m, n) + 2)))
    device = draw(st.sampled_from(DEVICES))
    note(f"kind={kind} exp={exp} shape={tuple(X.shape)} dtype={dtype} rank={rank}")
    return X.to(device), rank, kind


def _scaled_losses(X, lr):
    """(loss, optimum) per matrix in float64, after a common per-matrix scaling (the loss is
    scale invariant; the scaling keeps huge/tiny inputs from overflowing the squares)."""
    Xd = X.double()
    amax = Xd.abs().amax(dim=(-2, -1), keepdim=True)
    amax = torch.where(amax > 0, amax, torch.ones_like(amax))
    Xn = Xd / amax
    A, B = lr.factors()
    R = (A.double() @ B.double()) / amax
    s = torch.linalg.svdvals(Xn)
    total = (s**2).sum(-1)
    nz = total > 0
    denom = torch.where(nz, total, torch.ones_like(total))
    loss = ((Xn - R) ** 2).sum((-2, -1)) / denom
    opt = (s[..., lr.rank :] ** 2).sum(-1) / denom
    return loss, opt, nz, s


def _check_output(X, rank, lr):
    """Shape, dtype, device, finiteness and the Eckart-Young floor of an accepted result;
    returns (loss, opt, nz, singular values of the scaled X)."""
    assert isinstance(lr, nf.LowRank)
    assert lr.shape == tuple(X.shape) and lr.rank == rank
    assert lr.dtype == X.dtype and lr.device == X.device
    A, B = lr.factors()
    assert bool(torch.isfinite(A).all() and torch.isfinite(B).all()), "non-finite factors"
    loss, opt, nz, s = _scaled_losses(X, lr)
    fi = torch.finfo(X.dtype)
    # Eckart-Young: no rank-r matrix beats the optimum, up to the round-off of the float64
    # check and, for subnormal data, the absolute spacing of subnormals (tiny * eps) relative
    # to the matrix's largest entry: factors of such matrices cannot be stored more exactly.
    amax = X.double().abs().amax(dim=(-2, -1)).clamp_min(fi.smallest_normal * fi.eps)
    sub = 10 * math.sqrt(X.shape[-2] * X.shape[-1]) * fi.smallest_normal * fi.eps / amax
    assert bool((loss >= opt - 1e-9 - sub).all()), (loss, opt)
    return loss, opt, nz, s


def _factorize(name, X, rank):
    f = nf.make_factorizer(name, rank=rank)
    if getattr(f, "requires_fit", False):
        f.fit(X.reshape(-1, *X.shape[-2:]))
    return f.factorize(X)


def _record_worst(tally, key, value):
    tally[key] = max(tally.get(key, 0.0), round(float(value), 6))


def test_every_classical_factorizer_states_a_contract(tally):
    missing = [n for n in CLASSICAL if factorizer_contract(n) is None]
    assert not missing, f"classical factorizers without a Contract: {missing}"
    for name in CLASSICAL:
        c = factorizer_contract(name)
        assert c.accuracy and "PLACEHOLDER" not in c.accuracy, name
        assert 1.0 <= c.loss_factor <= 10.0, (name, c.loss_factor)
        # the records carry the contracts the counts were made under (for the results page)
        tally[f"contract_preconditions.{name}"] = c.preconditions()
        tally[f"contract_accuracy.{name}"] = c.accuracy


@pytest.mark.parametrize("name", CLASSICAL)
@given(data=matrices())
def test_classical_factorizers_accept_valid_input_within_their_bound(name, data, tally):
    X, rank, kind = data
    contract = factorizer_contract(name)
    if contract.nonnegative and kind != "nonfinite":
        X = X.abs()
    valid = contract.is_valid(X, rank)
    tally[f"property_inputs.{name}"] += 1
    tally[f"property_valid.{name}"] += int(valid)
    try:
        lr = _factorize(name, X, rank)
    except DOCUMENTED as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        if valid:
            tally[f"property_refused.{name}"] += 1
            raise AssertionError(
                f"{name} refused valid input ({contract.preconditions()}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        tally[f"property_rejected_invalid.{name}"] += 1
        return
    assert valid, f"{name} accepted input outside its contract ({contract.preconditions()})"
    loss, opt, nz, s = _check_output(X, rank, lr)
    bound = contract.loss_bound(X, s, rank)
    big = opt > 1e-6  # a ratio to the optimum means something only well above round-off
    if bool(big.any()):
        _record_worst(tally, f"property_worst_ratio.{name}", (loss[big] / opt[big]).max())
    if not bool((loss <= bound).all()):
        tally[f"property_inaccurate.{name}"] += 1
        raise AssertionError(
            f"{name} is less accurate than its contract ({contract.accuracy}): scaled loss "
            f"{loss.tolist()} > bound {bound.tolist()} (optimum {opt.tolist()})"
        )
    tally[f"property_accepted.{name}"] += 1


def _check_learned(f, X, kind, tally, key):
    tally[f"property_inputs.{key}"] += 1
    try:
        lr = f.factorize(X)
    except DOCUMENTED as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        tally[f"property_refused.{key}"] += 1
        return
    assert kind != "nonfinite", "non-finite input was accepted"
    loss, opt, nz, _ = _check_output(X, 3, lr)
    tally[f"property_accepted.{key}"] += 1
    if key not in UNREFINED_NETWORKS:
        # least-squares refinement projects X onto span(U): never worse than the zero matrix.
        # A bare network's U V (no refinement) may be: it is a regression, not a projection.
        assert bool((loss[nz] <= 1 + 100 * torch.finfo(X.dtype).eps).all()), loss


@pytest.fixture(scope="module")
def fitted_fork():
    from neuralfactor.amortized.factorizer import LearnedFactorizer, TrainSettings

    g = torch.Generator().manual_seed(0)
    frames = torch.randn(20, 8, 3, generator=g) @ torch.randn(20, 3, 8, generator=g)
    out = {}
    for refine in (False, True):
        f = LearnedFactorizer(
            3,
            model="fork",
            refine="lstsq" if refine else "none",
            settings=TrainSettings(epochs=2, lr=3e-3, batch_size=10, seed=0),
            model_kwargs={"stem": (32,), "branch": (16,)},
        )
        out["fork+refine" if refine else "fork"] = f.fit(frames)
    return out


@pytest.mark.parametrize("name", ["fork", "fork+refine"])
@given(data=matrices(m=8, n=8))
def test_learned_factorizer_returns_valid_lowrank_or_documented_error(
    name, data, fitted_fork, tally
):
    X, _, kind = data
    f = fitted_fork[name]
    _check_learned(f, X.to("cpu"), kind, tally, name)


def test_wrong_frame_shape_for_a_learned_factorizer_is_refused(fitted_fork):
    with pytest.raises(ValueError, match=r"8x8|8, 8|shape"):
        fitted_fork["fork"].factorize(torch.randn(9, 8))
