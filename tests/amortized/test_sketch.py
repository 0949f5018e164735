"""SketchMF: the learned encoder that reads the sketch X Omega (two frame-sized products)."""

import json

import pytest
import torch
from tests.helpers import planted

import neuralfactor as nf
from neuralfactor.amortized import LearnedFactorizer, SketchMF, sketch_flops, train_preset
from neuralfactor.core.metrics import ratio_to_optimum, scaled_loss

M, N = 12, 16


@pytest.mark.parametrize("head", ["ritz", "mlp"])
def test_forward_shapes_backward_and_no_unused_parameters(head):
    net = SketchMF(M, N, 3, head=head, hidden=(8,))
    X = torch.randn(5, 2, M, N)
    U, V = net(X)
    assert U.shape == (5, 2, M, 3) and V.shape == (5, 2, 3, N)
    (X - U @ V).square().sum().backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, unused
    # U is orthonormal and V the least-squares V for it, whatever the weights
    torch.testing.assert_close(U.mT @ U, torch.eye(3).expand(5, 2, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(V, U.mT @ X, atol=1e-5, rtol=1e-5)


def test_fixed_sketch_is_a_buffer_and_width_is_capped():
    net = SketchMF(M, N, 3, learn_sketch=False)
    assert "omega" not in dict(net.named_parameters()) and net.omega.shape == (N, 8)
    assert SketchMF(M, N, 10, oversample=5).k == M  # min(rank + oversample, m, n)


@pytest.mark.parametrize("head", ["ritz", "mlp"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_planted_rank_recovered_to_round_off_before_training(head, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    X = planted((4, 30, 40), rank=5, generator=g, dtype=dtype)
    net = SketchMF(30, 40, 5, head=head).to(dtype)
    with torch.no_grad():
        U, V = net(X)
    loss = scaled_loss(X.double(), nf.LowRank(U.double(), V.double()))
    # span(X Omega) is X's range for a generic Omega; the scaled loss is a squared relative
    # error, so eps^2 times 1e6 (relative error <= 1000 eps)
    assert float(loss.max()) <= torch.finfo(dtype).eps ** 2 * 1e6


def test_ritz_head_is_the_rayleigh_ritz_of_the_sketch_in_float64(gen):
    """Reference: Q = qr(X Omega), B = Q^T X, truncated SVD of B (Halko et al. 2011, Alg. 5.1)."""
    X = planted((3, 20, 30), rank=20, decay=0.7, generator=gen)
    net = SketchMF(20, 30, 4, oversample=3, learn_sketch=False).double()
    with torch.no_grad():
        U, V = net(X)
    Q = torch.linalg.qr(X @ net.omega).Q
    B = Q.mT @ X
    W, s, Vh = torch.linalg.svd(B, full_matrices=False)
    ref = (Q @ W[..., :4]) * s[..., None, :4] @ Vh[..., :4, :]
    torch.testing.assert_close(U @ V, ref, rtol=1e-10, atol=1e-12)


def test_bad_parameters_and_wrong_frame_size_are_refused():
    with pytest.raises(ValueError, match=r"'head' parameter of SketchMF must be one of"):
        SketchMF(M, N, 3, head="conv")
    with pytest.raises(ValueError, match=r"'oversample' parameter of SketchMF must be an int"):
        SketchMF(M, N, 3, oversample=-1)
    with pytest.raises(ValueError, match=r"'rank' parameter of SketchMF must be an int in"):
        SketchMF(M, N, 13)
    net = SketchMF(M, N, 3)
    with pytest.raises(
        ValueError, match=r"SketchMF was built for 12x16 frames; got input of shape \(2, 12, 17\)"
    ):
        net(torch.randn(2, M, N + 1))


def test_flop_count_formula():
    m, n, r, k = 64, 128, 6, 11
    ritz = 4 * m * n * k + 4 * m * k * k - 4 * k**3 / 3 + 2 * n * k * k + 9 * k**3
    ritz += 2 * m * k * r + 2 * n * k * r
    assert sketch_flops(m, n, r) == ritz
    mlp = 2 * m * n * k + 2 * m * n * r + 2 * m * k * k + 2 * (66 * 8 + 8 * k * r)
    mlp += 2 * m * k * r + 4 * m * r * r - 4 * r**3 / 3
    assert sketch_flops(m, n, r, head="mlp", hidden=(8,)) == mlp
    refit = 2 * (4 * m * r * r + 9 * r**3) + 2 * m * n * r
    assert sketch_flops(m, n, r, refine=True) == ritz + refit
    # two frame-sized products (4mnk) and small work (QR, B B^T, eigh: about a fifth more)
    assert sketch_flops(128, 256, 12) < 1.25 * 4 * 128 * 256 * 17
    with pytest.raises(ValueError, match=r"sketch_flops\(\) knows the heads"):
        sketch_flops(m, n, r, head="conv")


def _fit(frames, **kw):
    """A width-k = r sketch (``oversample=0``): on the frames below a random Omega is far from
    optimal, so training always has room to progress (a run that cannot is refused)."""
    lr = kw.pop("lr", 3e-2)
    settings = train_preset("best", epochs=kw.pop("epochs", 8), lr=lr, batch_size=10)
    kw["model_kwargs"] = {"oversample": 0, **kw.get("model_kwargs", {})}
    return LearnedFactorizer(3, model="sketch", settings=settings, **kw).fit(frames)


def _fixed_subspace_frames():
    """Frames U_t S V^T + noise (80, 12, 16) with one right subspace V for all t."""
    g = torch.Generator().manual_seed(3)
    V = torch.linalg.qr(torch.randn(N, 3, generator=g, dtype=torch.float64)).Q
    U = torch.linalg.qr(torch.randn(80, M, 3, generator=g, dtype=torch.float64)).Q
    X64 = (U * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ V.mT
    return X64 + 0.05 * torch.randn(80, M, N, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def frames():
    return _fixed_subspace_frames().float()


def test_registered_and_trained_through_the_common_path(frames):
    assert {"sketch", "sketch+refine"} <= set(nf.available_factorizers())
    f = nf.make_factorizer("sketch+refine", rank=3, settings=train_preset("best", epochs=2))
    assert f.name == "sketch+refine" and f.model_name == "sketch"
    f = _fit(frames[:60])
    assert f.model.init_args["oversample"] == 0 and f.history
    X = planted((2, M, N), rank=3, dtype=torch.float32)  # unseen, exactly rank 3
    out = f.factorize(X)
    assert out.U.shape == (2, M, 3) and out.V.shape == (2, 3, N) and out.dtype == torch.float32
    assert float(scaled_loss(X.double(), out).max()) <= torch.finfo(torch.float32).eps ** 2 * 1e6
    with pytest.raises(ValueError, match="SketchMF was built for 12x16 frames"):
        f.factorize(torch.randn(2, M + 1, N))


def test_training_learns_the_planted_right_subspace():
    """Frames U_t S V^T + noise with one right subspace V for all t (planted truth): a sketch
    of width k = r is near-optimal only when span(Omega) is close to V. Training moves the
    random Gaussian Omega it starts from there."""
    X64 = _fixed_subspace_frames()
    X = X64.float()
    torch.manual_seed(0)  # the initial Omega of the fit below (LearnedFactorizer seeds 0)
    net = SketchMF(M, N, 3, oversample=0).eval()
    with torch.no_grad():
        U0, V0 = net(X[60:])
    r0 = ratio_to_optimum(X64[60:], nf.LowRank(U0.double(), V0.double()), rank=3).mean()
    after = _fit(X[:60], epochs=60, lr=3e-2, model_kwargs={"oversample": 0})
    r1 = ratio_to_optimum(X64[60:], after.factorize(X[60:]), rank=3).mean()
    # from 7.2x the optimum to within 6% (1.035 on CPU): Adam on Omega converges slowly
    assert r0 > 2 and r1 < 1.06, (float(r0), float(r1))


@pytest.mark.parametrize("head", ["ritz", "mlp"])
def test_save_load_round_trip(frames, tmp_path, head):
    f = _fit(frames[:60], epochs=2, model_kwargs={"head": head, "hidden": [8]})
    f.save(tmp_path / "m")
    g = LearnedFactorizer.load(tmp_path / "m", refine="lstsq")
    assert g.name == "sketch+refine" and g.model.init_args == f.model.init_args
    a, b = f.factorize(frames[60:]), g.factorize(frames[60:])
    torch.testing.assert_close(a.reconstruct(), b.reconstruct(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f.model.omega, g.model.omega, rtol=0, atol=0)


def test_a_float64_model_loads_in_float64(tmp_path):
    # it used to be copied into float32 parameters: a relative error floor near 1e-7, which
    # stopped a low-rank Vlasov run whose stage tolerance is below it
    X = _fixed_subspace_frames()
    settings = train_preset("best", epochs=2, lr=3e-2, batch_size=10, dtype="float64")
    f = LearnedFactorizer(3, model="sketch", settings=settings).fit(X[:60])
    f.save(tmp_path / "m64")
    g = LearnedFactorizer.load(tmp_path / "m64")
    assert g.model.omega.dtype == torch.float64
    a, b = f.factorize(X[60:]), g.factorize(X[60:])
    assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V)
    Y = planted((2, M, N), rank=3, dtype=torch.float64)  # exactly rank 3: round-off only
    assert float(scaled_loss(Y, g.factorize(Y)).max()) < 1e-24


@pytest.mark.parametrize("head", ["ritz", "mlp"])
def test_bfloat16_weights_run_the_small_work_in_float32(head):
    """The frames suite's bf16 rows: products in bfloat16, QR/eigh in float32 (QR has no
    bfloat16 kernel); U is orthonormal to bfloat16 precision (eps 2^-7)."""
    net = SketchMF(M, N, 3, head=head, hidden=(8,)).to(torch.bfloat16)
    X = planted((4, M, N), rank=3, dtype=torch.bfloat16)
    with torch.no_grad():
        U, V = net(X)
    assert U.dtype == V.dtype == torch.bfloat16
    eye = torch.eye(3).expand(4, 3, 3)
    torch.testing.assert_close((U.mT @ U).float(), eye, atol=4 * 2**-7, rtol=0)
    # U and V are rounded to bfloat16 (unit roundoff 2^-8): a relative error of ~25 roundoffs
    # (the planted spectrum spans 10..1), squared
    assert float(scaled_loss(X.double(), nf.LowRank(U.double(), V.double())).max()) < 1e-2


def test_cli_trains_and_evaluates_the_sketch_model(tmp_path):
    """``neuralfactor train --model sketch`` runs the documented recipe's path; ``evaluate``
    loads the model back (plain, +refine, +subspace)."""
    from neuralfactor.cli import main
    from neuralfactor.io import read_jsonl

    store = tmp_path / "landau.zarr"
    sim = ["-q", "simulate", "--ic", "landau-strong", "--nx", "16", "--nv", "32"]
    sim += ["--t-end", "4", "--save-every", "4", "--device", "cpu", "--out", str(store)]
    assert main(sim) == 0
    out = tmp_path / "run"
    train = ["-q", "train", "--data", str(store), "--out", str(out), "--model", "sketch"]
    train += ["--rank", "3", "--epochs", "4", "--batch-size", "5", "--lr", "3e-2"]
    assert main([*train, "--device", "cpu"]) == 0
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert meta["factorizer"]["model"] == "sketch"
    assert main(["-q", "evaluate", str(out), "--baselines", "svd", "--repeats", "3"]) == 0
    recs = read_jsonl(out / "records.jsonl")
    learned = {r["method"]: r for r in recs if r["method"].startswith("sketch")}
    assert {"sketch", "sketch+refine"} <= set(learned)
    # both return the least-squares V for the same U: equal accuracy
    a, b = learned["sketch"], learned["sketch+refine"]
    assert a["ratio_mean"] == pytest.approx(b["ratio_mean"], rel=1e-4)


@pytest.mark.parametrize("head", ["ritz", "mlp"])
def test_zero_huge_and_tiny_frames_give_finite_factors(head):
    """Scale does not change the subspace: the small Gram matrices are formed from the
    sketch scaled to max |entry| 1, so a frame of 1e30 (whose Gram overflows float32) or a
    zero frame gives finite factors; the rank-1 constant frames are recovered exactly."""
    net = SketchMF(M, N, 3, head=head, hidden=(8,)).eval()
    ones = torch.ones(1, M, N)
    for X in (torch.zeros(1, M, N), ones, 1e30 * ones, 1e-30 * ones):
        with torch.no_grad():
            U, V = net(X)
        assert torch.isfinite(U).all() and torch.isfinite(V).all()
        if X.abs().max() > 0:  # rank 1: recovered to float32 round-off
            X64 = X.double()  # the norm of a 1e30 frame overflows float32
            err = (X64 - U.double() @ V.double()).norm() / X64.norm()
            assert float(err) <= 1e3 * torch.finfo(torch.float32).eps
        else:
            assert not V.abs().max() > 0
