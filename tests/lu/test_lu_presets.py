"""`neuralfactor lu` and LUTrainConfig default to the best-known settings; `--preset original`
gives the original method. Compared on the parsed configuration, without training."""

import pytest

import neuralfactor.lu.run as lu_run
from neuralfactor.cli import main
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.train import LU_PRESETS, LUTrainConfig, LUTrainResult, lu_preset

# what README.md ("Learned hierarchical (FMM-structured) LU factors") and the help text say
BEST = {"diag": "triangular", "optimizer": "lm", "steps": 60, "lr": 1e-3, "cg_iters": 100}
ORIGINAL = {"diag": "full", "optimizer": "lbfgs", "steps": 250, "inner": 20, "lr": 1.0}


def _check(diag, cfg, expected):
    assert diag == expected["diag"]
    for k, v in expected.items():
        if k != "diag":
            assert getattr(cfg, k) == v, k


def test_library_defaults_are_the_best_preset():
    best = lu_preset()
    assert best == lu_preset("best")
    _check(best.diag, best.train, BEST)
    assert best.train == LUTrainConfig()  # the config's own defaults are the preset's
    assert LUNetwork(32, 8).init_args["diag"] == "triangular"
    orig = lu_preset("original")
    _check(orig.diag, orig.train, ORIGINAL)
    # an explicit setting wins over the preset; None means "not given"
    mixed = lu_preset("original", optimizer="lm", lr=None, diag="triangular")
    assert (mixed.diag, mixed.train.optimizer, mixed.train.lr, mixed.train.steps) == (
        "triangular",
        "lm",
        1e-3,
        250,
    )
    assert set(LU_PRESETS) == {"best", "original"}


def test_preset_errors():
    with pytest.raises(ValueError, match=r"'preset' parameter of lu_preset must be one of"):
        lu_preset("fast")
    with pytest.raises(ValueError, match=r"unknown settings \['optimiser'\]"):
        lu_preset("best", optimiser="lm")


@pytest.fixture
def captured(monkeypatch):
    """Replace train_lu by a recorder: the CLI parses, builds the model and config, and stops."""
    seen = {}

    def fake(A, model, config, **kw):
        seen["diag"], seen["config"] = model.init_args["diag"], config
        return LUTrainResult(rel_fro=0.0, seconds=0.0, stages=[])

    monkeypatch.setattr(lu_run, "train_lu", fake)
    return seen


@pytest.mark.parametrize(
    "extra,expected",
    [
        ([], BEST),
        (["--preset", "original"], ORIGINAL),
        (
            ["--preset", "original", "--optimizer", "lm"],
            {**ORIGINAL, "optimizer": "lm", "lr": 1e-3},
        ),
        (["--steps", "7"], {**BEST, "steps": 7}),
    ],
)
def test_cli_defaults_and_preset(tmp_path, captured, extra, expected):
    args = ["--quiet", "lu", "--n", "32", "--leaf", "8", "--out", str(tmp_path / "r"), *extra]
    assert main(args) == 0
    _check(captured["diag"], captured["config"], expected)


def test_cli_bad_preset(tmp_path, captured, capsys):
    assert main(["lu", "--preset", "fast", "--out", str(tmp_path / "r")]) == 2
    assert "'preset' parameter of lu_preset must be one of ['best', 'original']" in (
        capsys.readouterr().err
    )
    assert "config" not in captured
