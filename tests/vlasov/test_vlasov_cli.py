"""``neuralfactor simulate``: output store, summary, resume after an interrupt, bad input."""

import pytest
import torch

from neuralfactor.cli import main
from neuralfactor.data import MatrixStore, partial_path
from neuralfactor.vlasov import SimulationConfig, simulate

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
