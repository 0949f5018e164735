import pytest
import torch

from neuralfactor.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    restore_optimizer,
    save_checkpoint,
    stream_fingerprint,
    tensor_fingerprint,
)
from neuralfactor.train.loop import LoopConfig, TrainingDivergedError, run_training


class Tiny(torch.nn.Module):
    def __init__(self, n: int = 4):
        super().__init__()
        self.lin = torch.nn.Linear(n, n)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 4, generator=g), torch.randn(32, 4, generator=g)


@pytest.mark.parametrize("opt_name", ["adam", "lbfgs"])
def test_optimizer_state_round_trip_and_resume(opt_name, tmp_path):
    X, Y = _data()

    def make():
        torch.manual_seed(1)
        m = Tiny()
        o = (
            torch.optim.Adam(m.parameters(), 1e-2)
            if opt_name == "adam"
            else torch.optim.LBFGS(m.parameters(), max_iter=3, history_size=4)
        )
        return m, o

    def loss_fn(model):
        return lambda step: (model.lin(X) - Y).square().mean()

    full, o = make()
    run_training(full, o, loss_fn(full), LoopConfig(steps=6, eval_every=3), progress=False)
    part, o = make()
    run_training(
        part,
        o,
        loss_fn(part),
        LoopConfig(steps=3, eval_every=3),
        progress=False,
        checkpoint_dir=tmp_path,
        init_args={"n": 4},
    )
    resumed, o = make()
    run_training(
        resumed,
        o,
        loss_fn(resumed),
        LoopConfig(steps=6, eval_every=3),
        progress=False,
        checkpoint_dir=tmp_path,
        init_args={"n": 4},
        resume=True,
    )
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_reserved_meta_keys_refused(tmp_path):
    with pytest.raises(ValueError, match=r"meta keys \['optimizer'\] are reserved"):
        save_checkpoint(tmp_path / "c", Tiny(), init_args={}, meta={"optimizer": "x"})


def test_tampered_truncated_and_foreign_checkpoints(tmp_path):
    save_checkpoint(tmp_path / "c", Tiny(), init_args={"n": 4})
    w = tmp_path / "c" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_checkpoint(tmp_path / "c")
    save_checkpoint(tmp_path / "d", Tiny(), init_args={"n": 4})
    meta = (tmp_path / "d" / "meta.json").read_text()
    (tmp_path / "d" / "meta.json").write_text(
        meta.replace("test_train_checkpoint:Tiny", "os:system")
    )
    with pytest.raises(CheckpointError, match="refusing to import it"):
        load_model(tmp_path / "d")
    with pytest.raises(CheckpointError, match="weights.safetensors is missing"):
        (tmp_path / "e").mkdir()
        (tmp_path / "e" / "meta.json").write_text("{}")
        load_checkpoint(tmp_path / "e")


def test_restore_without_optimizer_state(tmp_path):
    save_checkpoint(tmp_path / "c", Tiny(), init_args={"n": 4})
    meta, tensors = load_checkpoint(tmp_path / "c")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        restore_optimizer(torch.optim.Adam(Tiny().parameters()), meta, tensors)


def test_nan_loss_stops_and_restores_last_good(tmp_path):
    m = Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    X, Y = _data()

    def loss_fn(step):
        out = (m.lin(X) - Y).square().mean()
        return out * float("nan") if step == 4 else out

    with pytest.raises(TrainingDivergedError, match="became nan at step 4"):
        run_training(
            m,
            opt,
            loss_fn,
            LoopConfig(steps=10, eval_every=2),
            progress=False,
            checkpoint_dir=tmp_path,
            init_args={"n": 4},
        )
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert load_checkpoint(tmp_path / "last")[0]["train_state"]["step"] == 4


def _scripted_run(tmp_path, steps, metrics, snaps, *, restore_best=True, resume=False):
    """Adam on Tiny; the i-th evaluation reports metrics[i] and records the weights it saw."""
    X, Y = _data()
    torch.manual_seed(1)
    m = Tiny()
    o = torch.optim.Adam(m.parameters(), 1e-2)

    def eval_fn():
        snaps.append({k: v.clone() for k, v in m.state_dict().items()})
        return metrics[len(snaps) - 1]

    run_training(
        m,
        o,
        lambda step: (m.lin(X) - Y).square().mean(),
        LoopConfig(steps=steps, eval_every=2, restore_best=restore_best),
        eval_fn=eval_fn,
        progress=False,
        checkpoint_dir=tmp_path,
        init_args={"n": 4},
        resume=resume,
    )
    return m


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_restore_best_keeps_the_best_evaluation_not_the_last(tmp_path):
    metrics = [3.0, 1.0, 2.0, 5.0]  # evaluations at steps 2, 4, 6, 8: the best is step 4
    snaps: list = []
    m = _scripted_run(tmp_path / "a", 8, metrics, snaps)
    assert _same(m.state_dict(), snaps[1]) and not _same(m.state_dict(), snaps[3])
    snaps_last: list = []
    m_last = _scripted_run(tmp_path / "b", 8, metrics, snaps_last, restore_best=False)
    assert _same(m_last.state_dict(), snaps_last[3])  # the default of the loop: last weights
    # the last checkpoint still holds the last step (a resume continues from there)
    _, tensors = load_checkpoint(tmp_path / "a" / "last")
    assert torch.equal(tensors["model.lin.weight"], snaps[3]["lin.weight"])


def test_restore_best_across_a_resume_reads_the_best_checkpoint(tmp_path):
    metrics = [3.0, 1.0, 2.0, 5.0]
    full_snaps: list = []
    full = _scripted_run(tmp_path / "full", 8, metrics, full_snaps)
    part_snaps: list = []
    _scripted_run(tmp_path / "part", 4, metrics, part_snaps)  # stops at step 4 (the best)
    more = metrics[2:]  # the resumed run sees the last two evaluations only
    resumed = _scripted_run(tmp_path / "part", 8, more, [], resume=True)
    assert _same(resumed.state_dict(), full.state_dict())
    assert _same(resumed.state_dict(), full_snaps[1])


def test_grad_clip_bounds_every_step():
    """With plain SGD (lr 1) a clipped step moves the weights by at most the clip norm; the
    same loss unclipped moves them ~1e6 times further."""
    X, Y = _data()

    def step_size(clip):
        torch.manual_seed(1)
        m = Tiny()
        before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        cfg = LoopConfig(steps=1, eval_every=1, grad_clip=clip, restore_best=False)
        run_training(m, o, lambda step: 1e6 * (m.lin(X) - Y).square().mean(), cfg, progress=False)
        after = torch.cat([p.detach().flatten() for p in m.parameters()])
        return float((after - before).norm())

    assert step_size(0.5) == pytest.approx(0.5, rel=1e-5)
    assert step_size(None) > 1e5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_train_settings_refuse_bad_grad_clip(bad):
    from neuralfactor.amortized.factorizer import TrainSettings

    with pytest.raises(ValueError, match="'grad_clip' parameter of TrainSettings"):
        TrainSettings(grad_clip=bad)


def test_stream_fingerprint_is_the_whole_tensors():
    t = torch.randn(10, 3, 4, generator=torch.Generator().manual_seed(0))
    whole = tensor_fingerprint(t)
    assert stream_fingerprint(t.shape, t.dtype, [t[:3], t[3:7], t[7:]]) == whole
    assert stream_fingerprint(t.shape, t.dtype, [t[:3], t[7:], t[3:7]]) != whole  # order counts
    assert tensor_fingerprint(t.double()) != whole  # so does the dtype
