"""The reproduction scripts of configs/ are accepted, stage by stage, by what they call.

Each ``configs/*.sh`` (but ``_stage.sh``) runs for hours, so a renamed flag or a mistyped value
would show only deep into a run. Here each one runs with ``NF_DRY_RUN=1`` in a temporary copy
(stubs in front of ``PATH`` fail loudly if ``python``, ``cp``, ``mkdir``... are called), which
prints every command instead of running it; then every ``python benchmarks/X.py ARGS`` is
parsed by X's own ``build_parser()`` and, where X builds validated run configurations from
its arguments (``recipe_config``, ``method_configs``: no training), those are built too. The
chain must hold together: every ``--init-from DIR`` (and the oracle diagnostic's run directory)
is the ``--out`` of an earlier command with the same methods and architecture, the records
copied afterwards are outputs of earlier commands, and stage names and ``--record-as`` names
are unique within a script. And a rerun must rewrite the records the pages read: each record a
command writes (``--record-as``, the oracle's ``OUT``, the files copied to the records) is a
committed record, and a hydrogen record's training settings are the stage's.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import importlib.util
import io
import json
import os
import shlex
import shutil
import subprocess
from contextlib import redirect_stderr
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SCRIPTS = sorted(p.name for p in CONFIGS.glob("*.sh") if p.name != "_stage.sh")
#: Commands a dry run must never call (stubbed to fail and leave a trace).
STUBS = ("python", "python3", "cp", "mv", "rm", "touch", "mkdir")
#: Builders of a benchmark's validated run configurations from its parsed arguments.
VALIDATORS = ("recipe_config", "method_configs")
PREFIX = "[dry-run] "
#: SpectralConfig fields a committed hydrogen record must share with the stage that rewrites it
#: (a field the record predates, None there, is skipped; ``init_from`` names a run directory).
SETTINGS = ("method", "iters", "lr", "batch", "sampler", "seed", "shift", "eval_every")
SETTINGS += ("radius_feature", "envelope", "lattice_theta", "reset_modes", "hidden", "depth")


class Refused(AssertionError):
    """A command its benchmark would refuse, or a broken chain of stages."""


def dry_run(script: str, tmp_path: Path) -> list[tuple[str, list[str]]]:
    """Run ``configs/<script>`` with ``NF_DRY_RUN=1`` in a copy; its ``(stage, argv)`` lines."""
    root, stubs, trace = tmp_path / "repo", tmp_path / "stubs", tmp_path / "called"
    shutil.copytree(CONFIGS, root / "configs")
    stubs.mkdir()
    for name in STUBS:
        (stubs / name).write_text(
            f'#!/bin/sh\necho "$0 $*" >> {shlex.quote(str(trace))}\nexit 97\n'
        )
        (stubs / name).chmod(0o755)
    env = {**os.environ, "NF_DRY_RUN": "1", "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", str(root / "configs" / script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{script} failed in a dry run:\n{proc.stderr}"
    assert not trace.exists(), f"{script} ran commands in a dry run:\n{trace.read_text()}"
    assert sorted(os.listdir(root)) == ["configs"], f"{script} wrote files in a dry run"
    assert not (root / "runs" / ".done").exists()
    commands = []
    for line in proc.stdout.splitlines():
        assert line.startswith(PREFIX), f"{script}: not a dry-run line: {line!r}"
        name, tab, args = line[len(PREFIX) :].partition("\t")
        assert tab and name, f"{script}: malformed dry-run line {line!r}"
        commands.append((name, shlex.split(args)))
    assert commands, f"{script} printed no commands"
    return commands


@functools.cache
def _benchmark(script: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (its ``__main__`` block does not run)."""
    path = ROOT / script
    if PurePosixPath(script).parent != PurePosixPath("benchmarks") or not path.is_file():
        raise Refused(f"{script} is not a script under benchmarks/")
    spec = importlib.util.spec_from_file_location(f"_configs_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "build_parser"):
        raise Refused(f"{script} exposes no build_parser()")
    return module


def check_command(argv: list[str]) -> argparse.Namespace:
    """Parse ``python benchmarks/X.py ARGS`` with X's parser (and build its run configurations,
    where X has a builder); ``Refused`` with X's own message if X would refuse it."""
    if argv[:1] != ["python"] or len(argv) < 2:
        raise Refused(f"not a `python benchmarks/X.py` command: {argv}")
    module = _benchmark(argv[1])
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            args = module.build_parser().parse_args(argv[2:])
    except SystemExit:
        raise Refused(f"{argv[1]} refuses {shlex.join(argv[2:])}: {err.getvalue()}") from None
    for name in VALIDATORS:
        if hasattr(module, name):
            try:
                getattr(module, name)(args)
            except ValueError as exc:
                raise Refused(f"{argv[1]} refuses {shlex.join(argv[2:])}: {exc}") from None
    return args


def _methods(args: argparse.Namespace) -> set[str]:
    return set(getattr(args, "methods", "").split(","))


def _check_warm_start(name: str, src: str, args, outs: dict, methods: set[str]) -> None:
    """``src`` (a warm start's directory) is an earlier ``--out`` holding ``methods``."""
    if src not in outs:
        raise Refused(f"{name}: {src} is not the --out of an earlier command")
    before = outs[src]
    if not methods <= _methods(before):
        raise Refused(f"{name}: {src} holds {sorted(_methods(before))}, not {sorted(methods)}")
    for arch in ("radius_feature", "envelope"):
        if arch in vars(args) and getattr(args, arch) != getattr(before, arch, None):
            raise Refused(f"{name}: --{arch.replace('_', '-')} differs from {src}'s run")


def _check_records(name: str, module: ModuleType, args: argparse.Namespace) -> None:
    """The records a hydrogen stage writes are committed ones, with the stage's settings."""
    if getattr(args, "record_as", None) is None or not hasattr(module, "method_configs"):
        return
    for cfg in module.method_configs(args):
        path = ROOT / args.records / f"{args.record_as}-{cfg.method}.json"
        if not path.is_file():
            raise Refused(f"{name}: writes {path.name}, not a committed record (no page reads it)")
        committed = json.loads(path.read_text(encoding="utf-8"))["config"]
        for key in SETTINGS:
            mine, theirs = getattr(cfg, key), committed.get(key)
            if theirs is None and key != "shift":
                continue
            if (list(mine) if isinstance(mine, tuple) else mine) != theirs:
                raise Refused(f"{name}: {key} = {mine!r}, the committed {path.name} has {theirs!r}")


def _check_lu_record(name: str, path: Path, args: argparse.Namespace) -> None:
    """A committed ``lu_table.py`` record holds the rows its command trains."""
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    steps = args.steps + sum(k for _, k in args.stages)
    want = [(op, steps, args.optimizer, args.diag, args.symmetric) for op in args.operators]
    got = [
        (r["operator"], r["steps"], r["optimizer"], r["diag"], bool(r.get("symmetric")))
        for r in rows
    ]
    if got != want:
        raise Refused(f"{name}: the committed {path.name} holds {got}, the command trains {want}")


def _check_copy(name: str, argv: list[str], outs: dict) -> None:
    """``cp SRC... DIR``: each SRC is an earlier output, and a committed record of DIR that
    holds what the command writing it trains."""
    for src in argv[1:-1]:
        written = [out for out in outs if fnmatch.fnmatchcase(out, src)]
        if not written:
            raise Refused(f"{name}: copies {src}, which no earlier command writes")
        for out in written:
            path = ROOT / argv[-1] / PurePosixPath(out).name
            if not path.is_file():
                raise Refused(f"{name}: copies {out} to {argv[-1]}, which holds no such record")
            if hasattr(outs[out], "operators"):
                _check_lu_record(name, path, outs[out])


def check_chain(commands: list[tuple[str, list[str]]]) -> None:
    """Every command accepted, the stages chained (see the module docstring); else ``Refused``."""
    names = [name for name, _ in commands]
    if len(set(names)) < len(names):
        raise Refused(f"stage names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    outs: dict[str, argparse.Namespace] = {}
    records: set[str] = set()
    for name, argv in commands:
        if argv[:1] == ["cp"]:
            _check_copy(name, argv, outs)
            continue
        args = check_command(argv)
        _check_records(name, _benchmark(argv[1]), args)
        if getattr(args, "init_from", None) is not None:
            _check_warm_start(name, args.init_from, args, outs, _methods(args))
        if argv[1].endswith("spectral_oracle_mode0.py"):
            run = PurePosixPath(args.run)
            _check_warm_start(name, str(run.parent), args, outs, {run.name})
            if not (ROOT / args.out).is_file():
                raise Refused(f"{name}: writes {args.out}, not a committed record")
        record = getattr(args, "record_as", None)
        if record is not None:
            if record in records:
                raise Refused(f"{name}: --record-as {record} repeats an earlier stage's")
            records.add(record)
        if getattr(args, "out", None) is not None:
            outs[str(args.out)] = args


@pytest.mark.parametrize("script", SCRIPTS)
def test_reproduction_script_is_accepted(script, tmp_path):
    check_chain(dry_run(script, tmp_path))


def test_every_script_is_checked():
    assert {"convmf-recipe.sh", "lu-table.sh", "neuralsvd-hydrogen.sh"} <= set(SCRIPTS)


H = ["python", "benchmarks/spectral_hydrogen.py"]
LU = ["python", "benchmarks/lu_table.py", "--optimizer", "lm"]
ORACLE = ["python", "benchmarks/spectral_oracle_mode0.py", "runs/a/nestedlora-seq", "40", "1e-3"]


@pytest.mark.parametrize(
    "argv",
    [
        [*LU, "--optimiser", "lm"],  # a misspelt flag
        [*LU, "--operators", "laplace-1d"],  # an unknown operator
        [*LU, "--steps", "6O"],  # not an int
        [*LU, "--stages", "0.01-30"],  # not WEIGHT:STEPS
        [*H, "--sampler", "latice"],  # refused by SpectralConfig, not by argparse
        [*H, "--reset-modes", "8"],  # reset modes without a warm start
        [*H, "--methods", "nestedlora-seq", "--batch", "1000", "--sampler", "lattice"],
        [*ORACLE, "out.json"],  # the mode is missing
        [*ORACLE, "out.json", "orcale"],
        ["python", "benchmarks/convmf_recipe.py", "--objective", "factors+proj"],
        ["python", "benchmarks/no_such_script.py"],
    ],
)
def test_a_wrong_command_is_refused(argv):
    with pytest.raises(Refused):
        check_command(argv)


def test_the_checked_commands_pass_when_right():
    check_command([*LU, "--operators", "laplacian-1d", "--stages", "0.01:30"])
    check_command([*ORACLE, "out.json", "learned", "1", "--key", "k"])
    check_command([*H, "--sampler", "lattice", "--batch", "1024", "--init-from", "x"])


REC = "docs/results/records/"
_RADIUS = "spectral_hydrogen_radius"
H1 = ["--radius-feature", "--iters", "70000", "--eval-every", "5000"]


LU_E = ["--out", "runs/lu_lm_e.json", "--steps", "150", "--operators", "rbf"]
LU_COPY = ["cp", "runs/lu_lm_*.json", REC]


def _h(out: str, *more: str) -> tuple[str, list[str]]:
    return out, [*H, "--out", out, *more]


@pytest.mark.parametrize(
    "commands",
    [
        [_h("runs/b", "--init-from", "runs/a"), _h("runs/a")],  # warm start before its source
        [_h("runs/a"), _h("runs/b", "--init-from", "runs/a", "--radius-feature")],
        [_h("runs/a", "--methods", "spin"), _h("runs/b", "--init-from", "runs/a")],
        [_h("runs/a", "--record-as", "r"), _h("runs/b", "--record-as", "r")],
        [_h("runs/a"), ("c", [*ORACLE[:2], "runs/b/spin", "40", "1e-3", "o.json", "oracle"])],
        [_h("runs/a"), ("runs/a", ["python", "benchmarks/spectral_samplers.py"])],
        [("lu", [*LU, "--out", "runs/lu_a.json"]), ("cp", ["cp", "runs/lu_b*.json", "records/"])],
        [("lu", [*LU, "--out", "runs/lu_x.json"]), ("cp", ["cp", "runs/lu_x.json", REC])],
        [("lu", [*LU, "--out", "runs/lu_lm_e.json", "--operators", "rbf"]), ("cp", LU_COPY)],
        [("lu", [*LU, *LU_E, "--diag", "unit"]), ("cp", LU_COPY)],
        [_h("runs/a", "--record-as", "spectral_hydrogen_radius_typo")],  # a record no page reads
        [_h("runs/a", *H1, "--iters", "70001", "--record-as", _RADIUS)],  # not the record's
        [_h("runs/a", *H1[1:], "--record-as", _RADIUS)],  # without --radius-feature
    ],
)
def test_a_broken_chain_is_refused(commands):
    with pytest.raises(Refused):
        check_chain(commands)


def test_the_checked_chain_passes_when_right():
    check_chain([("lu", [*LU, *LU_E]), ("cp", LU_COPY)])
    check_chain(
        [
            _h("runs/a", *H1, "--record-as", _RADIUS),
            _h("runs/b", "--init-from", "runs/a", "--radius-feature"),
        ]
    )


def test_stage_runs_once_and_run_after_every_time(tmp_path):
    """Without NF_DRY_RUN, a stage runs and leaves its marker, then is skipped."""
    script = (
        f". {shlex.quote(str(CONFIGS / '_stage.sh'))}\n"
        "stage s1 sh -c 'echo x >> log'\nstage s1 sh -c 'echo y >> log'\n"
        "run_after p sh -c 'echo p >> log'\nrun_after p sh -c 'echo p >> log'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NF_DRY_RUN"}
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, check=True, timeout=60)
    assert (tmp_path / "log").read_text() == "x\np\np\n"
    assert (tmp_path / "runs" / ".done" / "s1").is_file()
