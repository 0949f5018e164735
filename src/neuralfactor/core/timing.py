"""The only stopwatch: warm-up, device synchronization, median of repeats, thread pinning.

CPU timings are meaningless unless the BLAS and torch thread counts are fixed and recorded: on
a 2-core machine ``scipy.linalg.svd`` of a 128x256 matrix ran ~20x slower with two OpenBLAS
threads than with one. :func:`pinned_threads` fixes both and :func:`thread_info` records them.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Timing",
    "default_threads",
    "pinned_threads",
    "synchronize",
    "thread_info",
    "time_call",
]


@dataclass(frozen=True)
class Timing:
    """Result of :func:`time_call`: seconds per call (median), all repeats, and the result."""

    median: float
    times: tuple[float, ...]
    result: Any = field(default=None, repr=False)

    @property
    def min(self) -> float:
        return min(self.times)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device is None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_call(
    fn: Callable[[], Any],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    min_seconds: float = 0.0,
    max_repeats: int = 1000,
) -> Timing:
    """Time ``fn()`` after ``warmup`` calls: the median of at least ``repeats`` timed calls.

    Each timed call is bracketed by device synchronization. With ``min_seconds`` > 0, calls are
    repeated until their total reaches it (at most ``max_repeats``), which steadies short calls.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_call needs repeats >= 1 and warmup >= 0. Got {repeats}, {warmup}.")
    result = None
    for _ in range(warmup):
        result = fn()
    synchronize(device)
    times: list[float] = []
    total = 0.0
    while len(times) < repeats or (total < min_seconds and len(times) < max_repeats):
        t0 = time.perf_counter()
        result = fn()
        synchronize(device)
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return Timing(statistics.median(times), tuple(times), result)


def thread_info() -> dict[str, Any]:
    """Thread counts in force: torch intra-op threads and every BLAS/OpenMP pool."""
    from threadpoolctl import threadpool_info

    pools = {
        f"{p['internal_api']}:{p.get('prefix', '')}": p["num_threads"] for p in threadpool_info()
    }
    return {"torch_threads": torch.get_num_threads(), "threadpools": pools}


def default_threads(usable: int | None = None, physical: int | None = None) -> int:
    """Threads for a job that was given none: 1 on a machine with at most 2 usable cores,
    else one per physical core (never more than the usable cores).

    On a small CPU shared with other work, thread pools larger than one spin-wait for each
    other (a demo training on 2 cores ran 15x faster with 1 thread); on a larger machine, one
    thread per physical core avoids hyper-thread contention in BLAS. ``usable`` defaults to
    the cores this process may run on (its CPU affinity), ``physical`` to ``psutil``'s count
    when installed, else torch's default pool size.
    """
    import os

    if usable is None:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        usable = usable or os.cpu_count() or 1
    if usable <= 2:
        return 1
    if physical is None:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False)
        except ImportError:
            physical = None
        physical = physical or torch.get_num_threads()
    return max(1, min(usable, physical))


@contextlib.contextmanager
def pinned_threads(n: int | None) -> Iterator[dict[str, Any]]:
    """Fix torch and every BLAS/OpenMP thread pool to ``n`` threads (``None``: leave as is).

    Yields :func:`thread_info` as measured inside the block, for the records.
    """
    if n is None:
        yield thread_info()
        return
    if n < 1:
        raise ValueError(f"The 'threads' parameter must be >= 1. Got {n}.")
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield thread_info()
    finally:
        torch.set_num_threads(old)
