"""The study pipeline end to end on a tiny simulation: simulate -> train -> evaluate -> figures."""

import json
import re

import pytest
import torch

from neuralfactor.cli import main
from neuralfactor.io import read_jsonl


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "landau.zarr"
    rc = main(
        [
            "-q",
            "simulate",
            "--ic",
            "landau-strong",
            "--nx",
            "16",
            "--nv",
            "32",
            "--t-end",
            "4",
            "--save-every",
            "4",
            "--device",
            "cpu",
            "--out",
            str(path),
        ]
    )
    assert rc == 0
    return path


def _train(store, out, *extra):
    return main(
        [
            "-q",
            "train",
            "--data",
            str(store),
            "--out",
            str(out),
            "--rank",
            "3",
            "--epochs",
            "2",
            "--batch-size",
            "5",
            "--lr",
            "1e-3",
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_train_evaluate_and_figures(store, tmp_path):
    out = tmp_path / "run"
    assert _train(store, out) == 0
    assert (out / "model" / "weights.safetensors").exists()
    assert (
        main(
            ["-q", "evaluate", str(out), "--baselines", "svd,rsvd-gemm,pod-basis", "--repeats", "3"]
        )
        == 0
    )
    recs = read_jsonl(out / "records.jsonl")
    methods = [r["method"] for r in recs]
    for m in (
        "convmf",
        "convmf+refine",
        "convmf+subspace",
        "convmf calculated V",
        "svd",
        "rsvd-gemm",
        "pod-basis",
    ):
        assert m in methods
    svd = next(r for r in recs if r["method"] == "svd")
    assert svd["ratio_mean"] == pytest.approx(1.0, abs=1e-4)  # float32 SVD vs float64 optimum
    for r in recs:
        assert r["ratio_mean"] >= 1 - 1e-4, r["method"]  # nothing beats Eckart-Young
        assert len(r["per_frame_loss"]) == r["n_test"]
    # least-squares V is never worse than the network's own V (same U)
    by = {r["method"]: r for r in recs}
    assert by["convmf+refine"]["scaled_loss_mean"] <= by["convmf"]["scaled_loss_mean"] * (1 + 1e-5)

    from neuralfactor.report import figures

    p = figures.plot_loss_vs_rank(recs, tmp_path / "f.png")
    assert p.stat().st_size > 1000


def test_train_is_idempotent_and_refuses_other_config(store, tmp_path, capsys):
    out = tmp_path / "run"
    before = torch.get_num_threads()
    assert _train(store, out, "--threads", "2") == 0
    assert torch.get_num_threads() == before  # --threads applies to the call only
    assert _train(store, out) == 0  # finished run with same config: reused
    assert _train(store, out, "--epochs", "3") == 2
    assert "holds a run with another configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--rank", "40"], r"must be an int in \[1, min\(m, n\)=16\]"),
        (["--split", "sideways"], "'split' parameter of StudyConfig must be one of"),
        (["--batch-size", "500"], "fewer than one batch"),
        (["--threads", "-1"], "--threads must be >= 0"),
    ],
)
def test_train_bad_input(store, tmp_path, capsys, args, msg):
    rc = main(
        [
            "-q",
            "train",
            "--data",
            str(store),
            "--out",
            str(tmp_path / "r"),
            "--epochs",
            "1",
            "--device",
            "cpu",
            *args,
        ]
    )
    assert rc == 2
    assert re.search(msg, capsys.readouterr().err)


def test_train_missing_store_and_evaluate_unfinished(tmp_path, capsys):
    assert (
        main(["-q", "train", "--data", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "r")])
        == 2
    )
    assert main(["-q", "evaluate", str(tmp_path)]) == 2
    assert "not a finished training run" in capsys.readouterr().err


def test_extrapolation_split_trains_on_early_frames(store, tmp_path):
    out = tmp_path / "ex"
    assert _train(store, out, "--split", "extrapolation") == 0
    split = json.loads((out / "split.json").read_text())
    assert max(split["train"]) < min(split["val"]) < min(split["test"])


def test_evaluate_times_a_second_model_in_the_same_rounds(store, tmp_path):
    from neuralfactor.amortized.study import evaluate_run

    conv, sk, other = tmp_path / "conv", tmp_path / "sketch", tmp_path / "r2"
    assert _train(store, conv) == 0
    assert _train(store, sk, "--model", "sketch") == 0
    recs = evaluate_run(conv, baselines=("svd",), with_runs=(sk,), max_seconds=1.0)
    by = {r["method"]: r for r in recs}
    for name in ("convmf", "convmf+refine", "sketch", "sketch+refine", "sketch+subspace"):
        assert by[name]["kind"] == "learned"
    assert by["sketch"]["model"] == "sketch" and by["convmf"]["model"] == "convmf"
    assert by["svd"]["kind"] == "classical"
    # one timed run: every method went through the same interleaved rounds
    assert len({r["timing_rounds"] for r in recs if r["kind"] != "analysis"}) == 1
    assert by["sketch"]["fit_seconds"] > 0
    on_disk = {r["method"] for r in read_jsonl(conv / "records.jsonl")}
    assert {"sketch", "sketch+refine"} <= on_disk
    assert not (sk / "records.jsonl").exists()  # its records live with the run it was timed in
    # a model of another rank (other test frames or rank) is refused before any timing
    assert main(["-q", "train", "--data", str(store), "--out", str(other), "--rank", "2",
                 "--epochs", "1", "--batch-size", "5", "--device", "cpu"]) == 0  # fmt: skip
    with pytest.raises(ValueError, match=r"cannot be evaluated beside this run at rank 3"):
        evaluate_run(conv, baselines=("svd",), with_runs=(other,), write=False)
