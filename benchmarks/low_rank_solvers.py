"""Low-rank Vlasov solvers side by side -> docs/results/low-rank-solvers.md.

Reduced configuration (128x256, t_end = 10; what the shared development machine allows):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/low_rank_solvers.py

Full configuration of the issue (128x256 and 512x1024 to t_end = 40; hours on one core):

    ... python benchmarks/low_rank_solvers.py --full [--learned MODEL_DIR+refine]

Regenerate the page from the committed records only:

    python benchmarks/low_rank_solvers.py --from-records

Every run executes in its own Python process (so its peak RSS is its own) and appends one
record to docs/results/records/low-rank-solvers.jsonl; a rerun skips the (case, grid, solver,
truncation, tol, t_end) rows already recorded, so an interrupted campaign resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs/results/records/low-rank-solvers.jsonl"
PAGE = ROOT / "docs/results/low-rank-solvers.md"

#: case -> (initial condition, ic_params, species for the dispersion root, root guess, fit)
CASES = {
    "weak-landau": ("landau-weak", {"alpha": 0.01, "k": 0.5}, [(1.0, 0.0, 1.0)], 1.4 - 0.15j),
    "strong-landau": ("landau-strong", {"alpha": 0.5, "k": 0.5}, None, None),
    "two-stream": (
        "two-stream",
        {"alpha": 1e-3, "k": 0.2, "v0": 2.4},
        [(0.5, 2.4, 1.0), (0.5, -2.4, 1.0)],
        0.2j,
    ),
}
#: (solver scheme, truncation name) pairs measured per case; the spectral run is the reference
PAIRS = [
    ("spectral", None),
    ("fd5", "svd"),
    ("fd5", "rsvd"),
    ("fd5", "warm-subspace"),
    ("lowrank", None),
    ("dlr", None),
]
NICE_DT = (0.01, 0.005, 0.004, 0.0025, 0.002, 0.001, 0.0005, 0.0004, 0.00025)


def fd5_dt(nx: int, nv: int, length: float, vmax: float, emax: float = 1.5) -> float:
    """Largest step of NICE_DT with CFL <= 0.8 x the fd5 limit (emax bounds max|E|)."""
    from neuralfactor.vlasov.solver import FD5_CFL_LIMIT

    hx, hv = length / nx, 2 * vmax / nv
    lim = 0.8 * FD5_CFL_LIMIT / (vmax / hx + emax / hv)
    return next(d for d in NICE_DT if d <= lim)


def worker(spec: dict) -> dict:
    """Run one (case, solver, truncation) and measure it; returns the record."""
    import numpy as np
    import torch

    from neuralfactor import __version__
    from neuralfactor.cli.truncation import make_truncation
    from neuralfactor.core.timing import pinned_threads
    from neuralfactor.vlasov import SimulationConfig, VlasovSolver, dispersion_root, fit_rate
    from neuralfactor.vlasov.truncation import Truncation

    warnings.simplefilter("ignore")
    ic, params, species, guess = CASES[spec["case"]]
    scheme, trunc_name, tol = spec["solver"], spec["truncation"], spec["tol"]
    nx, nv, t_end = spec["nx"], spec["nv"], spec["t_end"]
    probe = SimulationConfig(ic=ic, nx=nx, nv=nv, ic_params=params, t_end=1.0, dt=0.01)
    if scheme == "spectral":
        dt = 0.01
    else:
        dt = fd5_dt(nx, nv, float(probe.length), float(probe.vmax))
    save_every = max(1, round(0.1 / dt))
    kw = dict(ic=ic, nx=nx, nv=nv, ic_params=params, t_end=t_end, dt=dt, save_every=save_every)
    if scheme == "fd5":
        kw.update(scheme="fd5", truncate_tol=tol)
        if trunc_name != "svd":  # "svd": the built-in exact SVD (one full SVD per stage)
            kw["truncate_with"] = trunc_name
    elif scheme != "spectral":
        kw.update(scheme=scheme, truncate_tol=tol)
    cfg = SimulationConfig(**kw)
    rec = {
        **spec,
        "ic": ic,
        "dt": dt,
        "save_every": save_every,
        "version": __version__,
        "torch": torch.__version__,
        "platform": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "loadavg_1min": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    truncation = None
    trunc_time = [0.0, 0]
    if scheme == "fd5":
        if trunc_name == "svd":
            truncation = Truncation(tol=tol)
        else:
            truncation = make_truncation(trunc_name, tol=tol, rank=None, frame_shape=(nx, nv))
            meta = Path(trunc_name.removesuffix("+refine"))
            meta = next((d / "meta.json" for d in (meta, meta / "model") if d.is_dir()), None)
            if meta is not None and meta.exists():  # a trained model: its training cost
                rec["fit_seconds"] = json.loads(meta.read_text()).get("fit_seconds")
        call = truncation.__call__

        def timed(f, _call=call):
            t0 = time.perf_counter()
            out = _call(f)
            trunc_time[0] += time.perf_counter() - t0
            trunc_time[1] += 1
            return out

    ref = None
    if spec.get("reference"):
        ref = {float(k): torch.tensor(np.load(v)) for k, v in spec["reference"].items()}
    with pinned_threads(1):
        solver = VlasovSolver(cfg, truncation=truncation)
        if truncation is not None:
            solver.truncation = _Timed(truncation, timed)
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t, diag, blocks, dist, ranks, state_bytes = [], {}, [], {}, [], 0
        t_block, next_block = time.perf_counter(), 1.0
        try:
            for fr in solver.run():
                t.append(fr.t)
                for k, v in fr.diagnostics.items():
                    diag.setdefault(k, []).append(float(v[0]))
                if fr.t >= next_block - 1e-9:
                    now = time.perf_counter()
                    blocks.append(now - t_block)
                    t_block, next_block = now, next_block + 1.0
                if "truncation_rank" in fr.diagnostics:
                    ranks.append(int(fr.diagnostics["truncation_rank"][0]))
                st = fr.state
                size = sum(x.numel() * x.element_size() for fac in st.factors for x in fac)
                if not st.factors:
                    size = sum(x.numel() * x.element_size() for x in (st.f, *st.history))
                state_bytes = max(state_bytes, size)
                for tt in (10.0, 20.0, 40.0):
                    if abs(fr.t - tt) < 1e-9:
                        if spec.get("save_reference"):
                            path = Path(spec["save_reference"]) / f"t{int(tt)}.npy"
                            np.save(path, fr.f[0].cpu().numpy())
                            dist[tt] = str(path)
                        elif ref is not None and tt in ref:
                            r0 = ref[tt]
                            dist[tt] = float(torch.linalg.norm(fr.f[0].cpu() - r0) / r0.norm())
        except Exception as exc:  # a run that stops (divergence, unreachable tol) is a result
            rec.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:300])
            return rec
    rec["peak_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    rec["state_bytes"] = state_bytes
    if spec.get("save_reference"):
        rec["reference_paths"] = {str(k): v for k, v in dist.items()}
    else:
        for tt, d in dist.items():
            rec[f"dist_{int(tt)}"] = d
    if blocks:
        q = np.percentile(blocks, [25, 50, 75])
        rec.update(s_per_time=float(q[1]), s_per_time_iqr=float(q[2] - q[0]), blocks=len(blocks))
    if trunc_time[1]:
        rec["trunc_s"] = trunc_time[0] / trunc_time[1]
        rec["trunc_calls"] = truncation.calls
    if ranks:
        rs = sorted(ranks)
        rec["rank_summary"] = [rs[0], rs[len(rs) // 2], rs[-1], ranks[-1]]
    tt = np.array(t)
    d = {k: np.array(v) for k, v in diag.items()}
    m = d["mass"]
    rec["mass_drift"] = float(np.max(np.abs(m - m[0])) / abs(m[0]))
    rec["momentum_drift"] = float(np.max(np.abs(d["momentum"] - d["momentum"][0])) / abs(m[0]))
    e = d["total_energy"]
    rec["energy_drift"] = float(np.max(np.abs(e - e[0])) / abs(e[0]))
    case = spec["case"]
    try:
        if case == "weak-landau":
            fit = fit_rate(tt, d["e_norm"], window=(1.0, t_end - 0.5), method="peaks")
            w = dispersion_root(0.5, species, guess)
            rec.update(rate=fit.rate, rate_ref=w.imag, rate_rel_err=fit.rate / w.imag - 1)
            rec["rate_window"] = [1.0, t_end - 0.5]
        elif case == "two-stream" and t_end >= 20:
            win = (10.0, 18.0)  # linear growth from alpha = 1e-3, before saturation
            fit = fit_rate(tt, d["e_norm"], window=win, method="lsq")
            w = dispersion_root(0.2, species, guess)
            rec.update(rate=fit.rate, rate_ref=w.imag, rate_rel_err=fit.rate / w.imag - 1)
            rec["rate_window"] = list(win)
        elif case == "two-stream":
            rec["fit_error"] = "t_end < 20 ends before the linear growth phase dominates"
        else:
            win = (2.0, min(t_end, 15.0))
            rec["gamma1"] = fit_rate(tt, d["e_norm"], window=win, method="peaks").rate
            rec["gamma1_window"] = list(win)
            if t_end >= 40:
                rec["gamma2"] = fit_rate(tt, d["e_norm"], window=(20.0, 40.0), method="peaks").rate
                rec["gamma2_window"] = [20.0, 40.0]
    except ValueError as exc:
        rec["fit_error"] = str(exc)
    rec["status"] = "ok"
    rec["loadavg_1min_end"] = os.getloadavg()[0]
    return rec


class _Timed:
    """Wraps a Truncation so the solver's calls are timed (attribute access passes through)."""

    def __init__(self, inner, timed):
        self._inner, self._timed = inner, timed

    def __call__(self, f):
        return self._timed(f)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def key(r: dict) -> tuple:
    return (r["case"], r["nx"], r["nv"], r["solver"], r["truncation"], r["tol"], r["t_end"])


def run_in_subprocess(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        return {**spec, "status": "failed", "message": out.stderr.strip().splitlines()[-1][:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-records", action="store_true", help="only regenerate the page")
    ap.add_argument("--full", action="store_true", help="128x256 and 512x1024 to t_end = 40")
    ap.add_argument("--t-end", type=float, default=None, help="override t_end")
    ap.add_argument("--grid", default=None, help="override grids, e.g. 32x64,64x128")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--learned", default=None, help="trained model dir (+refine) to add")
    ap.add_argument("--solvers", default=None, help="only these, e.g. spectral,fd5+svd,lowrank")
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--out", type=Path, default=PAGE)
    ap.add_argument("--speed-window", type=float, default=None, help="short-window speed mode")
    ap.add_argument("--warmup", type=float, default=5.0, help="spectral warm-up (speed mode)")
    ap.add_argument("--mass-drift", action="store_true", help="short fd5 + T mass-drift runs")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from neuralfactor.io import append_jsonl, atomic_write_text, read_jsonl
    from neuralfactor.report.low_rank_solvers import render_page

    speed = ROOT / "docs/results/records/low-rank-speed.jsonl"
    if args.speed_window or args.mass_drift:
        from neuralfactor.bench.solver_speed import campaign

        g = [tuple(int(x) for x in g.split("x")) for g in (args.grid or "512x1024").split(",")]
        campaign(
            speed,
            grids=g,
            window=args.speed_window,
            warmup=args.warmup,
            mass=args.mass_drift,
            scratch=ROOT / "runs" / "low-rank-speed",
        )
    elif not args.from_records:
        grids = [(128, 256), (512, 1024)] if args.full else [(128, 256)]
        if args.grid:
            grids = [tuple(int(x) for x in g.split("x")) for g in args.grid.split(",")]
        t_end = args.t_end or (40.0 if args.full else 10.0)
        pairs = list(PAIRS) + ([("fd5", args.learned)] if args.learned else [])
        if args.solvers:
            want = args.solvers.split(",")
            pairs = [p for p in pairs if (p[0] if p[1] is None else f"{p[0]}+{p[1]}") in want]
        done = {key(r) for r in read_jsonl(args.records)} if args.records.exists() else set()
        refdir = ROOT / "runs" / "low-rank-solvers-ref"  # scratch (runs/ is not committed)
        for nx, nv in grids:
            for case in args.cases.split(","):
                reference = None
                for solver, trunc in pairs:
                    tol = None if solver == "spectral" else args.tol
                    spec = dict(
                        case=case,
                        nx=nx,
                        nv=nv,
                        t_end=t_end,
                        solver=solver,
                        truncation=trunc,
                        tol=tol,
                    )
                    if solver == "spectral":
                        d = refdir / f"{case}-{nx}x{nv}-t{t_end:g}"
                        d.mkdir(parents=True, exist_ok=True)
                        paths = {str(tt): str(d / f"t{int(tt)}.npy") for tt in (10.0, 20.0, 40.0)}
                        if all(Path(p).exists() for tt, p in paths.items() if float(tt) <= t_end):
                            reference = {k: v for k, v in paths.items() if float(k) <= t_end}
                        if key(spec) in done and reference is not None:
                            continue
                        spec["save_reference"] = str(d)
                        t0 = time.time()
                        rec = run_in_subprocess(spec)
                        reference = rec.pop("reference_paths", None)
                        rec.pop("save_reference", None)
                    else:
                        if key(spec) in done:
                            continue
                        spec["reference"] = reference
                        t0 = time.time()
                        rec = run_in_subprocess(spec)
                        rec.pop("reference", None)
                    print(
                        f"{case} {nx}x{nv} {solver} {trunc}: {rec['status']} "
                        f"({time.time() - t0:.0f} s)",
                        flush=True,
                    )
                    if key(spec) not in done:
                        append_jsonl(args.records, [rec])
                        done.add(key(spec))
    records = read_jsonl(args.records)
    from neuralfactor.report.low_rank_speed import render_speed_section

    extra = render_speed_section(read_jsonl(speed) if speed.exists() else [], records)
    atomic_write_text(args.out, render_page(records) + extra)
    print(f"wrote {args.out} from {len(records)} records")


if __name__ == "__main__":
    main()
