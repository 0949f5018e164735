"""Validation and timing of the Vlasov-Poisson solver -> docs/results/vlasov-validation.md.

Run (about 10 minutes on one CPU thread):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/vlasov_validation.py --out docs/results/vlasov-validation.md

Every rate is compared with the root of the kinetic dispersion relation computed here with
``scipy.special.wofz`` (and with the published value); every timing with a NumPy/SciPy
implementation of the same spectral step measured in the same run. Thread counts and the load
average are recorded with every section (the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import torch

from neuralfactor import __version__
from neuralfactor.core.timing import (
    Spread,
    pinned_threads,
    speed_ratio,
    time_call,
    time_interleaved,
)
from neuralfactor.io import atomic_write_text
from neuralfactor.vlasov import (
    SimulationConfig,
    SimulationDivergedError,
    SolverState,
    VlasovSolver,
    VlasovWarning,
    dispersion_root,
    fit_rate,
    numerical_rank,
    simulate,
)

LANDAU = [(1.0, 0.0, 1.0)]
TWO_STREAM = [(0.5, 2.4, 1.0), (0.5, -2.4, 1.0)]
BUMP = [(0.9, 0.0, 1.0), (0.1, 4.5, 0.5)]  # bump density nb * vt = 0.2 * 0.5


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} / {b:.2f} / {c:.2f}"


def table(header: list[str], rows: list[list]) -> str:
    def fmt(x):
        if isinstance(x, float):
            if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
                return f"{x:.3e}"
            return f"{x:.4f}"
        return str(x)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def run_stream(cfg: SimulationConfig, rank_every: float | None = None, rtol: float = 1e-3):
    """Run with every step saved; keep diagnostics of all frames, ranks every ``rank_every``."""
    solver = VlasovSolver(cfg)
    t, diag, ranks = [], {}, []
    next_rank = 0.0
    t0 = time.perf_counter()
    last = cfg.n_steps
    for fr in solver.run():
        t.append(fr.t)
        for k, v in fr.diagnostics.items():
            diag.setdefault(k, []).append(float(v[0]))
        if rank_every is not None and (fr.t >= next_rank - 1e-9 or fr.step == last):
            r = int(numerical_rank(fr.f[0], rtol=rtol))
            tr = (
                int(fr.diagnostics["truncation_rank"][0])
                if "truncation_rank" in fr.diagnostics
                else None
            )
            ranks.append((fr.t, r, tr))
            next_rank += rank_every
    wall = time.perf_counter() - t0
    return np.array(t), {k: np.array(v) for k, v in diag.items()}, ranks, wall


def conservation(t, d) -> list:
    m, e, l2, ent = d["mass"], d["total_energy"], d["l2_norm"], d["entropy"]
    return [
        float(np.max(np.abs(m - m[0])) / m[0]),
        float(np.max(np.abs(e - e[0])) / e[0]),
        float(l2[-1] / l2[0] - 1),
        float(ent[-1] / ent[0] - 1),
        float(np.min(d["min_f"])),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results/vlasov-validation.md")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = ap.parse_args()
    warnings.simplefilter("ignore", VlasovWarning)
    q = args.quick
    md: list[str] = []
    t_start = time.time()

    with pinned_threads(1) as threads:
        md.append("# Vlasov-Poisson solver: validation and timing\n")
        md.append(
            f"Produced by `OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python "
            f"benchmarks/vlasov_validation.py --out {args.out}`{' --quick' if q else ''} on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            f"Device: CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"**shared with 4 other engineers' jobs**), 1 thread: torch threads "
            f"{threads['torch_threads']}, BLAS/OpenMP pools {threads['threadpools']}. "
            f"neuralfactor {__version__}, torch {torch.__version__}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}, Python {sys.version.split()[0]}. Load average "
            f"(1/5/15 min) at start: {load()}. GPU: **not run on a GPU** (no CUDA device in this session).\n"
        )

        # -- 1. analytic references ----------------------------------------------------------
        w_l = dispersion_root(0.5, LANDAU, 1.4 - 0.15j)
        w_ts = dispersion_root(0.2, TWO_STREAM, 0.2j)
        w_b = dispersion_root(0.3, BUMP, 1.0 + 0.2j)
        md.append("## 1. Reference roots of the kinetic dispersion relation\n")
        md.append(
            "eps(k, w) = 1 + sum_s n_s/(k vt_s)^2 (1 + z_s Z(z_s)), z_s = (w - k u_s)/(sqrt(2) k "
            "vt_s), Z(z) = i sqrt(pi) wofz(z), solved by a secant iteration "
            "(`neuralfactor.vlasov.dispersion_root`).\n"
        )
        md.append(
            table(
                ["case", "k", "species (n, u, vt)", "Re w", "Im w", "published"],
                [
                    ["Landau", 0.5, str(LANDAU), w_l.real, w_l.imag, "1.4156 - 0.1533i"],
                    ["two-stream", 0.2, str(TWO_STREAM), w_ts.real, w_ts.imag, "growth ~0.2258"],
                    ["bump-on-tail", 0.3, str(BUMP), w_b.real, w_b.imag, "-"],
                ],
            )
            + "\n"
        )

        # -- 2. linear Landau --------------------------------------------------------------------
        md.append(
            "## 2. Linear Landau damping (alpha = 0.01, k = 0.5, 64x128, x in [0, 4pi], "
            "v in [-2pi, 2pi])\n"
        )
        md.append(
            "Fit: local maxima of log ||E||_2 in t in [2, 25] (parabolic refinement), "
            "frequency = pi / mean peak spacing. Targets: rate within 2% of -0.1533, "
            "frequency within 1% of 1.4156.\n"
        )
        rows, cons_rows = [], []
        T_l = 30.0
        for scheme, tol in [("spectral", None), ("fd5", None), ("fd5", 1e-5)]:
            cfg = SimulationConfig(
                ic="landau-weak", nx=64, nv=128, t_end=T_l, scheme=scheme, truncate_tol=tol
            )
            t, d, _, wall = run_stream(cfg)
            fit = fit_rate(t, d["e_norm"], window=(2.0, 25.0), method="peaks")
            name = scheme + (f" + SVD {tol:g}" if tol else "")
            rows.append(
                [
                    name,
                    f"{cfg.dt:.5f}",
                    fit.rate,
                    fit.rate / -0.1533 - 1,
                    fit.frequency,
                    fit.frequency / 1.4156 - 1,
                    fit.n_points,
                    "yes"
                    if abs(fit.rate / -0.1533 - 1) <= 0.02
                    and abs(fit.frequency / 1.4156 - 1) <= 0.01
                    else "**no**",
                    f"{wall:.1f}",
                ]
            )
            cons_rows.append([f"weak Landau, {name}", T_l, *conservation(t, d)])
        md.append(
            table(
                [
                    "scheme",
                    "dt",
                    "rate",
                    "rel. err vs -0.1533",
                    "frequency",
                    "rel. err vs 1.4156",
                    "peaks",
                    "within target",
                    "wall s",
                ],
                rows,
            )
            + "\n"
        )

        # -- 3. strong Landau + ranks over time ----------------------------------------------
        T_s = 40.0 if q else 60.0
        md.append(
            f"## 3. Strong Landau damping (alpha = 0.5, k = 0.5), t in [0, {T_s:g}], "
            f"dt = min(hx, hv)/20\n"
        )
        md.append(
            "Early rate: line through the first four maxima of log ||E||_2 with t <= 10.5; "
            "late rate: line through the maxima in t in [20, 40]. Published: ~ -0.29 "
            "and ~ +0.0815 (the early value depends strongly on the window: with all "
            "maxima in [0, 15] it differs, shown in the last columns).\n"
        )
        grids = [(64, 128)] if q else [(64, 128), (128, 256)]
        srows, rank_tables = [], {}
        for m, n in grids:
            for scheme, tol in [("spectral", None), ("fd5", None), ("fd5", 1e-5)]:
                T = T_s if not (m == 128 and tol) else 40.0
                cfg = SimulationConfig(
                    ic="landau-strong", nx=m, nv=n, t_end=T, scheme=scheme, truncate_tol=tol
                )
                t, d, ranks, wall = run_stream(cfg, rank_every=5.0)
                e = d["e_norm"]
                early = fit_rate(t, e, window=(0.0, 10.5), method="peaks", max_peaks=4)
                late = fit_rate(t, e, window=(20.0, 40.0), method="peaks")
                alt = fit_rate(t, e, window=(0.0, 15.0), method="peaks")
                name = scheme + (f" + SVD {tol:g}" if tol else "")
                srows.append(
                    [
                        f"{m}x{n}",
                        name,
                        early.rate,
                        early.rate / -0.29 - 1,
                        ", ".join(f"{s:.2f}" for s in early.t_points),
                        late.rate,
                        late.rate / 0.0815 - 1,
                        alt.rate,
                        f"{wall:.1f}",
                    ]
                )
                cons_rows.append([f"strong Landau {m}x{n}, {name}", T, *conservation(t, d)])
                rank_tables[(m, n, name)] = ranks
        md.append(
            table(
                [
                    "grid",
                    "scheme",
                    "early rate",
                    "rel. vs -0.29",
                    "peak times used",
                    "late rate [20,40]",
                    "rel. vs 0.0815",
                    "rate, all maxima [0,15]",
                    "wall s",
                ],
                srows,
            )
            + "\n"
        )

        md.append("### Numerical rank of the frames over time (singular values > 1e-3 x s_max)\n")
        md.append(
            "The spectral scheme keeps filaments (rank grows), fd5 dissipates them, and "
            "fd5 with the SVD truncation after every stage (rel. Frobenius tol 1e-5) stays "
            "lowest; 'kept' is the rank the truncation kept (tol 1e-5, so higher than the "
            "1e-3 count).\n"
        )
        for m, n in grids:
            names = [k[2] for k in rank_tables if k[:2] == (m, n)]
            times = sorted(
                {round(r[0], 1) for k in rank_tables if k[:2] == (m, n) for r in rank_tables[k]}
            )
            rows = []
            for tt in times:
                row = [f"{tt:.2f}"]
                for nm in names:
                    hit = [r for r in rank_tables[(m, n, nm)] if abs(r[0] - tt) < 0.05]
                    if not hit:
                        row.append("-")
                    else:
                        row.append(str(hit[0][1]) + (f" (kept {hit[0][2]})" if hit[0][2] else ""))
                rows.append(row)
            md.append(f"**{m}x{n}**\n\n" + table(["t", *names], rows) + "\n")

        # -- 4. instabilities ----------------------------------------------------------------
        md.append("## 4. Two-stream and bump-on-tail growth rates (64x256)\n")
        md.append(
            "Least-squares fit of log ||E||_2 on the window (both modes give a smooth "
            "||E|| envelope: two-stream is purely growing, bump-on-tail a single travelling "
            "wave). Target: within 3% of the dispersion root. With alpha = 1e-3 the "
            "damped modes excited by the perturbation dominate until t ~ 15 and "
            "saturation starts near t ~ 28, leaving a short window; alpha = 1e-6 leaves "
            "[20, 40].\n"
        )
        irows = []
        cases = [
            ("two-stream", 1e-6, (20.0, 40.0), w_ts.imag),
            ("two-stream", 1e-3, (16.0, 26.0), w_ts.imag),
            ("two-stream", 1e-3, (18.0, 27.0), w_ts.imag),
            ("bump-on-tail", 1e-6, (20.0, 40.0), w_b.imag),
            ("bump-on-tail", 1e-3, (16.0, 26.0), w_b.imag),
        ]
        for ic, alpha, win, ref in cases:
            for scheme in ("spectral", "fd5"):
                cfg = SimulationConfig(
                    ic=ic,
                    nx=64,
                    nv=256,
                    t_end=win[1] + 1,
                    scheme=scheme,
                    ic_params={"alpha": alpha},
                    dt=0.01 if scheme == "spectral" else None,
                )
                res = simulate(cfg, keep_frames=False)
                t = res.t.numpy()
                d = {k: v[0].numpy() for k, v in res.diagnostics.items()}
                fit = fit_rate(t, d["e_norm"], window=win, method="lsq")
                irows.append(
                    [
                        ic,
                        alpha,
                        scheme,
                        f"{cfg.dt:.4f}",
                        f"[{win[0]:g}, {win[1]:g}]",
                        fit.rate,
                        ref,
                        fit.rate / ref - 1,
                        "yes" if abs(fit.rate / ref - 1) <= 0.03 else "**no**",
                    ]
                )
                if alpha == 1e-6:
                    cons_rows.append(
                        [f"{ic} alpha 1e-6, {scheme}", win[1] + 1, *conservation(t, d)]
                    )
        md.append(
            table(
                [
                    "case",
                    "alpha",
                    "scheme",
                    "dt",
                    "window",
                    "fitted rate",
                    "dispersion root",
                    "rel. err",
                    "within 3%",
                ],
                irows,
            )
            + "\n"
        )

        # -- 5. conservation ------------------------------------------------------------------
        md.append("## 5. Conservation\n")
        md.append(
            "Max over t of |mass(t) - mass(0)| / mass(0) and of the total (kinetic + "
            "electric) energy, relative change of the L2 norm and of the entropy "
            "-int f log f (over f > 0) at the final time, and the most negative value of "
            "f. Mass is conserved to round-off by both schemes without truncation (zero "
            "Fourier modes untouched / telescoping upwind fluxes); the SVD truncation does "
            "not conserve mass exactly.\n"
        )
        md.append(
            table(
                [
                    "run",
                    "T",
                    "mass rel. err",
                    "energy rel. drift",
                    "L2 rel. change",
                    "entropy rel. change",
                    "min f",
                ],
                cons_rows,
            )
            + "\n"
        )

        # -- 6. ensemble == singles -----------------------------------------------------------
        md.append("## 6. An ensemble of N equals N single runs\n")
        erows = []
        for scheme, tol in [("spectral", None), ("fd5", None), ("fd5", 1e-5)]:
            cfg = SimulationConfig(
                ic="random-smooth",
                nx=32,
                nv=64,
                t_end=5.0,
                scheme=scheme,
                truncate_tol=tol,
                ensemble=8,
                seed=7,
                save_every=10,
            )
            f0 = VlasovSolver(cfg).initial_condition()
            t0 = time.perf_counter()
            ens = simulate(cfg, f0=f0).frames
            t_ens = time.perf_counter() - t0
            t0 = time.perf_counter()
            singles = torch.cat(
                [simulate(cfg.replace(ensemble=1), f0=f0[b : b + 1]).frames for b in range(8)]
            )
            t_single = time.perf_counter() - t0
            diff = float((ens - singles).abs().max())
            erows.append(
                [
                    scheme + (f" + SVD {tol:g}" if tol else ""),
                    8,
                    f"{diff:.1e}",
                    str(bool(torch.equal(ens, singles))),
                    f"{t_ens:.2f}",
                    f"{t_single:.2f}",
                ]
            )
        md.append(
            table(
                ["scheme", "N", "max abs diff", "bitwise equal", "ensemble s", "8 single runs s"],
                erows,
            )
            + "\n"
        )

        # -- 7. fd5 stability ---------------------------------------------------------------
        md.append("## 7. fd5 time-step stability (weak Landau, 32x64, t = 30)\n")
        md.append(
            "CFL = dt vmax / hx (max|E| ~ 0.02 is negligible here). The solver warns "
            "above 0.4; the original rule dt = min(hx, hv)/20 with hv = hx/2 gives vmax dt / "
            "hx = 0.157 plus max|E| dt / hv = max|E| / 20.\n"
        )
        crows = []
        base = SimulationConfig(ic="landau-weak", nx=32, nv=64, t_end=30.0, scheme="fd5")
        for c in [0.3, 0.4, 0.44, 0.47, 0.5, 0.7]:
            cfg = base.replace(dt=c * base.hx / base.vmax)
            try:
                res = simulate(cfg, keep_frames=False)
                l2 = res.diagnostics["l2_norm"][0]
                crows.append([c, f"{cfg.dt:.4f}", "completed", float(l2.max() / l2[0])])
            except SimulationDivergedError as exc:
                crows.append([c, f"{cfg.dt:.4f}", f"diverged at step {exc.step}", "-"])
        md.append(table(["CFL", "dt", "outcome", "max L2(t)/L2(0)"], crows) + "\n")

        # -- 8. performance -----------------------------------------------------------------
        md.append("## 8. Steps per second, CPU, 1 thread\n")
        md.append(
            f"Load average before timing: {load()}. Median (and min) of 7 timed calls of K steps "
            "after one warm-up, stepping only (no diagnostics, no I/O); the spectral "
            "scheme fuses the inner half steps in x as in a run saving every K steps. "
            "Baseline: the same Strang/FFT step in NumPy + scipy.fft (1 worker), "
            "written in this script and timed in the same run.\n"
        )
        prows = []
        for m, n in [(64, 128), (128, 256), (256, 512)]:
            for B in (1, 16):
                for scheme, tol in [("spectral", None), ("fd5", None), ("fd5", 1e-5)]:
                    if tol and (m, B) == (256, 16):
                        continue
                    cfg = SimulationConfig(
                        ic="landau-strong",
                        nx=m,
                        nv=n,
                        t_end=1.0,
                        scheme=scheme,
                        truncate_tol=tol,
                        ensemble=B,
                    )
                    s = VlasovSolver(cfg)
                    f0 = s.initial_condition()
                    K = max(
                        4,
                        int(
                            40
                            * (64 * 128)
                            / (m * n)
                            * (4 if scheme == "spectral" else 1)
                            / (10 if tol else 1)
                            / (4 if B > 1 else 1)
                        ),
                    )
                    if scheme == "spectral":
                        fn = lambda s=s, f0=f0, K=K: s._spectral_block(f0, 0, K)  # noqa: E731
                    else:

                        def fn(s=s, f0=f0, K=K):
                            st = SolverState(0, f0)
                            for _ in range(K):
                                st, _ = s._fd5_step(st)
                            return st.f

                    name = scheme + (f" + SVD {tol:g}" if tol else "")
                    if scheme == "spectral" and B == 1:
                        # interleave with the NumPy baseline so both see the same load
                        np_fn, np_k = numpy_spectral_block(m, n)
                        pair = time_interleaved({"ours": fn, "numpy": np_fn}, min_rounds=7)
                        ours, theirs = pair.stats["ours"], pair.stats["numpy"]
                        med, best = ours.median / K, ours.min / K
                        bmed, bbest = theirs.median / np_k, theirs.min / np_k
                        sr = speed_ratio(
                            Spread(theirs.median / np_k, theirs.q25 / np_k, theirs.q75 / np_k),
                            Spread(med, ours.q25 / K, ours.q75 / K),
                        )
                        ratio = f"{sr} (min: {bbest / best:.2f}x)"
                        prows.append(
                            [
                                f"{m}x{n}",
                                1,
                                "baseline: NumPy + scipy.fft spectral",
                                np_k,
                                f"{1e3 * bmed:.3f}",
                                f"{1e3 * bbest:.3f}",
                                f"{1 / bmed:.0f}",
                                f"{1 / bmed:.0f}",
                                "",
                                load(),
                            ]
                        )
                    else:
                        tm = time_call(fn, warmup=1, repeats=7)
                        med, best, ratio = tm.median / K, tm.min / K, ""
                    prows.append(
                        [
                            f"{m}x{n}",
                            B,
                            name,
                            K,
                            f"{1e3 * med:.3f}",
                            f"{1e3 * best:.3f}",
                            f"{1 / med:.0f}",
                            f"{B / med:.0f}",
                            ratio,
                            load(),
                        ]
                    )
        md.append(
            table(
                [
                    "grid",
                    "B",
                    "scheme",
                    "K",
                    "ms/step (median of 7)",
                    "ms/step (min)",
                    "steps/s",
                    "run-steps/s (x B)",
                    "speed-up vs NumPy (median)",
                    "load 1/5/15",
                ],
                prows,
            )
            + "\n"
        )
        md.append("GPU: **not run on a GPU** (no CUDA device in this session).\n")
        md.append(
            f"Load average at the end: {load()}; total wall time {time.time() - t_start:.0f} s.\n"
        )
    md.insert(2, NOTES)
    path = Path(args.out)
    atomic_write_text(path, "\n".join(md))
    print(f"wrote {path}")


NOTES = """## Reading these tables

* Targets of the issue and where they stand are in the tables' last columns ("within
  target"); a miss is printed **no** and is not tuned away. The fit windows are fixed in
  this script, stated in each section, and were chosen before looking at the fitted values,
  except the second two-stream window at alpha = 1e-3 ([18, 27]), added after [16, 26] missed
  by 0.3 points to show how much the window moves the rate at that amplitude.
* Strong Landau: the early rate uses the first four maxima with t <= 10.5, the late rate
  the maxima in [20, 40]. With all maxima in [0, 15] the early rate is about -0.23: the value
  depends on the window, as the issue warns.
* Numerical ranks: the issue quotes ~47 (64x128) and ~100 (128x256) at 1e-3 by t = 60 for
  a spectral scheme, and 16-30 for the original truncated fd data at 64x128; compare with the
  rank tables (the counts depend on the scheme's filamentation and its resolution).
* Frame counts of the presets: `convmf-64x128` makes floor(40 / dt) = 8148 steps and stores
  8149 frames (t = 0 included); the original data had 8,145 (and 16,294 vs our 16,298 at
  128x256): it apparently left out the initial condition and the three start-up steps.
* Batching (B = 16) on one CPU thread raised per-run throughput clearly only at 64x128 in
  our runs; at 256x512 it lowered it (cache), and at 128x256 it varied between runs under
  load. Ensembles are meant for a GPU, which this session did not have.
* The CPU was shared with other engineers' jobs (load averages are recorded with every row;
  a load near 7 on 2 cores inflates timings, unevenly). Timings are for 1 thread; 2-thread
  numbers were not taken because the second core was busy with other jobs.
"""


def numpy_spectral_block(m: int, n: int, steps: int | None = None):
    """The spectral Strang step in NumPy + scipy.fft (1 worker), the in-run baseline:
    returns (fn, K) with fn() making K steps."""
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


if __name__ == "__main__":
    main()
