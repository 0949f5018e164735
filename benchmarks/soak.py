"""Soak test: factorize a long stream of frames and watch memory and throughput.

Frames (64x128 by default) of a slowly rotating low-rank field plus noise are generated on the
fly in batches (nothing is kept), factorized through the public API (``make_factorizer``) and
scored; every block of frames records the throughput and the process's resident memory
(psutil RSS, and the peak RSS from ``resource.getrusage``). Memory is bounded when the RSS
after the first block stays flat; throughput is steady when the per-block rates agree.

    OMP_NUM_THREADS=1 python benchmarks/soak.py --frames 100000 \
        --out docs/results/records/soak.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import time
from pathlib import Path

import psutil
import torch

import neuralfactor as nf
from neuralfactor.core.timing import pinned_threads


def frames_batch(start: int, count: int, m: int, n: int, rank: int, g: torch.Generator):
    """Frames start..start+count of an evolving rank-``rank`` field plus 1e-3 noise."""
    x = torch.linspace(0, 2 * math.pi, m, dtype=torch.float64)
    v = torch.linspace(-3, 3, n, dtype=torch.float64)
    t = torch.arange(start, start + count, dtype=torch.float64)[:, None, None] * 1e-3
    X = torch.zeros(count, m, n, dtype=torch.float64)
    for j in range(rank):
        X += (
            (0.6**j)
            * torch.cos((j + 1) * x[None, :, None] + (j + 1) * t)
            * torch.exp(-((v[None, None, :] - 0.3 * j) ** 2))
        )
    X += 1e-3 * torch.randn(X.shape, generator=g, dtype=torch.float64)
    return X


def soak(method: str, frames: int, batch: int, block: int, m: int, n: int, rank: int) -> dict:
    proc = psutil.Process()
    f = nf.make_factorizer(method, rank=rank)
    g = torch.Generator().manual_seed(0)
    blocks = []
    done, t_block, n_block, loss_sum = 0, time.perf_counter(), 0, 0.0
    while done < frames:
        k = min(batch, frames - done)
        X = frames_batch(done, k, m, n, rank + 2, g).float()
        lr = f.factorize(X)
        loss = nf.core.metrics.scaled_loss(X, lr)
        if not bool(torch.isfinite(loss).all()):
            raise RuntimeError(f"{method}: non-finite loss at frame {done}")
        loss_sum += float(loss.sum())
        done += k
        n_block += k
        if n_block >= block or done == frames:
            now = time.perf_counter()
            blocks.append(
                {
                    "frames_done": done,
                    "frames_per_second": n_block / (now - t_block),
                    "rss_mib": proc.memory_info().rss / 2**20,
                    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "mean_scaled_loss": loss_sum / n_block,
                }
            )
            print(json.dumps({"method": method, **blocks[-1]}), flush=True)
            t_block, n_block, loss_sum = now, 0, 0.0
    rates = [b["frames_per_second"] for b in blocks]
    rss = [b["rss_mib"] for b in blocks]
    return {
        "method": method,
        "frames": frames,
        "batch": batch,
        "m": m,
        "n": n,
        "rank": rank,
        "dtype": "float32",
        "blocks": blocks,
        "rss_first_block_mib": rss[0],
        "rss_max_mib": max(rss),
        "rss_growth_after_first_block_mib": max(rss) - rss[0],
        "frames_per_second_min": min(rates),
        "frames_per_second_max": max(rates),
        "frames_per_second_median": sorted(rates)[len(rates) // 2],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--block", type=int, default=10_000)
    p.add_argument("--size", default="64x128")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--methods", default="warm-subspace,rsvd-gemm")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    m, n = (int(s) for s in a.size.split("x"))
    with pinned_threads(1):
        runs = [
            soak(meth, a.frames, a.batch, a.block, m, n, a.rank) for meth in a.methods.split(",")
        ]
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/soak.py "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "threads": 1,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "version": nf.__version__,
        "runs": runs,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if a.out is not None:
        from neuralfactor.io import write_json

        write_json(a.out, result)
    return result


if __name__ == "__main__":
    main()
