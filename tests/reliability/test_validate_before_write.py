"""A refused command leaves nothing behind, and a run notices that its store changed.

``train`` and ``factorize`` validate the whole configuration (rank, device, model name, batch
size, model/frame-size compatibility) before writing: the rejected command leaves no file that
would make the corrected one fail with "another configuration; pass --overwrite". A run records
the checksum of the store it was trained on; ``evaluate`` (and a rerun of ``train``) refuse a
store that was re-simulated since.
"""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from neuralfactor.cli import main


def _simulate(path, *extra: str) -> None:
    rc = main(
        ["-q", "simulate", "--nx", "8", "--nv", "16", "--t-end", "3", "--out", str(path), *extra]
    )
    assert rc == 0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    p = tmp_path_factory.mktemp("vbw") / "s.zarr"
    _simulate(p)
    return p


def _train(store, out, *extra: str) -> list[str]:
    # --batch-size 8: the tiny store's training split (~54 frames) holds several batches
    base = ["-q", "train", "--data", str(store), "--out", str(out), "--epochs", "1"]
    return [*base, "--rank", "2", "--batch-size", "8", "--device", "cpu", *extra]


BAD_TRAIN = {
    "rank 0": (["--rank", "0"], "'rank' parameter"),
    "rank above min(m, n)": (["--rank", "99"], r"min\(m, n\)=8"),
    "unknown model": (["--model", "nope"], "Unknown model 'nope'"),
    "batch larger than the split": (["--batch-size", "1000"], "fewer than one batch"),
    "cuda without a GPU": (["--device", "cuda"], "no CUDA device"),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_refused_train_leaves_nothing_and_the_fix_runs(case, store, tmp_path, capsys):
    bad, message = BAD_TRAIN[case]
    if case == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "run"
    rc = main(_train(store, out, *bad))  # later options win: the bad value replaces the good
    err = capsys.readouterr().err
    assert rc == 2, err
    assert re.search(message, err), err
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert main(_train(store, out)) == 0, capsys.readouterr().err  # the corrected command
    assert (out / "model" / "meta.json").is_file()


def test_refused_factorize_with_a_model_of_another_frame_size_leaves_nothing(
    store, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(_train(store, run)) == 0
    other = tmp_path / "square.zarr"  # 16x16 frames; the model was trained on 8x16
    rc = main(["-q", "simulate", "--nx", "16", "--nv", "16", "--t-end", "1", "--out", str(other)])
    assert rc == 0
    out = tmp_path / "f.zarr"
    cmd = ["-q", "factorize", str(other), "--rank", "2", "--out", str(out)]
    rc = main([*cmd, "--model", str(run / "model")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "was built for 8x16 frames" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "square.zarr"]
    assert main(cmd) == 0, capsys.readouterr().err  # a valid factorize into the same --out
    assert out.is_dir()


def test_evaluate_refuses_a_store_that_changed_since_training(store, tmp_path, capsys):
    data = tmp_path / "s.zarr"
    shutil.copytree(store, data)
    run = tmp_path / "run"
    assert main(_train(data, run)) == 0
    from neuralfactor.data.store import MatrixStore

    before = MatrixStore.open(data).metadata["checksum"]
    _simulate(data, "--t-end", "6", "--overwrite")  # re-simulated: twice the frames
    after = MatrixStore.open(data).metadata["checksum"]
    assert before != after
    capsys.readouterr()
    rc = main(["-q", "evaluate", str(run), "--baselines", "svd", "--repeats", "3"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1, err
    assert "changed since" in err and before in err and after in err
    assert "--overwrite" in err
    assert not (run / "records.jsonl").exists()
    # rerunning the same train command does not silently reuse (or resume) the stale run
    rc = main(_train(data, run))
    assert rc == 1 and "changed since" in capsys.readouterr().err
    # retraining on the new store is the documented way out, then evaluate runs
    assert main(_train(data, run, "--overwrite")) == 0
    rc = main(["-q", "evaluate", str(run), "--baselines", "svd", "--repeats", "3"])
    assert rc == 0, capsys.readouterr().err
    assert (run / "records.jsonl").is_file()


def test_check_store_unchanged_library_error(store, tmp_path):
    from neuralfactor.amortized.study import (
        DATA_FILE,
        StoreChangedError,
        StudyConfig,
        check_store_unchanged,
        store_identity,
    )
    from neuralfactor.io import write_json

    config = StudyConfig(data=str(store), rank=2)
    ident = store_identity(config)
    write_json(tmp_path / DATA_FILE, ident)
    check_store_unchanged(tmp_path, config)  # same store: no error
    write_json(tmp_path / DATA_FILE, {**ident, "checksum": "0" * 64, "frames": 3})
    with pytest.raises(StoreChangedError, match=r"checksum 0{64} \(3 frames\) then"):
        check_store_unchanged(tmp_path, config)
