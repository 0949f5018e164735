"""Small CLI frictions, each with its regression test.

* ``--help`` printed ``<bool>`` after every flag, as if it took a value;
* a typo in a method, model or option name got no "did you mean";
* ``approx --method convmf`` was accepted, then failed with NotFittedError (exit 1);
* ``train --threads`` defaulted to all threads, 15x slower on a shared 2-core machine;
* ``factorize`` printed "ratio to optimum ... mean 3.4e11": frames whose optimum is at round-off
  dominated the mean (robust summary: median, shares within 1.01 / 1.05, round-off apart);
* the training progress bar showed an unlabelled "loss" next to the result's "validation
  scaled loss".
"""

from __future__ import annotations

import re

import pytest
import torch

from neuralfactor.cli import app, main
from neuralfactor.core.metrics import ratio_summary, roundoff_floor
from neuralfactor.core.timing import default_threads
from neuralfactor.core.validation import check_option, did_you_mean


def _commands() -> list[list[str]]:
    cmds = [[]]
    for c in app.registered_commands:
        cmds.append([c.name or c.callback.__name__])
    for g in app.registered_groups:
        cmds.append([g.name])
        for c in g.typer_instance.registered_commands:
            cmds.append([g.name, c.name or c.callback.__name__])
    return cmds


@pytest.mark.parametrize("cmd", _commands(), ids=lambda c: " ".join(c) or "root")
def test_help_shows_flags_as_flags(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out
    assert re.search(r"^\s+--help\s+Show this message and exit\.$", out, re.M), out


def test_help_shows_paired_and_plain_flags(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--resume / --no-resume" in out and "--restore-best / --keep-last" in out
    assert re.search(r"^\s+--distributed\s+Data-parallel", out, re.M)
    assert "--rank <int>" in out  # options that take a value still say which


@pytest.mark.parametrize(
    "typo, allowed, expected",
    [
        ("rsdv", ["svd", "rsvd", "rsvd-gemm"], "rsvd"),
        ("SVD", ["svd", "rsvd"], "svd"),
        ("svds-arpak", ["svds-arpack", "svds-lobpcg"], "svds-arpack"),
        ("convnf", ["convmf", "fork", "danmf"], "convmf"),
    ],
)
def test_did_you_mean(typo, allowed, expected):
    assert did_you_mean(typo, allowed) == f" Did you mean {expected!r}?"


def test_did_you_mean_stays_silent_without_a_near_miss():
    assert did_you_mean("zzzz", ["svd", "rsvd"]) == ""
    assert did_you_mean(3, ["svd"]) == ""
    with pytest.raises(ValueError, match=r"Got 'cosin'\. Did you mean 'cosine'\?"):
        check_option("cosin", ["constant", "cosine"], name="schedule")


def test_make_factorizer_suggests():
    import neuralfactor as nf

    with pytest.raises(ValueError, match=r"Unknown factorizer 'rsdv'.*Did you mean 'rsvd'\?"):
        nf.make_factorizer("rsdv", rank=2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["approx", "identity", "--param", "n=8", "--rank", "2", "-m", "rsdv"], "'rsvd'"),
        (["train", "--data", "x.zarr", "--out", "r", "--schedule", "cosin"], "'cosine'"),
        (
            ["train", "--data", "x.zarr", "--out", "r", "--rank", "2", "--model", "convnf"],
            "'convmf'",
        ),
        (["bench", "--methods", "svd,rsdv", "--size", "8x8", "--ranks", "2"], "'rsvd'"),
        (["evaluate", "no-run", "--baselines", "svd,rsvd-gem"], "'rsvd-gemm'"),
        (["bench", "--suite", "frames", "--methods", "svdd", "--size", "8x8"], "'svd'"),
        (
            ["factorize", "x.zarr", "--rank", "2", "--out", "f", "--method", "rsvd-gem"],
            "'rsvd-gemm'",
        ),
    ],
)
def test_cli_typos_get_a_suggestion(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "x.zarr" in argv:  # needs a store to reach the name check
        rc = main(["-q", "simulate", "--nx", "8", "--nv", "16", "--t-end", "1", "--out", "x.zarr"])
        assert rc == 0
        capsys.readouterr()
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err
    assert f"Did you mean {message}?" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["convmf", "pod-basis", "convmf+refine"])
def test_approx_refuses_data_driven_methods_up_front(method, capsys):
    rc = main(["-q", "approx", "identity", "--param", "n=8", "--rank", "2", "-m", method])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"--method {method} is data-driven" in err and "neuralfactor factorize --model" in err
    assert "NotFittedError" not in err


def test_approx_still_runs_classical_methods(capsys):
    for method in ("rsvd", "nmf", "svds-arpack"):
        rc = main(["-q", "approx", "identity", "--param", "n=8", "--rank", "2", "-m", method])
        assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "usable, physical, expected",
    [(1, None, 1), (2, 1, 1), (2, 2, 1), (4, 2, 2), (16, 8, 8), (4, 8, 4), (3, 3, 3)],
)
def test_default_threads(usable, physical, expected):
    assert default_threads(usable, physical) == expected


def test_default_threads_on_this_machine_is_within_its_cores():
    import os

    n = default_threads()
    assert 1 <= n <= (os.cpu_count() or 1)


def test_train_help_documents_the_threads_default(capsys):
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 (the default) chooses: 1 on a machine with <= 2 cores" in out


def test_ratio_summary_counts_roundoff_frames_apart():
    """Frames of known loss and optimum: the summary is exact, round-off frames apart."""
    shape, dt = (8, 16), torch.float32
    floor = roundoff_floor(shape, dt)
    assert floor == pytest.approx((16 * torch.finfo(dt).eps) ** 2)
    opt = torch.tensor([1e-2, 1e-2, 1e-2, 1e-2, floor / 10, 0.0], dtype=torch.float64)
    loss = torch.tensor([1.0e-2, 1.005e-2, 1.02e-2, 1.2e-2, 1e-7, 0.0], dtype=torch.float64)
    s = ratio_summary(loss, opt, shape=shape, dtype=dt)
    assert s["frames"] == 6 and s["roundoff_frames"] == 2
    assert s["roundoff_loss_max"] == pytest.approx(1e-7)
    assert s["ratio_median"] == pytest.approx((1.005 + 1.02) / 2)  # even count: the mean of two
    assert s["within_1_01"] == pytest.approx(0.5) and s["within_1_05"] == pytest.approx(0.75)
    assert s["ratio_max"] == pytest.approx(1.2)
    # the mean of the raw ratios is dominated by the round-off frame (1e-7 / 3.6e-13)
    assert float((loss[:5] / opt[:5]).mean()) > 1e4


def test_ratio_summary_without_regular_frames_and_bad_input():
    s = ratio_summary(torch.zeros(3), torch.zeros(3), shape=(4, 4), dtype=torch.float64)
    assert s["roundoff_frames"] == 3 and s["ratio_median"] != s["ratio_median"]  # NaN
    with pytest.raises(ValueError, match="loss has 3 frames but optimum has 2"):
        ratio_summary(torch.ones(3), torch.ones(2), shape=(4, 4), dtype=torch.float64)


def test_factorize_prints_the_robust_summary(tmp_path, capsys):
    """The Landau initial condition (1 + a cos kx) M(v) has rank 2: at rank 2 its optimum is at
    round-off and must not enter the ratio summary."""
    store = tmp_path / "s.zarr"
    rc = main(["-q", "simulate", "--nx", "8", "--nv", "16", "--t-end", "1", "--out", str(store)])
    assert rc == 0
    capsys.readouterr()
    out_dir = tmp_path / "f.zarr"
    assert main(["-q", "factorize", str(store), "--rank", "2", "--out", str(out_dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(
        r"ratio to optimum median \d\.\d{4}, \d+% within 1\.01, \d+% within 1\.05", out
    )
    assert "with an optimum at round-off" in out
    assert " mean " not in out.split("scaled loss mean")[1]  # no mean of ratios any more
    from neuralfactor.distributed.factorize import FactorStore

    fs = FactorStore.open(out_dir)
    assert fs.summary["roundoff_frames"] >= 1


def test_progress_bar_labels_what_it_shows():
    """The loop's bar names the step's loss and the evaluation metric (caller-chosen)."""
    import inspect

    from neuralfactor.train.loop import run_training

    sig = inspect.signature(run_training)
    assert sig.parameters["loss_label"].default == "batch loss"
    assert sig.parameters["metric_label"].default == "eval"
    import neuralfactor.amortized.factorizer as amf

    src = inspect.getsource(amf.LearnedFactorizer.fit_frames)  # the one training path
    assert 'metric_label="val scaled loss"' in src
