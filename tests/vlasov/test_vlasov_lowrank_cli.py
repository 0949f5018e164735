"""``neuralfactor simulate --scheme lowrank`` and ``--truncate-with`` for fd5."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from neuralfactor.cli import main
from neuralfactor.data import MatrixStore, partial_path
from neuralfactor.vlasov import SimulationConfig, make_truncation, simulate

BASE = ["--ic", "landau-strong", "--nx", "16", "--nv", "32", "--t-end", "1.0", "--save-every", "4"]


def run(args, capsys):
    rc = main(["--quiet", "simulate", *args])
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())


def stored(out):
    store = MatrixStore.open(out, verify=True)
    return store, SimulationConfig.from_dict(store.metadata["config"])


def test_truncate_per_stage_is_stored_and_used(tmp_path, capsys):
    out = tmp_path / "stage.zarr"
    args = [*BASE, "--scheme", "lowrank", "--truncate-tol", "1e-6", "--truncate-per", "stage"]
    rc, _, err = run([*args, "-o", str(out)], capsys)
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.truncate_per == "stage" and cfg.stage_tol == 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(store.as_tensor(), simulate(cfg).frames)


def test_lowrank_store_matches_the_library(tmp_path, capsys):
    out = tmp_path / "low.zarr"
    rc, stdout, err = run(
        [*BASE, "--scheme", "lowrank", "--truncate-tol", "1e-6", "-o", str(out)], capsys
    )
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.scheme == "lowrank" and cfg.truncate_tol == 1e-6 and cfg.mass_correction
    assert cfg.truncate_per == "time" and cfg.stage_tol == 1e-6 * cfg.dt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = simulate(cfg)
    assert torch.equal(store.as_tensor(), ref.frames)
    ranks = store[0].diagnostics["truncation_rank"]
    assert ranks[-1] == float(ref.diagnostics["truncation_rank"][0, -1]) and ranks[-1] < 16


def test_dlr_store_matches_the_library(tmp_path, capsys):
    out = tmp_path / "dlr.zarr"
    rc, _, err = run([*BASE, "--scheme", "dlr", "--rank", "4", "-o", str(out)], capsys)
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.scheme == "dlr" and cfg.truncate_rank == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(store.as_tensor(), simulate(cfg).frames)


def test_fixed_rank_option(tmp_path, capsys):
    out = tmp_path / "r.zarr"
    rc, _, err = run([*BASE, "--scheme", "lowrank", "--rank", "3", "-o", str(out)], capsys)
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.truncate_rank == 3 and cfg.truncate_tol is None
    assert list(store[0].diagnostics["truncation_rank"][1:]) == [3.0] * (store.shape[1] - 1)


@pytest.mark.parametrize("name", ["rsvd", "warm-subspace"])
def test_fd5_truncate_with_a_factorizer_matches_the_library(tmp_path, capsys, name):
    out = tmp_path / "t.zarr"
    args = [*BASE, "--scheme", "fd5", "--truncate-tol", "1e-5", "--truncate-with", name]
    rc, _, err = run([*args, "-o", str(out)], capsys)
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.truncate_with == name
    tr = make_truncation(name, tol=cfg.stage_tol, rank=None, frame_shape=(16, 32))
    ref = simulate(cfg, truncation=tr)
    assert torch.equal(store.as_tensor(), ref.frames)


def test_lowrank_resume_after_interrupt(tmp_path, capsys, monkeypatch):
    args = [*BASE, "--t-end", "1.5", "--save-every", "3", "--chunk-frames", "2"]
    args += ["--scheme", "lowrank", "--truncate-tol", "1e-6"]
    rc, _, err = run([*args, "-o", str(tmp_path / "ref.zarr")], capsys)
    assert rc == 0, err
    ref = MatrixStore.open(tmp_path / "ref.zarr").as_tensor()
    from neuralfactor.data.store import MatrixStoreWriter

    real_append = MatrixStoreWriter.append
    calls = {"n": 0}

    def interrupting_append(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_append(self, *a, **k)

    monkeypatch.setattr(MatrixStoreWriter, "append", interrupting_append)
    out = tmp_path / "x.zarr"
    rc, _, _ = run([*args, "-o", str(out)], capsys)
    assert rc == 130 and partial_path(out).exists()
    monkeypatch.setattr(MatrixStoreWriter, "append", real_append)
    rc, _, err = run([*args, "--resume", "-o", str(out)], capsys)
    assert rc == 0, err
    got = MatrixStore.open(out, verify=True).as_tensor()
    # the store keeps the factors of the state and history: the resumed run is exact
    assert torch.equal(got, ref)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--scheme", "lowrank", "--rank", "17"], r"'truncate_rank' .* at most min\(nx, nv\)=16"),
        (["--scheme", "fd5", "--truncate-tol", "1.5"], r"'truncate_tol' .* must be in \(0, 1\)"),
        (
            ["--scheme", "lowrank", "--truncate-per", "step"],
            r"'truncate_per' .* must be one of \['time', 'stage'\]",
        ),
        (["--scheme", "fd5", "--truncate-per", "stage"], r"'truncate_per' .* only with"),
        (
            ["--scheme", "fd5", "--truncate-tol", "1e-5", "--truncate-with", "qr"],
            r"Unknown --truncate-with 'qr': expected a factorizer name",
        ),
        (
            ["--scheme", "fd5", "--truncate-tol", "1e-5", "--truncate-with", "convmf"],
            r"'convmf' is a data-driven factorizer that needs training",
        ),
        (
            ["--scheme", "lowrank", "--truncate-with", "rsvd"],
            r"'truncate_with' .* applies only to scheme 'fd5'",
        ),
        (
            ["--scheme", "spectral", "--rank", "3"],
            r"'truncate_rank' .* scheme 'fd5', 'lowrank' or 'dlr'",
        ),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, args, match):
    rc, _, err = run([*BASE, *args, "-o", str(tmp_path / "b.zarr")], capsys)
    assert rc == 2
    assert re.search(match, err), err
    assert not (tmp_path / "b.zarr").exists() and not partial_path(tmp_path / "b.zarr").exists()


def test_trained_model_truncation_and_frame_size_check(tmp_path, capsys):
    from neuralfactor.amortized import LearnedFactorizer, TrainSettings

    frames = simulate(
        SimulationConfig(ic="landau-strong", nx=16, nv=32, t_end=1.0, scheme="fd5")
    ).frames[0]
    s = TrainSettings(epochs=2, lr=3e-3, batch_size=8, seed=0, device="cpu", dtype="float64")
    f = LearnedFactorizer(6, model="fork", settings=s, model_kwargs={"stem": (16,), "branch": (8,)})
    f.fit(frames).save(tmp_path / "model")
    spec = f"{tmp_path / 'model'}+refine"
    tr = make_truncation(spec, tol=None, rank=6, frame_shape=(16, 32))
    assert tr.name.startswith("fork+refine")
    out = tmp_path / "m.zarr"
    args = [*BASE, "--scheme", "fd5", "--rank", "6", "--truncate-with", spec]
    rc, _, err = run([*args, "-o", str(out)], capsys)
    assert rc == 0, err
    store, cfg = stored(out)
    assert cfg.truncate_with == spec
    ref = simulate(cfg, truncation=make_truncation(spec, tol=None, rank=6, frame_shape=(16, 32)))
    assert torch.equal(store.as_tensor(), ref.frames)
    # a 2-epoch network at rank 6 cannot reach 1e-5: the run stops at the first stage, saying so
    tol_args = [*BASE, "--scheme", "fd5", "--truncate-tol", "1e-5", "--truncate-with", spec]
    rc, _, err = run([*tol_args, "-o", str(tmp_path / "tol.zarr")], capsys)
    assert rc == 1 and re.search(
        r"at rank 6 leaves a relative error .* > tol=\S+ on this stage", err
    ), err
    rc, _, err = run(
        [*args[:-4], "--rank", "5", "--truncate-with", spec, "-o", str(tmp_path / "r5.zarr")],
        capsys,
    )
    assert rc == 2 and "has rank 6; use --rank 6" in err
    assert not (tmp_path / "r5.zarr").exists() and not partial_path(tmp_path / "r5.zarr").exists()
    other = ["--nx", "32", "--nv", "64"]
    rc, _, err = run([*args, *other, "-o", str(tmp_path / "o.zarr")], capsys)
    assert rc == 2 and "was built for 16x32 frames; this run's frames are 32x64" in err
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()
    rc, _, err = run(
        [*args[:-1], str(tmp_path / "nothing"), "-o", str(tmp_path / "n.zarr")], capsys
    )
    assert rc == 2 and "Unknown --truncate-with" in err
    assert not (tmp_path / "n.zarr").exists() and not partial_path(tmp_path / "n.zarr").exists()
