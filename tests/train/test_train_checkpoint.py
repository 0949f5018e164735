import pytest
import torch

from neuralfactor.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    restore_optimizer,
    save_checkpoint,
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
