"""The benchmark runner: every factorizer, same data, device, precision and batch, one harness.

Records are flat dicts (one per row x size x rank x batch), written as JSON lines. Every case
is measured by :func:`neuralfactor.core.timing.measure_many`: all rows of the case timed
interleaved, the seconds per matrix as median, quartiles and minimum, the scaled loss and its
ratio to the Eckart-Young optimum (mean and max over the timed matrices), the training time
of data-driven methods (``fit_seconds``, never folded into the per-matrix time), the thread
settings, the load average before and after, and the versions. Library peers are run twice,
at their documented defaults and at our budget (:mod:`neuralfactor.bench.peers`).

Methods without batching (SciPy, scikit-learn) cost the same per matrix at any batch size;
when a full batch would exceed ``max_call_seconds`` the harness times a sub-batch and records
its size as ``timed_batch`` (the per-matrix time is then measured on that many matrices).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from neuralfactor.bench.environment import environment
from neuralfactor.bench.peers import peer_rows
from neuralfactor.core.factorizer import available_factorizers, make_factorizer
from neuralfactor.core.metrics import optimal_scaled_loss
from neuralfactor.core.timing import SuiteTiming, measure_many, pinned_threads
from neuralfactor.core.validation import (
    as_generator,
    check_option,
    check_positive_float,
    resolve_device,
)

__all__ = ["DATA_KINDS", "BenchConfig", "make_frames", "run_bench"]

DataKind = Literal["planted", "evolving"]
DATA_KINDS: tuple[str, ...] = get_args(DataKind)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, kw_only=True)
class BenchConfig(SuiteTiming):
    """What to measure. Sizes are (m, n); every combination of size x rank x batch is run.

    Timing options (``repeats``: fewest interleaved rounds, at least 3; ``warmup``,
    ``max_call_seconds``, ``min_run_time``, ``max_case_seconds``) come from
    :class:`~neuralfactor.core.timing.SuiteTiming`; ``timing`` is their one
    :class:`~neuralfactor.core.timing.TimingConfig`.
    """

    methods: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...] = ((128, 256),)
    ranks: tuple[int, ...] = (6, 12, 30)
    batches: tuple[int, ...] = (1, 1024)
    data: DataKind = "evolving"
    dtype: str = "float32"
    device: str = "auto"
    threads: int | None = 1
    peer_settings: bool = True  # peers twice: documented defaults and our budget
    seed: int = 0
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = available_factorizers()
        for name in ("methods", "sizes", "ranks", "batches"):
            if not getattr(self, name):
                raise ValueError(f"The '{name}' parameter of bench must not be empty.")
        check_positive_float(self.max_call_seconds, name="max_call_seconds", caller="bench")
        if self.repeats < 3:
            raise ValueError(
                f"The 'repeats' parameter of bench must be >= 3 (rounds of interleaved timing; "
                f"a single sample is not a timing). Got {self.repeats}."
            )
        for m in self.methods:
            if m not in known:
                raise ValueError(f"Unknown factorizer {m!r}; expected one of {known}.")
        check_option(self.data, DATA_KINDS, name="data", caller="bench")
        check_option(self.dtype, DTYPES, name="dtype", caller="bench")
        for m, n in self.sizes:
            if m < 1 or n < 1:
                raise ValueError(
                    f"The 'sizes' parameter of bench needs positive m, n. Got {m}x{n}."
                )
        for r in self.ranks:
            if not 1 <= r <= min(min(s) for s in self.sizes):
                raise ValueError(
                    f"The 'ranks' parameter of bench must lie in [1, {min(min(s) for s in self.sizes)}]"
                    f" (the smallest min(m, n)). Got {r}."
                )
        if any(b < 1 for b in self.batches):
            raise ValueError(f"The 'batches' parameter of bench must be >= 1. Got {self.batches}.")


def make_frames(
    kind: DataKind,
    batch: int,
    m: int,
    n: int,
    *,
    seed: int = 0,
    t0: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Synthetic benchmark matrices (batch, m, n).

    ``planted``: independent random matrices with singular values ``s_i = 0.9^i`` (decaying,
    so a low rank captures most energy, with Haar-random singular vectors).
    ``evolving``: a smooth, slowly evolving field over time steps ``t0 .. t0 + batch - 1``
    (a Maxwellian plus 64 drifting, filamented wave packets in (x, v) with amplitudes
    ~0.88^j, like phase-space frames), time-ordered; singular values fall to ~1e-3 of the largest by
    index 30, so ranks up to 30 are measurable in float32.
    """
    g = as_generator(seed, "cpu")
    k = min(m, n)
    if kind == "planted":
        U = torch.linalg.qr(torch.randn(batch, m, k, generator=g, dtype=torch.float64)).Q
        V = torch.linalg.qr(torch.randn(batch, n, k, generator=g, dtype=torch.float64)).Q
        s = 0.9 ** torch.arange(k, dtype=torch.float64)
        X = (U * s) @ V.mT
    else:
        x = torch.linspace(0, 2 * torch.pi, m + 1, dtype=torch.float64)[:-1]
        v = torch.linspace(-6, 6, n, dtype=torch.float64)
        t = (t0 + torch.arange(batch, dtype=torch.float64))[:, None, None] * 0.05
        X = torch.exp(-(v[None, None, :] ** 2) / 2).expand(batch, m, n).clone()
        modes = 64
        amp = 0.5 + torch.rand(modes, generator=g, dtype=torch.float64)
        phase = 2 * torch.pi * torch.rand(modes, generator=g, dtype=torch.float64)
        for j in range(modes):
            kx = j % 40 + 1
            c = 0.88**j * amp[j]
            drift = v[None, None, :] - 3 * torch.cos(0.3 * (j + 1) * t + phase[j])
            kv = 0.5 * (j % 16 + 1)  # filaments: oscillation in v keeps the profiles independent
            X += (
                c
                * torch.cos(kx * x[None, :, None] - (j % 4 + 1) * t + phase[j])
                * torch.exp(-(drift**2) / (0.5 + 0.2 * j))
                * torch.cos(kv * v[None, None, :] - 0.1 * t + phase[(j + 7) % modes])
            )
    return X.to(dtype=dtype, device=device)


def _fit_frames(kind: DataKind, count: int, m: int, n: int, dtype, device, seed: int) -> Tensor:
    """Training frames for data-driven methods: same generator, disjoint seed / earlier times."""
    if kind == "evolving":
        return make_frames(kind, count, m, n, dtype=dtype, device=device, seed=seed, t0=-count)
    return make_frames(kind, count, m, n, dtype=dtype, device=device, seed=seed + 10_000)


def run_bench(
    config: BenchConfig,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    frames: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Run every case of ``config``; return the records (also passed to ``on_record``).

    ``frames`` (T, m, n) replaces the synthetic data: sizes are then ignored and each batch is
    the first ``batch`` frames (data-driven methods fit on the frames after them).
    """
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    env = environment(device)
    records: list[dict[str, Any]] = []
    with pinned_threads(config.threads) as threads:
        sizes: Iterable[tuple[int, int]] = (
            config.sizes if frames is None else [tuple(frames.shape[-2:])]
        )
        for m, n in sizes:
            for batch in config.batches:
                if frames is None:
                    X = make_frames(
                        config.data, batch, m, n, dtype=dtype, device=device, seed=config.seed
                    )
                    train = _fit_frames(config.data, 256, m, n, dtype, device, config.seed)
                else:
                    if batch >= frames.shape[0]:
                        raise ValueError(
                            f"bench needs more than batch={batch} frames from the file (the rest "
                            f"trains data-driven methods). Got {frames.shape[0]}."
                        )
                    X = frames[:batch].to(device=device, dtype=dtype)
                    train = frames[batch:].to(device=device, dtype=dtype)
                svals = torch.linalg.svdvals(X.double())
                for rank in config.ranks:
                    opt = optimal_scaled_loss(X, rank, singular_values=svals)
                    for rec in _run_case(config, X, train, rank, opt, device):
                        rec.update(env)
                        rec.update(
                            {
                                "data": config.data if frames is None else "file",
                                "m": m,
                                "n": n,
                                "rank": rank,
                                "batch": batch,
                                "dtype": config.dtype,
                                "device": str(device),
                                "seed": config.seed,
                                "torch_threads": threads["torch_threads"],
                                "blas_threads": threads["threadpools"],
                                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            }
                        )
                        records.append(rec)
                        if on_record is not None:
                            on_record(rec)
    return records


def _run_case(
    config: BenchConfig,
    X: Tensor,
    train: Tensor,
    rank: int,
    opt: Tensor,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Every row of one (size, batch, rank) case, timed interleaved by the one harness."""
    factorizers, settings = {}, {}
    for label, name, params, setting in peer_rows(config.methods, rank, config.peer_settings):
        params = {**params, **config.method_params.get(name, {})}
        factorizers[label] = make_factorizer(name, rank=rank, **params)
        settings[label] = setting
    records = measure_many(
        factorizers, X, optimum=opt, device=device, train=train, timing=config.timing
    )
    for rec in records:
        rec["setting"] = settings[rec["label"]]
    return records


def config_dict(config: BenchConfig) -> dict[str, Any]:
    return asdict(config)
