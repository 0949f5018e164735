"""Short-window speed and memory of the low-rank Vlasov solvers, interleaved in one process.

A full low-rank solver table (every solver to t = 40 at 512x1024) takes hours of CPU. The
speed and memory targets need much less: the cost of a step at realistic ranks. So a
full-rank spectral run first advances the problem to ``warmup`` (cheap, and the ranks are
those the physics has reached by then), every solver then starts from that frame, and after
two untimed blocks (the multistep start-up, a growable truncation finding its working rank)
each solver is timed over ``window`` units of simulated time in blocks of ``block_steps``
steps, the blocks of all solvers interleaved round by round with a rotating order
(A B C, B C A, ...), as :func:`neuralfactor.core.timing.time_interleaved` does for matrices, so
machine load hits all of them alike. Medians and quartiles over the blocks are recorded, and
compared by :func:`neuralfactor.core.timing.speed_ratio` ("within noise" when the spreads
overlap).

Memory is measured per solver in a fresh Python process (:func:`measure_memory`): after three
unmeasured warm-up steps (every solver then carries its full state, and one-time costs such
as library code paged in by a first call are paid), the peak resident set during a few steps
over the resident set before them (allocations of 64 KiB and more are mmapped, so freed memory
is returned and the peak is the live working set): the working memory of a step on top of the
state; beside it the exact bytes of the state the solver carries between steps.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuralfactor.bench.low_rank_solvers import fd5_dt
from neuralfactor.core.timing import loadavg, pinned_threads, time_call
from neuralfactor.vlasov.solver import (
    TRUNCATE_PER,
    SimulationConfig,
    VlasovSolver,
    stage_tolerance,
)
from neuralfactor.vlasov.truncation import Truncation

__all__ = [
    "SOLVERS",
    "SpeedWindowConfig",
    "TimedTruncation",
    "build_solver",
    "fd5_step",
    "measure_memory",
    "recompress_cost",
    "run_speed_window",
    "state_bytes",
    "time_window",
    "warm_start",
]

#: solver labels: ``fd5+T`` (full grid, truncated by T after every stage), ``lowrank``, ``dlr``
SOLVERS = ("fd5+svd", "fd5+rsvd", "fd5+warm-subspace", "lowrank", "dlr")


@dataclass(frozen=True)
class SpeedWindowConfig:
    """One short-window measurement.

    Parameters
    ----------
    case : label of the problem in records.
    ic, ic_params : initial condition (strong Landau by default).
    nx, nv : grid.
    tol : relative Frobenius tolerance of the truncations, per ``tol_per``.
    tol_per : ``"time"`` (every stage at ``tol * dt``, the solvers' default) or ``"stage"``
        (every stage at ``tol``); see ``SimulationConfig.truncate_per``.
    warmup : simulated time of the full-rank spectral run whose last frame every solver
        starts from.
    window : simulated time timed per solver (after two untimed blocks).
    block_steps : steps per timed block.
    solvers : labels from :data:`SOLVERS`.
    memory_steps : measured steps of the per-solver memory run (0: no memory run), after
        ``memory_warm_steps`` unmeasured ones (see :func:`measure_memory`).
    dt : time step of every solver; None: the largest of a list of round steps with CFL at
        most 0.8 x the fd5 limit (max |E| bounded by 1.5).
    """

    case: str = "strong-landau"
    ic: str = "landau-strong"
    ic_params: dict[str, float] = field(default_factory=lambda: {"alpha": 0.5, "k": 0.5})
    nx: int = 512
    nv: int = 1024
    tol: float = 1e-5
    tol_per: str = "time"
    warmup: float = 5.0
    window: float = 0.1
    block_steps: int = 5
    solvers: tuple[str, ...] = SOLVERS
    memory_steps: int = 6
    memory_warm_steps: int = 3
    dt: float | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.solvers if s not in SOLVERS]
        if bad or not self.solvers:
            raise ValueError(
                f"SpeedWindowConfig.solvers must be a non-empty subset of {list(SOLVERS)}. "
                f"Got {list(self.solvers)}."
            )
        for name in ("warmup", "window"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"SpeedWindowConfig.{name} must be a float >= 0. Got {v!r}.")
        if self.tol_per not in TRUNCATE_PER:
            raise ValueError(
                f"SpeedWindowConfig.tol_per must be 'time' or 'stage'. Got {self.tol_per!r}."
            )
        if self.window <= 0:
            raise ValueError(f"SpeedWindowConfig.window must be > 0. Got {self.window!r}.")
        if not isinstance(self.block_steps, int) or self.block_steps < 1:
            raise ValueError(
                f"SpeedWindowConfig.block_steps must be an int >= 1. Got {self.block_steps!r}."
            )

    @property
    def stage_tol(self) -> float:
        """The tolerance of each truncation (``tol * dt`` per unit time, else ``tol``)."""
        return stage_tolerance(self.tol, self.tol_per, fd5_step(self))

    def base(self, **kw: Any) -> SimulationConfig:
        return SimulationConfig(ic=self.ic, nx=self.nx, nv=self.nv, ic_params=self.ic_params, **kw)


def fd5_step(cfg: SpeedWindowConfig, emax: float = 1.5) -> float:
    """The time step: ``cfg.dt`` or the largest round step with CFL <= 0.8 x the fd5 limit."""
    if cfg.dt is not None:
        return float(cfg.dt)
    probe = cfg.base(t_end=1.0, dt=0.01)
    return fd5_dt(cfg.nx, cfg.nv, float(probe.length), float(probe.vmax), emax)


class TimedTruncation(Truncation):
    """A :class:`Truncation` whose calls are timed (``seconds``, ``stages``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds, self.stages = 0.0, 0

    def __call__(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t0 = time.perf_counter()
        out = super().__call__(f)
        self.seconds += time.perf_counter() - t0
        self.stages += 1
        return out


def build_solver(
    label: str, cfg: SpeedWindowConfig, *, t_end: float, save_every: int
) -> tuple[VlasovSolver, TimedTruncation | None]:
    """The solver ``label`` for ``cfg`` (and its timed truncation for the fd5 rows)."""
    from neuralfactor.core.factorizer import make_factorizer

    dt = fd5_step(cfg)
    kw: dict[str, Any] = dict(
        t_end=t_end, dt=dt, save_every=save_every, truncate_tol=cfg.tol, truncate_per=cfg.tol_per
    )
    if label.startswith("fd5+"):
        name, tol = label[4:], cfg.stage_tol
        if name == "svd":
            trunc = TimedTruncation(tol=tol)
        else:
            kw["truncate_with"] = name
            trunc = TimedTruncation(lambda r: make_factorizer(name, rank=r), tol=tol, name=name)
        return VlasovSolver(cfg.base(scheme="fd5", **kw), truncation=trunc), trunc
    return VlasovSolver(cfg.base(scheme=label, **kw)), None


def warm_start(cfg: SpeedWindowConfig) -> torch.Tensor:
    """f at ``cfg.warmup`` from a full-rank spectral run (dt 0.01), truncated to the solvers'
    tolerance per stage (``cfg.stage_tol``) by
    an exact SVD (so every solver, full-grid or factored, starts from the same low-rank
    state), shape (1, nx, nv)."""
    if cfg.warmup == 0:
        f = VlasovSolver(cfg.base(t_end=1.0, dt=0.01)).initial_condition()
    else:
        steps = max(1, round(cfg.warmup / 0.01))
        sim = cfg.base(t_end=steps * 0.01, dt=0.01, save_every=steps)
        f = None
        for fr in VlasovSolver(sim).run():
            f = fr.f
    return Truncation(tol=cfg.stage_tol)(f)[0]


def state_bytes(state: Any) -> int:
    """Bytes of what a solver carries between steps (its factors, or its dense grids)."""
    if state.factors:
        return sum(x.numel() * x.element_size() for fac in state.factors for x in fac)
    return sum(x.numel() * x.element_size() for x in (state.f, *state.history))


def _quartiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)

    def q(p: float) -> float:
        pos = p * (len(s) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return {"median": q(0.5), "q25": q(0.25), "q75": q(0.75)}


def time_window(
    cfg: SpeedWindowConfig, f0: torch.Tensor, clock: Callable[[], float] = time.perf_counter
) -> dict[str, dict[str, Any]]:
    """Interleaved blocks of every solver from ``f0``; per solver the timing summary.

    Returns label -> dict with ``s_per_time`` (median, q25, q75: wall seconds per unit of
    simulated time), ``trunc_s`` (fd5: seconds per truncated stage, same quartiles, per block
    means), ``blocks``, ``ranks`` (rank after every block), ``state_bytes`` (largest).
    """
    dt = fd5_step(cfg)
    K = cfg.block_steps
    n_blocks = max(3, math.ceil(cfg.window / (K * dt)))
    warm_blocks = 2
    t_end = (n_blocks + warm_blocks) * K * dt * (1 + 1e-9)
    gens, truncs, stamp = {}, {}, {}
    out: dict[str, dict[str, Any]] = {}
    for label in cfg.solvers:
        solver, trunc = build_solver(label, cfg, t_end=t_end, save_every=K)

        def on_step(step: int, _label: str = label) -> None:
            stamp[_label] = clock()

        gens[label] = solver.run(f0.clone(), on_step=on_step)
        truncs[label] = trunc
        next(gens[label])  # frame 0 (set-up: the lowrank schemes factor f0 here)
        out[label] = {"block_s": [], "trunc_block": [], "ranks": [], "state_bytes": 0}
    labels = list(cfg.solvers)
    for rnd in range(warm_blocks + n_blocks):
        k = rnd % len(labels)
        for label in labels[k:] + labels[:k]:
            tr, rec = truncs[label], out[label]
            s0, n0 = (tr.seconds, tr.stages) if tr is not None else (0.0, 0)
            t0 = clock()
            fr = next(gens[label])
            elapsed = stamp[label] - t0  # to the last step: the frame's own work excluded
            if "truncation_rank" in fr.diagnostics:
                rec["ranks"].append(int(fr.diagnostics["truncation_rank"][0]))
            rec["state_bytes"] = max(rec["state_bytes"], state_bytes(fr.state))
            if rnd < warm_blocks:
                continue
            rec["block_s"].append(elapsed / (K * dt))
            if tr is not None and tr.stages > n0:
                rec["trunc_block"].append((tr.seconds - s0) / (tr.stages - n0))
    for rec in out.values():
        rec["s_per_time"] = _quartiles(rec.pop("block_s"))
        tb = rec.pop("trunc_block")
        rec["trunc_s"] = _quartiles(tb) if tb else None
        rec["blocks"] = n_blocks
    return out


def recompress_cost(m: int, n: int, r: int, tol: float, *, seed: int = 0) -> dict[str, float]:
    """Seconds of one ``lowrank`` recompression of a multistep stage at rank ``r``: QR of the
    stacked factors (six terms of r + 1 columns: the mass-correction column included) and the
    small SVD, timed alone on random factors of that size (the cost depends on the sizes only).
    Median and quartiles of the blocks."""
    from neuralfactor.vlasov.lowrank import recompress

    gen = torch.Generator().manual_seed(seed)
    K = 6 * (r + 1)
    U = torch.randn(1, m, K, generator=gen, dtype=torch.float64)
    V = torch.randn(1, n, K, generator=gen, dtype=torch.float64)
    S = torch.rand(1, K, generator=gen, dtype=torch.float64)
    t = time_call(lambda: recompress(U, S, V, tol=tol), repeats=7, max_seconds=10.0)
    return {"columns": K, **_quartiles(list(t.times))}


def _vm_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def _memory_worker(spec_json: str) -> None:
    """Entry point of the memory subprocess; prints one JSON line (see :func:`measure_memory`)."""
    spec = json.loads(spec_json)
    cfg = SpeedWindowConfig(**{**spec["config"], "solvers": tuple(spec["config"]["solvers"])})
    steps, warm = spec["steps"], spec.get("warm_steps", 0)
    f0 = torch.load(spec["f0"], weights_only=True)
    mem: dict[str, Any] = {"reset": False}

    def reset_peak() -> None:
        mem["base"] = _vm_kib("VmRSS")
        try:  # clear the high-water mark (VmHWM): what came before is not counted
            Path("/proc/self/clear_refs").write_text("5")
            mem["reset"] = True
        except OSError:  # pragma: no cover - not Linux / not permitted
            mem["reset"] = False

    def on_step(step: int) -> None:  # called after a step, before any frame is formed
        if step == warm:
            reset_peak()
        elif step > warm:
            mem["hwm"] = _vm_kib("VmHWM")

    with pinned_threads(1):
        dt = fd5_step(cfg)
        total = warm + steps
        solver, _ = build_solver(
            spec["label"], cfg, t_end=total * dt * (1 + 1e-9), save_every=total
        )
        gen = solver.run(f0, on_step=on_step)
        next(gen)  # frame 0: set-up (lowrank: SVD of f0; lazy imports), not stepping
        if warm == 0:
            reset_peak()
        for _fr in gen:  # one frame, after the last step (its dense f and diagnostics: not counted)
            pass
    base, hwm = mem.get("base"), mem.get("hwm")
    ok = mem["reset"] and base is not None and hwm is not None
    inc = (hwm - base) / 1024 if ok else None
    key = "step_rss_mb" if warm else "rss_increase_mb"
    print(json.dumps({key: inc, "memory_warm_steps": warm, "reset": mem["reset"]}))


def measure_memory(
    label: str, cfg: SpeedWindowConfig, f0_path: Path, steps: int, *, warm_steps: int = 3
) -> dict:
    """Peak resident-set increase (MB) of ``steps`` steps of ``label`` in a fresh process.

    What is counted, the same way for every solver: the process loads f0, builds the solver,
    makes frame 0 (set-up) and runs ``warm_steps`` steps, not measured: the multistep start-up,
    after which every solver carries its full state (fd5: f and two past grids; lowrank: three
    factored states; dlr: one); with three, f0 (which the run keeps, like the caller) has left
    that state, so a step's new state is matched by the oldest one freed; and the one-time
    costs (lazy imports, the first call of a LAPACK routine paging its code in, allocator
    arenas). The resident set then is the baseline and the high-water mark is cleared; the
    peak is read after each of the next ``steps`` steps, before the frame saved at the end
    is formed (its dense f, history and diagnostics are not stepping). Allocations of 64 KiB
    and more are mmapped, so freed memory goes back to the OS and the peak is the live set.
    Returns ``step_rss_mb``: the
    working memory a step needs on top of the carried state (its stage terms, the
    truncation's or recompression's workspace, the new state before the oldest is dropped);
    the peak working memory of the stepping is that plus :func:`state_bytes`.

    ``warm_steps=0`` is the rule of the records before this one (``rss_increase_mb``: the
    baseline right after frame 0, so the growth of the state in the first steps and the
    one-time costs were counted too).
    """
    spec = {
        "label": label,
        "config": asdict(cfg),
        "steps": steps,
        "warm_steps": warm_steps,
        "f0": str(f0_path),
    }
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_MMAP_THRESHOLD_": "65536",  # freed blocks go back to the OS: peak = live set
    }
    code = "import sys; from neuralfactor.bench.solver_speed import _memory_worker as w; w(sys.argv[1])"
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"step_rss_mb": None, "memory_error": tail[:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_speed_window(cfg: SpeedWindowConfig, scratch: Path) -> list[dict[str, Any]]:
    """The whole measurement: warm start, interleaved timing, memory; one record per solver.

    ``scratch`` holds the warm-start frame for the memory subprocesses.
    """
    from neuralfactor import __version__

    t_start = time.time()
    with pinned_threads(1):
        f0 = warm_start(cfg)
        load0 = loadavg()
        timing = time_window(cfg, f0)
        load1 = loadavg()
    scratch.mkdir(parents=True, exist_ok=True)
    f0_path = scratch / f"warm-{cfg.case}-{cfg.nx}x{cfg.nv}-t{cfg.warmup:g}.pt"
    torch.save(f0, f0_path)
    common = {
        "kind": "speed-window",
        "case": cfg.case,
        "ic": cfg.ic,
        "nx": cfg.nx,
        "nv": cfg.nv,
        "tol": cfg.tol,
        "tol_per": cfg.tol_per,
        "dt": fd5_step(cfg),
        "warmup": cfg.warmup,
        "window": cfg.window,
        "block_steps": cfg.block_steps,
        "loadavg_before": load0,
        "loadavg_after": load1,
        "version": __version__,
        "torch": torch.__version__,
        "platform": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    records = []
    for label in cfg.solvers:
        t = timing[label]
        rec = {**common, "solver": label, **{k: v for k, v in t.items() if k != "ranks"}}
        rec["rank_summary"] = [min(t["ranks"]), max(t["ranks"])] if t["ranks"] else None
        if label == "lowrank" and t["ranks"]:
            with pinned_threads(1):
                rec["recompress_s"] = recompress_cost(
                    cfg.nx, cfg.nv, max(t["ranks"]), cfg.stage_tol
                )
        if cfg.memory_steps:
            rec.update(
                measure_memory(
                    label, cfg, f0_path, cfg.memory_steps, warm_steps=cfg.memory_warm_steps
                )
            )
        records.append(rec)
    for rec in records:
        rec["campaign_s"] = time.time() - t_start
    return records


#: mass-drift runs: case -> (initial condition, parameters)
MASS_CASES = {
    "weak-landau": ("landau-weak", {"alpha": 0.01, "k": 0.5}),
    "strong-landau": ("landau-strong", {"alpha": 0.5, "k": 0.5}),
    "two-stream": ("two-stream", {"alpha": 1e-3, "k": 0.2, "v0": 2.4}),
}


def mass_drift(
    case: str,
    truncation: str,
    *,
    nx: int,
    nv: int,
    t_end: float,
    tol: float = 1e-5,
    mass_correction: bool | None = None,
) -> dict[str, Any]:
    """Relative mass drift ``max_t |M(t) - M(0)| / |M(0)|`` of one short ``fd5 + T`` run.

    ``mass_correction=None`` is the solver's default (on for a truncating fd5 run).
    """
    ic, params = MASS_CASES[case]
    cfg = SpeedWindowConfig(case=case, ic=ic, ic_params=params, nx=nx, nv=nv, tol=tol)
    dt = fd5_step(cfg)
    steps = round(t_end / dt)
    save = max(1, round(0.1 / dt))
    solver, trunc = build_solver(f"fd5+{truncation}", cfg, t_end=steps * dt, save_every=save)
    if mass_correction is not None:
        sim = solver.config.replace(mass_correction=mass_correction)
        solver = VlasovSolver(sim, truncation=trunc)
    with pinned_threads(1):
        mass = [float(fr.diagnostics["mass"][0]) for fr in solver.run()]
    return {
        "kind": "mass-drift",
        "case": case,
        "ic": ic,
        "nx": nx,
        "nv": nv,
        "t_end": steps * dt,
        "dt": dt,
        "tol": tol,
        "tol_per": cfg.tol_per,
        "solver": f"fd5+{truncation}",
        "mass_correction": bool(solver.config.mass_correction),
        "frames": len(mass),
        "mass_drift": max(abs(m - mass[0]) for m in mass) / abs(mass[0]),
    }


def campaign(
    records: Path,
    *,
    grids: list[tuple[int, int]],
    window: float | None,
    warmup: float,
    mass: bool,
    scratch: Path,
) -> None:
    """What ``benchmarks/low_rank_solvers.py --speed-window T [--mass-drift]`` runs: appends
    the speed-window records of every grid (strong Landau) and, with ``mass``, the short
    mass-drift runs (64x128 to t = 5, every case and truncation, with and without the
    correction) to ``records``."""
    from neuralfactor.io import append_jsonl

    if window:
        for nx, nv in grids:
            cfg = SpeedWindowConfig(nx=nx, nv=nv, warmup=warmup, window=window)
            rows = run_speed_window(cfg, scratch)
            append_jsonl(records, rows)
            for r in rows:
                print(f"{nx}x{nv} {r['solver']}: {r['s_per_time']['median']:.3g} s/unit t")
    if mass:
        rows = []
        for case in MASS_CASES:
            for trunc in ("svd", "rsvd", "warm-subspace"):
                rows.append(mass_drift(case, trunc, nx=64, nv=128, t_end=5.0))
            rows.append(mass_drift(case, "svd", nx=64, nv=128, t_end=5.0, mass_correction=False))
        append_jsonl(records, rows)
        for r in rows:
            print(
                f"mass {r['case']} {r['solver']} corr={r['mass_correction']}: {r['mass_drift']:.2e}"
            )
