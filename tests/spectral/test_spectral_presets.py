"""`neuralfactor spectral` and SpectralConfig default to the documented hydrogen schedule
(the first hydrogen runs of docs/results/neuralsvd.md); `--preset original` gives the earlier defaults.
Compared on the parsed configuration, without training."""

import pytest

import neuralfactor.spectral.run as spectral_run
from neuralfactor.cli import main
from neuralfactor.spectral.run import SPECTRAL_PRESETS, SpectralConfig, spectral_preset

BEST = {"iters": 12000, "lr": 3e-3, "envelope": 0.1, "batch": 256, "method": "nestedlora-seq"}
ORIGINAL = {"iters": 2000, "lr": 1e-3, "envelope": None, "batch": 256}


def _check(cfg, expected):
    for k, v in expected.items():
        assert getattr(cfg, k) == v, k


def test_library_defaults_are_the_documented_schedule():
    assert SpectralConfig() == spectral_preset() == spectral_preset("best")
    _check(SpectralConfig(), BEST)
    _check(spectral_preset("original"), ORIGINAL)
    assert spectral_preset("original", lr=3e-3, envelope=None).lr == 3e-3
    assert set(SPECTRAL_PRESETS) == {"best", "original"}
    with pytest.raises(ValueError, match=r"'preset' parameter of spectral_preset must be one of"):
        spectral_preset("fast")


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake(config, out, **kw):
        seen["config"] = config
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(spectral_run, "run_spectral", fake)
    return seen


@pytest.mark.parametrize(
    "extra,expected",
    [
        ([], BEST),
        (["--preset", "original"], ORIGINAL),
        (["--preset", "original", "--envelope", "0.5"], {**ORIGINAL, "envelope": 0.5}),
        (["--iters", "100"], {**BEST, "iters": 100}),
    ],
)
def test_cli_defaults_and_preset(tmp_path, captured, extra, expected):
    args = ["--quiet", "spectral", "--no-figure", "--out", str(tmp_path / "r"), *extra]
    assert main(args) == 1  # the recorder stops the command after parsing
    _check(captured["config"], expected)


def test_cli_calls_one_run_function_with_the_run_options(tmp_path, monkeypatch):
    """`neuralfactor spectral` passes resume, progress, threads and figure to run_spectral."""
    seen = {}

    def fake(config, out, **kw):
        seen.update(kw, out=out, config=config)
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(spectral_run, "run_spectral", fake)
    args = ["--quiet", "spectral", "--no-figure", "--threads", "2", "--resume"]
    args += ["--init-from", str(tmp_path / "a"), "--reset-modes", "1,3"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 1
    assert {k: seen[k] for k in ("resume", "progress", "threads", "figure")} == {
        "resume": True,
        "progress": False,
        "threads": 2,
        "figure": False,
    }
    assert seen["config"].init_from == str(tmp_path / "a")
    assert seen["config"].reset_modes == (1, 3)
