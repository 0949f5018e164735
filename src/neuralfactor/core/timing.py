"""The only stopwatch, and the one harness every benchmark measures factorizers with.

Three layers, each used by the next, all configured by one frozen :class:`TimingConfig`
(the options and their defaults live there only; a suite's flags map onto it through
:class:`SuiteTiming`):

- :func:`time_interleaved` times several calls *interleaved*: rounds of A B C, B C A, ...
  (the order rotates), each timing a block of ``number`` calls chosen so that one block lasts
  about ``block_seconds`` (as ``torch.utils.benchmark.Timer.blocked_autorange`` does). Rounds
  continue until every call has at least ``min_rounds`` blocks and ``min_run_time`` seconds
  *and* its interquartile range is within ``target_rel_iqr`` of its median, or the round or
  time caps are hit. A load spike on a shared machine then hits every method alike instead of
  one block of one method. Median, quartiles and minimum are recorded with the 1-minute load
  average before and after and the thread counts.
- :func:`speed_ratio` is the one place that decides whether a ratio of two timings is a
  speed-up or noise: when the two interquartile ranges overlap by at least the difference of
  the medians, the ratio is "within noise" and printed ``~1x``; otherwise it is printed with
  the range its quartiles allow.
- :func:`measure_many` runs factorizers on the same matrices through :func:`time_interleaved`
  and returns one flat record per method: time per matrix (median, quartiles, minimum),
  scaled loss and ratio to the Eckart-Young optimum, training time kept apart, load, threads.

CPU timings are meaningless unless the BLAS and torch thread counts are fixed and recorded: on
a 2-core machine ``scipy.linalg.svd`` of a 128x256 matrix ran ~20x slower with two OpenBLAS
threads than with one. :func:`pinned_threads` fixes both and :func:`thread_info` records them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "InterleavedTiming",
    "SpeedRatio",
    "Spread",
    "SuiteTiming",
    "Timing",
    "TimingConfig",
    "TimingStats",
    "default_threads",
    "loadavg",
    "measure_many",
    "pinned_threads",
    "speed_ratio",
    "synchronize",
    "thread_info",
    "time_call",
    "time_interleaved",
    "within_noise",
]

#: Fewest timed blocks per call: a single sample is never a timing.
MIN_ROUNDS = 3


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often the harness times: the one place these options and their
    defaults live (:func:`time_interleaved`, :func:`measure_many` and every suite take one).

    Parameters
    ----------
    warmup : untimed calls of each callable first (lazy initialization, caches).
    min_rounds : fewest timed blocks per callable (at least 3: a single sample is not a
        timing).
    max_rounds : most rounds.
    min_run_time : fewest seconds spent timing each callable.
    max_seconds : after this many seconds of rounds, stop once ``min_rounds`` are done even
        if the spread has not settled (``converged`` is then False).
    block_seconds : target length of one timed block: calls shorter than it are repeated
        ``number = ceil(block_seconds / t)`` times per block (``t`` from one calibration call)
        and the block's time divided by ``number``.
    target_rel_iqr : stop when every callable's IQR / median is at most this.
    max_call_seconds : (:func:`measure_many` only) one call factorizes at most as many
        matrices as fit in this many seconds (estimated from one untimed probe call on up to 4
        matrices); the count is recorded as ``timed_batch``.
    """

    warmup: int = 1
    min_rounds: int = 5
    max_rounds: int = 200
    min_run_time: float = 0.1
    max_seconds: float = 30.0
    block_seconds: float = 0.01
    target_rel_iqr: float = 0.1
    max_call_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.min_rounds < MIN_ROUNDS or self.max_rounds < self.min_rounds:
            raise ValueError(
                f"time_interleaved needs {MIN_ROUNDS} <= min_rounds <= max_rounds (a single "
                f"sample is not a timing). Got min_rounds={self.min_rounds}, "
                f"max_rounds={self.max_rounds}."
            )
        if (
            self.warmup < 0
            or self.min_run_time < 0
            or self.block_seconds < 0
            or self.target_rel_iqr <= 0
        ):
            raise ValueError(
                "time_interleaved needs warmup >= 0, min_run_time >= 0, block_seconds >= 0 and "
                f"target_rel_iqr > 0. Got {self.warmup}, {self.min_run_time}, "
                f"{self.block_seconds}, {self.target_rel_iqr}."
            )
        if not self.max_call_seconds > 0:
            raise ValueError(
                f"measure_many needs max_call_seconds > 0. Got {self.max_call_seconds}."
            )

    def replace(self, **changes: Any) -> TimingConfig:
        """A copy with ``changes`` (validated); an unknown option is refused by name."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"Unknown timing option(s) {unknown}; expected some of "
                f"{[f.name for f in fields(self)]}."
            )
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class SuiteTiming:
    """The timing options a benchmark suite's configuration exposes (its command-line flags),
    turned into the one :class:`TimingConfig` of its cases by :attr:`timing`.

    ``repeats`` is the fewest interleaved rounds (``min_rounds``), ``max_case_seconds`` the
    cap of a case's rounds (``max_seconds``); the other names are :class:`TimingConfig`'s.
    """

    repeats: int = 5
    warmup: int = 1
    max_call_seconds: float = 0.25
    min_run_time: float = 0.1
    max_case_seconds: float = 20.0

    @property
    def timing(self) -> TimingConfig:
        """The harness settings of every case."""
        return TimingConfig(
            warmup=self.warmup,
            min_rounds=self.repeats,
            min_run_time=self.min_run_time,
            max_seconds=self.max_case_seconds,
            max_call_seconds=self.max_call_seconds,
        )


def _timing(timing: TimingConfig | None, overrides: Mapping[str, Any]) -> TimingConfig:
    timing = TimingConfig() if timing is None else timing
    return timing.replace(**overrides) if overrides else timing


@dataclass(frozen=True)
class Timing:
    """Result of :func:`time_call`: seconds per call (median), all blocks, and the result."""

    median: float
    times: tuple[float, ...]
    result: Any = field(default=None, repr=False)

    @property
    def min(self) -> float:
        return min(self.times)


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of a time (seconds): what :func:`speed_ratio` compares.

    ``q25``/``q75`` may be NaN when the spread was not recorded; a ratio is then "unknown".
    """

    median: float
    q25: float
    q75: float

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], key: str = "seconds_per_matrix") -> Spread:
        """The spread of ``rec[key]`` with its quartiles ``rec[key + '_q25' / '_q75']``."""
        nan = float("nan")
        return cls(
            float(rec[key]), float(rec.get(f"{key}_q25", nan)), float(rec.get(f"{key}_q75", nan))
        )


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call of one timed callable: every block's per-call time and its summary."""

    times: tuple[float, ...]
    number: int  # calls per timed block

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def q25(self) -> float:
        return _quantile(self.times, 0.25)

    @property
    def q75(self) -> float:
        return _quantile(self.times, 0.75)

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> Spread:
        return Spread(self.median, self.q25, self.q75)


def _quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default 'linear' method)."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class InterleavedTiming:
    """Result of :func:`time_interleaved`: per label stats and last result, and run conditions."""

    stats: dict[str, TimingStats]
    results: dict[str, Any] = field(repr=False)
    rounds: int
    order: tuple[str, ...]
    loadavg_before: float
    loadavg_after: float
    torch_threads: int
    converged: bool


def loadavg() -> float:
    """The 1-minute load average (NaN where the OS does not report it)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # pragma: no cover - Windows
        return float("nan")


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device is None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    device: torch.device | str = "cpu",
    timing: TimingConfig | None = None,
    clock: Callable[[], float] = time.perf_counter,
    **overrides: Any,
) -> InterleavedTiming:
    """Time every callable of ``calls`` in interleaved rounds until their spread is known.

    Parameters
    ----------
    calls : label -> zero-argument callable; the last result of each is returned.
    device : synchronized after every timed block (CUDA work is queued asynchronously).
    timing : the rounds, blocks and caps (:class:`TimingConfig`; its defaults when None).
    clock : the stopwatch (``time.perf_counter``; a test may pass a fake).
    **overrides : single :class:`TimingConfig` fields replaced on ``timing`` (e.g.
        ``min_rounds=3``).

    Returns
    -------
    InterleavedTiming
        per-label :class:`TimingStats` (seconds per call), last results, rounds, load average
        (1 minute) before and after, torch threads, and whether the spread settled.

    Notes
    -----
    Rounds rotate the order (A B C, B C A, C A B, ...) so no callable always runs first after
    another's cache pollution. Timing blocks of several calls, and judging by median and
    interquartile range rather than the mean, follows ``torch.utils.benchmark.Timer``'s
    ``blocked_autorange`` / ``adaptive_autorange``; interleaving follows the practice of
    comparing alternatives within the same time window (Georges, Buytaert & Eeckhout 2007,
    "Statistically rigorous Java performance evaluation").
    """
    cfg = _timing(timing, overrides)
    if not calls:
        raise ValueError("time_interleaved needs at least one callable to time. Got none.")
    labels = tuple(calls)
    load0 = loadavg()
    results: dict[str, Any] = {}
    for label in labels:
        for _ in range(cfg.warmup):
            results[label] = calls[label]()
    synchronize(device)
    number: dict[str, int] = {}
    for label in labels:  # calibration: one call sizes the block (not part of the timing)
        t0 = clock()
        results[label] = calls[label]()
        synchronize(device)
        dt = clock() - t0
        number[label] = max(1, min(10_000, math.ceil(cfg.block_seconds / max(dt, 1e-9))))
    times: dict[str, list[float]] = {label: [] for label in labels}
    spent = dict.fromkeys(labels, 0.0)
    start = clock()
    rounds = 0
    converged = False
    order: list[str] = []
    while rounds < cfg.max_rounds:
        k = rounds % len(labels)
        for label in labels[k:] + labels[:k]:
            fn, num = calls[label], number[label]
            t0 = clock()
            for _ in range(num):
                results[label] = fn()
            synchronize(device)
            dt = clock() - t0
            times[label].append(dt / num)
            spent[label] += dt
            order.append(label)
        rounds += 1
        if rounds < cfg.min_rounds or min(spent.values()) < cfg.min_run_time:
            if clock() - start < cfg.max_seconds or rounds < cfg.min_rounds:
                continue
            break
        settled = all(
            _quantile(t, 0.75) - _quantile(t, 0.25) <= cfg.target_rel_iqr * statistics.median(t)
            for t in times.values()
        )
        if settled:
            converged = True
            break
        if clock() - start >= cfg.max_seconds:
            break
    return InterleavedTiming(
        stats={label: TimingStats(tuple(times[label]), number[label]) for label in labels},
        results=results,
        rounds=rounds,
        order=tuple(order),
        loadavg_before=load0,
        loadavg_after=loadavg(),
        torch_threads=torch.get_num_threads(),
        converged=converged,
    )


def time_call(
    fn: Callable[[], Any],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    min_seconds: float = 0.0,
    max_repeats: int = 1000,
    max_seconds: float = 30.0,
) -> Timing:
    """Time one callable: :func:`time_interleaved` with a single label.

    At least ``max(repeats, 3)`` timed blocks (a single sample is not a timing) and
    ``min_seconds`` of timing; ``median`` is the median seconds per call.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_call needs repeats >= 1 and warmup >= 0. Got {repeats}, {warmup}.")
    rounds = max(repeats, MIN_ROUNDS)
    timing = TimingConfig(
        warmup=warmup,
        min_rounds=rounds,
        max_rounds=max(rounds, max_repeats),
        min_run_time=min_seconds,
        max_seconds=max_seconds,
    )
    res = time_interleaved({"f": fn}, device=device, timing=timing)
    st = res.stats["f"]
    return Timing(st.median, st.times, res.results["f"])


Verdict = Literal["faster", "slower", "within noise", "unknown"]


@dataclass(frozen=True)
class SpeedRatio:
    """``baseline / method`` (> 1: the method is faster) and what the spreads allow of it.

    ``low``/``high``: the ratio's range from the quartiles (``baseline.q25 / method.q75`` to
    ``baseline.q75 / method.q25``). ``verdict``: "within noise" when the spreads overlap by at
    least the difference of the medians, or when the ratio's range contains 1; "unknown" when a
    spread was not recorded.
    """

    ratio: float
    low: float
    high: float
    verdict: Verdict
    overlapping: bool = False  # the interquartile ranges overlap by more than medians differ

    def __str__(self) -> str:
        if self.verdict == "within noise":
            if self.overlapping:
                return "~1x (within noise)"
            # medians apart, but a spread so wide that the ratio's quartile range contains 1
            return f"within noise ({_fmt_ratio(self.low)}-{_fmt_ratio(self.high)}x)"
        if self.verdict == "unknown":
            return f"{_fmt_ratio(self.ratio)}x (spread not recorded)"
        return f"{_fmt_ratio(self.ratio)}x ({_fmt_ratio(self.low)}-{_fmt_ratio(self.high)})"


def _fmt_ratio(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def speed_ratio(baseline: Spread, method: Spread) -> SpeedRatio:
    """Decide whether ``method`` is faster than ``baseline``, slower, or within noise.

    The two interquartile ranges ``[q25, q75]`` overlap by
    ``max(0, min(q75) - max(q25))``; when that overlap is at least ``|median_b - median_m|``
    the two timings are indistinguishable and the verdict is "within noise" (printed ``~1x``).
    So is a ratio whose quartile range ``[baseline.q25 / method.q75, baseline.q75 / method.q25]``
    contains 1 (one side's spread is so wide that it cannot be ranked; printed with that
    range). Otherwise the ratio of medians is reported with the range its quartiles allow.
    """
    ratio = baseline.median / method.median
    spreads = (baseline.q25, baseline.q75, method.q25, method.q75)
    if any(x != x for x in spreads):
        return SpeedRatio(ratio, float("nan"), float("nan"), "unknown")
    overlap = max(0.0, min(baseline.q75, method.q75) - max(baseline.q25, method.q25))
    low = baseline.q25 / method.q75 if method.q75 > 0 else float("inf")
    high = baseline.q75 / method.q25 if method.q25 > 0 else float("inf")
    overlapping = overlap >= abs(baseline.median - method.median)
    if overlapping or low <= 1 <= high:
        return SpeedRatio(ratio, low, high, "within noise", overlapping)
    return SpeedRatio(ratio, low, high, "faster" if ratio > 1 else "slower")


def within_noise(a: Spread, b: Spread) -> bool:
    """True when :func:`speed_ratio` cannot tell ``a`` from ``b``."""
    return speed_ratio(a, b).verdict == "within noise"


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


# --------------------------------------------------------------------------- the harness
Start = Literal["cold", "stream", "warm"]


def _start_mode(f: Any, prev: Tensor | None) -> Start:
    if getattr(f, "reset", None) is None:
        return "cold"
    return "warm" if prev is not None and hasattr(f, "basis") else "stream"


def _error_record(label: str, f: Any, exc: Exception) -> dict[str, Any]:
    nan = float("nan")
    return {
        "method": getattr(f, "name", label),
        "label": label,
        "error": f"{type(exc).__name__}: {exc}",
        "timed_batch": 0,
        "seconds_per_matrix": nan,
        "seconds_per_matrix_q25": nan,
        "seconds_per_matrix_q75": nan,
        "seconds_per_matrix_min": nan,
        "scaled_loss_mean": nan,
        "ratio_mean": nan,
        "ratio_max": nan,
        "fit_seconds": 0.0,
        "params": {},
    }


#: :func:`measure_many`'s default timing: a case of many rows stops after 20 s of rounds.
CASE_TIMING = TimingConfig(max_seconds=20.0)


def measure_many(
    factorizers: Mapping[str, Any],
    X: Tensor,
    *,
    optimum: Tensor,
    device: torch.device | str = "cpu",
    train: Tensor | None = None,
    prev: Tensor | None = None,
    fit_seconds: Mapping[str, float] | None = None,
    timing: TimingConfig | None = None,
    errors: tuple[type[Exception], ...] | None = None,
    results: dict[str, Any] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Measure factorizers on the same matrices, interleaved: one flat record per label.

    Parameters
    ----------
    factorizers : label -> factorizer (anything with ``factorize(X) -> LowRank``). Labels name
        the rows (e.g. ``"sklearn-rsvd [defaults]"``); ``method`` in the record is the
        factorizer's ``name``.
    X : Tensor of shape (batch, m, n), on ``device``.
    optimum : Tensor of shape (batch,), the Eckart-Young scaled loss of each matrix at the
        factorizers' rank (``core.metrics.optimal_scaled_loss``).
    train : frames that fit data-driven factorizers (``requires_fit``) not listed in
        ``fit_seconds``; their one training time is recorded as ``fit_seconds``, never folded
        into the time per matrix.
    prev : the frame (1, m, n) just before X in time. When given, streaming factorizers with a
        ``basis`` continue the stream from it ("warm"); without it they restart every timed
        call ("stream": the batch's first frame cold, each next one warm-started).
    fit_seconds : training time of already trained factorizers, by label.
    timing : rounds, blocks and caps (:class:`TimingConfig`; :data:`CASE_TIMING` when None),
        including ``max_call_seconds``, the sub-batch cap of one call.
    errors : exception types recorded as an ``error`` row instead of raised (default:
        ``FactorizationError``, ``ValueError``, ``RuntimeError``; ``()`` raises them all).
    results : when given, filled with label -> the last timed call's result (the
        factorization of the ``timed_batch`` first matrices).
    **overrides : single :class:`TimingConfig` fields replaced on ``timing``.

    Returns
    -------
    list of dict
        Per label: ``seconds_per_matrix`` (median) with ``_q25``, ``_q75``, ``_min``,
        ``seconds_per_call``, ``rounds``, ``calls_per_round``, ``timed_batch``, ``start``
        (cold / stream / warm), ``warm`` (any frame warm-started), ``trained``,
        ``fit_seconds``, ``scaled_loss_mean``/``_max`` (float64), ``optimum_mean``,
        ``ratio_mean``/``_max`` (scaled loss / optimum), ``loadavg_before``/``_after``,
        ``torch_threads``, ``interleaved`` (labels timed together), ``timing_converged``.
    """
    from neuralfactor.core.factorizer import FactorizationError

    cfg = _timing(CASE_TIMING if timing is None else timing, overrides)
    if errors is None:
        errors = (FactorizationError, ValueError, RuntimeError)
    if X.ndim != 3:
        raise ValueError(
            f"measure_many needs a batch of matrices of shape (batch, m, n). Got {tuple(X.shape)}."
        )
    if optimum.shape != X.shape[:1]:
        raise ValueError(
            f"measure_many needs one optimum per matrix, shape ({X.shape[0]},). "
            f"Got {tuple(optimum.shape)}."
        )
    fit_seconds = dict(fit_seconds or {})
    failed: dict[str, dict[str, Any]] = {}
    calls: dict[str, Callable[[], Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    for label, f in factorizers.items():
        try:
            info[label] = _prepare(label, f, X, train, prev, fit_seconds, device, cfg)
            calls[label] = info[label].pop("call")
        except errors as exc:  # recorded, not hidden
            failed[label] = _error_record(label, f, exc)
    run = None
    if calls:
        try:
            run = time_interleaved(calls, device=device, timing=cfg)
        except errors as exc:
            for label in calls:
                failed[label] = _error_record(label, factorizers[label], exc)
            calls = {}
    records = []
    for label, f in factorizers.items():
        if label in failed:
            records.append(failed[label])
            continue
        out = run.results[label]
        if results is not None:
            results[label] = out
        rec = _score(label, f, X, out, optimum, info[label], run.stats[label], run.rounds)
        rec.update(
            loadavg_before=run.loadavg_before,
            loadavg_after=run.loadavg_after,
            torch_threads=run.torch_threads,
            interleaved=list(calls),
            timing_converged=run.converged,
        )
        records.append(rec)
    return records


def _prepare(
    label: str,
    f: Any,
    X: Tensor,
    train: Tensor | None,
    prev: Tensor | None,
    fit_seconds: Mapping[str, float],
    device: torch.device | str,
    cfg: TimingConfig,
) -> dict[str, Any]:
    """Train ``f`` if needed, build its timed call and size its sub-batch."""
    fit_s = fit_seconds.get(label, 0.0)
    if label not in fit_seconds and getattr(f, "requires_fit", False):
        if train is None:
            raise ValueError(f"{label} must be trained first; pass 'train' frames to measure_many.")
        t0 = time.perf_counter()  # one-off training cost (a whole run's wall time), reported apart
        f.fit(train)
        fit_s = time.perf_counter() - t0
    start = _start_mode(f, prev)
    call = _make_call(f, start, prev)
    batch = X.shape[0]
    probe = min(batch, 4)
    t0 = time.perf_counter()  # sizing probe only; never reported
    call(X[:probe])
    synchronize(device)
    per_matrix = (time.perf_counter() - t0) / probe
    timed = batch
    if per_matrix * batch > cfg.max_call_seconds:
        timed = max(probe, min(batch, int(cfg.max_call_seconds / max(per_matrix, 1e-12))))
    sub = X[:timed]
    return {
        "call": lambda: call(sub),
        "timed": timed,
        "start": start,
        "fit_seconds": fit_s,
    }


def _score(
    label: str,
    f: Any,
    X: Tensor,
    out: Any,
    optimum: Tensor,
    meta: dict[str, Any],
    st: TimingStats,
    rounds: int,
) -> dict[str, Any]:
    """The flat record of one timed row: times per matrix and accuracy against the optimum."""
    from neuralfactor.core.lowrank import LowRank
    from neuralfactor.core.metrics import scaled_loss

    timed = meta["timed"]
    S = None if out.S is None else out.S.double()
    loss = scaled_loss(X[:timed].double(), LowRank(out.U.double(), out.V.double(), S))
    opt = optimum[:timed].to(loss.device)
    ratio = loss / opt
    params = f.get_params() if hasattr(f, "get_params") else {}
    return {
        "method": getattr(f, "name", label),
        "label": label,
        "params": {k: v for k, v in params.items() if k != "settings"},
        "timed_batch": timed,
        "rounds": rounds,
        "calls_per_round": st.number,
        "seconds_per_matrix": st.median / timed,
        "seconds_per_matrix_q25": st.q25 / timed,
        "seconds_per_matrix_q75": st.q75 / timed,
        "seconds_per_matrix_min": st.min / timed,
        "seconds_per_call": st.median,
        "start": meta["start"],
        "warm": meta["start"] == "warm" or (meta["start"] == "stream" and timed > 1),
        "trained": bool(getattr(f, "requires_fit", False)),
        "fit_seconds": meta["fit_seconds"],
        "scaled_loss_mean": float(loss.mean()),
        "scaled_loss_max": float(loss.max()),
        "optimum_mean": float(opt.mean()),
        "ratio_mean": float(ratio.mean()),
        "ratio_max": float(ratio.max()),
    }


def _make_call(f: Any, start: Start, prev: Tensor | None) -> Callable[[Tensor], Any]:
    if start == "cold":
        return f.factorize
    if start == "stream":  # every timed call starts a fresh stream at the batch's first frame

        def call(sub: Tensor) -> Any:
            f.reset()
            return f.factorize(sub)

        return call
    f.reset()  # warm: the stream continues from the frame just before the batch
    f.factorize(prev)
    basis0 = f.basis

    def warm_call(sub: Tensor) -> Any:
        f.basis = basis0
        return f.factorize(sub)

    return warm_call
