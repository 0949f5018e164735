"""The kernels-cpu suite: warm-subspace kernels, the cheapest cold rsvd within the accuracy
band and ``scipy.linalg.svd`` on simulator frames, against the flop floor.

1 thread, float32, smooth evolving frames (strong Landau damping from the simulator: a
lead-in that starts the streams, then the timed frames), per rank:

- ``warm-subspace`` with each kernel (``lapack``, ``gemm``), adaptive (default ``tol``) and
  one iteration per frame (``tol=None``), all timed frames in one call continuing the stream
  from the lead-in (the carried basis is restored before every call);
- cold ``rsvd`` (LAPACK kernel) at its cheapest setting (fewest flops over ``n_iter`` 0-4,
  ``oversample`` 2/5/10) whose worst ratio to the optimum is <= 1.01, in one batched call;
- ``scipy.linalg.svd`` (gesdd) frame by frame;
- the flop floor: ``neuralfactor.classical.flops`` over the single-core GEMM rate of the
  frame-sized product (m x n times n x (rank + 5)) measured in the same run;
- ensembles: warm-subspace ``step`` on E independent streams at once (frames/s);
- where one warm LAPACK step's time goes: each of its calls (the two frame products, the QR,
  the small SVD, the rotation) timed alone on a timed frame with the stream's carried basis,
  against its own flop count at the same GEMM rate (:func:`step_breakdown_records`).

Every timing goes through the one harness (:func:`neuralfactor.core.timing.time_interleaved`,
the methods of a rank interleaved); the page is :mod:`neuralfactor.report.kernels_page`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neuralfactor.core.timing import SuiteTiming, TimingStats, time_interleaved
from neuralfactor.report.kernels_page import TARGET_RATIO

__all__ = [
    "KernelsConfig",
    "cheapest_rsvd",
    "ensemble_records",
    "run_kernels",
    "step_breakdown_records",
]


@dataclass(frozen=True)
class KernelsConfig(SuiteTiming):
    """What the kernels-cpu suite measures; its timing options are :class:`SuiteTiming`'s
    (``repeats``: fewest interleaved rounds per rank; ``min_run_time``: fewest seconds timed
    per method; ``max_case_seconds``: rounds stop after this once the spread is not settling),
    with this suite's longer defaults."""

    size: tuple[int, int] = (128, 256)
    ranks: tuple[int, ...] = (12, 30)
    frames: int = 256
    lead_in: int = 512
    threads: int = 1
    ensembles: tuple[int, ...] = (1, 16, 64)
    repeats: int = 3
    min_run_time: float = 1.0
    max_case_seconds: float = 30.0


def _stats(st: TimingStats, per_call: int) -> dict[str, float]:
    """Median, IQR and quartiles (seconds per frame) of one harness timing."""
    q1, med, q3 = st.q25 / per_call, st.median / per_call, st.q75 / per_call
    return {"median_s": med, "iqr_s": q3 - q1, "q1_s": q1, "q3_s": q3}


def _ratios(frames64: torch.Tensor, lr, rank: int) -> torch.Tensor:
    from neuralfactor.core.metrics import ratio_to_optimum

    return ratio_to_optimum(frames64, lr, rank=rank)


def cheapest_rsvd(X: torch.Tensor, X64: torch.Tensor, rank: int) -> dict[str, Any]:
    """Cheapest (n_iter, oversample) by flop count whose worst ratio over X is <= 1.01."""
    import neuralfactor as nf
    from neuralfactor.classical import flops

    m, n = X.shape[-2:]
    grid = [(q, p) for q in range(5) for p in (2, 5, 10)]
    grid.sort(key=lambda qp: flops("rsvd", m, n, rank, n_iter=qp[0], oversample=qp[1]))
    tried = []
    for q, p in grid:
        f = nf.make_factorizer("rsvd", rank=rank, n_iter=q, oversample=p, kernel="lapack")
        worst = float(_ratios(X64, f.factorize(X), rank).max())
        tried.append({"n_iter": q, "oversample": p, "worst_ratio": worst})
        if worst <= TARGET_RATIO:
            return {"n_iter": q, "oversample": p, "tried": tried}
    return {"n_iter": 4, "oversample": 10, "tried": tried, "missed": True}


def _warm_cases(X, X64, lead, rank: int) -> dict[str, dict[str, Any]]:
    """warm-subspace with both kernels, adaptive and one iteration per frame."""
    import neuralfactor as nf
    from neuralfactor.classical import flops

    m, n = X.shape[-2:]
    cases: dict[str, dict[str, Any]] = {}
    for kernel in ("lapack", "gemm"):
        for tol in ("default", None):
            kw = {"kernel": kernel} if tol == "default" else {"kernel": kernel, "tol": None}
            f = nf.make_factorizer("warm-subspace", rank=rank, **kw)
            f.factorize(lead)
            basis = f.basis.clone()
            lr = f.factorize(X)
            iters = float(f.iterations.float().mean())

            def call(f=f, basis=basis):
                f.basis = basis
                return f.factorize(X)

            label = f"warm-subspace {kernel}" + (" tol=None" if tol is None else "")
            fp = {"n_iter": iters, "kernel": kernel, "tol": f.tol}
            cases[label] = {
                "fn": call,
                "params": f.get_params(),
                "ratios": _ratios(X64, lr, rank),
                "iterations_mean": iters,
                "flops": flops("warm-subspace", m, n, rank, **fp),
            }
    return cases


def _cold_cases(X, X64, rank: int) -> dict[str, dict[str, Any]]:
    """Cold rsvd at its cheapest setting within the band, and scipy.linalg.svd per frame."""
    import scipy.linalg

    import neuralfactor as nf
    from neuralfactor.classical import flops

    m, n = X.shape[-2:]
    pick = cheapest_rsvd(X, X64, rank)
    f = nf.make_factorizer("rsvd", rank=rank, n_iter=pick["n_iter"], oversample=pick["oversample"])
    Xnp = [x.numpy() for x in X]

    def scipy_all():
        return [scipy.linalg.svd(a, full_matrices=False) for a in Xnp]

    return {
        "rsvd (cold, cheapest <= 1.01)": {
            "fn": lambda f=f: f.factorize(X),
            "params": {**f.get_params(), "search": pick["tried"]},
            "ratios": _ratios(X64, f.factorize(X), rank),
            "iterations_mean": float(pick["n_iter"]),
            "flops": flops(
                "rsvd", m, n, rank, n_iter=pick["n_iter"], oversample=pick["oversample"]
            ),
            "missed": pick.get("missed", False),
        },
        "scipy.linalg.svd": {
            "fn": scipy_all,
            "params": {"lapack_driver": "gesdd"},
            "ratios": torch.ones(X.shape[0], dtype=torch.float64),
            "iterations_mean": None,
            "flops": flops("scipy-gesdd", m, n, rank),
        },
    }


def _rank_records(
    config: KernelsConfig, X, X64, lead, rank: int, rate: float, env: dict[str, Any], log: Callable
) -> list[dict[str, Any]]:
    """Every method at one rank, timed interleaved, against scipy and the flop floor."""
    from neuralfactor.bench.flop_floor import flop_fields

    m, n = X.shape[-2:]
    cases = {**_warm_cases(X, X64, lead, rank), **_cold_cases(X, X64, rank)}
    run = time_interleaved({k: c["fn"] for k, c in cases.items()}, timing=config.timing)
    frames = X.shape[0]
    base = _stats(run.stats["scipy.linalg.svd"], frames)
    records = []
    for label, case in cases.items():
        st = _stats(run.stats[label], frames)
        rec = {
            "suite": "kernels-cpu",
            "method": label,
            "m": m,
            "n": n,
            "rank": rank,
            "dtype": "float32",
            "frames": frames,
            "params": json.dumps(case["params"], sort_keys=True, default=str),
            **st,
            "runs": len(run.stats[label].times),
            "worst_ratio": float(case["ratios"].max()),
            "mean_ratio": float(case["ratios"].mean()),
            "iterations_mean": case["iterations_mean"],
            **flop_fields(case["flops"], rate, st["median_s"]),
            "scipy_median_s": base["median_s"],
            "scipy_q1_s": base["q1_s"],
            "scipy_q3_s": base["q3_s"],
            "speedup_vs_scipy": base["median_s"] / st["median_s"],
            "missed_band": bool(case.get("missed", False)),
            **env,
        }
        records.append(rec)
        log(
            f"rank {rank:>3} {label:<34} {st['median_s'] * 1e6:9.1f} us/frame "
            f"(IQR {st['iqr_s'] * 1e6:.1f})  worst {rec['worst_ratio']:.4f}  "
            f"x{rec['speedup_vs_scipy']:.2f} vs scipy  x{rec['x_flop_floor']:.2f} floor"
        )
    return records


def run_kernels(
    config: KernelsConfig, *, command: str = "", log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Measure the suite; one record per rank x method, then the ensemble records."""
    import scipy

    from neuralfactor.bench.frames import simulate_frames
    from neuralfactor.classical import gemm_rate
    from neuralfactor.core.timing import pinned_threads

    m, n = config.size
    t0 = time.perf_counter()  # the simulation's wall time, printed only
    frames64, sim = simulate_frames(m, n, config.lead_in + config.frames)
    log(
        f"{m}x{n}: {config.lead_in + config.frames} frames simulated in {time.perf_counter() - t0:.0f} s"
    )
    lead = frames64[: config.lead_in].float()
    X64 = frames64[config.lead_in :]
    X = X64.float().contiguous()
    env = {
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{f"sim_{k.removeprefix('sim_')}": v for k, v in sim.items()},
    }
    records: list[dict[str, Any]] = []
    with pinned_threads(config.threads) as threads:
        env["threads"] = json.dumps(threads, sort_keys=True)
        try:
            env["load_before"] = list(os.getloadavg())
        except OSError:  # pragma: no cover - not on every platform
            env["load_before"] = None
        for rank in config.ranks:
            # the GEMM rate of the frame-sized product: one measurement per rank, the floor of
            # the method rows and of the step's calls alike
            rate = gemm_rate(m, n, min(rank + 5, m, n), min_seconds=0.5)
            records += _rank_records(config, X, X64, lead, rank, rate, env, log)
            records += step_breakdown_records(config, X, lead, rank, rate, env, log)
            records += ensemble_records(config, X, rank, env, log)
    return records


def ensemble_records(
    config: KernelsConfig, X, rank: int, env: dict[str, Any], log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """warm-subspace ``step`` on E streams at once: frames per second (E streams from one
    simulation, each started cold at another frame, then advanced 32 steps per timed call)."""
    import neuralfactor as nf

    out = []
    T, steps = X.shape[0], min(32, X.shape[0] - 1)
    for E in config.ensembles:
        if E < 1:
            continue
        # stream e runs over frames starts[e], starts[e] + 1, ... (time-ordered, no wrap)
        starts = torch.arange(E) * max(1, (T - steps - 1) // E) % (T - steps)
        f = nf.make_factorizer("warm-subspace", rank=rank)
        f.step(X[starts])  # cold start of every stream on its first frame
        basis = f.basis.clone()
        frames = torch.stack([X[starts + 1 + t] for t in range(steps)])  # (steps, E, m, n)

        def run(f=f, basis=basis, frames=frames):
            f.basis = basis
            for t in range(frames.shape[0]):
                f.step(frames[t])

        res = time_interleaved({"step": run}, timing=config.timing).stats["step"]
        st = _stats(res, frames.shape[0] * E)
        out.append(
            {
                "suite": "kernels-cpu-ensemble",
                "method": "warm-subspace step",
                "rank": rank,
                "m": X.shape[-2],
                "n": X.shape[-1],
                "ensemble": E,
                **st,
                "frames_per_s": 1.0 / st["median_s"],
                "runs": len(res.times),
                **env,
            }
        )
        log(f"rank {rank:>3} ensemble E={E:<3} {1 / st['median_s']:10.0f} frames/s")
    return out


def step_breakdown_records(
    config: KernelsConfig,
    X,
    lead,
    rank: int,
    rate: float,
    env: dict[str, Any],
    log: Callable = print,
) -> list[dict[str, Any]]:
    """Each call of one warm LAPACK step (:func:`~neuralfactor.classical._kernels.lapack_step`,
    the ``tol=None`` path) timed alone, interleaved, on the first timed frame with the basis the
    stream carries into it, beside the whole step: what bounds the step's ``x flop floor``.
    ``rate``: the GEMM rate (flop/s) the method rows of this rank are measured against.

    Counts (:mod:`neuralfactor.classical.flopcount` conventions, l = rank + extra): the two
    frame products ``2mnl`` each, the Householder QR of the m x l ``X P`` with its Q, the thin
    SVD of the n x l ``X^T Q``, and ``U = Q W_r`` (``2mlr``).
    """
    import neuralfactor as nf
    from neuralfactor.bench.flop_floor import flop_fields
    from neuralfactor.classical._kernels import lapack_step
    from neuralfactor.classical.flopcount import _qr, _svd

    m, n = X.shape[-2:]
    f = nf.make_factorizer("warm-subspace", rank=rank, kernel="lapack", tol=None)
    f.factorize(lead)
    P, x = f.basis, X[0].contiguous()
    l = P.shape[-1]
    Y = x @ P
    Q = torch.linalg.qr(Y).Q
    Z = x.mT @ Q
    Wt = torch.linalg.svd(Z, full_matrices=False).Vh
    parts = {
        "X P": (lambda: x @ P, 2 * m * n * l),
        "qr(X P) with Q": (lambda: torch.linalg.qr(Y), _qr(m, l)),
        "X^T Q": (lambda: x.mT @ Q, 2 * m * n * l),
        f"svd of the {n}x{l} X^T Q": (lambda: torch.linalg.svd(Z, full_matrices=False), _svd(n, l)),
        "U = Q W_r": (lambda: Q @ Wt[:rank].mT, 2 * m * l * rank),
    }
    whole = sum(c for _, c in parts.values())
    parts["the whole step (lapack_step)"] = (
        lambda: lapack_step(x, P, rank, energies=False),
        whole,
    )
    run = time_interleaved({k: fn for k, (fn, _) in parts.items()}, timing=config.timing)
    out = []
    for label, (_, count) in parts.items():
        st = _stats(run.stats[label], 1)
        out.append(
            {
                "suite": "kernels-cpu-step",
                "method": label,
                "rank": rank,
                "m": m,
                "n": n,
                "width": l,
                **st,
                "runs": len(run.stats[label].times),
                **flop_fields(count, rate, st["median_s"]),
                **env,
            }
        )
        log(f"rank {rank:>3} step part {label:<30} {st['median_s'] * 1e6:8.1f} us")
    return out
