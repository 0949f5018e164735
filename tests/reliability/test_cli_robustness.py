"""Every subcommand, driven with generated bad argument lists: exit code 2, one readable line
on stderr, no traceback, and no work done before the input is validated.

For each command a small valid baseline is mutated option by option: malformed numbers,
zero/negative values, non-finite floats, unknown choices, nonexistent inputs, a missing
required option, unknown flags and contradictory flags. Each argument list counts as one
input tried (``tally['cli_argv.<command>']``).
"""

from __future__ import annotations

import re
import time

import pytest

from neuralfactor.cli import main

# kinds of options and the bad values generated for them
BAD = {
    "posint": ["abc", "1.5", "0", "-3"],
    "nonneg_int": ["abc", "-1"],
    "posfloat": ["abc", "nan", "inf", "-1", "0"],
    "float": ["abc", "nan"],
    "nonneg_float": ["abc", "nan", "inf", "-1"],
    "unit": ["abc", "nan", "-0.1", "1", "1.5"],
    "choice": ["nope"],
    "in_path": ["{tmp}/does-not-exist"],
}

# command -> (baseline argv (tiny, valid), {option: kind}, extra bad argvs (appended to base))
SPEC: dict[str, tuple[list[str], dict[str, str], list[list[str]]]] = {
    "simulate": (
        ["simulate", "--nx", "8", "--nv", "8", "--t-end", "0.2", "--out", "{tmp}/s.zarr"],
        {
            "--nx": "posint",
            "--nv": "posint",
            "--t-end": "posfloat",
            "--dt": "posfloat",
            "--save-every": "posint",
            "--ensemble": "posint",
            "--chunk-frames": "posint",
            "--vmax": "posfloat",
            "--length": "posfloat",
            "--k": "posfloat",
            "--alpha": "float",
            "--truncate-tol": "posfloat",
            "--ic": "choice",
            "--preset": "choice",
            "--scheme": "choice",
            "--dtype": "choice",
            "--device": "choice",
        },
        [["--overwrite", "--resume"], ["--resume"], ["--seed", "x"]],
    ),
    "train": (
        ["train", "--data", "{store}", "--out", "{tmp}/run", "--epochs", "1", "--device", "cpu"],
        {
            "--rank": "posint",
            "--epochs": "posint",
            "--lr": "posfloat",
            "--batch-size": "posint",
            "--patience": "nonneg_int",
            "--frame-stride": "posint",
            "--run": "nonneg_int",
            "--model": "choice",
            "--split": "choice",
            "--device": "choice",
            "--dtype": "choice",
            "--schedule": "choice",
            "--objective": "choice",
            "--grad-clip": "nonneg_float",
            "--warmup-epochs": "nonneg_int",
            "--data": "in_path",
            "--threads": "nonneg_int",
        },
        [["--overwrite", "--resume"], ["--resume"], ["--run", "7"]],
    ),
    "factorize": (
        ["factorize", "{store}", "--rank", "2", "--out", "{tmp}/f.zarr"],
        {
            "--rank": "posint",
            "--workers": "posint",
            "--threads": "posint",
            "--connect-timeout": "posfloat",
            "--method": "choice",
            "--scheduler": "choice",
            "--model": "in_path",
        },
        [["--rank", "99"], ["--param", "nonsense"], ["--scheduler", "tcp://127.0.0.1:1"]],
    ),
    "evaluate": (
        ["evaluate", "{tmp}/no-run"],
        {"--threads": "nonneg_int", "--repeats": "posint", "--device": "choice"},
        [["--baselines", "nope"]],
    ),
    "bench": (
        [
            "bench",
            "--methods",
            "svd",
            "--size",
            "8x8",
            "--ranks",
            "2",
            "--batches",
            "1",
            "--repeats",
            "1",
        ],
        {
            "--repeats": "posint",
            "--threads": "nonneg_int",
            "--max-call-seconds": "posfloat",
            "--data": "choice",
            "--dtype": "choice",
            "--device": "choice",
            "--data-file": "in_path",
            "--suite": "choice",
            "--train-epochs": "posint",
            "--train-frames": "posint",
        },
        [
            ["--size", "8"],
            ["--size", "8xq"],
            ["--size", "0x8"],
            ["--ranks", "a,b"],
            ["--ranks", "0"],
            ["--ranks", "99"],
            ["--batches", "0"],
            ["--batches", ""],
            ["--methods", "nope"],
            ["--methods", ""],
        ],
    ),
    "report": (["report", "{tmp}/no-run"], {}, []),
    "demo": (
        ["demo", "--quick", "--out", "{tmp}/demo"],
        {"--device": "choice"},
        [["--out", "/proc/neuralfactor-demo"]],
    ),
    "approx": (
        ["approx", "identity", "--rank", "2", "--param", "n=8"],
        {
            "--rank": "choice",
            "--method": "choice",
            "--rank-method": "choice",
            "--channel": "choice",
            "--sigma": "posfloat",
            "--tau": "nonneg_float",
        },
        [["--param", "n"], ["--param", "n=-4"], ["--param", "bogus=1"], ["--rank", "0"]],
    ),
    "lu": (
        ["lu", "--n", "16", "--leaf", "4", "--steps", "1", "--inner", "1", "--out", "{tmp}/lu"],
        {
            "--n": "posint",
            "--leaf": "posint",
            "--dim": "posint",
            "--band": "nonneg_int",
            "--steps": "nonneg_int",
            "--inner": "posint",
            "--cg-iters": "posint",
            "--lr": "posfloat",
            "--block-steps": "posint",
            "--polish-steps": "nonneg_int",
            "--operator": "choice",
            "--diag": "choice",
            "--dtype": "choice",
            "--optimizer": "choice",
        },
        [["--overwrite", "--resume"], ["--leaf", "32"], ["--n", "17"]],
    ),
    "lu-evaluate": (
        ["lu", "evaluate", "{tmp}/no-run"],
        {"--samples": "posint", "--method": "choice"},
        [],
    ),
    "spectral": (
        ["spectral", "--modes", "2", "--iters", "1", "--batch", "16", "--out", "{tmp}/sp"],
        {
            "--modes": "posint",
            "--iters": "posint",
            "--batch": "posint",
            "--lr": "posfloat",
            "--hidden": "posint",
            "--depth": "posint",
            "--sigma": "posfloat",
            "--envelope": "nonneg_float",
            "--ema-decay": "unit",
            "--eval-every": "posint",
            "--threads": "posint",
            "--problem": "choice",
            "--method": "choice",
            "--optimizer": "choice",
            "--laplacian": "choice",
            "--sampler": "choice",
            "--dtype": "choice",
        },
        [["--batch", "15"]],
    ),
    "spectral-evaluate": (["spectral", "evaluate", "{tmp}/no-run"], {}, []),
}

# commands whose baseline is itself invalid (a missing run directory): only the baseline and
# its option mutations are tried, all must fail.
REQUIRED = {
    "simulate": ["--out"],
    "train": ["--data", "--out"],
    "factorize": ["--rank", "--out"],
    "lu": ["--out"],
    "spectral": ["--out"],
}


def _without(argv: list[str], opt: str) -> list[str]:
    i = argv.index(opt)
    return argv[:i] + argv[i + 2 :]


def _cases() -> list[tuple[str, list[str]]]:
    cases = []
    for cmd, (base, opts, extra) in SPEC.items():
        if cmd in ("evaluate", "report", "lu-evaluate", "spectral-evaluate"):
            cases.append((cmd, base))
        for opt, kind in opts.items():
            for val in BAD[kind]:
                argv = _without(base, opt) if opt in base else list(base)
                cases.append((cmd, [*argv, opt, val]))
        for e in extra:
            cases.append((cmd, [*base, *e]))
        for opt in REQUIRED.get(cmd, []):
            cases.append((cmd, _without(base, opt)))
        cases.append((cmd, [*base, "--no-such-flag"]))
        cases.append((cmd, [*base[: 2 if "-" in cmd else 1], "--help-me"]))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "s.zarr"
    rc = main(["-q", "simulate", "--nx", "8", "--nv", "16", "--t-end", "4", "--out", str(p)])
    assert rc == 0
    return p


@pytest.mark.parametrize("cmd, argv", CASES, ids=[f"{c}:{' '.join(a[-3:])}" for c, a in CASES])
def test_bad_arguments_exit_2_with_one_line(cmd, argv, store, tmp_path, capsys, tally):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{store}", str(store)) for a in argv]
    t0 = time.perf_counter()
    rc = main(["-q", *argv])
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, f"exit {rc} for {argv}: {err or out}"
    assert "Traceback" not in err + out
    assert len(lines) == 1, f"{len(lines)} lines for {argv}:\n{err}"
    assert re.match(r"error: \S", lines[0]), lines[0]
    # Validation comes first: nothing long ran before the error.
    assert seconds < 15, f"{argv} took {seconds:.1f} s before failing"
    if cmd in ("train", "factorize"):  # and nothing was written that blocks the fixed command
        assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())
    tally[f"cli_argv.{cmd}"] += 1


def test_every_command_has_a_spec():
    """A new subcommand must be added to SPEC (so its bad input is generated too)."""
    from neuralfactor.cli import app

    names = set()
    for c in app.registered_commands:
        names.add(c.name or c.callback.__name__)
    for g in app.registered_groups:
        for c in g.typer_instance.registered_commands:
            names.add(f"{g.name}-{c.name or c.callback.__name__}")
    assert "factorize" in names and "lu-evaluate" in names  # the walk above sees both kinds
    assert names <= set(SPEC), sorted(names - set(SPEC))


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="'nx' parameter"):
        main(["--debug", "simulate", "--nx", "0", "--out", str(tmp_path / "s.zarr")])


def test_cli_works_without_a_standalone_click(monkeypatch, capsys):
    """A fresh `pip install -e .` with a Typer that vendors click has no `click` module: the
    CLI crashed on start-up with ModuleNotFoundError (the dev extras pull click in via dask)."""
    import sys

    monkeypatch.setitem(sys.modules, "click", None)  # makes `import click` raise ImportError
    from neuralfactor.cli import _click_exceptions

    assert all(_click_exceptions())  # exception classes still found (Typer's copy)
    assert main(["simulate", "--nx", "0", "--out", "x.zarr"]) == 2
    assert "'nx' parameter" in capsys.readouterr().err
