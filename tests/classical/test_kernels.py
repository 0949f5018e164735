"""Both classical kernels (LAPACK on CPU, GEMM-only for GPUs), the accuracy-driven modes and
the flop counts.

References are float64 SVDs of planted matrices; tolerances follow the dtype of the work.
"""

import pytest
import torch
from tests.helpers import evolving_frames, planted

import neuralfactor as nf
from neuralfactor.classical import flop_floor, flops, gemm_rate
from neuralfactor.classical._kernels import resolve_kernel, scale_if_needed
from neuralfactor.classical.randomized import randomized_svd, randomized_svd_gemm
from neuralfactor.core.metrics import ratio_to_optimum

KERNELS = ["lapack", "gemm"]
STREAMING = ["rsvd", "rsvd-gemm", "warm-subspace", "pod-basis"]
NEAR_OPTIMAL = ["rsvd", "rsvd-gemm", "warm-subspace"]  # pod-basis: a global basis, not optimal


def _make(name, rank, kernel, train, **kw):
    f = nf.make_factorizer(name, rank=rank, kernel=kernel, **kw)
    if getattr(f, "requires_fit", False):
        f.fit(train)
    return f


# ----------------------------------------------------------------------------- kernel choice
def test_auto_kernel_is_lapack_on_cpu_and_gemm_elsewhere():
    assert resolve_kernel("auto", torch.device("cpu"), caller="x") == "lapack"
    assert resolve_kernel("auto", torch.device("cuda"), caller="x") == "gemm"
    assert resolve_kernel("gemm", torch.device("cpu"), caller="x") == "gemm"
    assert resolve_kernel("lapack", torch.device("cuda"), caller="x") == "lapack"
    # rsvd-gemm: its name pins "auto" to the GEMM kernel on every device
    assert resolve_kernel("auto", torch.device("cpu"), caller="x", auto="gemm") == "gemm"
    with pytest.raises(ValueError, match=r"'kernel' parameter of x must be one of \['auto'"):
        resolve_kernel("blas", torch.device("cpu"), caller="x")


@pytest.mark.parametrize("name", STREAMING)
def test_every_documented_kernel_value_is_accepted_and_others_refused(name):
    for kernel in ("auto", "lapack", "gemm"):
        nf.make_factorizer(name, rank=2, kernel=kernel)
    with pytest.raises(ValueError, match=rf"'kernel' parameter of {name} must be one of"):
        nf.make_factorizer(name, rank=2, kernel="blas")


def test_rsvd_gemm_auto_runs_the_gemm_kernel_on_cpu():
    X = planted((40, 50), rank=40, decay=0.8)
    gemm = nf.make_factorizer("rsvd-gemm", rank=4).factorize(X)
    lapack = nf.make_factorizer("rsvd", rank=4).factorize(X)
    assert gemm.S is None and lapack.S is not None  # GEMM kernel: V = U^T X, no S


# ----------------------------------------------------------------------------- scaling
def test_scale_if_needed_leaves_normal_input_alone_and_scales_extremes_exactly():
    X = torch.randn(3, 8, 9, dtype=torch.float32)
    Xs, inv = scale_if_needed(X)
    assert inv is None and Xs is X
    for factor in (1e-40, 1e-12, 1e12, 1e37):  # subnormal, tiny, huge float32
        Y = X.clone()
        Y[1] *= factor
        Ys, inv = scale_if_needed(Y)
        assert inv is not None
        amax = Ys.abs().amax(dim=(-2, -1))
        assert ((amax >= 0.5) & (amax < 1)).all()
        assert torch.equal(Ys * inv, Y)  # powers of two: exact
    Z = torch.zeros(2, 4, 4)
    assert scale_if_needed(Z)[1] is None  # zero needs nothing


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("factor", [0.0, 1.0, -1.0, 1e-300, 1e-40, 1e-12, 1e12, 1e37, 1e300])
@pytest.mark.parametrize("shape", [(8, 9), (1, 8, 9), (1, 1, 8, 9)])
def test_one_matrix_scaling_decides_as_the_batched_path(dtype, factor, shape):
    # one matrix takes a fused min/max pass; its decision and result equal the batched path's
    X = (torch.randn(8, 9, dtype=torch.float64) * factor).to(dtype).reshape(shape)
    got, inv = scale_if_needed(X)
    # the batched path on two copies of the matrix (a batch of two decides per matrix)
    ref, ref_inv = scale_if_needed(X.reshape(1, 8, 9).expand(2, 8, 9).clone())
    assert (inv is None) == (ref_inv is None)
    if inv is None:
        assert got is X
    else:
        torch.testing.assert_close(got.reshape(8, 9), ref[0], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(inv.reshape(()), ref_inv[0].reshape(()), rtol=0, atol=0)
    nan = X.clone()
    nan.view(-1)[0] = float("nan")
    assert scale_if_needed(nan)[1] is None  # NaN is left to the finiteness checks, as batched


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", NEAR_OPTIMAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_match_the_float64_reference(name, kernel, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    X = planted((3, 48, 64), rank=48, decay=0.7, generator=g)
    f = _make(name, 6, kernel, X)
    if name == "warm-subspace":  # unrelated matrices: separate streams
        lrs = [f.reset().factorize(X[i].to(dtype)) for i in range(3)]
        A = torch.stack([lr.reconstruct() for lr in lrs])
    else:
        A = f.factorize(X.to(dtype)).reconstruct()
    assert A.dtype == dtype
    s = torch.linalg.svdvals(X)
    opt = (s[..., 6:] ** 2).sum(-1)
    loss = ((X - A.double()) ** 2).sum((-2, -1))
    # optimum/||X||^2 ~ 0.7^12 ~ 1e-2, far above float32 round-off: the 1% band applies to both
    assert (loss >= opt * (1 - 1e-6)).all()
    assert (loss <= 1.01 * opt).all(), loss / opt


@pytest.mark.parametrize("kernel", KERNELS)
def test_rsvd_singular_values_match_reference_in_working_precision(kernel, seed):
    g = torch.Generator().manual_seed(seed)
    X = planted((2, 60, 80), rank=8, generator=g)  # exact rank 8, s in [1, 10]
    ref = torch.linalg.svdvals(X)[..., :8]
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):  # ~100 eps relative
        lr = randomized_svd(X.to(dtype), 8, kernel=kernel, generator=g)
        S = lr.S if lr.S is not None else lr.V.norm(dim=-1)  # GEMM: Ritz values = |rows of V|
        torch.testing.assert_close(S.double(), ref, rtol=tol, atol=0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pod_basis_kernels_give_the_float64_rayleigh_ritz_projection(kernel, dtype, seed):
    # One iteration from the global basis P: the best rank-r approximation whose column space
    # lies in span(X P). Both kernels compute that same object; float64 SVDs give the reference.
    g = torch.Generator().manual_seed(seed)
    X = planted((3, 40, 56), rank=40, decay=0.8, generator=g)
    f = _make("pod-basis", 5, kernel, X)
    A = f.factorize(X.to(dtype)).reconstruct().double()
    Q = torch.linalg.qr(X @ f.basis.double()).Q
    Ub, _, _ = torch.linalg.svd(Q.mT @ X, full_matrices=False)
    Ur = Q @ Ub[..., :5]
    ref = Ur @ (Ur.mT @ X)
    tol = 1e-10 if dtype == torch.float64 else 1e-4  # ~1e3 eps of the working precision
    assert ((A - ref).norm(dim=(-2, -1)) / X.norm(dim=(-2, -1))).max() < tol


# ----------------------------------------------------------------------------- robustness
def _robust_inputs():
    g = torch.Generator().manual_seed(3)
    base = planted((4, 30, 40), rank=30, decay=0.8, generator=g)
    deficient = planted((4, 30, 40), rank=2, generator=g)
    return {
        "subnormal32": (base.float() * 1e-41, torch.float32),
        "tiny64": (base * 1e-305, torch.float64),
        "huge32": (base.float() * 1e37, torch.float32),
        "huge64": (base * 1e300, torch.float64),
        "deficient32": (deficient.float(), torch.float32),
        "zero": (torch.zeros(4, 30, 40), torch.float32),
    }


def _normalized_loss(X, lr):
    Xd = X.double()
    amax = Xd.abs().amax(dim=(-2, -1), keepdim=True)
    A, B = lr.factors()
    R = (A.double() @ B.double()) / amax
    return ((Xd / amax - R) ** 2).sum((-2, -1)) / ((Xd / amax) ** 2).sum((-2, -1))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", STREAMING)
@pytest.mark.parametrize("case", list(_robust_inputs()))
def test_kernels_are_robust_on_extreme_and_degenerate_input(name, kernel, case):
    X, dtype = _robust_inputs()[case]
    train = X if case != "zero" else torch.randn(4, 30, 40)
    lr = _make(name, 8, kernel, train).factorize(X)
    A, B = lr.factors()
    assert A.dtype == dtype and torch.isfinite(A).all() and torch.isfinite(B).all()
    if case == "zero":
        assert (lr.reconstruct() == 0).all()
        return
    loss = _normalized_loss(X, lr)
    if case == "deficient32":
        # rank 2 < 8: recovered to float32 working precision (relative error ~ 1e3 eps)
        assert loss.max() < 1e-9
        return
    # Scale equivariance: the same matrices brought to the normal range by one exact power of
    # two give the same relative error (the kernels scale extreme input exactly that way). The
    # factors of a subnormal matrix are themselves subnormal (a few bits lost): looser there.
    _, e = torch.frexp(X.double().abs().amax())
    Xn = (X.double() * 2.0 ** (-int(e))).to(dtype)
    ref = _normalized_loss(Xn, _make(name, 8, kernel, Xn).factorize(Xn))
    rtol = 1e-3 if case == "subnormal32" else 1e-6
    torch.testing.assert_close(loss, ref, rtol=rtol, atol=1e-12)
    assert (loss < 0.1).all()  # decay 0.8, rank 8: the optimum is 0.8^16 = 2.8e-2


# ----------------------------------------------------------------------------- rsvd tol
def _sklearn_infinite_rank():
    sk = pytest.importorskip("sklearn.datasets")
    X = sk.make_low_rank_matrix(
        n_samples=100, n_features=500, effective_rank=5, tail_strength=1.0, random_state=0
    )
    return torch.from_numpy(X)


@pytest.mark.parametrize("kernel", KERNELS)
def test_rsvd_tol_meets_sklearn_infinite_rank_tolerance(kernel):
    # scikit-learn's test_randomized_svd_infinite_rank: assert_almost_equal(s[:10], sap,
    # decimal=3), i.e. |error| < 1.5e-3, reached there with n_iter=5.
    X = _sklearn_infinite_rank()
    s = torch.linalg.svdvals(X)[:10]
    g = torch.Generator().manual_seed(0)

    def err(**kw):
        lr = randomized_svd(X, 10, kernel=kernel, generator=g.manual_seed(0), **kw)
        S = lr.S if lr.S is not None else lr.V.norm(dim=-1)
        return float((S - s).abs().max())

    assert err() > 1.5e-3  # the defaults' regime: 2 power iterations are not enough here
    assert err(tol=1e-2, n_iter=0) < 1.5e-3
    assert err(tol=1e-3, n_iter=0) < 1.5e-4  # the estimate is conservative, not optimistic


def test_rsvd_tol_stops_each_matrix_on_its_own(seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.stack(
        [
            planted((60, 90), rank=60, decay=0.5, generator=g),  # converges at once
            planted((60, 90), rank=60, decay=0.97, generator=g),  # needs iterations
        ]
    )
    f = nf.make_factorizer("rsvd", rank=5, n_iter=0, tol=1e-4, seed=seed)
    both = f.factorize(X)
    iters = f.iterations.clone()
    assert iters.shape == (2,) and iters[0] < iters[1] <= 30
    one = [f.factorize(X[i]).reconstruct() for i in range(2)]
    torch.testing.assert_close(both.reconstruct(), torch.stack(one), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "kw,exc,msg",
    [
        ({"tol": -1.0}, ValueError, "'tol' parameter of rsvd must be > 0"),
        ({"tol": "a"}, TypeError, "'tol' parameter of rsvd must be a finite number"),
        ({"tol": 1e-3, "n_iter": 5, "max_iter": 3}, ValueError, "'max_iter' parameter .* >= 5"),
    ],
)
def test_rsvd_tol_parameters_are_validated(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        nf.make_factorizer("rsvd", rank=2, **kw)
    with pytest.raises(exc, match=msg):
        randomized_svd(torch.randn(5, 6), 2, **kw)


def test_rsvd_gemm_function_is_the_gemm_kernel():
    X = planted((30, 40), rank=30, decay=0.8)
    g = torch.Generator()
    a = randomized_svd_gemm(X, 4, generator=g.manual_seed(1))
    b = randomized_svd(X, 4, kernel="gemm", generator=g.manual_seed(1))
    torch.testing.assert_close(a.reconstruct(), b.reconstruct(), rtol=0, atol=0)


# ----------------------------------------------------------------------------- streams
def rotating_stream(T, m, n, *, decay, speed, generator, streams=()):
    """Frames U(t) diag(s) V(t)^T whose singular subspaces rotate slowly: U(t) = exp(t A) U0
    with A skew-symmetric (likewise V), s_i = decay^i (planted optimum known exactly)."""
    k = min(m, n)

    def rotation(d):
        A = torch.randn(*streams, d, d, generator=generator, dtype=torch.float64)
        return torch.linalg.matrix_exp(speed * (A - A.mT) / d**0.5)

    U0 = torch.linalg.qr(torch.randn(*streams, m, k, generator=generator, dtype=torch.float64)).Q
    V0 = torch.linalg.qr(torch.randn(*streams, n, k, generator=generator, dtype=torch.float64)).Q
    Ru, Rv = rotation(m), rotation(n)
    s = decay ** torch.arange(k, dtype=torch.float64)
    frames, U, V = [], U0, V0
    for _ in range(T):
        frames.append((U * s.unsqueeze(-2)) @ V.mT)
        U, V = Ru @ U, Rv @ V
    return torch.stack(frames, dim=-3)


@pytest.mark.parametrize("kernel", KERNELS)
def test_adaptive_stream_keeps_rank_30_within_tolerance(kernel):
    # 256 frames (the target's length) on the CPU kernel; the slower GEMM kernel on 96 (the
    # drift past 1.01 is already there).
    T = 256 if kernel == "lapack" else 96
    g = torch.Generator().manual_seed(5)
    X = rotating_stream(T, 48, 64, decay=0.99, speed=0.1, generator=g).float()
    ratios = {}
    for tol in (None, 1e-2):
        f = nf.make_factorizer("warm-subspace", rank=30, kernel=kernel, tol=tol)
        ratios[tol] = ratio_to_optimum(X.double(), f.factorize(X))
        its = f.iterations
        assert its.shape == (T,)
    # one iteration per warm frame drifts past 1.01; the check adds iterations only as needed
    assert ratios[None][1:].max() > 1.01
    assert ratios[1e-2].max() <= 1.01, ratios[1e-2].max()
    assert 1 < its[1:].float().mean() < 4  # warm frames: more than one, fewer than the cap
    assert its[0] >= 4  # the cold start keeps its cold_iter (and may add up to max_iter)


def test_adaptive_stream_holds_tolerance_on_widely_spaced_simulator_frames():
    # 32x64 strong-Landau frames 0.5 time units apart: the carried basis misses directions,
    # one iteration per frame reaches 1.15; the floored estimate still asks for the iteration.
    from neuralfactor.bench.frames import simulate_frames

    F64, _ = simulate_frames(32, 64, 56)
    lead, X = F64[:16].float(), F64[16:]
    worst = {}
    for tol in (None, 1e-2):
        f = nf.make_factorizer("warm-subspace", rank=4, tol=tol)
        f.factorize(lead)
        worst[tol] = float(ratio_to_optimum(X, f.factorize(X.float())).max())
    assert worst[None] > 1.05
    assert worst[1e-2] <= 1.01


def test_adaptive_stream_adds_nothing_when_one_iteration_suffices():
    X = evolving_frames(30, 32, 48, speed=0.002)
    f = nf.make_factorizer("warm-subspace", rank=4, tol=1e-2)
    f.factorize(X)
    assert (f.iterations[1:] == 1).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_ensemble_step_equals_stacked_and_looped_streams(kernel):
    g = torch.Generator().manual_seed(2)
    X = rotating_stream(12, 24, 32, decay=0.85, speed=0.05, generator=g, streams=(3,))
    stepper = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel)
    stepped = [stepper.step(X[:, t]).reconstruct() for t in range(12)]
    assert stepper.iterations.shape == (3,)
    stepped = torch.stack(stepped, dim=1)
    whole = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel).factorize(X)
    torch.testing.assert_close(stepped, whole.reconstruct(), rtol=1e-9, atol=1e-12)
    for e in range(3):
        one = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel).factorize(X[e])
        torch.testing.assert_close(stepped[e], one.reconstruct(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", KERNELS)
def test_one_stream_decides_exactly_as_an_ensemble_of_one(kernel, dtype):
    # a single stream takes the adaptive check on Python floats; an ensemble of one takes the
    # batched tensor path: same decisions, bit-identical factors
    g = torch.Generator().manual_seed(3)
    X = rotating_stream(40, 24, 32, decay=0.85, speed=0.1, generator=g).to(dtype)
    a = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel)
    b = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel)
    la, lb = a.factorize(X), b.factorize(X.unsqueeze(0))
    # a stream near the threshold: twice the tolerance would take other decisions
    loose = nf.make_factorizer("warm-subspace", rank=8, kernel=kernel, tol=2e-2)
    loose.factorize(X.unsqueeze(0))
    assert not torch.equal(loose.iterations[0], b.iterations[0])
    assert torch.equal(a.iterations, b.iterations[0])
    assert torch.equal(la.U, lb.U[0]) and torch.equal(la.V, lb.V[0])


def test_step_refuses_a_changed_ensemble():
    f = nf.make_factorizer("warm-subspace", rank=2)
    f.step(torch.randn(3, 10, 12))
    with pytest.raises(ValueError, match="call reset"):
        f.step(torch.randn(4, 10, 12))


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"tol": 0.0}, "'tol' parameter of warm-subspace must be > 0"),
        ({"n_iter": 3, "max_iter": 2}, "'max_iter' parameter of warm-subspace must be an int >= 3"),
    ],
)
def test_warm_subspace_tol_parameters_are_validated(kw, msg):
    with pytest.raises(ValueError, match=msg):
        nf.make_factorizer("warm-subspace", rank=2, **kw)


# ----------------------------------------------------------------------------- flops
def test_flop_counts_match_hand_counts():
    # exact SVD of 4x6: 6 p q^2 + 20 q^3 with p = 6, q = 4
    assert flops("svd", 4, 6, 2) == 6 * 6 * 16 + 20 * 64 == 1856
    assert flops("scipy-gesdd", 6, 4, 2) == 1856
    # rsvd 6x9, rank 2, k = 3, one power iteration:
    # products 2*6*9*3*(2+2) = 1296; QR(6x3) = 4*6*9 - 36 = 180, QR(9x3) = 288;
    # QRs 180 + (288 + 180) = 648; SVD of Z (9x3) 6*9*9 + 20*27 = 1026; U = Q W_r 2*6*3*2 = 72
    assert flops("rsvd", 6, 9, 2, oversample=1, n_iter=1) == 1296 + 648 + 1026 + 72 == 3042
    # GEMM kernel: Gram-orth(a x 3) = 2 (4*a*9 + 9*27): 918 (a=6), 1134 (a=9);
    # final: Z^T Z 2*9*9 + eigh 243 + U 72 + V 2*9*3*2
    gemm = 1296 + (918 + 1134 + 918) + (162 + 243 + 72 + 108)
    assert flops("rsvd-gemm", 6, 9, 2, oversample=1, n_iter=1) == gemm == 4851
    assert flops("rsvd", 6, 9, 2, oversample=1, n_iter=1, kernel="gemm") == 4851
    # warm-subspace, l = 3, one LAPACK iteration: 4*6*9*3 + QR 180 + SVD(9x3) 1026 + U 72
    assert flops("warm-subspace", 6, 9, 2, extra=1, tol=None) == 648 + 180 + 1026 + 72 == 1926
    assert flops("warm-subspace", 6, 9, 2, extra=1) == 1926 + 2 * 6 * 9  # + ||X||^2 check
    assert flops("warm-subspace", 6, 9, 2, extra=1, n_iter=2, tol=None) == 2 * 1926
    assert flops("pod-basis", 6, 9, 2, extra=1) == 1926
    # GEMM iteration: 648 + Gram-orth 918 + B B^T 162 + eigh 243 + Gram-orth 1134 + U 72 + V 108
    assert flops("warm-subspace", 6, 9, 2, extra=1, kernel="gemm", tol=None) == 3285


def test_flops_refuses_unknown_methods_and_bad_shapes():
    with pytest.raises(ValueError, match=r"flops\(\) knows the methods \['pod-basis'"):
        flops("nmf", 4, 5, 2)
    with pytest.raises(ValueError, match=r"needs rank <= min\(m, n\) = 4; got rank=5"):
        flops("svd", 4, 5, 5)
    with pytest.raises(ValueError, match=r"needs m as an int >= 1; got 0"):
        flops("svd", 0, 5, 1)
    with pytest.raises(ValueError, match="measured rate > 0"):
        flop_floor("svd", 4, 5, 1, 0.0)


def test_gemm_rate_is_a_positive_rate_and_floor_divides_by_it():
    rate = gemm_rate(32, 48, 8, min_seconds=0.01)
    assert rate > 0 and rate < float("inf")
    assert flop_floor("svd", 4, 6, 2, rate) == pytest.approx(1856 / rate, rel=1e-12)
