"""`neuralfactor.lu.run`: the run-directory protocol of `neuralfactor lu`, as library calls."""

import json

import pytest
import torch

from neuralfactor.io import read_json
from neuralfactor.lu.run import LURunConfig, evaluate_run, train_run
from neuralfactor.lu.train import LUTrainConfig

TINY = {"operator": "laplacian-1d", "n": 32, "leaf": 8}


def _config(**train):
    return LURunConfig(**TINY, train=LUTrainConfig(steps=2, cg_iters=5, **train))


def test_config_dict_is_the_config_json_of_earlier_runs():
    cfg = LURunConfig.from_preset(
        "original", precond_stages="", train={"steps": 3, "lr": None}, **TINY
    )
    # the keys and values `neuralfactor lu` wrote before the run functions existed
    expected = {**TINY, "dim": 1, "band": 2, "diag": "full", "dtype": "float64", "seed": 0}
    expected["train"] = {**json.loads(json.dumps(LUTrainConfig(optimizer="lbfgs").__dict__))}
    expected["train"].update({"steps": 3, "inner": 20, "lr": 1.0})
    assert cfg.to_dict() == expected
    sym = LURunConfig.from_preset(symmetric=True, precond_stages="0.01:2,0.001:3", **TINY)
    assert sym.to_dict()["symmetric"] is True
    assert sym.to_dict()["train"]["precond_stages"] == [[0.01, 2], [0.001, 3]]
    assert sym.model_args() == {
        "n": 32, "leaf": 8, "dim": 1, "band": 2, "diag": "triangular", "dtype": "float64",
        "seed": 0, "symmetric": True,
    }  # fmt: skip


def test_train_run_writes_the_run_and_restores_threads(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        r = train_run(tmp_path / "run", _config())
        assert torch.get_num_threads() == 2  # training pinned one thread, then restored it
    finally:
        torch.set_num_threads(before)
    out = tmp_path / "run"
    assert read_json(out / "config.json") == _config().to_dict()
    t = read_json(out / "train.json")
    assert t["rel_fro"] == r.rel_fro and t["params"] == r.params and t["dense"] == 32 * 32
    assert [s["stage"] for s in t["stages"]] == ["e2e"]
    assert r.rel_fro < 0.1  # two LM steps from L = I, U = near field of A
    m = evaluate_run(out, samples=4)
    assert read_json(out / "metrics.json")["rows"] == json.loads(json.dumps(m["rows"]))
    assert (m["n"], m["leaf"], m["method"]) == (32, 8, "gmres")
    assert m["rows"][0]["op_err_fro"] == pytest.approx(r.rel_fro, rel=1e-9)


def test_train_run_refusals(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"either --overwrite or --resume, not both"):
        train_run(out, _config(), resume=True, overwrite=True)
    with pytest.raises(ValueError, match=r"'operator' parameter must be one of"):
        train_run(out, LURunConfig(operator="poisson", n=32, leaf=8))
    assert not out.exists()  # refused before the first file was written
    train_run(out, _config())
    with pytest.raises(FileExistsError, match=r"already holds a run; pass --resume"):
        train_run(out, _config())
    with pytest.raises(ValueError, match=r"--resume: .*config.json was written with different"):
        train_run(out, _config(lr=1e-2), resume=True)
    first = read_json(out / "train.json")["rel_fro"]
    again = train_run(out, _config(), overwrite=True)
    assert again.rel_fro == first  # same seed, same settings: the same run
    with pytest.raises(FileNotFoundError, match=r"is not an lu run \(no config.json\)"):
        evaluate_run(tmp_path / "missing")
