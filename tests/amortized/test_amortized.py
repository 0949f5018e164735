import json

import pytest
import torch
from tests.helpers import evolving_frames

import neuralfactor as nf
from neuralfactor.amortized import (
    DANMF,
    ConvMF,
    Fork,
    LearnedFactorizer,
    TrainSettings,
    nested_losses,
    refine_factors,
    train_preset,
)
from neuralfactor.amortized.factorizer import MODEL_META_KEYS, TRAIN_META_KEYS
from neuralfactor.amortized.models import build_model
from neuralfactor.core.metrics import ratio_to_optimum, scaled_loss
from neuralfactor.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from neuralfactor.train.init import build_seeded, init_parameters

M, N = 12, 16


@pytest.fixture(scope="module")
def frames():
    return evolving_frames(60, M, N, rank=4, dtype=torch.float32)


@pytest.mark.parametrize("cls", [ConvMF, Fork, DANMF])
def test_forward_shapes_backward_and_no_unused_parameters(cls):
    net = cls(M, N, 3, stem=(32, 16), **({"branch": (16,)} if cls is not DANMF else {}))
    X = torch.randn(5, 2, M, N)
    U, V = net(X)
    assert U.shape == (5, 2, M, 3) and V.shape == (5, 2, 3, N)
    (X - U @ V).square().sum().backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, unused


def test_convmf_matches_original_layer_sizes():
    net = ConvMF(64, 128, 12)
    assert [c.kernel_size for c in net.conv if isinstance(c, torch.nn.Conv2d)] == [(5, 5), (3, 3)]
    assert [c.padding for c in net.conv if isinstance(c, torch.nn.Conv2d)] == [(3, 3), (0, 0)]
    lin = [m for m in net.stem if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(64 * 128, 500), (500, 200)]
    assert net.u_head[-1].out_features == 64 * 12 and net.v_head[-1].out_features == 12 * 128


def test_model_refuses_wrong_frame_shape_and_bad_rank():
    net = Fork(M, N, 3, stem=(8,), branch=(8,))
    with pytest.raises(
        ValueError, match=r"built for 12x16 frames; got input of shape \(2, 12, 17\)"
    ):
        net(torch.randn(2, M, N + 1))
    with pytest.raises(
        ValueError, match=r"'rank' parameter of Fork must be an int in \[1, min\(m, n\)=12\]"
    ):
        Fork(M, N, 13)


def test_nested_losses_equal_direct_truncations(gen):
    X = torch.randn(3, M, N, generator=gen, dtype=torch.float64)
    U = torch.randn(3, M, 5, generator=gen, dtype=torch.float64)
    V = torch.randn(3, 5, N, generator=gen, dtype=torch.float64)
    direct = torch.stack(
        [(X - U[..., :k] @ V[..., :k, :]).square().sum((-2, -1)) for k in range(1, 6)], -1
    )
    torch.testing.assert_close(nested_losses(X, U, V), direct)


def test_refine_lstsq_is_calculated_V_and_survives_collapse(gen):
    X = torch.randn(4, M, N, generator=gen, dtype=torch.float64)
    U = torch.randn(4, M, 3, generator=gen, dtype=torch.float64)
    from neuralfactor.core.metrics import calculated_V

    torch.testing.assert_close(
        refine_factors(X, U, 3, "lstsq").reconstruct(), calculated_V(X, U).reconstruct()
    )
    collapsed = U[..., :1].repeat(1, 1, 3)
    out = refine_factors(X, collapsed, 3, "subspace")
    assert torch.isfinite(out.U).all() and torch.isfinite(out.V).all()


def _small(rank=3, **kw):
    # the original study's constant rate: a resume with more epochs continues the same run
    s = train_preset(
        "original", epochs=kw.pop("epochs", 40), lr=3e-3, batch_size=10, seed=kw.pop("seed", 0)
    )
    return LearnedFactorizer(
        rank,
        model=kw.pop("model", "fork"),
        settings=s,
        model_kwargs={"stem": (64, 32), "branch": (32,)},
        **kw,
    )


def test_tiny_overfit_and_refinement_reaches_near_optimum(frames):
    f = _small().fit(frames[:20])
    loss0 = f.history_[0]["metric"]
    assert f.history_[-1]["metric"] < 0.5 * loss0  # training reduces the loss
    X = frames[:20]
    r_plain = float(ratio_to_optimum(X, f.factorize(X), 3).mean())
    sub = f.clone(refine="subspace")  # a variant sharing the trained network
    r_sub = float(ratio_to_optimum(X, sub.factorize(X), 3).mean())
    assert r_sub <= min(r_plain, 1.1), (r_plain, r_sub)


def test_checkpoint_round_trip_bit_identical(frames, tmp_path):
    f = _small(epochs=3).fit(frames[:20])
    f.save(tmp_path / "ck")
    g = LearnedFactorizer.load(tmp_path / "ck")
    X = frames[20:30]
    a, b = f.factorize(X), g.factorize(X)
    assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V)
    assert g.name == f.name and g.rank == f.rank


def test_resume_equals_uninterrupted(frames, tmp_path):
    full = _small(epochs=6, checkpoint_dir=tmp_path / "a").fit(frames[:20])
    part = _small(epochs=3, checkpoint_dir=tmp_path / "b").fit(frames[:20])
    assert part.history_[-1]["step"] == 6
    resumed = _small(epochs=6, checkpoint_dir=tmp_path / "b", resume=True).fit(frames[:20])
    for (k, p), q in zip(
        full.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), k


def test_load_refuses_mismatched_checkpoint(frames, tmp_path):
    f = _small(epochs=1).fit(frames[:20])
    f.save(tmp_path / "ck")
    meta = (tmp_path / "ck" / "meta.json").read_text()
    (tmp_path / "ck" / "meta.json").write_text(meta.replace('"model": "fork"', '"model": "convmf"'))
    with pytest.raises(CheckpointError, match="holds a .*Fork, not a .*ConvMF"):
        LearnedFactorizer.load(tmp_path / "ck")


def test_nested_model_serves_every_rank(frames):
    f = _small(rank=4, nested=True, epochs=40).fit(frames[:20])
    X = frames[:20]
    losses = [float(scaled_loss(X, f.at_rank(k).factorize(X)).mean()) for k in range(1, 5)]
    assert losses == sorted(losses, reverse=True), losses  # more columns, lower loss
    with pytest.raises(ValueError, match=r"must be in \[1, 4\]"):
        f.at_rank(5)


@pytest.mark.parametrize(
    "frames_arg,msg",
    [
        (torch.randn(5, M, N), "fewer than one batch"),
        (torch.full((20, M, N), float("nan")), "contains NaN"),
        (None, "needs training frames"),
    ],
)
def test_fit_bad_input(frames_arg, msg):
    with pytest.raises(ValueError, match=msg):
        _small().fit(frames_arg)


def test_factorize_before_fit_and_wrong_shape(frames):
    f = _small()
    with pytest.raises(nf.NotFittedError):
        f.factorize(frames[:2])
    f = _small(epochs=1).fit(frames[:20])
    with pytest.raises(ValueError, match="built for 12x16 frames"):
        f.factorize(torch.randn(2, M + 1, N))


def test_registered_names():
    names = nf.available_factorizers()
    for n in ("convmf", "fork", "danmf", "convmf+refine", "convmf+subspace", "convmf-nested"):
        assert n in names


def test_training_loss_plain_and_nested(gen):
    from neuralfactor.amortized.factorizer import training_loss

    X = torch.randn(3, M, N, generator=gen, dtype=torch.float64)
    U = torch.randn(3, M, 4, generator=gen, dtype=torch.float64)
    V = torch.randn(3, 4, N, generator=gen, dtype=torch.float64)
    plain = (X - U @ V).square().sum((-2, -1)).mean()
    torch.testing.assert_close(training_loss(X, U, V, nested=False), plain)
    nested = nested_losses(X, U, V).mean()
    torch.testing.assert_close(training_loss(X, U, V, nested=True), nested)


def _settings_small(**kw):
    return train_preset("original", epochs=kw.pop("epochs", 6), lr=3e-3, batch_size=10, **kw)


@pytest.mark.parametrize("warmup", [0, 2])
def test_cosine_subspace_training_resumes_bit_identically(frames, tmp_path, monkeypatch, warmup):
    """An interruption mid-run (cosine schedule, with or without a warmup) loses nothing: the
    scheduler state resumes."""
    import neuralfactor.amortized.factorizer as fac

    kw = {"schedule": "cosine", "warmup_epochs": warmup}
    make = lambda d, resume=False: LearnedFactorizer(  # noqa: E731
        3,
        model="fork",
        settings=_settings_small(**kw),
        model_kwargs={"stem": (64, 32), "branch": (32,)},
        checkpoint_dir=d,
        resume=resume,
    )
    full = make(tmp_path / "a").fit(frames[:20], frames[20:30])
    real, calls = fac.training_loss, {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:  # mid epoch 4 (2 steps per epoch); the last checkpoint is step 6
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fac, "training_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "b").fit(frames[:20], frames[20:30])
    monkeypatch.setattr(fac, "training_loss", real)
    resumed = make(tmp_path / "b", resume=True).fit(frames[:20], frames[20:30])
    assert [h["metric"] for h in resumed.history_] == [h["metric"] for h in full.history_]
    for (k, p), q in zip(
        full.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), k


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_ramps_then_follows_the_schedule(schedule):
    from neuralfactor.amortized.factorizer import lr_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sch = lr_scheduler(opt, TrainSettings(epochs=10, schedule=schedule, warmup_epochs=2), 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(0.01)
    ramp = zip(lrs[:20], lrs[1:21], strict=True)
    assert all(b > a for a, b in ramp)  # linear ramp over 2 of 10 epochs
    assert lrs[20] == pytest.approx(1.0)
    if schedule == "constant":
        assert lrs[20:] == pytest.approx([1.0] * 80)
    else:  # a cosine over the remaining 80 steps
        assert lrs[60] == pytest.approx(0.5) and lrs[99] < 1e-3


@pytest.mark.parametrize("bad", [-1, 6, 2.5, True])
def test_settings_refuse_bad_warmup(bad):
    with pytest.raises(ValueError, match="'warmup_epochs' parameter of TrainSettings"):
        TrainSettings(epochs=6, warmup_epochs=bad)


@pytest.mark.parametrize("restore_best", [True, False])
def test_fit_keeps_the_best_validation_weights(frames, restore_best):
    # a learning rate high enough that validation is not monotone
    s = train_preset("original", epochs=12, lr=3e-2, batch_size=10, restore_best=restore_best)
    f = LearnedFactorizer(
        3, model="fork", settings=s, model_kwargs={"stem": (64, 32), "branch": (32,)}
    ).fit(frames[:20], frames[20:30])
    metrics = [h["metric"] for h in f.history_]
    assert min(metrics) < metrics[-1]  # the scenario: the last epoch is not the best
    val = frames[20:30]
    now = float((scaled_loss(val, f.factorize(val))).float().mean())
    want = min(metrics) if restore_best else metrics[-1]
    assert now == pytest.approx(want, rel=1e-4)


def test_settings_refuse_unknown_schedule():
    with pytest.raises(ValueError, match="schedule"):
        TrainSettings(schedule="linear")


def test_projection_losses_are_the_least_squares_residual(gen):
    """The projection loss is ||X - U V*||^2 for the least-squares V* (what +refine computes),
    independent of U's basis, zero when span(U) holds X's column space, nested alike."""
    from neuralfactor.amortized import projection_losses

    X = torch.randn(3, M, N, generator=gen, dtype=torch.float64)
    U = torch.randn(3, M, 4, generator=gen, dtype=torch.float64)
    Vls = torch.linalg.lstsq(U, X).solution
    torch.testing.assert_close(projection_losses(X, U), (X - U @ Vls).square().sum((-2, -1)))
    G = torch.randn(4, 4, generator=gen, dtype=torch.float64) + 4 * torch.eye(4)
    torch.testing.assert_close(projection_losses(X, U @ G), projection_losses(X, U))
    nested = projection_losses(X, U, nested=True)
    for k in range(1, 5):
        Vk = torch.linalg.lstsq(U[..., :k], X).solution
        torch.testing.assert_close(nested[:, k - 1], (X - U[..., :k] @ Vk).square().sum((-2, -1)))
    low = U @ torch.randn(3, 4, N, generator=gen, dtype=torch.float64)
    assert float(projection_losses(low, U).max()) < 1e-20 * float(low.square().sum())
    bf = projection_losses(X.bfloat16(), U.bfloat16())  # computed in float32
    torch.testing.assert_close(bf.double(), projection_losses(X, U), rtol=0.05, atol=0.0)


def test_factors_plus_projection_objective_trains_every_parameter(frames, gen):
    from neuralfactor.amortized import projection_losses
    from neuralfactor.amortized.factorizer import training_loss

    X = torch.randn(3, M, N, generator=gen, dtype=torch.float64)
    U = torch.randn(3, M, 4, generator=gen, dtype=torch.float64)
    V = torch.randn(3, 4, N, generator=gen, dtype=torch.float64)
    both = training_loss(X, U, V, nested=False, objective="factors+projection")
    plain = training_loss(X, U, V, nested=False)
    torch.testing.assert_close(both, plain + projection_losses(X, U).mean())
    net = ConvMF(M, N, 3, stem=(32, 16), branch=(16,))
    U, V = net(frames[:5])
    training_loss(frames[:5], U, V, nested=False, objective="factors+projection").backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, unused
    s = TrainSettings(epochs=8, lr=3e-3, batch_size=10, objective="factors+projection")
    f = LearnedFactorizer(
        3, model="fork", settings=s, model_kwargs={"stem": (64, 32), "branch": (32,)}
    ).fit(frames[:40], frames[40:50])
    metrics = [h["metric"] for h in f.history_]
    assert metrics[-1] < 0.5 * metrics[0]  # the summed validation loss falls
    assert f.get_params()["settings"]["objective"] == "factors+projection"


def test_settings_refuse_an_unknown_objective_and_read_old_checkpoints():
    with pytest.raises(ValueError, match="objective"):
        TrainSettings(objective="projection-only")
    old = {k: v for k, v in TrainSettings().__dict__.items() if k != "objective"}
    # written before the option existed: the run had the original study's loss
    assert TrainSettings.from_dict(old).objective == "factors"


@pytest.mark.parametrize("name", ["convmf", "fork", "danmf"])
def test_weights_come_from_an_explicit_generator_bit_identical_to_global_seeding(name):
    """build_seeded draws PyTorch's default initialization from the caller's generator: the
    weights equal a build after torch.manual_seed (what training did before), and the global
    RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        ref = build_model(name, M, N, 3, stem=(32, 16))
    before = torch.get_rng_state()
    net = build_seeded(
        lambda: build_model(name, M, N, 3, stem=(32, 16)), torch.Generator().manual_seed(5)
    )
    assert torch.equal(torch.get_rng_state(), before)
    for (k, a), b in zip(ref.state_dict().items(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    other = build_seeded(
        lambda: build_model(name, M, N, 3, stem=(32, 16)), torch.Generator().manual_seed(6)
    )
    assert not torch.equal(next(other.parameters()), next(net.parameters()))


def test_init_parameters_refuses_layers_it_does_not_know_unless_they_say_how():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))

    with pytest.raises(TypeError, match="cannot draw the parameters of a Odd from a generator"):
        init_parameters(Odd(), torch.Generator())

    class Own(Odd):
        def init_parameters(self, generator):
            with torch.no_grad():
                self.w.normal_(generator=generator)

    a = init_parameters(Own(), torch.Generator().manual_seed(1)).w
    b = torch.randn(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.detach(), b)


def test_fit_leaves_the_global_rng_alone(frames):
    before = torch.get_rng_state()
    _small(epochs=1).fit(frames[:20])
    assert torch.equal(torch.get_rng_state(), before)


def test_variants_through_parameters_share_the_trained_network(frames):
    f = _small(rank=4, nested=True, epochs=2).fit(frames[:20])
    X = frames[:20]
    v = f.at_rank(2)
    assert v.model_ is f.model_ and v.use_rank == 2 and f.use_rank is None
    with torch.no_grad():
        U, V = f.model_(X)
    torch.testing.assert_close(v.factorize(X).reconstruct(), U[..., :2] @ V[..., :2, :])
    r = f.clone(refine="lstsq")
    assert r.name == "fork-nested+refine" and r.model_ is f.model_ and f.refine == "none"
    retrain = f.clone(settings=train_preset("original", epochs=1, batch_size=10))
    assert retrain.model_ is None
    with pytest.raises(nf.NotFittedError):
        retrain.factorize(X)
    with pytest.raises(TypeError, match=r"clone got unknown parameters \['bogus'\]"):
        f.clone(bogus=1)
    with pytest.raises(ValueError, match="use_rank needs nested=True"):
        LearnedFactorizer(3, model="fork", use_rank=2)
    with pytest.raises(
        ValueError, match=r"'use_rank' parameter .* must be an int in \[1, rank=3\]"
    ):
        LearnedFactorizer(3, model="fork", nested=True, use_rank=4)


def test_old_fitted_state_names_are_deprecated_aliases(frames):
    f = _small(epochs=1).fit(frames[:20])
    with pytest.warns(
        DeprecationWarning, match=r"LearnedFactorizer.history is deprecated; use .*history_"
    ):
        assert f.history is f.history_
    with pytest.warns(DeprecationWarning, match=r"use LearnedFactorizer.model_"):
        assert f.model is f.model_
    with pytest.warns(DeprecationWarning, match=r"use LearnedFactorizer.fit_seconds_"):
        assert f.fit_seconds == f.fit_seconds_ > 0
    with pytest.warns(DeprecationWarning, match=r"use LearnedFactorizer.fit_seconds_"):
        f.fit_seconds = 2.5
    assert f.fit_seconds_ == 2.5


def test_every_checkpoint_carries_the_metadata_schema(frames, tmp_path):
    f = _small(epochs=2, checkpoint_dir=tmp_path / "ck").fit(frames[:20], frames[20:30])
    f.save(tmp_path / "model")
    for part, keys in (("ck/last", TRAIN_META_KEYS), ("ck/best", TRAIN_META_KEYS),
                       ("model", MODEL_META_KEYS)):  # fmt: skip
        meta, _ = load_checkpoint(tmp_path / part)
        assert set(keys) <= set(meta), part
        assert meta["distributed"] == {"world_size": 1, "global_batch": 10, "sampler_seed": 0}
        assert meta["frame_shape"] == [M, N] and len(meta["data_fingerprint"]) == 64


def test_checkpoints_of_the_old_schema_still_load_and_resume(frames, tmp_path):
    """Models saved before the schema (no frame_shape, data_fingerprint, distributed) load;
    a training checkpoint with the old distributed key (data_checksum) resumes exactly."""
    f = _small(epochs=1).fit(frames[:20])
    old = {"factorizer": f.get_params(), "fit_seconds": 1.5, "history": f.history_}
    save_checkpoint(tmp_path / "old", f.model_, init_args=f.model_.init_args, meta=old)
    g = LearnedFactorizer.load(tmp_path / "old")
    assert g.fit_seconds_ == 1.5 and g.train_meta_["factorizer"]["model"] == "fork"
    assert {k: g.train_meta_[k] for k in TRAIN_META_KEYS[1:]} == dict.fromkeys(TRAIN_META_KEYS[1:])
    assert torch.equal(g.factorize(frames[:5]).U, f.factorize(frames[:5]).U)
    g.save(tmp_path / "again")
    assert set(MODEL_META_KEYS) <= set(load_checkpoint(tmp_path / "again")[0])

    full = _small(epochs=4, checkpoint_dir=tmp_path / "a").fit(frames[:20])
    _small(epochs=2, checkpoint_dir=tmp_path / "b").fit(frames[:20])
    path = tmp_path / "b" / "last" / "meta.json"
    meta = json.loads(path.read_text())
    meta["data_checksum"] = meta.pop("data_fingerprint")
    del meta["distributed"], meta["frame_shape"]
    path.write_text(json.dumps(meta))
    resumed = _small(epochs=4, checkpoint_dir=tmp_path / "b", resume=True).fit(frames[:20])
    for (k, p), q in zip(
        full.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), k


def test_convmf_trains_its_one_channel_convolutions_without_onednn_on_cpu(frames, monkeypatch):
    """ConvMF's steps run its one-channel convolutions in torch's native kernels on a CPU
    (forward and backward: torch picks the backward kernel when that pass runs), and the
    process-wide flag is restored after training; a multi-channel ConvMF keeps oneDNN."""
    assert torch.backends.mkldnn.enabled  # torch's default on a CPU build
    fwd, bwd = [], []

    def forward_hook(module, inputs, out):
        if out.requires_grad:  # a training step, not the validation pass
            fwd.append(torch.backends.mkldnn.enabled)
            out.register_hook(lambda g: bwd.append(torch.backends.mkldnn.enabled))

    f = _small(model="convmf", epochs=2)
    real_build = build_model

    def recording(*a, **kw):
        net = real_build(*a, **kw)
        net.conv[0].register_forward_hook(forward_hook)
        return net

    import neuralfactor.amortized.factorizer as fac

    monkeypatch.setattr(fac, "build_model", recording)
    f.fit(frames[:20])
    assert len(fwd) == len(bwd) == 2 * (20 // 10)  # 2 epochs of 2 steps
    assert not any(fwd + bwd)  # every forward and backward pass of training
    assert torch.backends.mkldnn.enabled  # restored
    net = build_model("convmf", 16, 24, 3, channels=1)
    with net.kernels(torch.device("cpu")):
        assert not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled
    with pytest.raises(RuntimeError), net.kernels(torch.device("cpu")):
        raise RuntimeError("a failed step")
    assert torch.backends.mkldnn.enabled  # restored after a failure too
    wide = build_model("convmf", 16, 24, 3, channels=4)
    with wide.kernels(torch.device("cpu")):
        assert torch.backends.mkldnn.enabled
