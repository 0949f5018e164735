"""``neuralfactor.vlasov.simulate_to_store``: the library run function behind ``simulate``."""

import re

import pytest
import torch

from neuralfactor.data import MatrixStore, partial_path
from neuralfactor.data.store import MatrixStoreWriter
from neuralfactor.vlasov import (
    SimulationConfig,
    SimulationInterrupted,
    make_truncation,
    simulate,
    simulate_to_store,
)

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


@pytest.mark.parametrize("scheme", ["fd5", "lowrank"])
def test_interrupt_then_resume_is_bit_identical(tmp_path, monkeypatch, scheme):
    cfg = CFG.replace(scheme=scheme, truncate_tol=1e-6 if scheme == "lowrank" else None)
    want = simulate_to_store(cfg, tmp_path / "ref.zarr", device="cpu", chunk_frames=2).store
    restore = _interrupt_at(monkeypatch, 4)
    out = tmp_path / "x.zarr"
    with pytest.raises(SimulationInterrupted, match=r"Interrupted at step 6 of 30 .* 3 of 11 "):
        simulate_to_store(cfg, out, device="cpu", chunk_frames=2)
    restore()
    assert partial_path(out).exists() and not out.exists()
    got = simulate_to_store(cfg, out, device="cpu", chunk_frames=2, resume=True).store
    if scheme == "fd5":  # the dense state resumes exactly
        assert got.metadata["checksum"] == want.metadata["checksum"]
    else:  # the factored state is re-factored from the stored frame: round-off
        torch.testing.assert_close(got.as_tensor(), want.as_tensor(), rtol=0, atol=1e-12)


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
    tr = make_truncation("rsvd", tol=1e-5, rank=None, frame_shape=(16, 32))
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


@pytest.mark.parametrize("scheme", ["fd5", "lowrank"])
def test_multistep_store_with_one_frame_per_chunk_and_resume_after_frame_0(
    tmp_path, monkeypatch, scheme
):
    # the first flush holds only the initial frame, which has no multistep history yet
    cfg = CFG.replace(scheme=scheme, truncate_tol=1e-6 if scheme == "lowrank" else None)
    want = simulate_to_store(cfg, tmp_path / "ref.zarr", device="cpu").store
    one = simulate_to_store(cfg, tmp_path / "one.zarr", device="cpu", chunk_frames=1).store
    assert one.metadata["checksum"] == want.metadata["checksum"]
    restore = _interrupt_at(monkeypatch, 2)  # killed before frame 1: only frame 0 flushed
    out = tmp_path / "x.zarr"
    with pytest.raises(SimulationInterrupted):
        simulate_to_store(cfg, out, device="cpu", chunk_frames=1)
    restore()
    got = simulate_to_store(cfg, out, device="cpu", chunk_frames=1, resume=True).store
    if scheme == "fd5":
        assert got.metadata["checksum"] == want.metadata["checksum"]
    else:  # the factored state is re-factored from the stored frame: round-off
        torch.testing.assert_close(got.as_tensor(), want.as_tensor(), rtol=0, atol=1e-12)


def test_a_run_shorter_than_one_save_interval_stores_its_initial_frame(tmp_path):
    cfg = CFG.replace(t_end=0.06, save_every=3)  # 2 steps: only frame 0 is saved
    res = simulate_to_store(cfg, tmp_path / "a.zarr", device="cpu")
    assert res.store.as_tensor().shape[1] == 1 == cfg.n_frames
