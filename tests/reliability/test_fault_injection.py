"""Fault injection: SIGKILL ``simulate``, ``train``, ``factorize`` (Dask) and ``demo`` at random
points, resume, and compare with an uninterrupted run.

After every kill the output path must hold either nothing or a complete, verifiable result
(never something that looks complete while it is not); after resuming, the result must be
bit-identical to the uninterrupted run (all three computations are deterministic on CPU with
one thread: the stores' sha256 checksums and the models' safetensors tensors are compared
exactly; ``factorize``'s U, V and diagnostics arrays are compared exactly; it reruns
idempotently, computing only the chunks without a completion marker).

The fast test runs one seed per command on tiny sizes (CI); the ``slow`` test runs several
seeds per command plus ``demo --quick``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neuralfactor.data import MatrixStore

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "from neuralfactor.cli import main; raise SystemExit(main())"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def _run(args, timeout=600):
    p = subprocess.run(
        [sys.executable, "-c", ENTRY, "-q", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, p.stderr
    return p


def _kill_after(args, delay):
    """Start the command, SIGKILL it after ``delay`` s; True when it was killed mid-run."""
    p = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "-q", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        p.wait(timeout=delay)
        return False  # finished before the kill
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return True


def _store_state(path):
    """None when nothing is at ``path``; else the verified checksum (raises if incomplete)."""
    if not Path(path).exists():
        return None
    return MatrixStore.open(path, verify=True).metadata["checksum"]


def _model_state(run):
    model = Path(run) / "model"
    if not model.exists():
        return None
    from neuralfactor.train.checkpoint import load_checkpoint

    load_checkpoint(model)  # complete and checksum-valid, or this raises
    return load_file(str(model / "weights.safetensors"))


def _factors_state(path):
    """None when nothing is at ``path``; else (U, V, diagnostics) (raises if incomplete)."""
    if not Path(path).exists():
        return None
    from neuralfactor.distributed.factorize import FactorStore

    fs = FactorStore.open(path)
    lr, diag = fs.lowrank(0), fs.diagnostics(0)
    return {"U": lr.U, "V": lr.V, **{k: torch.from_numpy(v) for k, v in diag.items()}}


FACTORIZE = ["--method", "svds-arpack", "--rank", "4", "--workers", "1"]


def _same_tensors(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


SIM = ["simulate", "--nx", "16", "--nv", "32", "--t-end", "20", "--chunk-frames", "8"]


def _train_args(store, out, epochs):
    return [
        "train", "--data", str(store), "--out", str(out), "--epochs", str(epochs),
        "--device", "cpu", "--rank", "4", "--batch-size", "10",
    ]  # fmt: skip


def _inject(kind, seed, tmp, ref, tally, store=None, seconds=None):
    """One kill + resume of ``kind`` with a delay drawn from ``seed``; compare with ``ref``.

    ``seconds``: how long the uninterrupted reference command took on this machine, now. The
    kill lands at 15-75% of it (start-up included), so it interrupts the run on a fast idle
    machine as on a loaded one (fixed delays let an idle machine finish first)."""
    rng = random.Random(seed)
    out = tmp / f"{kind}-{seed}"
    frac = rng.uniform(0.15, 0.75)
    if kind == "simulate":
        args = [*SIM, "--out", str(out)]
    elif kind == "train":
        args = _train_args(store, out, 6)
    elif kind == "factorize":
        args = ["factorize", str(store), *FACTORIZE, "--out", str(out)]
    else:
        args = ["demo", "--quick", "--device", "cpu", "--out", str(out)]
        seconds = ref["seconds"]
    killed = _kill_after(args, frac * seconds)
    tally[f"faults_injected.{kind}"] += int(killed)
    # Invariant right after the kill: nothing, or a complete and verifiable result.
    if kind == "simulate":
        _store_state(out)
    elif kind == "train":
        _model_state(out)
    elif kind == "factorize":
        _factors_state(out)
    else:
        if (out / "data.zarr").exists():
            _store_state(out / "data.zarr")
        for run in out.glob("*-r*"):
            _model_state(run)
    # Resume (simulate/train: --resume when something partial is there; demo: rerun).
    if kind == "simulate":
        partial = out.with_name(out.name + ".partial")
        if not out.exists():  # else it finished before the kill (and verified above)
            _run([*args, "--resume"] if partial.exists() else args)
        assert _store_state(out) == ref, "resumed store differs from the uninterrupted run"
    elif kind == "train":
        started = (out / "config.json").exists()
        _run([*args, "--resume"] if started else args)
        assert _same_tensors(_model_state(out), ref), "resumed model differs"
    elif kind == "factorize":
        _run(args)  # idempotent: completes the chunks without a marker
        assert _same_tensors(_factors_state(out), ref), "resumed factors differ"
    else:
        _run(args, timeout=900)
        assert _store_state(out / "data.zarr") == ref["data"]
        for name, tensors in ref["models"].items():
            assert _same_tensors(_model_state(out / name), tensors), f"demo {name} differs"
        assert (out / "report" / "index.html").is_file()
    tally[f"runs_recovered.{kind}"] += int(killed)
    tally[f"runs_compared.{kind}"] += 1
    return killed


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    seconds = {}
    for kind, args in (
        ("simulate", [*SIM, "--out", str(tmp / "s.zarr")]),
        ("train", _train_args(tmp / "s.zarr", tmp / "run", 6)),
        ("factorize", ["factorize", str(tmp / "s.zarr"), *FACTORIZE, "--out", str(tmp / "f.zarr")]),
    ):
        t0 = time.perf_counter()
        _run(args)
        seconds[kind] = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "dir": tmp,
        "store": tmp / "s.zarr",
        "simulate": _store_state(tmp / "s.zarr"),
        "train": _model_state(tmp / "run"),
        "factorize": _factors_state(tmp / "f.zarr"),
    }


def test_kill_and_resume_simulate_and_train_fast(refs, tmp_path, tally):
    sec = refs["seconds"]
    killed = _inject("simulate", 0, tmp_path, refs["simulate"], tally, seconds=sec["simulate"])
    killed += _inject(
        "train", 0, tmp_path, refs["train"], tally, store=refs["store"], seconds=sec["train"]
    )
    assert killed >= 1  # at least one of the two was really interrupted


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
@pytest.mark.parametrize("kind", ["simulate", "train", "factorize"])
def test_kill_and_resume_many_seeds(kind, seed, refs, tmp_path, tally):
    _inject(
        kind, seed, tmp_path, refs[kind], tally, store=refs["store"], seconds=refs["seconds"][kind]
    )


@pytest.fixture(scope="module")
def demo_ref(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-ref") / "demo"
    t0 = time.perf_counter()
    _run(["demo", "--quick", "--device", "cpu", "--out", str(out)], timeout=900)
    models = {run.name: _model_state(run) for run in sorted(out.glob("*-r*"))}
    return {"data": _store_state(out / "data.zarr"), "models": models,
            "seconds": time.perf_counter() - t0}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_kill_and_resume_demo(seed, demo_ref, tmp_path, tally):
    _inject("demo", seed, tmp_path, demo_ref, tally)
