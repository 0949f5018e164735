"""The ``frames`` suite: every factorizer on simulator frames, against the memory floor.

Frames come from the Vlasov simulator in memory (strong Landau damping at the size measured,
time-ordered, the last frames before ``t_end``), so the suite needs neither Zarr nor Dask and
runs unchanged on a bare GPU machine. For each size x rank x batch x dtype it times every
classical factorizer, the library peers (at their documented defaults and at our budget) and
the learned factorizers (trained briefly on earlier frames of the same simulation, or loaded
from ``models_dir``) interleaved by the one harness
(:func:`neuralfactor.core.timing.measure_many`), and scores them against the float64
Eckart-Young optimum of the same frames.

Each record also carries the memory floor: the bytes of one matrix read once divided by the
device's measured read bandwidth (a large ``x.sum()``), and the ratio of the time to it; and the
flop floor: the row's operation count per matrix (:func:`neuralfactor.bench.flop_floor.
method_flops`; None where no formula is stated) divided by the rate of the m x n by n x k
product (:func:`neuralfactor.classical.gemm_rate`, k = min(largest rank + 5, m, n)) measured
once per frame size and dtype in the same run, on the suite's device and threads.

The configuration is :mod:`neuralfactor.bench.frames_config`, the Markdown
:mod:`neuralfactor.bench.frames_render`; this module executes (names of both are re-exported).

dtypes: ``float32`` (TF32 off, ``matmul_precision='highest'``), ``tf32`` (float32 data,
``allow_tf32=True`` / ``matmul_precision='high'``: CUDA only), ``bf16`` (learned methods only:
the network runs in bfloat16, the input and the least-squares refinement stay float32).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from neuralfactor.bench.environment import environment
from neuralfactor.bench.flop_floor import flop_fields, method_flops
from neuralfactor.bench.frames_config import (
    CPU_ONLY,
    FRAME_DTYPES,
    LEARNED,
    PEERS,
    SKIPPED,
    FramesConfig,
    classical_methods,
    config_dict,
    family,
)
from neuralfactor.bench.frames_render import FRAME_COLUMNS, frames_markdown, throughput_markdown
from neuralfactor.bench.peers import peer_rows
from neuralfactor.classical import gemm_rate
from neuralfactor.core.factorizer import available_factorizers, make_factorizer
from neuralfactor.core.metrics import optimal_scaled_loss
from neuralfactor.core.timing import loadavg, measure_many, pinned_threads, time_call
from neuralfactor.core.validation import resolve_device

__all__ = [
    "FRAME_COLUMNS",
    "FRAME_DTYPES",
    "LEARNED",
    "PEERS",
    "FramesConfig",
    "classical_methods",
    "config_dict",
    "environment",
    "family",
    "frames_markdown",
    "matmul_mode",
    "measure_bandwidth",
    "run_frames",
    "simulate_frames",
    "throughput_markdown",
    "training_throughput",
]


# --------------------------------------------------------------------------- data
def simulate_frames(
    m: int, n: int, count: int, *, t_end: float = 40.0, device: str | torch.device = "cpu"
) -> tuple[Tensor, dict[str, Any]]:
    """The last ``count`` frames (count, m, n) float64 of a strong-Landau run on an m x n grid.

    The preset step ``dt = min(hx, hv)/20`` is kept; ``save_every`` is chosen so that the
    saved frames cover the second half of the run when possible (consecutive saved frames
    then differ by a few steps: slowly evolving, as warm-started methods expect).
    """
    from neuralfactor.vlasov import SimulationConfig, simulate

    cfg = SimulationConfig(ic="landau-strong", nx=m, nv=n, t_end=t_end)
    save_every = max(1, cfg.n_steps // (2 * count))
    cfg = cfg.replace(save_every=save_every)
    if cfg.n_frames < count:
        raise ValueError(
            f"A {m}x{n} run to t={t_end} saves {cfg.n_frames} frames, fewer than {count}; "
            "raise t_end or lower the batch."
        )
    res = simulate(cfg, device=device)
    frames = res.frames[0, -count:]
    info = {
        "sim_ic": cfg.ic,
        "sim_dt": cfg.dt,
        "sim_save_every": save_every,
        "sim_t_first": float(res.t[-count]),
        "sim_t_last": float(res.t[-1]),
    }
    return frames, info


def measure_bandwidth(device: torch.device, *, mbytes: int = 256, repeats: int = 5) -> float:
    """Read bandwidth in bytes/s: a float32 ``x.sum()`` over ``mbytes`` MiB, median of repeats."""
    x = torch.ones(mbytes * 2**20 // 4, device=device, dtype=torch.float32)
    t = time_call(lambda: x.sum(), device=device, warmup=2, repeats=repeats).median
    return x.numel() * 4 / t


# --------------------------------------------------------------------------- matmul flags
@contextlib.contextmanager
def matmul_mode(dtype: str, device: torch.device) -> Iterator[dict[str, Any]]:
    """TF32 on for ``tf32`` (CUDA), off otherwise; restored on exit. Yields the settings."""
    old_prec = torch.get_float32_matmul_precision()
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    tf32 = dtype == "tf32"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield {
            "matmul_precision": torch.get_float32_matmul_precision(),
            "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
    finally:
        torch.set_float32_matmul_precision(old_prec)
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
        torch.backends.cudnn.allow_tf32 = old_cudnn


# --------------------------------------------------------------------------- learned
def _trained_path(
    name: str, rank: int, train: Tensor, config: FramesConfig, device: torch.device, scratch: Path
) -> Path:
    """The checkpoint of the ``name`` family at ``rank``: from models_dir, else trained now
    (briefly, on the frames before the timed ones) and saved under ``scratch``."""
    from neuralfactor.amortized import LearnedFactorizer, TrainSettings, default_lr

    nested = "nested" in name
    model = "sketch" if name.startswith("sketch") else "convmf"
    stem = f"{'convmf-nested' if nested else model}-{train.shape[-2]}x{train.shape[-1]}-r{rank}"
    if config.models_dir is not None:
        path = Path(config.models_dir) / stem
        if not path.exists():
            raise FileNotFoundError(f"--models {config.models_dir}: no trained model at {path}.")
        return path
    settings = TrainSettings(
        epochs=config.train_epochs,
        lr=config.train_lr or default_lr(model),
        batch_size=25,
        seed=config.seed,
        device=str(device),
    )
    f = LearnedFactorizer(rank, model=model, nested=nested, settings=settings)
    f.fit(train.to(device=device, dtype=torch.float32))
    return f.save(scratch / stem)


def _learned_variant(path: Path, name: str, k: int, dtype: str, device: torch.device):
    """The ``name`` variant (plain or ``+refine``) of a trained checkpoint at rank ``k``, built
    from parameters: loaded with its ``refine`` setting, cut to ``k`` when nested, its network
    in bfloat16 for ``bf16`` (a fresh copy: other variants keep float32)."""
    from neuralfactor.amortized import LearnedFactorizer

    refine = "lstsq" if name.endswith("+refine") else "none"
    f = LearnedFactorizer.load(path, device=str(device), refine=refine)
    if f.nested:
        f = f.at_rank(k)
    if dtype == "bf16":
        f.model_.to(torch.bfloat16)
    return f


# --------------------------------------------------------------------------- runner
@dataclass
class _Run:
    """What the cases of one suite run share: settings, run conditions, trained models."""

    config: FramesConfig
    device: torch.device
    dtypes: list[str]
    common: dict[str, Any]  # recorded on every row
    bandwidth: float
    scratch: Path
    note: Callable[[str], None]
    on_record: Callable[[dict[str, Any]], None] | None
    start: float = field(default_factory=time.perf_counter)
    late: bool = False
    trained: dict[tuple[str, int], Path] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def past_deadline(self, what: str) -> bool:
        """True once the deadline has passed (noted once, naming the first case not run)."""
        limit = self.config.deadline_seconds
        # the deadline is a whole run's wall time, not a measurement
        if limit is None or time.perf_counter() - self.start <= limit:
            return False
        if not self.late:
            self.note(f"deadline of {limit:.0f} s reached: cases from {what} on were not run")
        self.late = True
        return True

    def emit(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        if self.on_record is not None:
            self.on_record(rec)


def _notes(config: FramesConfig, device: torch.device, note: Callable[[str], None]) -> list[str]:
    """The dtypes that apply on ``device``; every skipped dtype and method is noted."""
    dtypes = [d for d in config.dtypes if not (d == "tf32" and device.type != "cuda")]
    for d in set(config.dtypes) - set(dtypes):
        note(f"dtype {d} skipped: it applies to CUDA matmuls only")
    for name in SKIPPED:
        if config.methods is None and name in available_factorizers():
            note(f"{name} not timed: {SKIPPED[name]}")
    if config.methods is None and "svd-compressed" not in available_factorizers():
        note("svd-compressed not timed: Dask is not installed (the [distributed] extra)")
    return dtypes


def run_frames(
    config: FramesConfig,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the frames suite; return flat records (also passed to ``on_record``).

    Every size x batch x rank x dtype case is timed by :func:`~neuralfactor.core.timing.
    measure_many` with ``config.timing``; the matmul flags of a dtype are set for its case
    only and restored after it.
    """
    device = resolve_device(config.device)
    note = on_note or (lambda s: None)
    dtypes = _notes(config, device, note)
    env = environment(device)
    # Solver chatter (LOBPCG accuracy warnings) would drown the progress lines; the records
    # carry each method's accuracy instead.
    with (
        pinned_threads(config.threads) as threads,
        warnings.catch_warnings(),
        tempfile.TemporaryDirectory(prefix="nf-frames-") as scratch,
    ):
        warnings.simplefilter("ignore", UserWarning)
        bandwidth = measure_bandwidth(device)
        note(f"read bandwidth on {device}: {bandwidth / 1e9:.2f} GB/s")
        common = {
            **env,
            "suite": "frames",
            "device": str(device),
            "bandwidth_bytes_per_s": bandwidth,
            "torch_threads": threads["torch_threads"],
            "blas_threads": threads["threadpools"],
            "seed": config.seed,
        }
        run = _Run(config, device, dtypes, common, bandwidth, Path(scratch), note, on_record)
        for m, n in config.sizes:
            _run_size(run, m, n)
    return run.records


def _run_size(run: _Run, m: int, n: int) -> None:
    """Simulate the frames of one size, then every batch x rank x dtype case on them."""
    config = run.config
    cap = (config.max_batch_at or {}).get(f"{m}x{n}")
    batches = sorted({min(b, cap) if cap else b for b in config.batches})
    need = max(batches) + config.train_frames
    t0 = time.perf_counter()  # a whole simulation's wall time, recorded, not a measurement
    frames64, sim = simulate_frames(m, n, need, t_end=config.t_end, device=run.device)
    sim["sim_seconds"] = time.perf_counter() - t0
    run.note(
        f"{m}x{n}: {need} frames simulated in {sim['sim_seconds']:.1f} s "
        f"(t {sim['sim_t_first']:.2f}..{sim['sim_t_last']:.2f})"
    )
    train = frames64[: config.train_frames].float()
    evals = frames64[config.train_frames :]
    prev = train[-1:].contiguous()
    floor = m * n * 4 / run.bandwidth
    k = min(max(config.ranks) + 5, m, n)
    rates = {dtype: _gemm_rate(run, m, n, k, dtype) for dtype in run.dtypes}
    for batch in batches:
        X64 = evals[:batch]
        X = X64.float().contiguous()
        svals = torch.linalg.svdvals(X64.cpu()).to(run.device)  # LAPACK: predictable
        for rank in config.ranks:
            opt = optimal_scaled_loss(X64, rank, singular_values=svals)
            for dtype in run.dtypes:
                if run.past_deadline(f"{m}x{n} r={rank} b={batch} {dtype}"):
                    continue
                with matmul_mode(dtype, run.device) as mm:
                    recs = _one_case(run, rank, dtype, X, prev, opt, train)
                for rec in recs:
                    rec.update(run.common)
                    rec.update(sim)
                    rec.update(mm)
                    rec.update(
                        {
                            "family": family(rec["method"]),
                            "m": m,
                            "n": n,
                            "rank": rank,
                            "batch": batch,
                            "dtype": dtype,
                            "floor_seconds_per_matrix": floor,
                            "x_floor": rec["seconds_per_matrix"] / floor,
                            "gemm_k": k,
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        }
                    )
                    fl = method_flops(
                        rec["method"],
                        m,
                        n,
                        rank,
                        _flop_params(rec),
                        trained_rank=rec.get("trained_rank"),
                        device=run.device.type,
                    )
                    rec.update(flop_fields(fl, rates[dtype], rec["seconds_per_matrix"]))
                    run.emit(rec)


def _gemm_rate(run: _Run, m: int, n: int, k: int, dtype: str) -> float:
    """flop/s of the (m x n)(n x k) product on the suite's device and threads, with the matmul
    flags of ``dtype`` (``bf16``: bfloat16 operands, as the learned rows' networks run)."""
    with matmul_mode(dtype, run.device):
        return gemm_rate(
            m,
            n,
            k,
            dtype=torch.bfloat16 if dtype == "bf16" else torch.float32,
            device=run.device,
            min_seconds=max(run.config.min_run_time, 0.05),
        )


def _flop_params(rec: dict[str, Any]) -> dict[str, Any]:
    """The parameters a row's flop count depends on: a learned row's ``model_kwargs``, a
    classical row's parameters with the measured mean iterations as ``n_iter``."""
    params = rec.get("params") or {}
    if rec.get("family") == "learned":
        return dict(params.get("model_kwargs") or {})
    if rec.get("iterations_mean") is not None:
        return {**params, "n_iter": rec["iterations_mean"]}
    return dict(params)


def _one_case(
    run: _Run, rank: int, dtype: str, X: Tensor, prev: Tensor, opt: Tensor, train: Tensor
) -> list[dict[str, Any]]:
    """Every method of one (size, batch, rank, dtype) case, timed interleaved by the harness."""
    config, device = run.config, run.device
    methods = [
        meth
        for meth in config.all_methods
        if not (dtype == "bf16" and family(meth) != "learned")
        and not (dtype == "tf32" and meth in CPU_ONLY)
    ]
    factorizers: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    extras: dict[str, dict[str, Any]] = {}
    failed: list[dict[str, Any]] = []
    for method in (meth for meth in methods if family(meth) == "learned"):
        try:
            nested = "nested" in method
            key_rank = max(config.ranks) if nested else rank
            key = ("nested" if nested else method.split("+")[0], key_rank)
            if key not in run.trained:
                run.trained[key] = _trained_path(
                    method, key_rank, train, config, device, run.scratch
                )
            f = _learned_variant(run.trained[key], method, rank, dtype, device)
            factorizers[method], fit_seconds[method] = f, f.fit_seconds_
            extras[method] = {
                "train_epochs": config.train_epochs if config.models_dir is None else None,
                "train_frames": config.train_frames,
                "trained_rank": key_rank,
                "train_lr": f.settings.lr,  # the checkpoint's, when loaded
                "train_metric_last": f.history_[-1].get("metric") if f.history_ else None,
            }
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            failed.append(_failed(method, exc))
    classical = [meth for meth in methods if family(meth) != "learned"]
    settings = dict.fromkeys(factorizers, "")
    for label, name, params, setting in peer_rows(classical, rank, config.peer_settings):
        factorizers[label] = make_factorizer(name, rank=rank, **params)
        settings[label] = setting
    recs = measure_many(
        factorizers,
        X.to(device),
        optimum=opt,
        device=device,
        train=train.to(device),
        prev=prev.to(device),
        fit_seconds=fit_seconds,
        timing=config.timing,
    )
    for rec in recs:
        rec["setting"] = settings.get(rec["label"], "")
        rec.update(extras.get(rec["label"], {}))
        iters = getattr(factorizers[rec["label"]], "iterations", None)
        if isinstance(iters, Tensor):  # adaptive iterations of the last (timed) call
            rec["iterations_mean"] = float(iters.float().mean())
    return failed + recs


def _failed(method: str, exc: Exception) -> dict[str, Any]:
    nan = float("nan")
    return {
        "method": method,
        "label": method,
        "setting": "",
        "error": f"{type(exc).__name__}: {exc}",
        "timed_batch": 0,
        "seconds_per_matrix": nan,
        "scaled_loss_mean": nan,
        "ratio_mean": nan,
        "ratio_max": nan,
        "fit_seconds": 0.0,
    }


# --------------------------------------------------------------------------- training
def training_throughput(
    m: int,
    n: int,
    rank: int = 12,
    *,
    steps: int = 50,
    batch_size: int = 25,
    threads: int | None = 1,
    device: str = "cpu",
    dtype: str = "float32",
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Frames per second of ConvMF training steps (forward, loss, backward, fused Adam).

    Times blocks of ``steps`` optimizer steps on uniform random frames (the values do not
    change the cost of a dense network's step), median of ``repeats`` blocks, after one
    warm-up block.
    """
    from neuralfactor.amortized.models import build_model

    dev = resolve_device(device)
    with pinned_threads(threads) as info, matmul_mode(dtype, dev) as mm:
        with torch.random.fork_rng(devices=[]):  # the network's init draws from the
            torch.manual_seed(seed)  # global generator: seeded here, restored on exit
            model = build_model("convmf", m, n, rank).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=dev.type in ("cpu", "cuda"))
        g = torch.Generator(device="cpu").manual_seed(seed)
        data = torch.rand(4 * batch_size, m, n, generator=g).to(dev)

        def block():
            for i in range(steps):
                X = data[(i % 4) * batch_size : (i % 4 + 1) * batch_size]
                U, V = model(X)
                loss = (X - U @ V).square().sum(dim=(-2, -1)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return loss

        t = time_call(block, device=dev, warmup=1, repeats=repeats)
        n_params = sum(p.numel() for p in model.parameters())
        return {
            "suite": "train-throughput",
            "model": "convmf",
            "m": m,
            "n": n,
            "rank": rank,
            "device": str(dev),
            "dtype": dtype,
            "batch_size": batch_size,
            "steps": steps,
            "seconds_per_step": t.median / steps,
            "frames_per_second": steps * batch_size / t.median,
            "parameters": n_params,
            "torch_threads": info["torch_threads"],
            "blas_threads": info["threadpools"],
            "loadavg_1min": loadavg(),
            **mm,
            **environment(dev),
        }
