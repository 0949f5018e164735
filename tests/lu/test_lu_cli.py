"""`neuralfactor lu` and `neuralfactor lu evaluate RUN` end to end on a tiny operator."""

import pytest

from neuralfactor.cli import main
from neuralfactor.io import read_json


def test_cli_train_and_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "--quiet",
        "lu",
        "--operator",
        "laplacian-1d",
        "--n",
        "32",
        "--leaf",
        "8",
        "--steps",
        "3",
        "--inner",
        "5",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert (out / "model" / "weights.safetensors").is_file()
    assert read_json(out / "train.json")["params"] > 0
    assert main(args) == 2  # an existing run is not overwritten silently
    assert "already holds a run" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert main(["--quiet", "lu", "evaluate", str(out), "--samples", "5"]) == 0
    m = read_json(out / "metrics.json")
    assert {r["method"] for r in m["rows"]} == {
        "learned-float64",
        "lapack-float32",
        "lapack-float64",
    }
    assert set(m["iterations"]) >= {"none", "ilu0", "amg", "learned"}
    assert "gmres iterations to 1e-8" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys):
    assert main(["lu", "--operator", "poisson", "--out", str(tmp_path / "x")]) == 2
    assert "'operator' parameter must be one of" in capsys.readouterr().err
    assert main(["lu", "--n", "48", "--leaf", "8", "--out", str(tmp_path / "y")]) == 2
    assert "power of two" in capsys.readouterr().err
    assert main(["lu"]) == 2
    assert "'--out' option" in capsys.readouterr().err
    assert main(["lu", "evaluate", str(tmp_path / "missing")]) == 2


def test_cli_symmetric_with_precond_weight(tmp_path, capsys):
    out = tmp_path / "sym"
    args = ["--quiet", "lu", "--operator", "laplacian-1d", "--n", "32", "--leaf", "8"]
    args += ["--diag", "triangular", "--optimizer", "lm", "--steps", "3", "--cg-iters", "10"]
    args += ["--symmetric", "--precond-weight", "0.1", "--precond-stages", "0.01:2", "--out"]
    args += [str(out)]
    assert main(args) == 0
    assert main(args + ["--resume"]) == 0  # the stages survive the config.json round trip
    assert read_json(out / "config.json")["symmetric"] is True
    assert read_json(out / "config.json")["train"]["precond_weight"] == 0.1
    assert read_json(out / "config.json")["train"]["precond_stages"] == [[0.01, 2]]
    assert [s["stage"] for s in read_json(out / "train.json")["stages"]] == ["e2e", "precond1"]
    assert main(["--quiet", "lu", "evaluate", str(out), "--samples", "5"]) == 0
    m = read_json(out / "metrics.json")
    assert m["iterations"]["learned"]["converged"]
    # the learned Cholesky form refuses a non-symmetric operator, with the reason
    bad = ["lu", "--operator", "convdiff-1d", "--n", "32", "--leaf", "8", "--diag", "triangular"]
    assert main(bad + ["--symmetric", "--out", str(tmp_path / "bad")]) == 2
    assert "non-symmetric operator" in capsys.readouterr().err
    assert main(bad[:-2] + ["--precond-stages", "0.1", "--out", str(tmp_path / "b2")]) == 2
    assert "WEIGHT:STEPS pairs" in capsys.readouterr().err


@pytest.mark.slow  # ~100 s of CPU (60 LM steps at n = 64)
def test_cli_defaults_meet_the_documented_targets(tmp_path):
    """`neuralfactor lu --operator laplacian-1d --n 64 --leaf 8 --out RUN` with no other flag
    reaches the 1-D Laplacian's targets: operator error <= 1e-5, <= 6 GMRES iterations."""
    out = tmp_path / "run"
    args = ["--quiet", "lu", "--operator", "laplacian-1d", "--n", "64", "--leaf", "8"]
    assert main([*args, "--out", str(out)]) == 0
    assert read_json(out / "train.json")["rel_fro"] <= 1e-5
    assert main(["--quiet", "lu", "evaluate", str(out), "--samples", "5"]) == 0
    learned = read_json(out / "metrics.json")["iterations"]["learned"]
    assert learned["converged"] and learned["iters"] <= 6
