"""DDP training under torchrun (gloo, 2 CPU processes) == single-process training with the same
global batch; rank 0 writes the checkpoints; resume with another number of processes."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from neuralfactor.amortized import TrainSettings
from neuralfactor.amortized.factorizer import MODEL_META_KEYS, TRAIN_META_KEYS
from neuralfactor.amortized.study import StudyConfig, train_model
from neuralfactor.cli import main
from neuralfactor.data import MatrixStoreWriter
from neuralfactor.distributed.training import train_model_distributed
from neuralfactor.train.checkpoint import load_checkpoint
from tests.helpers import evolving_frames

# float64 and a handful of steps: the two runs differ only in the summation order of the
# batch mean (and DDP's gradient averaging), ~1e-16 relative per step, amplified a little by
# Adam's normalization; 1e-9 leaves a wide margin and still catches any different batch.
RTOL, ATOL = 1e-9, 1e-11


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "s.zarr"
    F = evolving_frames(48, 8, 12)
    w = MatrixStoreWriter.create(path, n_runs=1, n_frames=48, matrix_shape=(8, 12), chunk_frames=8)
    for i in range(48):
        w.append(F[i : i + 1], 0.1 * i)
    w.finalize()
    return path


def config(data, epochs=2):
    s = TrainSettings(epochs=epochs, lr=1e-2, batch_size=8, seed=3, device="cpu", dtype="float64")
    return StudyConfig(
        data=str(data), rank=3, model="fork", settings=s,
        model_kwargs={"stem": (32, 16), "branch": (16,)},
    )  # fmt: skip


def weights(path):
    _, tensors = load_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def assert_weights_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=ATOL, msg=k)


def torchrun(nproc, *args, cwd):
    # loopback only: gloo otherwise picks the interface its hostname resolves to
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", *args]  # fmt: skip
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


def test_two_gloo_processes_match_single_process_and_resume_on_one(data, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {os.getcwd()!r})
            from tests.distributed.test_distributed_training import config
            from neuralfactor.distributed.training import train_model_distributed
            out = train_model_distributed(config({str(data)!r}), {str(tmp_path / "ddp")!r},
                                          max_steps=3, progress=False)
            assert out is None  # stopped at max_steps, mid-epoch (4 steps per epoch)
            """
        )
    )
    torchrun(2, str(script), cwd=tmp_path)
    meta, _ = load_checkpoint(tmp_path / "ddp" / "ckpt" / "last")
    assert meta["train_state"]["step"] == 3 and meta["distributed"]["world_size"] == 2
    assert not (tmp_path / "ddp" / "model").exists()

    # the same 3 steps in one process (same code, no DDP) with the same global batch
    assert (
        train_model_distributed(config(data), tmp_path / "one", max_steps=3, progress=False) is None
    )
    one, _ = load_checkpoint(tmp_path / "one" / "ckpt" / "last")
    assert one.keys() == meta.keys() and one["data_fingerprint"] == meta["data_fingerprint"]
    assert_weights_close(
        weights(tmp_path / "ddp" / "ckpt" / "last"), weights(tmp_path / "one" / "ckpt" / "last")
    )

    # resume the 2-process run on 1 process; it must land where uninterrupted training lands,
    # here the original single-process trainer (LearnedFactorizer.fit, its own data order code)
    f = train_model_distributed(config(data), tmp_path / "ddp", resume=True, progress=False)
    ref = train_model(config(data), tmp_path / "single", progress=False)
    assert_weights_close(
        weights(tmp_path / "ddp" / "model"), weights(tmp_path / "single" / "model")
    )
    # the interrupted run also evaluated at its stop (step 3); the epoch ends agree
    assert [h["step"] for h in f.history_] == [3, 4, 8] and [h["step"] for h in ref.history_] == [
        4,
        8,
    ]
    assert f.history_[-1]["loss"] == pytest.approx(ref.history_[-1]["loss"], rel=1e-9)


def test_both_training_paths_write_one_metadata_schema(data, tmp_path):
    """train_model (LearnedFactorizer.fit on loaded frames) and the data-parallel trainer (frames
    read lazily from the store) write the same metadata keys in every checkpoint, with the
    same data fingerprint of the same training frames."""
    cfg = config(data, epochs=1)
    train_model_distributed(cfg, tmp_path / "ddp", progress=False)
    train_model(cfg, tmp_path / "one", progress=False)
    for part in ("ckpt/last", "ckpt/best", "model"):
        a, _ = load_checkpoint(tmp_path / "ddp" / part)
        b, _ = load_checkpoint(tmp_path / "one" / part)
        assert a.keys() == b.keys(), part
        assert set(TRAIN_META_KEYS) <= a.keys(), part
        for key in TRAIN_META_KEYS:
            assert a[key] == b[key], (part, key)
        assert a["data_fingerprint"] is not None
    assert set(MODEL_META_KEYS) <= load_checkpoint(tmp_path / "one" / "model")[0].keys()


def test_errors(data, tmp_path):
    cfg = config(data)
    with pytest.raises(ValueError, match="'max_steps' parameter must be >= 1"):
        train_model_distributed(cfg, tmp_path / "a", max_steps=0)
    big = StudyConfig(data=cfg.data, rank=9, model="fork", settings=cfg.settings)
    with pytest.raises(ValueError, match=r"must be an int in \[1, min\(m, n\)=8\]"):
        train_model_distributed(big, tmp_path / "b")
    train_model_distributed(cfg, tmp_path / "c", max_steps=1, progress=False)
    with pytest.raises(FileExistsError, match="pass --resume"):
        train_model_distributed(cfg, tmp_path / "c")
    other = config(data, epochs=3)
    with pytest.raises(FileExistsError, match="another configuration"):
        train_model_distributed(other, tmp_path / "c", resume=True)


@pytest.mark.slow
def test_cli_under_torchrun(data, tmp_path, capsys):
    args = ["--quiet", "train", "--distributed", "--data", str(data), "--model", "fork",
            "--rank", "3", "--epochs", "2", "--batch-size", "8", "--lr", "1e-2",
            "--dtype", "float64", "--device", "cpu", "--seed", "3"]  # fmt: skip
    p = torchrun(2, "-m", "neuralfactor.cli", *args, "--out", str(tmp_path / "ddp"), cwd=tmp_path)
    assert "distributed: 2 processes" in p.stdout
    assert main([*args[:2], *args[3:], "--out", str(tmp_path / "one")]) == 0
    assert_weights_close(weights(tmp_path / "ddp" / "model"), weights(tmp_path / "one" / "model"))
