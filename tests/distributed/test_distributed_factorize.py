"""factorize_store: Dask over MatrixStore chunks; LocalCluster == single process; kill/resume."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import neuralfactor as nf
from neuralfactor.cli import main
from neuralfactor.data import MatrixStoreWriter, StoreError, partial_path
from tests.helpers import evolving_frames

pytest.importorskip("dask.array")
from neuralfactor.distributed import FactorStore, factorize_store  # noqa: E402

M, N, T, CF = 12, 16, 24, 4


def write_store(path, *, runs=2, T=T, m=M, n=N, chunk_frames=CF, dtype=torch.float64):
    F = torch.stack(
        [evolving_frames(T, m, n, generator=torch.Generator().manual_seed(r)) for r in range(runs)]
    )
    w = MatrixStoreWriter.create(
        path, n_runs=runs, n_frames=T, matrix_shape=(m, n), dtype=dtype, chunk_frames=chunk_frames
    )
    for i in range(T):
        w.append(F[:, i].to(dtype), 0.1 * i)
    w.finalize()
    return F.to(dtype)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "frames.zarr"
    F = write_store(path)
    return path, F


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
    ) as c:
        yield c


def factors(path):
    fs = FactorStore.open(path)
    return {r: (fs.lowrank(r).U, fs.lowrank(r).V, fs.diagnostics(r)) for r in fs.runs}


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for r in a:
        assert torch.equal(a[r][0], b[r][0]) and torch.equal(a[r][1], b[r][1]), r
        for k in ("scaled_loss", "ratio"):
            np.testing.assert_array_equal(a[r][2][k], b[r][2][k])


@pytest.mark.parametrize("method", ["svd", "rsvd-gemm", "warm-subspace"])
def test_matches_the_factorizer_chunk_by_chunk(store, tmp_path, method):
    path, F = store
    res = factorize_store(path, method, tmp_path / "o.zarr", rank=5, scheduler="synchronous")
    assert res.chunks_computed == res.chunks_total == 2 * (T // CF) and res.chunks_skipped == 0
    fs = FactorStore.open(tmp_path / "o.zarr")
    assert fs.spec["method"] == method and fs.spec["rank"] == 5
    f = nf.make_factorizer(method, rank=5)
    for r, name in enumerate(fs.runs):
        lr = fs.lowrank(name)
        assert lr.U.shape == (T, M, 5) and lr.V.shape == (T, 5, N)
        # each chunk is one batch for the factorizer (a fresh copy: streams restart per chunk)
        for a in range(0, T, CF):
            if hasattr(f, "reset"):
                f.reset()
            want = f.factorize(F[r, a : a + CF]).reconstruct()
            torch.testing.assert_close(lr[a : a + CF].reconstruct(), want, rtol=0, atol=1e-12)
        loss = nf.core.metrics.scaled_loss(F[r], lr)
        np.testing.assert_allclose(fs.diagnostics(name)["scaled_loss"], loss.numpy(), rtol=1e-10)
        ratio = fs.diagnostics(name)["ratio"]
        assert (ratio >= 1 - 1e-10).all() and (ratio <= 1.2).all()
    if method == "svd":
        np.testing.assert_allclose(fs.diagnostics(0)["ratio"], 1.0, rtol=1e-10)
    every = np.concatenate([fs.diagnostics(n)["ratio"] for n in fs.runs])
    assert res.ratio_median == pytest.approx(np.median(every), rel=1e-12)
    assert res.ratio_max == pytest.approx(every.max(), rel=1e-12)


def test_local_cluster_equals_single_process_frame_by_frame(store, tmp_path, cluster):
    path, _ = store
    for method in ("svd", "rsvd-gemm"):
        ref = factorize_store(
            path, method, tmp_path / f"{method}-1.zarr", rank=4, scheduler="synchronous"
        )
        dist = factorize_store(
            path, method, tmp_path / f"{method}-2.zarr", rank=4, scheduler=cluster.scheduler_address
        )
        assert dist.chunks_computed == ref.chunks_computed == 12
        assert_identical(
            factors(tmp_path / f"{method}-1.zarr"), factors(tmp_path / f"{method}-2.zarr")
        )


def test_rerun_is_idempotent_and_mismatches_are_refused(store, tmp_path):
    path, _ = store
    out = tmp_path / "o.zarr"
    factorize_store(path, "svd", out, rank=3)
    again = factorize_store(path, "svd", out, rank=3)
    assert again.chunks_computed == 0 and again.chunks_skipped == 12
    with pytest.raises(FileExistsError, match=r"made differently \(rank=3 \(now 4\)"):
        factorize_store(path, "svd", out, rank=4)
    with pytest.raises(FileExistsError, match="method='svd' \\(now 'rsvd'\\)"):
        factorize_store(path, "rsvd", out, rank=3)
    res = factorize_store(path, "svd", out, rank=4, overwrite=True)
    assert res.chunks_computed == 12 and FactorStore.open(out).spec["rank"] == 4
    # another input (different checksum) is refused too
    other = tmp_path / "other.zarr"
    write_store(other, runs=1, T=T)
    with pytest.raises(FileExistsError, match="input_checksum"):
        factorize_store(other, "svd", out, rank=4)


def test_processes_scheduler_and_float32(tmp_path):
    path = tmp_path / "f32.zarr"
    write_store(path, runs=1, T=8, chunk_frames=4, dtype=torch.float32)
    factorize_store(path, "svd", tmp_path / "a.zarr", rank=3, scheduler="processes", workers=2)
    factorize_store(path, "svd", tmp_path / "b.zarr", rank=3, scheduler="synchronous")
    a, b = factors(tmp_path / "a.zarr"), factors(tmp_path / "b.zarr")
    assert a["run-000"][0].dtype == torch.float32
    assert_identical(a, b)


def _done_count(part: Path) -> int:
    return sum(
        len(files) for d, _, files in os.walk(part) if d.endswith(os.sep + "done" + os.sep + "c")
    )


def test_killed_run_never_looks_complete_and_rerun_completes_only_missing_chunks(tmp_path):
    path = tmp_path / "big.zarr"
    write_store(path, runs=1, T=60, m=32, n=40, chunk_frames=1)  # 60 chunks, one frame each
    out = tmp_path / "o.zarr"
    part = partial_path(out)
    code = "import sys; from neuralfactor.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [
        sys.executable,
        "-c",
        code,
        "--quiet",
        "factorize",
        str(path),
        "--out",
        str(out),
        "--method",
        "svd",
        "--rank",
        "6",
        "--scheduler",
        "synchronous",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if part.exists() and _done_count(part) >= 5:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: between or inside chunk writes
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and part.exists()
    with pytest.raises(FileNotFoundError, match="unfinished run"):
        FactorStore.open(out)
    done_before = _done_count(part)
    assert 5 <= done_before < 60
    res = factorize_store(path, "svd", out, rank=6, scheduler="threads", workers=2)
    assert res.chunks_skipped == done_before and res.chunks_computed == 60 - done_before
    factorize_store(path, "svd", tmp_path / "ref.zarr", rank=6, scheduler="synchronous")
    assert_identical(factors(out), factors(tmp_path / "ref.zarr"))  # bit-identical: svd


def test_a_worker_killed_mid_run_is_retried_by_dask(tmp_path, cluster):
    # Runs last among the cluster tests: the nanny restarts the killed worker.
    distributed = pytest.importorskip("distributed")
    path = tmp_path / "s.zarr"
    write_store(path, runs=1, T=50, m=32, n=40, chunk_frames=1)
    out = tmp_path / "o.zarr"
    with distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())

    def kill_one():
        part = partial_path(out)
        deadline = time.monotonic() + 30
        while not (part.exists() and _done_count(part) >= 3) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    res = factorize_store(path, "svd", out, rank=6, scheduler=cluster.scheduler_address)
    killer.join(5)
    assert res.chunks_computed == 50
    factorize_store(path, "svd", tmp_path / "ref.zarr", rank=6, scheduler="synchronous")
    assert_identical(factors(out), factors(tmp_path / "ref.zarr"))


def run_cli(args, capsys):
    rc = main(["--quiet", "factorize", *args])
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())


def test_cli_writes_store_and_reports(store, tmp_path, capsys):
    path, _ = store
    out = tmp_path / "c.zarr"
    rc, stdout, err = run_cli(
        [str(path), "--method", "rsvd-gemm", "--rank", "4", "--out", str(out), "--workers", "2"],
        capsys,
    )
    assert rc == 0, err
    assert "12 chunks computed" in " ".join(stdout.split())
    assert FactorStore.open(out).spec["method"] == "rsvd-gemm"
    rc, stdout, err = run_cli(
        [str(path), "--method", "rsvd-gemm", "--rank", "4", "--out", str(out)], capsys
    )
    assert rc == 0 and "already complete" in " ".join(stdout.split())


@pytest.mark.parametrize(
    "args,msg",
    [
        (["MISSING", "--rank", "3"], "No MatrixStore at"),
        (["STORE", "--rank", "13"], r"must be an int in \[1, min\(m, n\)=12\]"),
        (["STORE", "--rank", "0"], "must be an int >= 1"),
        (["STORE", "--rank", "3", "--method", "nope"], "Unknown factorizer 'nope'"),
        (["STORE", "--rank", "3", "--workers", "0"], "'--workers' option must be an int >= 1"),
        (["STORE", "--rank", "3", "--scheduler", "bogus"], "'scheduler' parameter must be one of"),
        (
            ["STORE", "--rank", "3", "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"],
            "Could not connect to the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s",
        ),
        (["STORE", "--rank", "3", "--method", "convmf"], "not fitted"),
        (["STORE", "--rank", "3", "--model", "NOMODEL"], "not a trained model directory"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(store, tmp_path, capsys, args, msg):
    path, _ = store
    args = [
        {"STORE": str(path), "MISSING": str(tmp_path / "no.zarr"), "NOMODEL": str(tmp_path)}.get(
            a, a
        )
        for a in args
    ]
    t0 = time.monotonic()
    rc, _, err = run_cli([*args, "--out", str(tmp_path / "o.zarr")], capsys)
    assert rc == 2, err
    assert err.startswith("error:") and "Traceback" not in err
    import re

    assert re.search(msg, err), err
    assert time.monotonic() - t0 < 15  # a bad address fails fast
    assert not (tmp_path / "o.zarr").exists() and not partial_path(tmp_path / "o.zarr").exists()


def test_partial_input_store_is_refused(tmp_path):
    w = MatrixStoreWriter.create(tmp_path / "p.zarr", n_runs=1, n_frames=4, matrix_shape=(4, 4))
    w.append(torch.zeros(1, 4, 4), 0.0)
    w.flush()
    with pytest.raises(StoreError, match="incomplete"):
        factorize_store(tmp_path / "p.zarr", "svd", tmp_path / "o.zarr", rank=2)


def test_trained_model_directory(store, tmp_path, capsys):
    from neuralfactor.amortized import LearnedFactorizer, TrainSettings

    path, F = store
    s = TrainSettings(epochs=2, lr=3e-3, batch_size=8, seed=0, device="cpu", dtype="float64")
    f = LearnedFactorizer(3, model="fork", settings=s, model_kwargs={"stem": (16,), "branch": (8,)})
    f.fit(F[0]).save(tmp_path / "model")
    out = tmp_path / "learned.zarr"
    rc, _, err = run_cli(
        [str(path), "--model", str(tmp_path / "model"), "--rank", "3", "--out", str(out)], capsys
    )
    assert rc == 0, err
    fs = FactorStore.open(out)
    assert fs.spec["method"] == "fork"
    loaded = LearnedFactorizer.load(tmp_path / "model")
    torch.testing.assert_close(
        fs.lowrank(1).reconstruct(), loaded.factorize(F[1]).reconstruct(), rtol=0, atol=1e-12
    )
    rc, _, err = run_cli(
        [str(path), "--model", str(tmp_path / "model"), "--rank", "4", "--out", str(out)], capsys
    )
    assert rc == 2 and "has rank 3; use --rank 3" in err
