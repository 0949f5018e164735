"""The contract every registered factorizer meets (DESIGN.md: one test over the registry)."""

import pytest
import torch
from tests.helpers import evolving_frames, planted

import neuralfactor as nf
from neuralfactor.core.metrics import effective_rank, ratio_to_optimum, scaled_loss

NAMES = nf.available_factorizers()
# Learned factorizers need real training; their own tests cover them with tiny datasets.
TRAINED = {"matvec-ae", "convmf", "fork", "danmf", "convmf+refine", "nested"}
# Methods defined only for nonnegative input (not Eckart-Young optimal by design).
NONNEGATIVE = {"nmf"}
ALL_CLASSICAL = [
    n for n in NAMES if n not in TRAINED and not n.startswith(("convmf", "fork", "danmf", "sketch"))
]
CLASSICAL = [n for n in ALL_CLASSICAL if n not in NONNEGATIVE]


def _make(name, rank, train=None):
    f = nf.make_factorizer(name, rank=rank)
    if getattr(f, "requires_fit", False):
        f.fit(train)
    return f


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("shape", [(30, 50), (3, 40, 20)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_contract_shapes_dtype_and_planted_rank(name, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    X = planted(shape, rank=5, generator=g, dtype=dtype)
    f = _make(name, 5, train=X.reshape(-1, *shape[-2:]))
    out = f.factorize(X)
    assert isinstance(out, nf.LowRank)
    assert out.U.shape == (*shape[:-1], 5) and out.V.shape == (*shape[:-2], 5, shape[-1])
    assert out.dtype == dtype and out.device == X.device
    # An exactly rank-5 matrix is recovered to working precision. The scaled loss is the square
    # of the relative error, so the bound is eps^2 times 1e6 (relative error <= 1000 eps).
    tol = torch.finfo(dtype).eps ** 2 * 1e6
    assert scaled_loss(X, out).max() <= tol
    assert (effective_rank(out, rtol=1e-3) == 5).all()


@pytest.mark.parametrize("name", CLASSICAL)
def test_contract_batched_equals_looped(name, seed):
    g = torch.Generator().manual_seed(seed)
    X = planted((4, 24, 36), rank=24, decay=0.7, generator=g)
    f = _make(name, 4, train=X)
    batched = f.factorize(X).reconstruct()
    if hasattr(f, "reset"):
        f.reset()
    looped = torch.stack([f.factorize(X[i]).reconstruct() for i in range(4)])
    torch.testing.assert_close(batched, looped, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", CLASSICAL)
def test_contract_near_optimal_on_decaying_spectrum(name, seed):
    # s_i = 0.8^i: the optimum is well above round-off, so the ratio is meaningful.
    g = torch.Generator().manual_seed(seed)
    X = planted((2, 48, 64), rank=48, decay=0.8, generator=g)
    f = _make(name, 6, train=X)
    if hasattr(f, "reset"):  # streaming: unrelated matrices are separate streams (cold starts)
        out = [f.reset().factorize(X[i]).reconstruct() for i in range(X.shape[0])]
        ratio = ratio_to_optimum(X, torch.stack(out), rank=6)
    else:
        ratio = ratio_to_optimum(X, f.factorize(X))
    assert (ratio >= 1 - 1e-10).all(), "nothing may beat Eckart-Young"
    assert (ratio <= 1.01).all(), ratio


BAD = [
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), ValueError, "contains NaN"),
    (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), ValueError, "contains Inf"),
    (torch.ones(5), ValueError, "at least 2 dimensions"),
    (torch.ones(0, 4, 4), ValueError, "empty batch"),
    (torch.ones(4, 4, dtype=torch.int64), TypeError, "floating dtype"),
    ([[1.0, 2.0]], TypeError, "torch.Tensor or numpy.ndarray"),
]


@pytest.mark.parametrize("name", ALL_CLASSICAL)
@pytest.mark.parametrize("bad,exc,msg", BAD)
def test_contract_rejects_bad_input(name, bad, exc, msg):
    f = _make(name, 1, train=torch.randn(3, 4, 4, dtype=torch.float64))
    with pytest.raises(exc, match=msg):
        f.factorize(bad)


@pytest.mark.parametrize("name", ALL_CLASSICAL)
@pytest.mark.parametrize("rank", [0, -1, 41])
def test_contract_rejects_rank_out_of_range(name, rank):
    X = torch.randn(40, 50, dtype=torch.float64)
    if rank < 1:
        with pytest.raises(ValueError, match="'rank' parameter .* must be an int >= 1"):
            nf.make_factorizer(name, rank=rank)
        return
    f = nf.make_factorizer(name, rank=rank)
    with pytest.raises(ValueError, match=r"'rank' parameter .* must be an int in \[1, "):
        if getattr(f, "requires_fit", False):
            f.fit(X[None])
        f.factorize(X)


def test_unknown_factorizer_lists_known():
    with pytest.raises(ValueError, match=r"Unknown factorizer 'nope'; expected one of \[.*'svd'"):
        nf.make_factorizer("nope", rank=3)


def test_pod_basis_requires_fit_and_matching_shape():
    f = nf.make_factorizer("pod-basis", rank=3)
    with pytest.raises(nf.NotFittedError, match="call fit"):
        f.factorize(torch.randn(10, 12, dtype=torch.float64))
    f.fit(torch.randn(5, 10, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match="fitted on 10x12 frames"):
        f.factorize(torch.randn(12, 10, dtype=torch.float64))


def test_warm_subspace_tracks_evolving_frames():
    X = evolving_frames(40, 32, 48)
    f = nf.make_factorizer("warm-subspace", rank=6)
    ratio = ratio_to_optimum(X, f.factorize(X))
    assert ratio.max() <= 1.05, ratio.max()


def test_warm_subspace_refuses_changed_stream_shape():
    f = nf.make_factorizer("warm-subspace", rank=3)
    f.factorize(torch.randn(20, 30, dtype=torch.float64))
    with pytest.raises(ValueError, match="call reset"):
        f.factorize(torch.randn(20, 31, dtype=torch.float64))
    f.reset().factorize(torch.randn(20, 31, dtype=torch.float64))


@pytest.mark.parametrize("kernel", ["lapack", "gemm"])
def test_warm_subspace_stream_state_continues_bit_identically(kernel):
    # a rank-2 first frame makes the GEMM kernel draw refill directions: the generator is state
    X = evolving_frames(10, 32, 48)
    X[0] = planted((32, 48), rank=2)
    whole = nf.make_factorizer("warm-subspace", rank=6, kernel=kernel).factorize(X)
    f = nf.make_factorizer("warm-subspace", rank=6, kernel=kernel)
    f.factorize(X[:4])
    state = {k: t.clone() for k, t in f.stream_state().items()}
    assert set(state) == {"basis", "generator"}
    g = nf.make_factorizer("warm-subspace", rank=6, kernel=kernel).load_stream_state(state)
    rest = g.factorize(X[4:])
    assert torch.equal(rest.U, whole.U[4:]) and torch.equal(rest.V, whole.V[4:])
    cold = nf.make_factorizer("warm-subspace", rank=6, kernel=kernel).factorize(X[4:])
    assert not torch.equal(cold.U, whole.U[4:])  # the state is what made the difference
    assert g.load_stream_state({}).basis is None  # an empty state is a fresh stream
    with pytest.raises(ValueError, match=r"Unknown warm-subspace stream-state entries \['P'\]"):
        g.load_stream_state({"P": state["basis"]})


def test_svds_arpack_accepts_rank_min_m_n():
    # scipy's ARPACK cannot compute min(m, n) triplets; the documented dense fallback does
    X = torch.randn(10, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lr = nf.make_factorizer("svds-arpack", rank=10).factorize(X)
    torch.testing.assert_close(lr.S, torch.linalg.svdvals(X), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(NONNEGATIVE & set(NAMES)))
def test_contract_nonnegative_methods(name, seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(3, 30, 4, generator=g, dtype=torch.float64)
    H = torch.rand(3, 4, 40, generator=g, dtype=torch.float64)
    X = W @ H  # nonnegative, rank 4
    f = nf.make_factorizer(name, rank=4)
    out = f.factorize(X)
    assert out.U.shape == (3, 30, 4) and out.V.shape == (3, 4, 40) and out.dtype == X.dtype
    assert (out.U >= 0).all() and (out.V >= 0).all()
    # nonnegative rank-4 input is representable exactly; iterative NMF gets close, not exact
    assert scaled_loss(X, out).max() < 1e-3
    looped = torch.stack([f.factorize(X[i]).reconstruct() for i in range(3)])
    torch.testing.assert_close(out.reconstruct(), looped, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="must be nonnegative"):
        f.factorize(X - 1.0)


def test_warm_subspace_regains_rank_after_a_low_rank_first_frame():
    # A stream that starts on a rank-2 frame (like an initial condition 1 + a cos(kx) times a
    # Maxwellian) must still track the full-rank frames after it.
    X = evolving_frames(12, 32, 48)
    X[0] = planted((32, 48), rank=2)
    f = nf.make_factorizer("warm-subspace", rank=8)
    lr = f.factorize(X)
    assert (effective_rank(lr[1:], rtol=1e-6) == 8).all()
    # one iteration per frame: the refilled random directions converge over the next frames
    assert ratio_to_optimum(X[3:], lr[3:]).max() <= 1.05
