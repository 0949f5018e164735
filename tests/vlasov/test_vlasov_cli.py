"""``neuralfactor simulate``: output store, summary, resume after an interrupt, bad input."""

import math
import re

import pytest
import torch

from neuralfactor.cli import main
from neuralfactor.data import MatrixStore, partial_path
from neuralfactor.vlasov import (
    SimulationConfig,
    VlasovSolver,
    available_initial_conditions,
    get_initial_condition,
    simulate,
)

BASE = [
    "--ic",
    "landau-weak",
    "--nx",
    "16",
    "--nv",
    "32",
    "--t-end",
    "1.0",
    "--dt",
    "0.05",
    "--save-every",
    "2",
]


def run(args, capsys):
    rc = main(["--quiet", "simulate", *args])
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())  # Rich wraps long lines


def test_simulate_writes_a_complete_store_matching_the_library(tmp_path, capsys):
    out = tmp_path / "runs" / "w.zarr"
    rc, stdout, err = run([*BASE, "--ensemble", "2", "--alpha", "0.05", "--out", str(out)], capsys)
    assert rc == 0, err
    assert "mass" in stdout and "total_energy" in stdout and "checksum" in stdout
    store = MatrixStore.open(out, verify=True)
    assert store.shape == (2, 11, 16, 32)
    cfg = SimulationConfig.from_dict(store.metadata["config"])
    assert cfg.ic_params["alpha"] == 0.05 and cfg.ensemble == 2 and cfg.save_every == 2
    ref = simulate(cfg)
    assert torch.equal(store.as_tensor(), ref.frames)
    assert store.metadata["version"] and store.metadata["seed"] == 0
    assert set(store[0].diagnostics) >= {
        "mass",
        "momentum",
        "total_energy",
        "l2_norm",
        "entropy",
        "electric_energy",
    }
    assert not partial_path(out).exists()


def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    args = [
        "--ic",
        "landau-strong",
        "--nx",
        "16",
        "--nv",
        "32",
        "--t-end",
        "1.5",
        "--scheme",
        "fd5",
        "--save-every",
        "3",
        "--chunk-frames",
        "2",
    ]
    rc, _, err = run([*args, "--out", str(tmp_path / "ref.zarr")], capsys)
    assert rc == 0, err
    ref = MatrixStore.open(tmp_path / "ref.zarr")

    from neuralfactor.data.store import MatrixStoreWriter

    real_append = MatrixStoreWriter.append
    calls = {"n": 0}

    def interrupting_append(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_append(self, *a, **k)

    monkeypatch.setattr(MatrixStoreWriter, "append", interrupting_append)
    out = tmp_path / "x.zarr"
    rc, _, err = run([*args, "--out", str(out)], capsys)
    assert rc == 130  # interrupted (click turns KeyboardInterrupt into Abort)
    assert not out.exists() and partial_path(out).exists()
    monkeypatch.setattr(MatrixStoreWriter, "append", real_append)
    # a plain rerun refuses; --resume with other options refuses; --resume continues
    rc, _, err = run([*args, "--out", str(out)], capsys)
    assert rc == 2 and "--resume to continue" in err
    rc, _, err = run([*args, "--seed", "4", "--resume", "--out", str(out)], capsys)
    assert rc == 2 and "differ from the interrupted run's config in ['seed']" in err
    rc, _, err = run([*args, "--resume", "--out", str(out)], capsys)
    assert rc == 0, err
    store = MatrixStore.open(out, verify=True)
    assert store.metadata["checksum"] == ref.metadata["checksum"]  # bit-identical frames
    assert not partial_path(out).exists()


def test_divergence_keeps_frames_and_names_the_step(tmp_path, capsys):
    out = tmp_path / "nan.zarr"
    rc, _, err = run(
        [
            "--ic",
            "landau-strong",
            "--nx",
            "16",
            "--nv",
            "32",
            "--t-end",
            "30",
            "--dt",
            "0.3",
            "--scheme",
            "fd5",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert rc == 1
    assert "warning: dt=0.3 gives a CFL number" in err
    assert "NaN/Inf appeared in the electric field at step" in err and "are kept in" in err
    kept = MatrixStore.open(out, allow_partial=True)
    assert kept.frame_shape[0] >= 1 and bool(torch.isfinite(kept[0].as_tensor()).all())


def test_recurrence_warning_is_printed(tmp_path, capsys):
    rc, _, err = run(
        [
            "--ic",
            "landau-weak",
            "--nx",
            "8",
            "--nv",
            "8",
            "--t-end",
            "10",
            "--dt",
            "0.1",
            "--save-every",
            "50",
            "--out",
            str(tmp_path / "r.zarr"),
        ],
        capsys,
    )
    assert rc == 0 and "warning: the run (t_end=10) is longer than the recurrence time" in err


@pytest.mark.parametrize(
    "args,match",
    [
        (["--nx", "0"], r"'nx' parameter of SimulationConfig must be an int >= 4. Got 0"),
        (["--nv", "-2"], r"'nv' parameter of SimulationConfig must be an int >= 4"),
        (["--dt", "-1"], r"'dt' parameter of SimulationConfig must be > 0"),
        (["--dt", "0"], r"'dt' parameter of SimulationConfig must be > 0"),
        (["--t-end", "0.01"], r"'t_end' parameter of SimulationConfig must be >= dt"),
        (["--vmax", "2"], r"too small for initial condition 'landau-weak'.*vmax must be at least"),
        (
            ["--ic", "landau"],
            r"Unknown initial condition 'landau'; expected one of \['bump-on-tail'",
        ),
        (["--scheme", "weno"], r"'scheme' parameter of SimulationConfig must be one of"),
        (["--device", "tpu"], r"'device' parameter must be 'auto', 'cpu' or 'cuda'"),
        (["--overwrite", "--resume"], r"either --overwrite or --resume"),
        (["--resume"], r"Nothing to resume"),
        (["--preset", "convmf-32"], r"Unknown preset 'convmf-32'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, match):
    import re

    rc, _, err = run([*BASE, *args, "--out", str(tmp_path / "b.zarr")], capsys)
    assert rc == 2
    assert re.search(match, " ".join(err.split())), err
    assert not (tmp_path / "b.zarr").exists()


def test_existing_output_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "o.zarr"
    assert run([*BASE, "--out", str(out)], capsys)[0] == 0
    rc, _, err = run([*BASE, "--out", str(out)], capsys)
    assert rc == 2 and "exists; pass --overwrite" in " ".join(err.split())
    rc, _, err = run([*BASE, "--alpha", "0.02", "--overwrite", "--out", str(out)], capsys)
    assert rc == 0, err
    assert MatrixStore.open(out).metadata["config"]["ic_params"]["alpha"] == 0.02


def test_preset_sets_the_original_grid(tmp_path, capsys):
    # t-end shortened so the test is fast; grid and dt rule come from the preset
    out = tmp_path / "p.zarr"
    rc, _, err = run(["--preset", "convmf-64x128", "--t-end", "0.05", "--out", str(out)], capsys)
    assert rc == 0, err
    cfg = SimulationConfig.from_dict(MatrixStore.open(out).metadata["config"])
    assert (cfg.nx, cfg.nv) == (64, 128) and cfg.dt == pytest.approx(
        4 * 3.141592653589793 / 128 / 20
    )
    assert MatrixStore.open(out).frame_shape == (11, 64, 128)


# -- every initial-condition parameter from the CLI -------------------------------------------
# a valid value different from every default, per parameter name
IC_VALUES = {"alpha": 0.2, "k": 0.4, "v0": 2.0, "np": 0.8, "nb": 0.3, "vb": 4.0, "vt": 0.6,
             "modes": 2, "hermite": 3}  # fmt: skip
IC_CASES = [(ic, key) for ic in available_initial_conditions()
            for key in get_initial_condition(ic).defaults]  # fmt: skip


def _tiny(ic):
    return ["--ic", ic, "--nx", "8", "--nv", "32", "--t-end", "0.1", "--dt", "0.05"]


@pytest.mark.parametrize("ic,key", IC_CASES)
def test_every_initial_condition_parameter_is_an_option(tmp_path, capsys, ic, key):
    value = IC_VALUES[key]
    assert value != get_initial_condition(ic).defaults[key]
    out = tmp_path / "p.zarr"
    rc, _, err = run([*_tiny(ic), f"--{key}", str(value), "--out", str(out)], capsys)
    assert rc == 0, err
    store = MatrixStore.open(out)
    cfg = SimulationConfig.from_dict(store.metadata["config"])
    assert cfg.ic_params[key] == value
    assert torch.equal(
        store[0].as_tensor(frames=slice(0, 1))[0], VlasovSolver(cfg).initial_condition()[0]
    )


@pytest.mark.parametrize("ic,key", IC_CASES)
def test_bad_initial_condition_parameter_gives_the_library_message(tmp_path, capsys, ic, key):
    bad = {"v0": "nan", "vb": "inf"}.get(key, "-2")  # every rule refuses these
    with pytest.raises(ValueError) as lib:
        get_initial_condition(ic).resolve_params({key: float(bad)})
    rc, _, err = run([*_tiny(ic), f"--{key}", bad, "--out", str(tmp_path / "b.zarr")], capsys)
    assert rc == 2
    assert err == f"error: {lib.value}"
    assert not (tmp_path / "b.zarr").exists() and not partial_path(tmp_path / "b.zarr").exists()


def test_issue_example_two_stream_v0_and_k(tmp_path, capsys):
    out = tmp_path / "x.zarr"
    rc, _, err = run(
        ["--ic", "two-stream", "--v0", "2.0", "--k", "0.25", "--nx", "16", "--nv", "64",
         "--t-end", "0.2", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    cfg = SimulationConfig.from_dict(MatrixStore.open(out).metadata["config"])
    assert cfg.ic_params == {"alpha": 1e-3, "k": 0.25, "v0": 2.0}
    assert cfg.length == pytest.approx(2 * math.pi / 0.25)


@pytest.mark.parametrize(
    "ic,option", [("landau-weak", "--v0"), ("two-stream", "--vt"), ("bump-on-tail", "--modes")]
)
def test_an_option_of_another_initial_condition_is_refused(tmp_path, capsys, ic, option):
    names = sorted(get_initial_condition(ic).defaults)
    rc, _, err = run([*_tiny(ic), option, "2", "--out", str(tmp_path / "o.zarr")], capsys)
    assert rc == 2
    assert err == (
        f"error: Unknown parameter '{option[2:]}' for initial condition '{ic}'; expected one "
        f"of {names}."
    )


# -- Ctrl-C -------------------------------------------------------------------------------------
def test_sigint_prints_how_far_it_got_and_resume_continues(tmp_path, capsys):
    """SIGINT to a real process: exit 130, one line with the step and the --resume hint, a
    resumable store; resuming gives the uninterrupted run's checksum."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    # 8000 cheap steps: the run is far from its end when the signal comes (it must not be
    # finishing, which a loaded machine would make a race), yet takes about a second
    args = ["--ic", "landau-strong", "--nx", "16", "--nv", "32", "--t-end", "400", "--dt", "0.05",
            "--save-every", "100", "--chunk-frames", "4"]  # fmt: skip
    out = tmp_path / "c.zarr"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root / "src"), OMP_NUM_THREADS="1")
    entry = "from neuralfactor.cli import main; raise SystemExit(main())"
    p = subprocess.Popen(
        [sys.executable, "-c", entry, "--quiet", "simulate", *args, "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run in the background (nohup, "&") inherits an ignored
        # SIGINT, and Python keeps it ignored, so the signal would never arrive
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    marker = partial_path(out) / "neuralfactor-partial.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        try:
            if json.loads(marker.read_text())["frames_written"] >= 4:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    assert p.poll() is None, "the run finished before it could be interrupted"
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    err = " ".join(stderr.split())
    assert p.returncode == 130, stderr
    m = re.search(  # after the recurrence warning, the last line
        r"Interrupted at step (\d+) of 8000 \(t = ([0-9.]+)\); (\d+) of 81 frames are saved in "
        r"(\S+)\. Run the same command with --resume to continue\.$",
        err,
    )
    assert m, err
    step, frames = int(m[1]), int(m[3])
    assert step == (frames - 1) * 100 and float(m[2]) == pytest.approx(step * 0.05)
    assert m[4] == str(partial_path(out)) and not out.exists()
    kept = MatrixStore.open(out, allow_partial=True)
    assert kept.frame_shape[0] == frames
    rc, _, err = run([*args, "--resume", "--out", str(out)], capsys)
    assert rc == 0, err
    assert "warning: the run started" not in err  # same device and threads
    rc, _, err = run([*args, "--out", str(tmp_path / "ref.zarr")], capsys)
    assert rc == 0, err
    want = MatrixStore.open(tmp_path / "ref.zarr").metadata["checksum"]
    assert MatrixStore.open(out, verify=True).metadata["checksum"] == want


def test_resume_under_other_threads_warns(tmp_path, capsys, monkeypatch):
    from neuralfactor.data.store import MatrixStoreWriter

    real_append = MatrixStoreWriter.append
    calls = {"n": 0}

    def interrupting_append(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_append(self, *a, **k)

    monkeypatch.setattr(MatrixStoreWriter, "append", interrupting_append)
    out = tmp_path / "t.zarr"
    args = [*BASE, "--chunk-frames", "2", "--out", str(out)]
    rc, _, err = run(args, capsys)
    assert rc == 130 and "Interrupted at step 4 of 20 (t = 0.2); 3 of 11 frames" in err
    monkeypatch.setattr(MatrixStoreWriter, "append", real_append)
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        rc, _, err = run([*args, "--resume"], capsys)
    finally:
        torch.set_num_threads(before)
    assert rc == 0, err
    assert (
        f"warning: the run started with {{'device': 'cpu', 'torch_threads': {before}}} and "
        f"resumes with {{'device': 'cpu', 'torch_threads': {before + 1}}}; the frames from here "
        f"on may differ at round-off" in err
    )
    assert MatrixStore.open(out, verify=True).shape == (1, 11, 16, 32)


def test_resume_of_a_run_stopped_before_its_first_flush_starts_over(tmp_path, capsys, monkeypatch):
    # a kill or Ctrl-C during the first chunk leaves a partial store with no frame on disk;
    # --resume used to refuse it ("pass --overwrite"), now it computes the run from the start
    from neuralfactor.data.store import MatrixStoreWriter

    real_append = MatrixStoreWriter.append

    def interrupting_append(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(MatrixStoreWriter, "append", interrupting_append)
    out = tmp_path / "e.zarr"
    args = [*BASE, "--chunk-frames", "4"]
    rc, _, err = run([*args, "--out", str(out)], capsys)
    assert rc == 130 and "Interrupted at step 0 of 20 (t = 0); 0 of 11 frames" in err
    monkeypatch.setattr(MatrixStoreWriter, "append", real_append)
    rc, _, err = run([*args, "--seed", "3", "--resume", "--out", str(out)], capsys)
    assert rc == 2 and "differ from the interrupted run's config in ['seed']" in err
    rc, _, err = run([*args, "--resume", "--out", str(out)], capsys)
    assert rc == 0, err
    rc, _, err = run([*args, "--out", str(tmp_path / "ref.zarr")], capsys)
    assert rc == 0, err
    want = MatrixStore.open(tmp_path / "ref.zarr").metadata["checksum"]
    assert MatrixStore.open(out, verify=True).metadata["checksum"] == want
