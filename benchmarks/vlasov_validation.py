"""Validation and timing of the Vlasov-Poisson solver -> docs/results/vlasov-validation.md.

Measure (about 10 minutes on one CPU thread), writing the records and then the page:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/vlasov_validation.py

Rewrite the page from the committed records only, byte for byte, without measuring:

    python benchmarks/vlasov_validation.py --from-records

Every rate is compared with the root of the kinetic dispersion relation computed here with
``scipy.special.wofz`` (and with the published value); every timing with a NumPy/SciPy
implementation of the same spectral step measured in the same run. Thread counts and the load
average are recorded with every section (the machine is shared). The records go to
docs/results/records/vlasov-validation.jsonl; the page is
:func:`neuralfactor.report.vlasov_validation.render_vlasov_validation` of them.
"""

from __future__ import annotations

import argparse
import json
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
from neuralfactor.report.vlasov_validation import (
    LANDAU_FREQ,
    LANDAU_RATE,
    STRONG_EARLY,
    STRONG_LATE,
    write_vlasov_validation,
)
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


ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "docs/results/records/vlasov-validation.jsonl"
#: the values of the earlier, hand-assembled page (its run's records were not kept)
LEGACY = ROOT / "docs/results/records/vlasov-validation-legacy.jsonl"
SCHEMES = [("spectral", None), ("fd5", None), ("fd5", 1e-5)]
REPEATS = 7


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def scheme_name(scheme: str, tol: float | None) -> str:
    return scheme + (f" + SVD {tol:g}" if tol else "")


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


def conservation(t, d) -> dict:
    m, e, l2, ent = d["mass"], d["total_energy"], d["l2_norm"], d["entropy"]
    return {
        "mass_rel_err": float(np.max(np.abs(m - m[0])) / m[0]),
        "energy_rel_drift": float(np.max(np.abs(e - e[0])) / e[0]),
        "l2_rel_change": float(l2[-1] / l2[0] - 1),
        "entropy_rel_change": float(ent[-1] / ent[0] - 1),
        "min_f": float(np.min(d["min_f"])),
    }


def measure(quick: bool, records_file: str) -> list[dict]:
    """Run every section; returns the records (one per table row, plus the run conditions)."""
    warnings.simplefilter("ignore", VlasovWarning)
    q = quick
    recs: list[dict] = []
    t_start = time.time()

    def rec(section: str, **kw) -> None:
        recs.append({"section": section, **kw})

    with pinned_threads(1) as threads:
        run = {
            "section": "run",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "args": "--quick" if q else "",
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
        recs.append(run)

        # -- 1. analytic references ----------------------------------------------------------
        w_l = dispersion_root(0.5, LANDAU, 1.4 - 0.15j)
        w_ts = dispersion_root(0.2, TWO_STREAM, 0.2j)
        w_b = dispersion_root(0.3, BUMP, 1.0 + 0.2j)
        for case, k, sp, w, pub in [
            ("Landau", 0.5, LANDAU, w_l, "1.4156 - 0.1533i"),
            ("two-stream", 0.2, TWO_STREAM, w_ts, "growth ~0.2258"),
            ("bump-on-tail", 0.3, BUMP, w_b, "-"),
        ]:
            rec("dispersion", case=case, k=k, species=sp, re_w=w.real, im_w=w.imag, published=pub)

        # -- 2. linear Landau --------------------------------------------------------------------
        T_l = 30.0
        for scheme, tol in SCHEMES:
            cfg = SimulationConfig(
                ic="landau-weak", nx=64, nv=128, t_end=T_l, scheme=scheme, truncate_tol=tol
            )
            t, d, _, wall = run_stream(cfg)
            fit = fit_rate(t, d["e_norm"], window=(2.0, 25.0), method="peaks")
            name = scheme_name(scheme, tol)
            rec(
                "landau",
                scheme=name,
                dt=cfg.dt,
                rate=fit.rate,
                rate_rel_err=fit.rate / LANDAU_RATE - 1,
                frequency=fit.frequency,
                freq_rel_err=fit.frequency / LANDAU_FREQ - 1,
                peaks=fit.n_points,
                wall_s=wall,
            )
            rec("conservation", run=f"weak Landau, {name}", T=T_l, **conservation(t, d))

        # -- 3. strong Landau + ranks over time ----------------------------------------------
        T_s = 40.0 if q else 60.0
        grids = [(64, 128)] if q else [(64, 128), (128, 256)]
        for m, n in grids:
            for scheme, tol in SCHEMES:
                T = T_s if not (m == 128 and tol) else 40.0
                cfg = SimulationConfig(
                    ic="landau-strong", nx=m, nv=n, t_end=T, scheme=scheme, truncate_tol=tol
                )
                t, d, ranks, wall = run_stream(cfg, rank_every=5.0)
                e = d["e_norm"]
                early = fit_rate(t, e, window=(0.0, 10.5), method="peaks", max_peaks=4)
                late = fit_rate(t, e, window=(20.0, 40.0), method="peaks")
                alt = fit_rate(t, e, window=(0.0, 15.0), method="peaks")
                name = scheme_name(scheme, tol)
                rec(
                    "strong",
                    grid=f"{m}x{n}",
                    scheme=name,
                    early_rate=early.rate,
                    early_rel_err=early.rate / STRONG_EARLY - 1,
                    early_peak_times=[float(x) for x in early.t_points],
                    late_rate=late.rate,
                    late_rel_err=late.rate / STRONG_LATE - 1,
                    alt_rate=alt.rate,
                    wall_s=wall,
                )
                rec("conservation", run=f"strong Landau {m}x{n}, {name}", T=T, **conservation(t, d))
                for tt, r, tr in ranks:
                    rec("rank", grid=f"{m}x{n}", scheme=name, t=float(tt), rank=r, kept=tr)

        # -- 4. instabilities ----------------------------------------------------------------
        cases = [
            ("two-stream", 1e-6, (20.0, 40.0), w_ts.imag),
            ("two-stream", 1e-3, (16.0, 26.0), w_ts.imag),
            ("two-stream", 1e-3, (18.0, 27.0), w_ts.imag),
            ("bump-on-tail", 1e-6, (20.0, 40.0), w_b.imag),
            ("bump-on-tail", 1e-3, (16.0, 26.0), w_b.imag),
        ]
        cons_later = []
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
                rec(
                    "instability",
                    case=ic,
                    alpha=alpha,
                    scheme=scheme,
                    dt=cfg.dt,
                    window=list(win),
                    rate=fit.rate,
                    root=ref,
                    rel_err=fit.rate / ref - 1,
                )
                if alpha == 1e-6:
                    cons_later.append(
                        {
                            "section": "conservation",
                            "run": f"{ic} alpha 1e-6, {scheme}",
                            "T": win[1] + 1,
                            **conservation(t, d),
                        }
                    )
        recs += cons_later

        # -- 6. ensemble == singles -----------------------------------------------------------
        for scheme, tol in SCHEMES:
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
            rec(
                "ensemble",
                scheme=scheme_name(scheme, tol),
                N=8,
                max_abs_diff=float((ens - singles).abs().max()),
                bitwise_equal=bool(torch.equal(ens, singles)),
                ensemble_s=t_ens,
                singles_s=t_single,
            )

        # -- 7. fd5 stability ---------------------------------------------------------------
        base = SimulationConfig(ic="landau-weak", nx=32, nv=64, t_end=30.0, scheme="fd5")
        for c in [0.3, 0.4, 0.44, 0.47, 0.5, 0.7]:
            cfg = base.replace(dt=c * base.hx / base.vmax)
            try:
                res = simulate(cfg, keep_frames=False)
                l2 = res.diagnostics["l2_norm"][0]
                rec(
                    "stability",
                    cfl=c,
                    dt=cfg.dt,
                    diverged_step=None,
                    max_l2_ratio=float(l2.max() / l2[0]),
                )
            except SimulationDivergedError as exc:
                rec("stability", cfl=c, dt=cfg.dt, diverged_step=exc.step, max_l2_ratio=None)

        # -- 8. performance -----------------------------------------------------------------
        run["load_before_timing"] = load()
        for m, n in [(64, 128), (128, 256), (256, 512)]:
            for B in (1, 16):
                for scheme, tol in SCHEMES:
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

                    row = {"grid": f"{m}x{n}", "B": B, "scheme": scheme_name(scheme, tol), "K": K}
                    if scheme == "spectral" and B == 1:
                        # interleave with the NumPy baseline so both see the same load
                        np_fn, np_k = numpy_spectral_block(m, n)
                        pair = time_interleaved({"ours": fn, "numpy": np_fn}, min_rounds=REPEATS)
                        ours, theirs = pair.stats["ours"], pair.stats["numpy"]
                        med, best = ours.median / K, ours.min / K
                        bmed, bbest = theirs.median / np_k, theirs.min / np_k
                        sr = speed_ratio(
                            Spread(theirs.median / np_k, theirs.q25 / np_k, theirs.q75 / np_k),
                            Spread(med, ours.q25 / K, ours.q75 / K),
                        )
                        rec(
                            "performance",
                            grid=f"{m}x{n}",
                            B=1,
                            scheme="baseline: NumPy + scipy.fft spectral",
                            K=np_k,
                            ms_median=1e3 * bmed,
                            ms_min=1e3 * bbest,
                            steps_per_s=1 / bmed,
                            run_steps_per_s=1 / bmed,
                            speed_up=None,
                            speed_up_min=None,
                            load=load(),
                        )
                        row.update(speed_up=str(sr), speed_up_min=bbest / best)
                    else:
                        tm = time_call(fn, warmup=1, repeats=REPEATS)
                        med, best = tm.median / K, tm.min / K
                        row.update(speed_up=None, speed_up_min=None)
                    rec(
                        "performance",
                        **row,
                        ms_median=1e3 * med,
                        ms_min=1e3 * best,
                        steps_per_s=1 / med,
                        run_steps_per_s=B / med,
                        load=load(),
                    )
        run["load_end"] = load()
        run["wall_s"] = time.time() - t_start
    return recs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--from-records",
        action="store_true",
        help="only rewrite the page from the records (no measurement)",
    )
    ap.add_argument(
        "--records",
        type=Path,
        default=None,
        help=f"records file (default: {RECORDS.name} if it exists, else {LEGACY.name})",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/vlasov-validation.md")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = ap.parse_args(argv)
    if args.from_records:
        path = args.records or (RECORDS if RECORDS.exists() else LEGACY)
        if not path.exists():
            ap.error(f"--from-records needs a records file; {path} does not exist")
        write_vlasov_validation(path, args.out)
    else:
        path = args.records or RECORDS
        recs = measure(args.quick, path.name)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in recs))
        write_vlasov_validation(path, args.out)
    print(f"wrote {args.out} from {path}")
    return 0


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
    sys.exit(main())
