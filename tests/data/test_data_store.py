"""MatrixStore: round trip, chunked reads, checksum, atomic completion, resume, error paths."""

import json

import numpy as np
import pytest
import torch

from neuralfactor.data import MatrixStore, MatrixStoreWriter, StoreError, partial_path


def frames(gen, B=2, T=11, m=6, n=5, dtype=torch.float64):
    return torch.randn(B, T, m, n, generator=gen, dtype=dtype)


def write(path, F, *, chunk_frames=4, history=0, overwrite=False, finalize=True, upto=None):
    B, T, m, n = F.shape
    w = MatrixStoreWriter.create(
        path,
        n_runs=B,
        n_frames=T,
        matrix_shape=(m, n),
        dtype=F.dtype,
        diagnostics=["mass"],
        metadata={"config": {"a": 1}, "seed": 3},
        history=history,
        chunk_frames=chunk_frames,
        overwrite=overwrite,
    )
    for i in range(T if upto is None else upto):
        hist = (F[:, i] * 2, F[:, i] * 3) if history else ()
        w.append(F[:, i], 0.1 * i, {"mass": F[:, i].sum((-2, -1))}, step=5 * i, history=hist)
    return w.finalize() if finalize else w


def test_round_trip_and_metadata(tmp_path, gen):
    F = frames(gen)
    store = write(tmp_path / "s.zarr", F)
    assert store.runs == ("run-000", "run-001") and len(store) == 2
    assert store.shape == (2, 11, 6, 5) and store.frame_shape == (11, 6, 5)
    assert store.dtype == torch.float64
    md = store.metadata
    assert md["config"] == {"a": 1} and md["seed"] == 3 and md["complete"] is True
    assert len(md["checksum"]) == 64
    run = store[1]
    assert torch.equal(run.as_tensor(), F[1])
    assert torch.equal(store["run-000"][3], F[0, 3])
    assert torch.equal(run[2:9:3], F[1, 2:9:3])
    assert torch.equal(run[[0, 10, -1]], F[1, [0, 10, 10]])
    assert torch.equal(store.as_tensor(frames=slice(4, 7)), F[:, 4:7])
    np.testing.assert_allclose(run.t, 0.1 * np.arange(11))
    np.testing.assert_array_equal(run.diagnostics["mass"], F[1].sum((-2, -1)).numpy())
    assert run.as_tensor(slice(0, 2), dtype=torch.float32).dtype == torch.float32
    assert not partial_path(tmp_path / "s.zarr").exists()


def test_iter_chunks_cover_every_frame_once(tmp_path, gen):
    F = frames(gen)
    store = write(tmp_path / "s.zarr", F, chunk_frames=4)
    starts = [(s, b.shape[0]) for s, b in store[0].iter_chunks()]
    assert starts == [(0, 4), (4, 4), (8, 3)]  # aligned to the storage chunks
    blocks = [b for _, b in store[0].iter_chunks(frames=slice(3, 10))]
    assert torch.equal(torch.cat(blocks), F[0, 3:10]) and blocks[0].shape[0] == 1
    got = {(r, s): b for r, s, b in store.iter_chunks(chunk_frames=5)}
    assert torch.equal(torch.cat([got[("run-001", s)] for s in (0, 5, 10)]), F[1])
    with pytest.raises(ValueError, match="contiguous slice"):
        next(store[0].iter_chunks(frames=slice(0, 10, 2)))


def test_float32_store(tmp_path, gen):
    F = frames(gen, dtype=torch.float32)
    store = write(tmp_path / "s.zarr", F)
    assert store.dtype == torch.float32 and torch.equal(store[0].as_tensor(), F[0])
    store.verify()


def test_verify_detects_modified_frames(tmp_path, gen):
    F = frames(gen)
    path = tmp_path / "s.zarr"
    store = write(path, F)
    assert store.verify() == store.metadata["checksum"]
    import zarr

    zarr.open_group(str(path), mode="r+")["run-001"]["f"][5, 0, 0] = 42.0
    with pytest.raises(StoreError, match=r"checksum mismatch in run-001"):
        MatrixStore.open(path, verify=True)


def test_missing_corrupt_and_foreign_stores(tmp_path, gen):
    with pytest.raises(FileNotFoundError, match="No MatrixStore at"):
        MatrixStore.open(tmp_path / "nothing.zarr")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(StoreError, match="not a MatrixStore"):
        MatrixStore.open(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(StoreError, match="no zarr.json"):
        MatrixStore.open(tmp_path / "empty.zarr")
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(StoreError, match="not a MatrixStore"):
        MatrixStore.open(tmp_path / "other.zarr")
    path = tmp_path / "s.zarr"
    write(path, frames(gen))
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a readable Zarr group"):
        MatrixStore.open(path)


def test_interrupted_write_leaves_only_a_partial_store(tmp_path, gen):
    F = frames(gen)
    path = tmp_path / "s.zarr"
    w = write(path, F, finalize=False, upto=7)  # 7 frames appended, 4 flushed (chunk of 4)
    assert not path.exists() and partial_path(path).exists()
    with pytest.raises(StoreError, match=r"incomplete: .* 4 of 11 frames .* --resume"):
        MatrixStore.open(path)
    part = MatrixStore.open(path, allow_partial=True)
    assert part.frame_shape == (4, 6, 5) and torch.equal(part[0].as_tensor(), F[0, :4])
    w.flush()
    assert MatrixStore.open(path, allow_partial=True).frame_shape[0] == 7
    with pytest.raises(StoreError, match="Cannot finalize .* 7 of 11"):
        w.finalize()


def test_resume_continues_and_matches_an_uninterrupted_store(tmp_path, gen):
    F = frames(gen)
    ref = write(tmp_path / "ref.zarr", F, history=2)
    path = tmp_path / "s.zarr"
    write(path, F, history=2, finalize=False, upto=6)  # crash: frames 4, 5 were never flushed
    w = MatrixStoreWriter.resume(path)
    assert w.frames_written == 4 and w.step == 15
    assert torch.equal(w.last_frame(), F[:, 3])
    h = w.last_history()
    assert torch.equal(h[0], F[:, 3] * 2) and torch.equal(h[1], F[:, 3] * 3)
    assert w.metadata["config"] == {"a": 1}
    for i in range(4, 11):
        w.append(
            F[:, i],
            0.1 * i,
            {"mass": F[:, i].sum((-2, -1))},
            step=5 * i,
            history=(F[:, i] * 2, F[:, i] * 3),
        )
    store = w.finalize()
    assert store.metadata["checksum"] == ref.metadata["checksum"]
    assert torch.equal(store.as_tensor(), F)
    assert not (path / "_resume").exists()


def test_state_file_is_paired_with_its_frames_through_a_crash(tmp_path, gen, monkeypatch):
    import neuralfactor.data.store as store_mod
    from neuralfactor.data.store import state_file_name

    F = frames(gen)
    path = tmp_path / "s.zarr"
    w = write(path, F, finalize=False, upto=0)

    def put(i):  # a producer state that changes with every frame, views included
        state = {"U": F[:, i].mT, "S": torch.full((2, 3), float(i)), "k": torch.tensor(i)}
        w.append(F[:, i], 0.1 * i, {"mass": F[:, i].sum((-2, -1))}, step=5 * i, state=state)

    for i in range(4):  # the 4th append flushes frames 0-3 (step 15) with the state of frame 3
        put(i)
    part = partial_path(path)
    assert [p.name for p in part.glob("neuralfactor-state-*")] == [state_file_name(15)]
    real = store_mod.write_json
    monkeypatch.setattr(store_mod, "write_json", lambda *a: (_ for _ in ()).throw(OSError("x")))
    for i in range(4, 7):
        put(i)
    with pytest.raises(OSError):  # crash after the frames and the state file of step 35,
        put(7)  # before the marker that would name them
    monkeypatch.setattr(store_mod, "write_json", real)
    assert (part / state_file_name(35)).exists()
    w = MatrixStoreWriter.resume(path)
    assert (w.frames_written, w.step) == (4, 15)  # the marker still names step 15
    st = w.last_state()
    assert set(st) == {"U", "S", "k"} and int(st["k"]) == 3
    assert torch.equal(st["U"], F[:, 3].mT) and torch.equal(st["S"], torch.full((2, 3), 3.0))
    for i in range(4, 8):  # the next flush replaces both files by the state of its own step
        put(i)
    assert [p.name for p in part.glob("neuralfactor-state-*")] == [state_file_name(35)]
    # a file whose recorded step differs from the marker's is refused, never paired
    (part / state_file_name(35)).rename(part / state_file_name(15))
    marker = json.loads((part / "neuralfactor-partial.json").read_text())
    marker["state_step"] = 15
    (part / "neuralfactor-partial.json").write_text(json.dumps(marker))
    with pytest.raises(StoreError, match=r"holds the state of step '35'"):
        MatrixStoreWriter.resume(path).last_state()
    (part / state_file_name(15)).unlink()
    with pytest.raises(StoreError, match=r"cannot be read"):
        MatrixStoreWriter.resume(path).last_state()


def test_resume_errors(tmp_path, gen):
    with pytest.raises(FileNotFoundError, match="Nothing to resume"):
        MatrixStoreWriter.resume(tmp_path / "none.zarr")
    path = tmp_path / "s.zarr"
    write(path, frames(gen))
    with pytest.raises(FileExistsError, match="already complete"):
        MatrixStoreWriter.resume(path)
    p2 = tmp_path / "f.zarr"
    w = write(p2, frames(gen), finalize=False, upto=5)
    w.mark_failed("NaN at step 9")
    with pytest.raises(
        StoreError, match=r"status 'failed' \(NaN at step 9\); it cannot be resumed"
    ):
        MatrixStoreWriter.resume(p2)
    # a failed run keeps its frames, readable as a partial store
    assert MatrixStore.open(p2, allow_partial=True).frame_shape[0] == 5
    p3 = tmp_path / "g.zarr"
    write(p3, frames(gen), finalize=False, upto=2)  # nothing flushed yet
    with pytest.raises(StoreError, match="no frame on disk"):
        MatrixStoreWriter.resume(p3)
    empty = MatrixStoreWriter.resume(p3, allow_empty=True)  # the producer starts over
    assert empty.frames_written == 0 and empty.step == 0 and empty.last_history() == ()
    marker = partial_path(p3) / "neuralfactor-partial.json"
    marker.unlink()
    with pytest.raises(StoreError, match="no neuralfactor-partial.json marker"):
        MatrixStoreWriter.resume(p3)


def test_existing_outputs_are_refused_unless_overwrite(tmp_path, gen):
    path = tmp_path / "s.zarr"
    write(path, frames(gen))
    with pytest.raises(FileExistsError, match="exists; pass --overwrite .* or --resume"):
        write(path, frames(gen))
    F = frames(gen)
    store = write(path, F, overwrite=True)
    assert torch.equal(store.as_tensor(), F)
    p2 = tmp_path / "p.zarr"
    write(p2, frames(gen), finalize=False, upto=5)
    with pytest.raises(FileExistsError, match="interrupted run exists .* --resume"):
        write(p2, frames(gen))


def test_writer_input_errors(tmp_path, gen):
    with pytest.raises(TypeError, match="float32 or float64"):
        MatrixStoreWriter.create(
            tmp_path / "a.zarr", n_runs=1, n_frames=2, matrix_shape=(2, 2), dtype=torch.int64
        )
    with pytest.raises(
        ValueError,
        match=r"'n_frames' parameter of MatrixStoreWriter must be an "
        r"int >= 1. Got 0",
    ):
        MatrixStoreWriter.create(tmp_path / "a.zarr", n_runs=1, n_frames=0, matrix_shape=(2, 2))
    F = frames(gen, T=2)
    w = write(tmp_path / "b.zarr", F, finalize=False)
    with pytest.raises(ValueError, match="holds 2 frames; cannot append more"):
        w.append(F[:, 0], 0.0, {"mass": F[:, 0].sum((-2, -1))})


def test_index_errors(tmp_path, gen):
    store = write(tmp_path / "s.zarr", frames(gen))
    with pytest.raises(IndexError, match="Frame index 11 out of range for 11 frames"):
        store[0][11]
    with pytest.raises(IndexError, match="Run index 2 out of range"):
        store[2]
    with pytest.raises(KeyError, match="No run 'run-009'"):
        store["run-009"]
    with pytest.raises(TypeError, match="indexed by an int, a slice or a 1-D int array"):
        store[0][np.array([0.5])]


def test_store_attrs_are_plain_json(tmp_path, gen):
    path = tmp_path / "s.zarr"
    write(path, frames(gen))
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["format"] == "neuralfactor.MatrixStore/1" and attrs["n_frames"] == 11
