"""`neuralfactor train` and TrainSettings default to the ConvMF recipe of
docs/results/convmf-recipe.md; `--preset original` gives the original study's settings.
Compared on the parsed configuration, without training."""

from types import SimpleNamespace

import pytest

import neuralfactor.distributed.run as distributed_run
from neuralfactor.amortized.factorizer import TRAIN_PRESETS, TrainSettings, train_preset
from neuralfactor.cli import main
from neuralfactor.distributed.run import TrainRun

# the recipe as README.md and docs/results/convmf-recipe.md state it
BEST = {
    "epochs": 240,
    "lr": 1e-3,
    "batch_size": 25,
    "schedule": "cosine",
    "warmup_epochs": 5,
    "grad_clip": 50.0,
    "objective": "factors+projection",
}
ORIGINAL = {
    "epochs": 120,
    "lr": 1e-4,
    "batch_size": 25,
    "schedule": "constant",
    "warmup_epochs": 0,
    "grad_clip": None,
    "objective": "factors",
}


def _check(settings, expected):
    for k, v in expected.items():
        assert getattr(settings, k) == v, k


def test_library_defaults_are_the_recipe():
    assert TrainSettings() == train_preset() == train_preset("best")
    _check(TrainSettings(), BEST)
    _check(train_preset("original"), ORIGINAL)
    assert set(TRAIN_PRESETS) == {"best", "original"}
    # the default warmup is 5 epochs, at most a tenth of a short run
    assert [TrainSettings(epochs=e).warmup_epochs for e in (2, 10, 40, 240)] == [0, 1, 4, 5]
    # a setting given explicitly wins, None included (grad_clip=None: no clipping)
    assert train_preset("best", grad_clip=None, epochs=3).grad_clip is None


def test_old_configs_read_with_the_original_values():
    # a config written before schedule/warmup/clipping/objective existed ran without them
    old = {"epochs": 10, "lr": 1e-4, "batch_size": 25, "patience": None, "seed": 0}
    old |= {"device": "cpu", "dtype": "float32"}
    s = TrainSettings.from_dict(old)
    assert (s.schedule, s.warmup_epochs, s.grad_clip, s.objective) == (
        "constant",
        0,
        None,
        "factors",
    )


def test_preset_errors():
    with pytest.raises(ValueError, match=r"'preset' parameter of train_preset must be one of"):
        train_preset("recipe")


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake(config, out, *, resume, overwrite, distributed, threads, progress):
        seen["config"] = config
        return TrainRun(SimpleNamespace(history_=[], fit_seconds_=0.0, name=config.model))

    monkeypatch.setattr(distributed_run, "train_run", fake)
    return seen


@pytest.mark.parametrize(
    "extra,expected",
    [
        ([], BEST),
        (["--preset", "original"], ORIGINAL),
        (["--preset", "original", "--schedule", "cosine"], {**ORIGINAL, "schedule": "cosine"}),
        (
            ["--grad-clip", "0", "--epochs", "40"],
            {**BEST, "grad_clip": None, "epochs": 40, "warmup_epochs": 4},
        ),
        # the recipe at the sketch encoder's own rate; an explicit --lr wins
        (["--model", "sketch"], {**BEST, "lr": 1e-2}),
        (["--model", "sketch", "--lr", "3e-3"], {**BEST, "lr": 3e-3}),
        (["--model", "sketch", "--preset", "original"], ORIGINAL),
    ],
)
def test_cli_defaults_and_preset(tmp_path, captured, extra, expected):
    args = ["--quiet", "train", "--data", str(tmp_path / "x.zarr"), "--out", str(tmp_path / "r")]
    assert main(args + extra) == 0
    _check(captured["config"].settings, expected)


def test_cli_bad_preset(tmp_path, captured, capsys):
    args = ["train", "--data", str(tmp_path / "x.zarr"), "--out", str(tmp_path / "r")]
    assert main(args + ["--preset", "recipe"]) == 2
    assert "must be one of ['best', 'original']" in capsys.readouterr().err


def test_train_run_refuses_negative_threads(tmp_path):
    with pytest.raises(ValueError, match=r"--threads must be >= 0 \(0: chosen from the cores\)"):
        distributed_run.train_run(None, tmp_path, threads=-1)
    assert not any(tmp_path.iterdir())
