"""Validation and timing of the Vlasov-Poisson solver: the study behind
docs/results/vlasov-validation.md.

Every rate is fitted on a stated window and compared with the root of the kinetic dispersion
relation (:func:`~neuralfactor.vlasov.diagnostics.dispersion_root`, ``scipy.special.wofz``)
and with the published value; every timing of the spectral step is interleaved with a
NumPy + ``scipy.fft`` implementation of the same Strang step (:func:`numpy_spectral_block`,
the in-run reference). :func:`measure_validation` runs all sections and returns one flat
record per table row plus one ``"section": "run"`` record with the run conditions
(threads, load average, versions); ``benchmarks/vlasov_validation.py`` writes them and
:func:`neuralfactor.report.vlasov_validation.render_vlasov_validation` turns them into the
page.

References: E. Sonnendrücker, "Numerical methods for the Vlasov-Maxwell equations", lecture
notes (2013) (linear Landau damping rate and frequency); F. Filbet and E. Sonnendrücker,
"Comparison of Eulerian Vlasov solvers", Comput. Phys. Commun. 150 (2003) 247 (strong
Landau damping rates).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from neuralfactor.core.timing import Spread, speed_ratio, time_call, time_interleaved
from neuralfactor.vlasov.diagnostics import dispersion_root, fit_rate, numerical_rank
from neuralfactor.vlasov.solver import (
    SimulationConfig,
    SimulationDivergedError,
    SolverState,
    VlasovSolver,
    VlasovWarning,
    simulate,
)

__all__ = [
    "BUMP",
    "INSTABILITY_CASES",
    "LANDAU",
    "LANDAU_FREQ",
    "LANDAU_RATE",
    "LANDAU_WINDOW",
    "REPEATS",
    "SCHEMES",
    "STRONG_EARLY",
    "STRONG_LATE",
    "STRONG_WINDOWS",
    "TWO_STREAM",
    "conservation",
    "dispersion_records",
    "ensemble_records",
    "instability_records",
    "landau_records",
    "measure_validation",
    "numpy_spectral_block",
    "performance_records",
    "run_conditions",
    "run_stream",
    "scheme_name",
    "stability_records",
    "strong_records",
]

Record = dict[str, Any]

#: Published values: linear Landau damping (alpha = 0.01, k = 0.5; Sonnendrücker 2013) and
#: strong Landau damping (alpha = 0.5, k = 0.5; Filbet & Sonnendrücker 2003).
LANDAU_RATE, LANDAU_FREQ = -0.1533, 1.4156
STRONG_EARLY, STRONG_LATE = -0.29, 0.0815
#: Species ``(density, drift, thermal speed)`` of the dispersion relation of each case.
LANDAU = [(1.0, 0.0, 1.0)]
TWO_STREAM = [(0.5, 2.4, 1.0), (0.5, -2.4, 1.0)]
BUMP = [(0.9, 0.0, 1.0), (0.1, 4.5, 0.5)]  # bump density nb * vt = 0.2 * 0.5
#: ``(scheme, truncation tolerance)`` of every compared solver.
SCHEMES: list[tuple[str, float | None]] = [("spectral", None), ("fd5", None), ("fd5", 1e-5)]
#: Timed calls per case (median and min reported).
REPEATS = 7
#: Fit windows: linear Landau (peaks), strong Landau early/late/alternative early (peaks).
LANDAU_WINDOW = (2.0, 25.0)
STRONG_WINDOWS = {"early": (0.0, 10.5), "late": (20.0, 40.0), "alt": (0.0, 15.0)}
#: ``(initial condition, alpha, least-squares window)`` of the instability growth rates: with
#: alpha = 1e-3 the damped modes dominate until t ~ 15 and saturation starts near t ~ 28.
INSTABILITY_CASES = [
    ("two-stream", 1e-6, (20.0, 40.0)),
    ("two-stream", 1e-3, (16.0, 26.0)),
    ("two-stream", 1e-3, (18.0, 27.0)),
    ("bump-on-tail", 1e-6, (20.0, 40.0)),
    ("bump-on-tail", 1e-3, (16.0, 26.0)),
]


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def original_truncation(tol: float | None) -> dict[str, Any]:
    """Config fields of the original ConvMF data's truncation at ``tol`` (per stage, the rule
    this page validates; None: no truncation)."""
    return {"truncate_tol": tol, "truncate_per": None if tol is None else "stage"}


def scheme_name(scheme: str, tol: float | None) -> str:
    """``"fd5 + SVD 1e-05"`` for a truncated scheme, else the scheme's name."""
    return scheme + (f" + SVD {tol:g}" if tol else "")


def run_stream(cfg: SimulationConfig, rank_every: float | None = None, rtol: float = 1e-3):
    """Run ``cfg`` keeping the diagnostics of run 0 at every saved frame.

    Returns ``(t, diagnostics, ranks, wall seconds)``; ``ranks`` holds ``(t, numerical rank at
    rtol, rank kept by the truncation or None)`` every ``rank_every`` time units and at the end.
    """
    solver = VlasovSolver(cfg)
    t, diag, ranks = [], {}, []
    next_rank = 0.0
    t0 = time.perf_counter()  # wall time of the whole run, not a timing measurement
    for fr in solver.run():
        t.append(fr.t)
        for k, v in fr.diagnostics.items():
            diag.setdefault(k, []).append(float(v[0]))
        if rank_every is not None and (fr.t >= next_rank - 1e-9 or fr.step == cfg.n_steps):
            r = int(numerical_rank(fr.f[0], rtol=rtol))
            kept = fr.diagnostics.get("truncation_rank")
            ranks.append((fr.t, r, None if kept is None else int(kept[0])))
            next_rank += rank_every
    wall = time.perf_counter() - t0
    return np.array(t), {k: np.array(v) for k, v in diag.items()}, ranks, wall


def conservation(t: np.ndarray, d: dict[str, np.ndarray]) -> Record:
    """Max relative mass error and energy drift, final relative change of the L2 norm and the
    entropy, and the most negative value of f, from per-frame diagnostics ``d``."""
    m, e, l2, ent = d["mass"], d["total_energy"], d["l2_norm"], d["entropy"]
    return {
        "mass_rel_err": float(np.max(np.abs(m - m[0])) / m[0]),
        "energy_rel_drift": float(np.max(np.abs(e - e[0])) / e[0]),
        "l2_rel_change": float(l2[-1] / l2[0] - 1),
        "entropy_rel_change": float(ent[-1] / ent[0] - 1),
        "min_f": float(np.min(d["min_f"])),
    }


def dispersion_records() -> tuple[list[Record], dict[str, complex]]:
    """The roots of the kinetic dispersion relation of the three cases, and the roots."""
    roots = {
        "Landau": dispersion_root(0.5, LANDAU, 1.4 - 0.15j),
        "two-stream": dispersion_root(0.2, TWO_STREAM, 0.2j),
        "bump-on-tail": dispersion_root(0.3, BUMP, 1.0 + 0.2j),
    }
    cases = [
        ("Landau", 0.5, LANDAU, "1.4156 - 0.1533i"),
        ("two-stream", 0.2, TWO_STREAM, "growth ~0.2258"),
        ("bump-on-tail", 0.3, BUMP, "-"),
    ]
    recs = [
        {"section": "dispersion", "case": case, "k": k, "species": sp, "re_w": roots[case].real,
         "im_w": roots[case].imag, "published": pub}
        for case, k, sp, pub in cases
    ]  # fmt: skip
    return recs, roots


def landau_records(nx: int = 64, nv: int = 128, t_end: float = 30.0) -> list[Record]:
    """Linear Landau damping per scheme: fitted rate and frequency (peaks of log ||E||_2 in
    :data:`LANDAU_WINDOW`) against the published values, and conservation."""
    recs = []
    for scheme, tol in SCHEMES:
        cfg = SimulationConfig(
            ic="landau-weak", nx=nx, nv=nv, t_end=t_end, scheme=scheme, **original_truncation(tol)
        )
        t, d, _, wall = run_stream(cfg)
        fit = fit_rate(t, d["e_norm"], window=LANDAU_WINDOW, method="peaks")
        name = scheme_name(scheme, tol)
        recs.append(
            {"section": "landau", "scheme": name, "dt": cfg.dt, "rate": fit.rate,
             "rate_rel_err": fit.rate / LANDAU_RATE - 1, "frequency": fit.frequency,
             "freq_rel_err": fit.frequency / LANDAU_FREQ - 1, "peaks": fit.n_points,
             "wall_s": wall}
        )  # fmt: skip
        recs.append(
            {"section": "conservation", "run": f"weak Landau, {name}", "T": t_end,
             **conservation(t, d)}
        )  # fmt: skip
    return recs


def strong_records(
    grids: tuple[tuple[int, int], ...] = ((64, 128), (128, 256)), t_end: float = 60.0
) -> list[Record]:
    """Strong Landau damping per grid and scheme: early and late rates on
    :data:`STRONG_WINDOWS`, conservation, and the numerical rank of the frames every 5 time
    units (the truncated scheme on grids of 128 rows runs to t = 40 only)."""
    recs = []
    for m, n in grids:
        for scheme, tol in SCHEMES:
            T = t_end if not (m == 128 and tol) else 40.0
            cfg = SimulationConfig(
                ic="landau-strong", nx=m, nv=n, t_end=T, scheme=scheme, **original_truncation(tol)
            )
            t, d, ranks, wall = run_stream(cfg, rank_every=5.0)
            e, w = d["e_norm"], STRONG_WINDOWS
            early = fit_rate(t, e, window=w["early"], method="peaks", max_peaks=4)
            late = fit_rate(t, e, window=w["late"], method="peaks")
            alt = fit_rate(t, e, window=w["alt"], method="peaks")
            name, grid = scheme_name(scheme, tol), f"{m}x{n}"
            recs.append(
                {"section": "strong", "grid": grid, "scheme": name, "early_rate": early.rate,
                 "early_rel_err": early.rate / STRONG_EARLY - 1,
                 "early_peak_times": [float(x) for x in early.t_points],
                 "late_rate": late.rate, "late_rel_err": late.rate / STRONG_LATE - 1,
                 "alt_rate": alt.rate, "wall_s": wall}
            )  # fmt: skip
            recs.append(
                {"section": "conservation", "run": f"strong Landau {grid}, {name}", "T": T,
                 **conservation(t, d)}
            )  # fmt: skip
            recs += [
                {"section": "rank", "grid": grid, "scheme": name, "t": float(tt), "rank": r,
                 "kept": tr}
                for tt, r, tr in ranks
            ]  # fmt: skip
    return recs


def instability_records(roots: dict[str, complex], nx: int = 64, nv: int = 256) -> list[Record]:
    """Two-stream and bump-on-tail growth rates (least squares of log ||E||_2 on each case's
    window of :data:`INSTABILITY_CASES`) against the dispersion roots; conservation of the
    alpha = 1e-6 runs follows the rate rows."""
    recs, cons = [], []
    for ic, alpha, win in INSTABILITY_CASES:
        ref = roots[ic].imag
        for scheme in ("spectral", "fd5"):
            cfg = SimulationConfig(
                ic=ic, nx=nx, nv=nv, t_end=win[1] + 1, scheme=scheme, ic_params={"alpha": alpha},
                dt=0.01 if scheme == "spectral" else None,
            )  # fmt: skip
            res = simulate(cfg, keep_frames=False)
            t = res.t.numpy()
            d = {k: v[0].numpy() for k, v in res.diagnostics.items()}
            fit = fit_rate(t, d["e_norm"], window=win, method="lsq")
            recs.append(
                {"section": "instability", "case": ic, "alpha": alpha, "scheme": scheme,
                 "dt": cfg.dt, "window": list(win), "rate": fit.rate, "root": ref,
                 "rel_err": fit.rate / ref - 1}
            )  # fmt: skip
            if alpha == 1e-6:
                cons.append(
                    {"section": "conservation", "run": f"{ic} alpha 1e-6, {scheme}",
                     "T": win[1] + 1, **conservation(t, d)}
                )  # fmt: skip
    return recs + cons


def ensemble_records(nx: int = 32, nv: int = 64, t_end: float = 5.0, N: int = 8) -> list[Record]:
    """An ensemble of N random-smooth runs against N single runs from the same initial
    frames: largest difference, bitwise equality, and the wall time of each."""
    recs = []
    for scheme, tol in SCHEMES:
        cfg = SimulationConfig(
            ic="random-smooth", nx=nx, nv=nv, t_end=t_end, scheme=scheme, **original_truncation(tol),
            ensemble=N, seed=7, save_every=10,
        )  # fmt: skip
        f0 = VlasovSolver(cfg).initial_condition()
        t0 = time.perf_counter()  # wall times of whole runs, not timing measurements
        ens = simulate(cfg, f0=f0).frames
        t_ens = time.perf_counter() - t0
        t0 = time.perf_counter()
        singles = torch.cat(
            [simulate(cfg.replace(ensemble=1), f0=f0[b : b + 1]).frames for b in range(N)]
        )
        t_single = time.perf_counter() - t0
        recs.append(
            {"section": "ensemble", "scheme": scheme_name(scheme, tol), "N": N,
             "max_abs_diff": float((ens - singles).abs().max()),
             "bitwise_equal": bool(torch.equal(ens, singles)), "ensemble_s": t_ens,
             "singles_s": t_single}
        )  # fmt: skip
    return recs


def stability_records(
    cfls: tuple[float, ...] = (0.3, 0.4, 0.44, 0.47, 0.5, 0.7),
    nx: int = 32,
    nv: int = 64,
    t_end: float = 30.0,
) -> list[Record]:
    """fd5 on weak Landau at time steps ``dt = CFL hx / vmax``: the step where it diverged,
    or the largest growth of the L2 norm."""
    base = SimulationConfig(ic="landau-weak", nx=nx, nv=nv, t_end=t_end, scheme="fd5")
    recs = []
    for c in cfls:
        cfg = base.replace(dt=c * base.hx / base.vmax)
        row = {"section": "stability", "cfl": c, "dt": cfg.dt}
        try:
            l2 = simulate(cfg, keep_frames=False).diagnostics["l2_norm"][0]
            recs.append({**row, "diverged_step": None, "max_l2_ratio": float(l2.max() / l2[0])})
        except SimulationDivergedError as exc:
            recs.append({**row, "diverged_step": exc.step, "max_l2_ratio": None})
    return recs


def numpy_spectral_block(m: int, n: int, steps: int | None = None):
    """The spectral Strang step in NumPy + ``scipy.fft`` (1 worker), the in-run reference.

    Strong Landau (alpha = 0.5, k = 0.5) on x in [0, 4 pi), v in [-2 pi, 2 pi), dt =
    min(hx, hv) / 20. Returns ``(fn, K)``: ``fn()`` makes K steps from the initial frame (half
    step in x, K full steps in v and x with the last x step halved) and returns the frame.
    """
    import scipy.fft as sfft

    L, vmax = 4 * math.pi, 2 * math.pi
    hx, hv = L / m, 2 * vmax / n
    dt = min(hx, hv) / 20
    x = np.arange(m) * hx
    v = -vmax + np.arange(n) * hv
    f = (1 + 0.5 * np.cos(0.5 * x))[:, None] * np.exp(-(v**2) / 2)[None] / math.sqrt(2 * math.pi)
    kx = 2 * math.pi / L * np.arange(m // 2 + 1)
    kv = 2 * math.pi / (2 * vmax) * np.arange(n // 2 + 1)
    sh_half = np.exp(-1j * kx[:, None] * v[None] * dt / 2)
    sh_full = sh_half * sh_half
    inv = np.zeros(m // 2 + 1, complex)
    inv[1:] = 1 / (1j * kx[1:])
    inv[-1] = 0

    def block(f, K):
        f = sfft.irfft(sfft.rfft(f, axis=0, workers=1) * sh_half, n=m, axis=0, workers=1)
        for s in range(K):
            E = sfft.irfft(sfft.rfft(f.sum(1) * hv, workers=1) * inv, n=m, workers=1)
            fh = sfft.rfft(f, axis=1, workers=1) * np.exp(-1j * dt * E[:, None] * kv[None])
            f = sfft.irfft(fh, n=n, axis=1, workers=1)
            ph = sh_full if s < K - 1 else sh_half
            f = sfft.irfft(sfft.rfft(f, axis=0, workers=1) * ph, n=m, axis=0, workers=1)
        return f

    K = steps or max(4, int(160 * (64 * 128) / (m * n)))
    return (lambda: block(f, K)), K


def _steps(m: int, n: int, scheme: str, tol: float | None, B: int) -> int:
    """Steps per timed call: about the same work per call for every case."""
    spectral, b = 4 if scheme == "spectral" else 1, 4 if B > 1 else 1
    return max(4, int(40 * (64 * 128) / (m * n) * spectral / (10 if tol else 1) / b))


def _stepper(solver: VlasovSolver, f0: torch.Tensor, K: int) -> Callable[[], torch.Tensor]:
    """K steps of ``solver`` from ``f0``, stepping only (no diagnostics, no I/O)."""
    if solver.config.scheme == "spectral":
        return lambda: solver._spectral_block(f0, 0, K)

    def fn():
        st = SolverState(0, f0)
        for _ in range(K):
            st, _ = solver._fd5_step(st)
        return st.f

    return fn


def _timed_with_reference(fn, m: int, n: int, K: int, grid: str) -> tuple[Record, Record]:
    """Time ``fn`` interleaved with :func:`numpy_spectral_block` (both see the same load):
    ``(reference record, fields of our row)``."""
    np_fn, np_k = numpy_spectral_block(m, n)
    pair = time_interleaved({"ours": fn, "numpy": np_fn}, min_rounds=REPEATS)
    ours, theirs = pair.stats["ours"], pair.stats["numpy"]
    med, best = ours.median / K, ours.min / K
    bmed, bbest = theirs.median / np_k, theirs.min / np_k
    sr = speed_ratio(
        Spread(theirs.median / np_k, theirs.q25 / np_k, theirs.q75 / np_k),
        Spread(med, ours.q25 / K, ours.q75 / K),
    )
    ref = {"section": "performance", "grid": grid, "B": 1,
           "scheme": "baseline: NumPy + scipy.fft spectral", "K": np_k, "ms_median": 1e3 * bmed,
           "ms_min": 1e3 * bbest, "steps_per_s": 1 / bmed, "run_steps_per_s": 1 / bmed,
           "speed_up": None, "speed_up_min": None, "load": load()}  # fmt: skip
    return ref, {"speed_up": str(sr), "speed_up_min": bbest / best, "_med": med, "_best": best}


def performance_records(
    grids: tuple[tuple[int, int], ...] = ((64, 128), (128, 256), (256, 512)),
    batches: tuple[int, ...] = (1, 16),
) -> list[Record]:
    """Steps per second of every scheme, grid and batch (median and min of :data:`REPEATS`
    calls after a warm-up); the spectral scheme at batch 1 interleaved with the NumPy
    reference. The truncated scheme is skipped on 256 rows at batch 16."""
    recs = []
    for m, n in grids:
        for B in batches:
            for scheme, tol in SCHEMES:
                if tol and (m, B) == (256, 16):
                    continue
                cfg = SimulationConfig(
                    ic="landau-strong", nx=m, nv=n, t_end=1.0, scheme=scheme, **original_truncation(tol),
                    ensemble=B,
                )  # fmt: skip
                s = VlasovSolver(cfg)
                K = _steps(m, n, scheme, tol, B)
                fn = _stepper(s, s.initial_condition(), K)
                grid = f"{m}x{n}"
                row = {"grid": grid, "B": B, "scheme": scheme_name(scheme, tol), "K": K}
                if scheme == "spectral" and B == 1:
                    ref, timed = _timed_with_reference(fn, m, n, K, grid)
                    recs.append(ref)
                    med, best = timed.pop("_med"), timed.pop("_best")
                    row.update(timed)
                else:
                    tm = time_call(fn, warmup=1, repeats=REPEATS)
                    med, best = tm.median / K, tm.min / K
                    row.update(speed_up=None, speed_up_min=None)
                recs.append(
                    {"section": "performance", **row, "ms_median": 1e3 * med,
                     "ms_min": 1e3 * best, "steps_per_s": 1 / med, "run_steps_per_s": B / med,
                     "load": load()}
                )  # fmt: skip
    return recs


def run_conditions(quick: bool, records_file: str, threads: dict[str, Any]) -> Record:
    """The ``"section": "run"`` record: date, machine, threads, versions, load at the start."""
    import scipy

    from neuralfactor import __version__

    return {
        "section": "run",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": "--quick" if quick else "",
        "records_file": records_file,
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "shared": None,
        "torch_threads": threads["torch_threads"],
        "threadpools": str(threads["threadpools"]),
        "versions": {
            "neuralfactor": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "Python": sys.version.split()[0],
        },
        "load_start": load(),
        "gpu": "not run on a GPU",
        "gpu_note": "this script times the CPU only; CUDA available: "
        + str(torch.cuda.is_available()),
        "repeats": REPEATS,
    }


def measure_validation(quick: bool, records_file: str) -> list[Record]:
    """Run every section on one pinned thread; the records (the run conditions first).

    ``quick`` runs strong Landau on 64x128 to t = 40 only (a smoke test). About 10 minutes on
    one CPU thread otherwise.
    """
    from neuralfactor.core.timing import pinned_threads

    t_start = time.time()  # wall time of the whole study, recorded
    with warnings.catch_warnings(), pinned_threads(1) as threads:
        warnings.simplefilter("ignore", VlasovWarning)
        run = run_conditions(quick, records_file, threads)
        recs, roots = dispersion_records()
        recs = [run, *recs, *landau_records()]
        recs += strong_records(((64, 128),), 40.0) if quick else strong_records()
        recs += instability_records(roots)
        recs += ensemble_records()
        recs += stability_records()
        run["load_before_timing"] = load()
        recs += performance_records()
        run["load_end"] = load()
        run["wall_s"] = time.time() - t_start
    return recs
