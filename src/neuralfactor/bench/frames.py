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
device's measured read bandwidth (a large ``x.sum()``), and the ratio of the time to it.

dtypes: ``float32`` (TF32 off, ``matmul_precision='highest'``), ``tf32`` (float32 data,
``allow_tf32=True`` / ``matmul_precision='high'``: CUDA only), ``bf16`` (learned methods only:
the network runs in bfloat16, the input and the least-squares refinement stay float32).
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from neuralfactor.bench.peers import expand_peers
from neuralfactor.bench.tables import fmt_number
from neuralfactor.core.factorizer import available_factorizers, make_factorizer
from neuralfactor.core.metrics import optimal_scaled_loss
from neuralfactor.core.timing import (
    Spread,
    loadavg,
    measure_many,
    pinned_threads,
    speed_ratio,
    time_call,
)
from neuralfactor.core.validation import resolve_device

__all__ = [
    "FRAME_DTYPES",
    "LEARNED",
    "PEERS",
    "FramesConfig",
    "classical_methods",
    "measure_bandwidth",
    "run_frames",
    "simulate_frames",
    "frames_markdown",
    "throughput_markdown",
    "training_throughput",
]

FRAME_DTYPES: tuple[str, ...] = ("float32", "tf32", "bf16")
#: Library peers (all registered factorizers; scipy/sklearn run on the CPU whatever the device).
PEERS: tuple[str, ...] = ("svd", "scipy-gesdd", "svds-arpack", "sklearn-rsvd", "torch-lowrank")
#: Learned factorizers of the suite: ConvMF, its least-squares refinement, the nested model,
#: and the sketch encoder (two frame-sized products per frame).
LEARNED: tuple[str, ...] = (
    "convmf",
    "convmf+refine",
    "convmf-nested",
    "convmf-nested+refine",
    "sketch",
    "sketch+refine",
)
#: Registered names the suite leaves out, with the reason (printed as a note).
SKIPPED: dict[str, str] = {
    "fork": "learned; the suite times ConvMF",
    "fork+refine": "learned; the suite times ConvMF",
    "danmf": "learned; the suite times ConvMF",
    "danmf+refine": "learned; the suite times ConvMF",
    "convmf+subspace": "learned; +refine and nested are the suite's learned variants",
    "matvec-ae": "learns from products x -> Ax, not from frames",
}
BASELINE = "scipy-gesdd"
#: Methods that run on the CPU (SciPy, scikit-learn) whatever the device: the matmul
#: precision of the device does not apply to them, so they are timed in float32 only.
CPU_ONLY: frozenset[str] = frozenset(
    {"scipy-gesdd", "svds-arpack", "svds-lobpcg", "svds-propack", "sklearn-rsvd", "nmf"}
)


def classical_methods() -> tuple[str, ...]:
    """Every registered classical factorizer (peers included), in a stable order."""
    learned = set(LEARNED) | set(SKIPPED)
    names = [n for n in available_factorizers() if n not in learned]
    first = [p for p in PEERS if p in names]
    return tuple(first + [n for n in names if n not in first])


@dataclass(frozen=True)
class FramesConfig:
    """What the frames suite measures. Every size x rank x batch x dtype is run."""

    device: str = "cpu"
    sizes: tuple[tuple[int, int], ...] = ((64, 128), (128, 256), (256, 512))
    ranks: tuple[int, ...] = (6, 12, 30)
    batches: tuple[int, ...] = (1, 256)
    dtypes: tuple[str, ...] = ("float32",)
    methods: tuple[str, ...] | None = None  # None: classical_methods() + LEARNED
    threads: int | None = 1
    repeats: int = 5  # fewest interleaved timing rounds (at least 3)
    warmup: int = 1
    max_call_seconds: float = 0.25
    min_seconds: float = 0.05
    max_case_seconds: float = 20.0
    peer_settings: bool = True  # peers twice: documented defaults and our budget
    train_frames: int = 512
    train_epochs: int = 10
    train_lr: float = 1e-3
    models_dir: str | None = None
    t_end: float = 40.0
    max_batch_at: dict[str, int] | None = None  # e.g. {"256x512": 1024}
    deadline_seconds: float | None = None  # stop starting new cases after this (noted)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sizes", "ranks", "batches", "dtypes"):
            if not getattr(self, name):
                raise ValueError(f"The '{name}' parameter of the frames suite must not be empty.")
        for d in self.dtypes:
            if d not in FRAME_DTYPES:
                raise ValueError(
                    f"The 'dtypes' parameter of the frames suite takes {FRAME_DTYPES}. Got {d!r}."
                )
        known = available_factorizers()
        for m in self.methods or ():
            if m not in known:
                raise ValueError(f"Unknown factorizer {m!r}; expected one of {known}.")
        if self.methods is not None and not self.methods:
            raise ValueError("The 'methods' parameter of the frames suite must not be empty.")
        for m, n in self.sizes:
            if m < 4 or n < 4:
                raise ValueError(f"The frames suite needs sizes of at least 4x4. Got {m}x{n}.")
        small = min(min(s) for s in self.sizes)
        for r in self.ranks:
            if not 1 <= r <= small:
                raise ValueError(
                    f"The 'ranks' parameter of the frames suite must lie in [1, {small}]. Got {r}."
                )
        if any(b < 1 for b in self.batches):
            raise ValueError(f"The 'batches' parameter must be >= 1. Got {self.batches}.")
        if self.repeats < 3:
            raise ValueError(
                "The 'repeats' parameter of the frames suite must be >= 3 (rounds of interleaved "
                f"timing; a single sample is not a timing). Got {self.repeats}."
            )
        if self.train_frames < 25 or self.train_epochs < 1:
            raise ValueError(
                "The frames suite needs train_frames >= 25 (one training batch) and "
                f"train_epochs >= 1. Got {self.train_frames}, {self.train_epochs}."
            )

    @property
    def all_methods(self) -> tuple[str, ...]:
        return self.methods if self.methods is not None else classical_methods() + LEARNED


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


# --------------------------------------------------------------------------- env
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


def environment(device: torch.device) -> dict[str, Any]:
    import numpy
    import scipy

    from neuralfactor import __version__

    env = {
        "version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        "scipy_version": scipy.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
        ),
        "cuda_version": torch.version.cuda,
    }
    try:
        import sklearn

        env["sklearn_version"] = sklearn.__version__
    except ImportError:  # pragma: no cover - sklearn is a core dependency
        env["sklearn_version"] = None
    return env


# --------------------------------------------------------------------------- learned
def _train_learned(
    name: str, rank: int, train: Tensor, config: FramesConfig, device: torch.device, m: int, n: int
):
    """A trained LearnedFactorizer for ``name`` (loaded from models_dir when given)."""
    from neuralfactor.amortized import LearnedFactorizer, TrainSettings

    nested = "nested" in name
    model = "sketch" if name.startswith("sketch") else "convmf"
    if config.models_dir is not None:
        path = Path(config.models_dir) / f"{'convmf-nested' if nested else model}-{m}x{n}-r{rank}"
        if not path.exists():
            raise FileNotFoundError(f"--models {config.models_dir}: no trained model at {path}.")
        return LearnedFactorizer.load(path, device=str(device))
    settings = TrainSettings(
        epochs=config.train_epochs,
        lr=config.train_lr,
        batch_size=25,
        seed=config.seed,
        device=str(device),
    )
    f = LearnedFactorizer(rank, model=model, nested=nested, settings=settings)
    return f.fit(train.to(device=device, dtype=torch.float32))


def _learned_view(base, name: str, k: int, dtype: str):
    """The ``name`` variant of a trained base model at rank k (sharing the weights)."""
    f = copy.copy(base)
    f.refine = "lstsq" if name.endswith("+refine") else "none"
    f.name = name
    if base.nested:
        f = f.at_rank(k)
    if dtype == "bf16":
        f.model = copy.deepcopy(base.model).to(torch.bfloat16)
    return f


# --------------------------------------------------------------------------- runner
def family(method: str) -> str:
    if method in PEERS:
        return "peer"
    if method in LEARNED or method in SKIPPED:
        return "learned"
    return "classical"


def run_frames(
    config: FramesConfig,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the frames suite; return flat records (also passed to ``on_record``)."""
    device = resolve_device(config.device)
    note = on_note or (lambda s: None)
    env = environment(device)
    methods = list(config.all_methods)
    dtypes = [d for d in config.dtypes if not (d == "tf32" and device.type != "cuda")]
    for d in set(config.dtypes) - set(dtypes):
        note(f"dtype {d} skipped: it applies to CUDA matmuls only")
    for name in SKIPPED:
        if config.methods is None and name in available_factorizers():
            note(f"{name} not timed: {SKIPPED[name]}")
    if config.methods is None and "svd-compressed" not in available_factorizers():
        note("svd-compressed not timed: Dask is not installed (the [distributed] extra)")
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    late = False
    # Solver chatter (LOBPCG accuracy warnings) would drown the progress lines; the records
    # carry each method's accuracy instead.
    with pinned_threads(config.threads) as threads, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        bandwidth = measure_bandwidth(device)
        note(f"read bandwidth on {device}: {bandwidth / 1e9:.2f} GB/s")
        for m, n in config.sizes:
            cap = (config.max_batch_at or {}).get(f"{m}x{n}")
            batches = sorted({min(b, cap) if cap else b for b in config.batches})
            need = max(batches) + config.train_frames
            t0 = time.perf_counter()
            frames64, sim = simulate_frames(m, n, need, t_end=config.t_end, device=device)
            sim["sim_seconds"] = time.perf_counter() - t0
            note(
                f"{m}x{n}: {need} frames simulated in {sim['sim_seconds']:.1f} s "
                f"(t {sim['sim_t_first']:.2f}..{sim['sim_t_last']:.2f})"
            )
            train = frames64[: config.train_frames].float()
            evals = frames64[config.train_frames :]
            trained: dict[tuple[str, int], Any] = {}
            for batch in batches:
                X64 = evals[:batch]
                X = X64.float().contiguous()
                prev = train[-1:].contiguous()
                svals = torch.linalg.svdvals(X64.cpu()).to(device)  # LAPACK: predictable
                floor = m * n * 4 / bandwidth
                for rank in config.ranks:
                    opt = optimal_scaled_loss(X64, rank, singular_values=svals)
                    for dtype in dtypes:
                        if (
                            config.deadline_seconds is not None
                            and time.perf_counter() - start > config.deadline_seconds
                        ):
                            if not late:
                                note(
                                    f"deadline of {config.deadline_seconds:.0f} s reached: "
                                    f"cases from {m}x{n} r={rank} b={batch} {dtype} on were "
                                    "not run"
                                )
                            late = True
                            continue
                        case = [
                            meth
                            for meth in methods
                            if not (dtype == "bf16" and family(meth) != "learned")
                            and not (dtype == "tf32" and meth in CPU_ONLY)
                        ]
                        with matmul_mode(dtype, device) as mm:
                            recs = _one_case(
                                case,
                                rank,
                                X,
                                prev,
                                opt,
                                train,
                                config,
                                device,
                                dtype,
                                trained,
                                m,
                                n,
                            )
                        for rec in recs:
                            rec.update(env)
                            rec.update(sim)
                            rec.update(mm)
                            rec.update(
                                {
                                    "suite": "frames",
                                    "family": family(rec["method"]),
                                    "m": m,
                                    "n": n,
                                    "rank": rank,
                                    "batch": batch,
                                    "dtype": dtype,
                                    "device": str(device),
                                    "bandwidth_bytes_per_s": bandwidth,
                                    "floor_seconds_per_matrix": floor,
                                    "x_floor": rec["seconds_per_matrix"] / floor,
                                    "torch_threads": threads["torch_threads"],
                                    "blas_threads": threads["threadpools"],
                                    "seed": config.seed,
                                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                }
                            )
                            records.append(rec)
                            if on_record is not None:
                                on_record(rec)
    return records


def _one_case(methods, rank, X, prev, opt, train, config, device, dtype, trained, m, n):
    """Every method of one (size, batch, rank, dtype) case, timed interleaved by the harness."""
    factorizers: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    extras: dict[str, dict[str, Any]] = {}
    settings: dict[str, str] = {}
    failed: list[dict[str, Any]] = []
    classical = [meth for meth in methods if family(meth) != "learned"]
    if config.peer_settings:
        rows = expand_peers(classical, rank)
    else:
        rows = [(meth, meth, {}) for meth in classical]
    for method in methods:
        if family(method) != "learned":
            continue
        try:
            nested = "nested" in method
            key_rank = max(config.ranks) if nested else rank
            key = ("nested" if nested else method.split("+")[0], key_rank)
            if key not in trained:
                trained[key] = _train_learned(method, key_rank, train, config, device, m, n)
            base = trained[key]
            factorizers[method] = _learned_view(base, method, rank, dtype)
            fit_seconds[method] = base.fit_seconds
            settings[method] = ""
            extras[method] = {
                "train_epochs": config.train_epochs if config.models_dir is None else None,
                "train_frames": config.train_frames,
                "trained_rank": key_rank,
                "train_metric_last": base.history[-1].get("metric") if base.history else None,
            }
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            failed.append(_failed(method, exc))
    for label, name, params in rows:
        factorizers[label] = make_factorizer(name, rank=rank, **params)
        settings[label] = label[len(name) + 2 : -1] if label != name else ""
    recs = measure_many(
        factorizers,
        X.to(device),
        optimum=opt,
        device=device,
        train=train.to(device),
        prev=prev.to(device),
        fit_seconds=fit_seconds,
        max_call_seconds=config.max_call_seconds,
        warmup=config.warmup,
        min_rounds=config.repeats,
        min_run_time=config.min_seconds,
        max_seconds=config.max_case_seconds,
    )
    for rec in recs:
        rec["setting"] = settings.get(rec["label"], "")
        rec.update(extras.get(rec["label"], {}))
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
        torch.manual_seed(seed)
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


def config_dict(config: FramesConfig) -> dict[str, Any]:
    return asdict(config)


# --------------------------------------------------------------------------- tables
FRAME_COLUMNS = (
    "method",
    "family",
    "dtype",
    "timed",
    "us/matrix",
    "floor us",
    "x floor",
    "x scipy-gesdd",
    "scaled loss",
    "ratio mean",
    "ratio max",
    "fit s",
)


def _fmt(x: float) -> str:
    return fmt_number(x, sci_above=1e5)


def _case(r: dict[str, Any]) -> tuple:
    return (r["m"], r["n"], r["rank"], r["batch"])


def _is_warm(r: dict[str, Any]) -> bool:
    """Warm-started row (records before the harness recorded it: warm-subspace always was)."""
    return bool(r.get("warm", r["method"] == "warm-subspace"))


def frames_markdown(records: list[dict[str, Any]]) -> str:
    """Summary + one table per (size, rank, batch), from the records alone."""
    rows = [r for r in records if r.get("suite") == "frames"]
    base = {
        _case(r): Spread.from_record(r)
        for r in rows
        if r["method"] == BASELINE and r["dtype"] == "float32" and "error" not in r
    }
    cases = sorted({_case(r) for r in rows})
    out = [
        "| size | rank | batch | fastest with ratio max <= 1.05 | us/matrix | x floor "
        "| x scipy-gesdd | best learned (+refine) | us/matrix | ratio mean | speed vs fastest "
        "classical, same band |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        ok = [r for r in rows if _case(r) == c and "error" not in r]
        good = [r for r in ok if r["ratio_max"] <= 1.05 and r["family"] != "learned"]
        good_all = [r for r in ok if r["ratio_max"] <= 1.05]
        best = min(good_all, key=lambda r: r["seconds_per_matrix"], default=None)
        warm = " warm" if best is not None and _is_warm(best) else ""
        best_cl = min(good, key=lambda r: r["seconds_per_matrix"], default=None)
        learned = [r for r in ok if r["family"] == "learned" and r["method"].endswith("+refine")]
        bl = min(learned, key=lambda r: r["ratio_mean"], default=None)
        b = base.get(c)
        cells = [f"{c[0]}x{c[1]}", str(c[2]), str(c[3])]
        if best is None:
            cells += ["none", "-", "-", "-"]
        else:
            cells += [
                f"{best.get('label', best['method'])} ({best['dtype']}{warm}, "
                f"ratio {best['ratio_max']:.4f})",
                _fmt(best["seconds_per_matrix"] * 1e6),
                _fmt(best["x_floor"]),
                "1"
                if best["method"] == BASELINE
                else (str(speed_ratio(b, Spread.from_record(best))) if b else "-"),
            ]
        if bl is None:
            cells += ["-", "-", "-", "-"]
        else:
            # speed is compared only within the same accuracy band (ratio max <= 1.05)
            if best_cl is None or bl["ratio_max"] > 1.05:
                rel = "- (not in the 1.05 band)"
            else:
                rel = str(speed_ratio(Spread.from_record(best_cl), Spread.from_record(bl)))
                if _is_warm(best_cl):
                    rel += f" vs {best_cl['method']} (warm)"
            cells += [
                f"{bl['method']} ({bl['dtype']})",
                _fmt(bl["seconds_per_matrix"] * 1e6),
                f"{bl['ratio_mean']:.3f}",
                rel,
            ]
        out.append("| " + " | ".join(cells) + " |")
    text = ["### Summary", "", *out, ""]
    for c in cases:
        text += [f"### {c[0]}x{c[1]}, rank {c[2]}, batch {c[3]}", ""]
        text.append("| " + " | ".join(FRAME_COLUMNS) + " |")
        text.append("|" + "---|" * len(FRAME_COLUMNS))
        for r in rows:
            if _case(r) != c:
                continue
            if "error" in r:
                text.append(
                    f"| {r.get('label', r['method'])} | {r['family']} | {r['dtype']} | 0 | failed "
                    "| - | - | - | "
                    f"{r['error'][:90].replace('|', '/')} | - | - | - |"
                )
                continue
            b = base.get(c)
            cells = [
                r.get("label", r["method"]) + (" (warm)" if _is_warm(r) else ""),
                r["family"],
                r["dtype"],
                str(r["timed_batch"]),
                _fmt(r["seconds_per_matrix"] * 1e6),
                _fmt(r["floor_seconds_per_matrix"] * 1e6),
                _fmt(r["x_floor"]),
                str(speed_ratio(b, Spread.from_record(r))) if b else "-",
                _fmt(r["scaled_loss_mean"]),
                f"{r['ratio_mean']:.4f}",
                f"{r['ratio_max']:.4f}",
                _fmt(r["fit_seconds"]) if r["fit_seconds"] else "-",
            ]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    return "\n".join(text)


def throughput_markdown(records: list[dict[str, Any]]) -> str:
    rows = [r for r in records if r.get("suite") == "train-throughput"]
    text = [
        "| device | size | rank | dtype | threads | batch | steps | s/step | frames/s | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text.append(
            f"| {r['device']} ({r['device_name']}) | {r['m']}x{r['n']} | {r['rank']} | "
            f"{r['dtype']} | {r['torch_threads']} | {r['batch_size']} | {r['steps']} | "
            f"{r['seconds_per_step']:.4f} | {r['frames_per_second']:.0f} | {r['parameters']:,} |"
        )
    return "\n".join(text) + "\n"
