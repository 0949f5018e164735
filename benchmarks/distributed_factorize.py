"""Throughput of ``factorize_store`` for 1 and 2 workers on a store larger than a memory limit.

Writes a synthetic MatrixStore chunk by chunk (rank-8 frames plus noise; never all in memory),
then factorizes it once per configuration, each in a fresh subprocess so that its peak RSS
(``ru_maxrss``) is its own:

- ``threads`` : Dask's local threaded scheduler with 1 and 2 threads (one process);
- ``cluster`` : a ``dask.distributed.LocalCluster`` of 1 and 2 worker processes with a
  ``--memory-limit`` per worker smaller than the store (the driver connects by address, as
  ``--scheduler tcp://...`` does). Cluster start-up and the workers' first import of
  torch/neuralfactor are done before the clock starts (a warm-up ``client.run``).

Every task runs with 1 torch/BLAS thread (OMP_NUM_THREADS=1). The configurations run in
``--repeats`` interleaved rounds (A B C D, B C D A, ...), so that load changes hit all of them;
records (one JSON line per configuration and round) go to
``docs/results/records/distributed-factorize-<tag>.jsonl`` and the whole page
docs/results/distributed.md is rewritten from every such file:

    OMP_NUM_THREADS=1 python benchmarks/distributed_factorize.py --tag quiet
    python benchmarks/distributed_factorize.py --from-records
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def make_store(path: Path, T: int, m: int, n: int, chunk: int, seed: int = 0) -> None:
    import torch

    from neuralfactor.data import MatrixStoreWriter

    if path.exists():
        return
    g = torch.Generator().manual_seed(seed)
    w = MatrixStoreWriter.create(
        path, n_runs=1, n_frames=T, matrix_shape=(m, n), chunk_frames=chunk, overwrite=True
    )
    U0 = torch.linalg.qr(torch.randn(m, 8, generator=g, dtype=torch.float64)).Q
    V0 = torch.linalg.qr(torch.randn(n, 8, generator=g, dtype=torch.float64)).Q
    s = 0.7 ** torch.arange(8, dtype=torch.float64)
    for a in range(0, T, chunk):
        k = min(chunk, T - a)
        C = torch.randn(k, 8, 8, generator=g, dtype=torch.float64) * s
        X = U0 @ C @ V0.T + 1e-3 * torch.randn(k, m, n, generator=g, dtype=torch.float64)
        for i in range(k):
            w.append(X[i : i + 1], float(a + i))
    w.finalize()


def one(args: argparse.Namespace) -> dict:
    """One configuration, in this (fresh) process."""
    import torch

    from neuralfactor.distributed import factorize_store

    torch.set_num_threads(1)
    store, out = Path(args.workdir) / "frames.zarr", Path(args.workdir) / f"out-{args.one}.zarr"
    kind, workers = args.one.split("-")
    workers = int(workers)
    # factorize_store is idempotent: an output left by an earlier run would be "done" in 0 s
    shutil.rmtree(out, ignore_errors=True)
    rec: dict = {"config": args.one, "scheduler": kind, "workers": workers}
    load0 = os.getloadavg()
    if kind == "threads":
        res = factorize_store(
            store, args.method, out, rank=args.rank, scheduler="threads", workers=workers,
            overwrite=True,
        )  # fmt: skip
        rec["worker_peak_rss_mib"] = None
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster:
            with Client(cluster) as client:  # warm-up: workers import torch/neuralfactor once
                client.run(lambda: __import__("neuralfactor.distributed.factorize"))
            res = factorize_store(
                store, args.method, out, rank=args.rank, scheduler=cluster.scheduler_address,
                overwrite=True,
            )  # fmt: skip
            with Client(cluster) as client:
                peaks = client.run(
                    lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                )
            rec["worker_peak_rss_mib"] = round(max(peaks.values()), 1)
        rec["memory_limit_per_worker"] = args.memory_limit
    rec.update(
        method=res.method,
        rank=res.rank,
        chunks_computed=res.chunks_computed,
        frames=res.n_frames * res.n_runs,
        seconds=round(res.seconds, 3),
        frames_per_s=round(res.frames_per_second, 1),
        ratio_mean=res.ratio_mean,
        driver_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        loadavg_before=[round(x, 2) for x in load0],
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        torch_threads_per_task=1,
    )
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=16384)
    p.add_argument("--m", type=int, default=64)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--chunk", type=int, default=128, help="frames per Zarr chunk (= per task)")
    p.add_argument("--method", default="rsvd-gemm")
    p.add_argument("--rank", type=int, default=12)
    p.add_argument("--memory-limit", default="600MiB", help="per LocalCluster worker")
    p.add_argument("--configs", default="threads-1,threads-2,cluster-1,cluster-2")
    p.add_argument("--workdir", default="/tmp/nf-bench")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (>= 1)")
    p.add_argument("--tag", default="quiet", help="records file suffix (one file per run)")
    p.add_argument("--records-dir", type=Path, default=Path("docs/results/records"))
    p.add_argument("--page", type=Path, default=Path("docs/results/distributed.md"))
    p.add_argument("--from-records", action="store_true")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    if args.from_records:
        write_page(args.records_dir, args.page)
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "frames.zarr"
    t0 = time.perf_counter()
    make_store(store, args.frames, args.m, args.n, args.chunk)
    raw = args.frames * args.m * args.n * 8
    disk = _dir_bytes(store)
    print(
        f"store {store}: {args.frames} frames {args.m}x{args.n} float64 = {raw / 2**20:.0f} MiB "
        f"raw, {disk / 2**20:.0f} MiB on disk (written in {time.perf_counter() - t0:.1f} s)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    recs = []
    configs = args.configs.split(",")
    for rnd in range(args.repeats):
        k = rnd % len(configs)
        for cfg in configs[k:] + configs[:k]:  # interleaved, rotating rounds
            cmd = [sys.executable, __file__, "--one", cfg, *sys.argv[1:]]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            rec = json.loads(r.stdout.strip().splitlines()[-1])
            rec.update(
                store_raw_mib=round(raw / 2**20, 1),
                store_disk_mib=round(disk / 2**20, 1),
                round=rnd,
                command="OMP_NUM_THREADS=1 python benchmarks/distributed_factorize.py "
                + " ".join(a for a in sys.argv[1:]),
            )
            recs.append(rec)
            print(json.dumps(rec), flush=True)
    from neuralfactor.io import atomic_write_text

    path = args.records_dir / f"distributed-factorize-{args.tag}.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    write_page(args.records_dir, args.page)


def write_page(records_dir: Path, page: Path) -> None:
    from neuralfactor.io import atomic_write_text
    from neuralfactor.report.distributed_page import render_distributed_page

    atomic_write_text(page, render_distributed_page(records_dir))
    print(f"wrote {page}", file=sys.stderr)


if __name__ == "__main__":
    main()
