"""``neuralfactor.vlasov.simulate_to_store``: the library run function behind ``simulate``."""

import re
import warnings

import numpy as np
import pytest
import torch

from neuralfactor.data import MatrixStore, partial_path
from neuralfactor.data.store import MARKER, MatrixStoreWriter, StoreError, state_file_name
from neuralfactor.io import read_json, write_json
from neuralfactor.vlasov import (
    SimulationConfig,
    SimulationInterrupted,
    make_truncation,
    simulate,
    simulate_to_store,
)
from neuralfactor.vlasov.solver import VlasovWarning

CFG = SimulationConfig(
    ic="landau-strong", nx=16, nv=32, t_end=0.9, dt=0.03, save_every=3, scheme="fd5"
)


def _interrupt_at(monkeypatch, n):
    real = MatrixStoreWriter.append
    calls = {"n": 0}

    def append(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(MatrixStoreWriter, "append", append)
    return lambda: monkeypatch.setattr(MatrixStoreWriter, "append", real)


def test_store_equals_the_in_memory_run_and_reports_conservation(tmp_path):
    steps = []
    res = simulate_to_store(
        CFG, tmp_path / "a.zarr", device="cpu", on_step=lambda s, n: steps.append((s, n))
    )
    ref = simulate(CFG)
    assert torch.equal(res.store.as_tensor(), ref.frames)
    assert steps[0] == (0, CFG.n_steps) and steps[-1] == (CFG.n_steps, CFG.n_steps)
    assert [s for s, _ in steps[1:]] == list(range(0, CFG.n_steps + 1, CFG.save_every))
    mass = ref.diagnostics["mass"][0]
    first, last, drift = res.conservation["mass"]
    assert (first, last) == (float(mass[0]), float(mass[-1]))
    assert drift == pytest.approx(float((mass - mass[0]).abs().max() / mass[0].abs()), rel=1e-12)
    assert set(res.conservation) == {"mass", "momentum", "total_energy", "l2_norm", "entropy"}
    assert res.device == torch.device("cpu") and not partial_path(tmp_path / "a.zarr").exists()


#: label -> config changes: every scheme whose resume must be exact, the factored ones and
#: fd5 with stateful truncations (adaptive working rank; warm-started basis) included
RESUMED = {
    "fd5": {},
    "lowrank": {"scheme": "lowrank", "truncate_tol": 1e-6},
    "dlr": {"scheme": "dlr", "truncate_tol": 1e-6},
    "fd5+warm-subspace": {"truncate_tol": 1e-5, "truncate_with": "warm-subspace"},
    "fd5+rsvd": {"truncate_tol": 1e-5, "truncate_with": "rsvd"},
}


def assert_same_store(got, want):
    assert got.metadata["checksum"] == want.metadata["checksum"]
    assert torch.equal(got.as_tensor(), want.as_tensor())
    for a, b in zip(got, want, strict=True):
        assert a.diagnostics.keys() == b.diagnostics.keys()
        for k in a.diagnostics:
            assert np.array_equal(a.diagnostics[k], b.diagnostics[k]), k


def interrupted(cfg, out, monkeypatch, n, chunk_frames=2):
    restore = _interrupt_at(monkeypatch, n)
    with pytest.raises(SimulationInterrupted) as info:
        simulate_to_store(cfg, out, device="cpu", chunk_frames=chunk_frames)
    restore()
    assert partial_path(out).exists() and not out.exists()
    return info.value


@pytest.mark.parametrize("case", list(RESUMED))
def test_interrupt_then_resume_is_bit_identical(tmp_path, monkeypatch, case):
    cfg = CFG.replace(**RESUMED[case])
    want = simulate_to_store(cfg, tmp_path / "ref.zarr", device="cpu", chunk_frames=2).store
    out = tmp_path / "x.zarr"
    stop = interrupted(cfg, out, monkeypatch, 4)
    assert (stop.step, stop.frames_written) == (6, 3)  # mid-run: 30 steps, 11 frames
    saved = sorted(p.name for p in partial_path(out).glob("neuralfactor-state-*"))
    exact = case != "fd5"  # plain fd5: frames and history are the whole state
    assert saved == (["neuralfactor-state-000000000006.safetensors"] if exact else [])
    with warnings.catch_warnings():
        warnings.simplefilter("error", VlasovWarning)  # no fallback warning
        got = simulate_to_store(cfg, out, device="cpu", chunk_frames=2, resume=True).store
    assert_same_store(got, want)
    assert not list(out.glob("neuralfactor-state-*"))  # removed from the finished store


@pytest.mark.parametrize("case", ["lowrank", "dlr", "fd5+warm-subspace"])
def test_a_store_without_a_state_file_resumes_with_a_warning(tmp_path, monkeypatch, case):
    # a partial store written before states were saved: dense frames (and history) only
    cfg = CFG.replace(**RESUMED[case])
    want = simulate_to_store(cfg, tmp_path / "ref.zarr", device="cpu", chunk_frames=2).store
    out = tmp_path / "x.zarr"
    interrupted(cfg, out, monkeypatch, 4)
    part = partial_path(out)
    marker = read_json(part / MARKER)
    (part / state_file_name(marker.pop("state_step"))).unlink()
    write_json(part / MARKER, marker)
    warned = []
    got = simulate_to_store(cfg, out, device="cpu", resume=True, on_warning=warned.append).store
    assert len(warned) == 1 and "holds no solver state beyond its dense frames" in warned[0]
    assert f"the {cfg.scheme} run continues from its last frame re-factored" in warned[0]
    # the old behaviour: close to the uninterrupted run, and (what the state file fixes) not
    # bit-identical to it
    assert not torch.equal(got.as_tensor(), want.as_tensor())
    atol = 1e-12 if case == "lowrank" else 1e-6
    torch.testing.assert_close(got.as_tensor(), want.as_tensor(), rtol=0, atol=atol)


def test_a_state_file_of_another_step_is_refused(tmp_path, monkeypatch):
    cfg = CFG.replace(**RESUMED["lowrank"])
    out = tmp_path / "x.zarr"
    interrupted(cfg, out, monkeypatch, 4)
    part = partial_path(out)
    marker = read_json(part / MARKER)
    # frames of step 6 paired with the file of another step: never silently used
    (part / state_file_name(6)).rename(part / state_file_name(3))
    write_json(part / MARKER, dict(marker, state_step=3))
    with pytest.raises(StoreError, match=r"holds the state of step '6', but the flushed frames"):
        simulate_to_store(cfg, out, device="cpu", resume=True)
    write_json(part / MARKER, dict(marker, state_step="../x"))
    with pytest.raises(StoreError, match=r"'state_step' must be null or a non-negative int"):
        simulate_to_store(cfg, out, device="cpu", resume=True)


def test_a_per_stage_store_resumes_only_per_stage_and_says_so(tmp_path, monkeypatch):
    # a store written per stage has no truncate_per key, like every store written before the
    # per-unit-time default: resuming it with the default is refused, naming what it meant
    stage = CFG.replace(scheme="lowrank", truncate_tol=1e-5, truncate_per="stage")
    restore = _interrupt_at(monkeypatch, 4)
    out = tmp_path / "s.zarr"
    with pytest.raises(SimulationInterrupted):
        simulate_to_store(stage, out, device="cpu", chunk_frames=2)
    restore()
    assert "truncate_per" not in stage.to_dict()
    default = stage.replace(truncate_per=None)
    assert default.truncate_per == "time"
    with pytest.raises(
        ValueError,
        match=re.escape("config in ['truncate_per'] (stored: ['stage']); pass the same options"),
    ):
        simulate_to_store(default, out, device="cpu", resume=True)
    res = simulate_to_store(stage, out, device="cpu", resume=True)
    torch.testing.assert_close(res.store.as_tensor(), simulate(stage).frames, rtol=0, atol=0)


def test_resume_with_another_config_or_condition(tmp_path, monkeypatch):
    restore = _interrupt_at(monkeypatch, 4)
    out = tmp_path / "y.zarr"
    with pytest.raises(SimulationInterrupted):
        simulate_to_store(CFG, out, device="cpu", chunk_frames=2)
    restore()
    with pytest.raises(
        ValueError, match=re.escape("differ from the interrupted run's config in ['seed']")
    ):
        simulate_to_store(CFG.replace(seed=3), out, device="cpu", resume=True)
    warned = []
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        simulate_to_store(CFG, out, device="cpu", resume=True, on_warning=warned.append)
    finally:
        torch.set_num_threads(before)
    assert len(warned) == 1 and warned[0].startswith(
        f"the run started with {{'device': 'cpu', 'torch_threads': {before}}} and resumes with"
    )


def test_solver_warnings_go_to_on_warning_or_warnings(tmp_path):
    cfg = CFG.replace(t_end=0.9, dt=0.3)  # CFL > the fd5 limit
    warned = []
    simulate_to_store(cfg, tmp_path / "w.zarr", device="cpu", on_warning=warned.append)
    assert len(warned) == 1 and warned[0].startswith("dt=0.3 gives a CFL number")
    from neuralfactor.vlasov import VlasovWarning

    with pytest.warns(VlasovWarning, match="dt=0.3 gives a CFL number"):
        simulate_to_store(cfg, tmp_path / "w2.zarr", device="cpu")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"resume": True, "overwrite": True}, "Pass either --overwrite or --resume, not both."),
        ({"device": "tpu"}, r"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got 'tpu'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_to_store(CFG, tmp_path / "b.zarr", **kwargs)
    assert not (tmp_path / "b.zarr").exists() and not partial_path(tmp_path / "b.zarr").exists()


def test_truncate_with_a_registered_name_is_resolved_by_the_library(tmp_path):
    cfg = CFG.replace(truncate_tol=1e-5, truncate_with="rsvd")
    res = simulate_to_store(cfg, tmp_path / "t.zarr", device="cpu")
    tr = make_truncation("rsvd", tol=cfg.stage_tol, rank=None, frame_shape=(16, 32))
    assert torch.equal(res.store.as_tensor(), simulate(cfg, truncation=tr).frames)
    assert MatrixStore.open(tmp_path / "t.zarr").metadata["config"]["truncate_with"] == "rsvd"


def test_make_truncation_refuses_a_directory_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is neither a trained model directory"):
        make_truncation(str(tmp_path / "empty"), tol=1e-5, rank=None, frame_shape=(16, 32))


def test_load_factorizer_refuses_what_is_not_a_trained_model(tmp_path):
    from neuralfactor.core.factorizer import load_factorizer

    with pytest.raises(FileNotFoundError, match="is not a trained model directory"):
        load_factorizer(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="holds no trained factorizer that an installed"):
        load_factorizer(tmp_path)


@pytest.mark.parametrize("case", ["fd5", "lowrank", "dlr", "fd5+warm-subspace"])
def test_multistep_store_with_one_frame_per_chunk_and_resume_after_frame_0(
    tmp_path, monkeypatch, case
):
    # the first flush holds only the initial frame, which has no multistep history yet
    cfg = CFG.replace(**RESUMED[case])
    want = simulate_to_store(cfg, tmp_path / "ref.zarr", device="cpu").store
    one = simulate_to_store(cfg, tmp_path / "one.zarr", device="cpu", chunk_frames=1).store
    assert one.metadata["checksum"] == want.metadata["checksum"]
    out = tmp_path / "x.zarr"
    interrupted(cfg, out, monkeypatch, 2, chunk_frames=1)  # only frame 0 flushed
    got = simulate_to_store(cfg, out, device="cpu", chunk_frames=1, resume=True).store
    assert_same_store(got, want)


def test_a_run_shorter_than_one_save_interval_stores_its_initial_frame(tmp_path):
    cfg = CFG.replace(t_end=0.06, save_every=3)  # 2 steps: only frame 0 is saved
    res = simulate_to_store(cfg, tmp_path / "a.zarr", device="cpu")
    assert res.store.as_tensor().shape[1] == 1 == cfg.n_frames
