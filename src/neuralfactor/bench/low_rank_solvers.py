"""The low-rank Vlasov solvers campaign: every (case, grid, solver, truncation) run measured
in its own process, one record each (docs/results/records/low-rank-solvers.jsonl).

:func:`worker` runs and measures one configuration (conservation drifts, damping/growth rates
against the dispersion relation, distance to the spectral reference, peak RSS, the state's
size, seconds per unit of simulated time and per truncation); :func:`run_campaign` walks the
configurations, skips those already recorded and appends the new records. The page is
:mod:`neuralfactor.report.low_rank_solvers`.

Times here are wall-clock measurements of a running simulation (seconds per unit of
simulated time in blocks, the mean time of the solver's truncation calls): they cannot be
repeated or interleaved by :mod:`neuralfactor.core.timing` without re-running the whole
simulation, and are reported with their spread over the blocks.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CASES", "PAIRS", "fd5_dt", "growth_windows", "key", "run_campaign", "worker"]

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
    # the validation page's linear two-stream setup (alpha = 1e-6, window [20, 40])
    "two-stream-a1e-6": (
        "two-stream",
        {"alpha": 1e-6, "k": 0.2, "v0": 2.4},
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
NICE_DT = (0.01, 0.005, 0.004, 0.0025, 0.002, 0.001, 0.0005, 0.0004, 0.00025, 0.0002, 0.0001)


def fd5_dt(nx: int, nv: int, length: float, vmax: float, emax: float = 1.5) -> float:
    """Largest step of NICE_DT with CFL <= 0.8 x the fd5 limit (emax bounds max|E|)."""
    from neuralfactor.vlasov.solver import FD5_CFL_LIMIT

    hx, hv = length / nx, 2 * vmax / nv
    lim = 0.8 * FD5_CFL_LIMIT / (vmax / hx + emax / hv)
    return next(d for d in NICE_DT if d <= lim)


def _config(spec: dict) -> tuple[Any, float, int]:
    """The simulation config of ``spec``, its step and save interval."""
    from neuralfactor.vlasov import SimulationConfig

    ic, params, _, _ = CASES[spec["case"]]
    scheme, trunc_name, tol = spec["solver"], spec["truncation"], spec["tol"]
    nx, nv, t_end = spec["nx"], spec["nv"], spec["t_end"]
    probe = SimulationConfig(ic=ic, nx=nx, nv=nv, ic_params=params, t_end=1.0, dt=0.01)
    if scheme == "spectral":
        dt = 0.01
    else:
        dt = fd5_dt(nx, nv, float(probe.length), float(probe.vmax))
    save_every = max(1, round(0.1 / dt))
    kw = dict(ic=ic, nx=nx, nv=nv, ic_params=params, t_end=t_end, dt=dt, save_every=save_every)
    per = spec.get("tol_per") or "stage"  # records before truncate_per: per stage
    if scheme == "fd5":
        kw.update(scheme="fd5", truncate_tol=tol, truncate_per=per)
        if spec.get("mass_correction") is not None:
            kw["mass_correction"] = bool(spec["mass_correction"])
        if trunc_name != "svd":  # "svd": the built-in exact SVD (one full SVD per stage)
            kw["truncate_with"] = trunc_name
    elif scheme != "spectral":
        kw.update(scheme=scheme, truncate_tol=tol, truncate_per=per)
    return SimulationConfig(**kw), dt, save_every


class _Timed:
    """Wraps a Truncation so the solver's calls are timed (attribute access passes through)."""

    def __init__(self, inner):
        self._inner, self.seconds, self.count = inner, 0.0, 0

    def __call__(self, f):
        t0 = time.perf_counter()  # in-situ: the solver's own calls, summed
        out = self._inner(f)
        self.seconds += time.perf_counter() - t0
        self.count += 1
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _state_bytes(st: Any) -> int:
    size = sum(x.numel() * x.element_size() for fac in st.factors for x in fac)
    if not st.factors:
        size = sum(x.numel() * x.element_size() for x in (st.f, *st.history))
    return size


def _run(solver: Any, spec: dict, ref: dict | None) -> dict[str, Any]:
    """Step the solver to the end; the diagnostics, block times, ranks and distances."""
    import numpy as np
    import torch

    t, diag, blocks, dist, ranks, state_bytes = [], {}, [], {}, [], 0
    t_block, next_block = time.perf_counter(), 1.0  # wall time per unit of simulated time
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
        state_bytes = max(state_bytes, _state_bytes(fr.state))
        for tt in (10.0, 20.0, 40.0):
            if abs(fr.t - tt) < 1e-9:
                if spec.get("save_reference"):
                    path = Path(spec["save_reference"]) / f"t{int(tt)}.npy"
                    np.save(path, fr.f[0].cpu().numpy())
                    dist[tt] = str(path)
                elif ref is not None and tt in ref:
                    r0 = ref[tt]
                    dist[tt] = float(torch.linalg.norm(fr.f[0].cpu() - r0) / r0.norm())
    return {"t": t, "diag": diag, "blocks": blocks, "dist": dist, "ranks": ranks,
            "state_bytes": state_bytes}  # fmt: skip


def _fit_rates(rec: dict, case: str, tt, d: dict, t_end: float) -> None:
    """Damping / growth rates against the dispersion relation (or the fit's error)."""
    from neuralfactor.vlasov import dispersion_root, fit_rate

    _, _, species, guess = CASES[case]
    try:
        if case == "weak-landau":
            fit = fit_rate(tt, d["e_norm"], window=(1.0, t_end - 0.5), method="peaks")
            w = dispersion_root(0.5, species, guess)
            rec.update(rate=fit.rate, rate_ref=w.imag, rate_rel_err=fit.rate / w.imag - 1)
            rec["rate_window"] = [1.0, t_end - 0.5]
        elif CASES[case][0] == "two-stream":
            _growth_rates(rec, case, tt, d["e_norm"], t_end)
        else:
            win = (2.0, min(t_end, 15.0))
            rec["gamma1"] = fit_rate(tt, d["e_norm"], window=win, method="peaks").rate
            rec["gamma1_window"] = list(win)
            if t_end >= 40:
                rec["gamma2"] = fit_rate(tt, d["e_norm"], window=(20.0, 40.0), method="peaks").rate
                rec["gamma2_window"] = [20.0, 40.0]
    except ValueError as exc:
        rec["fit_error"] = str(exc)


def growth_windows(case: str, t_end: float) -> tuple[list[tuple[float, float]], float]:
    """The least-squares windows of the validation page for ``case``'s initial condition and
    alpha (:data:`neuralfactor.vlasov.validation.INSTABILITY_CASES`) that end by ``t_end``,
    and the t_end the first of them needs (inf when the validation has none for this alpha).

    The windows are the validated ones, not chosen here: the damped modes the perturbation
    excites dominate ||E|| until t ~ 15 whatever alpha, and saturation starts near t ~ 28 at
    alpha = 1e-3 (later at smaller alpha).
    """
    from neuralfactor.vlasov.validation import INSTABILITY_CASES

    ic, params, _, _ = CASES[case]
    wins = [tuple(map(float, w)) for c, a, w in INSTABILITY_CASES
            if c == ic and a == params["alpha"]]  # fmt: skip
    need = wins[0][1] if wins else math.inf
    return [w for w in wins if w[1] <= t_end], need


def _growth_rates(rec: dict, case: str, tt, e_norm, t_end: float) -> None:
    """Two-stream growth rate (least squares of log ||E||, as the validation page) on every
    window of :func:`growth_windows`, against the dispersion root; the first is the rate."""
    from neuralfactor.vlasov import dispersion_root, fit_rate

    ic, params, species, guess = CASES[case]
    wins, need = growth_windows(case, t_end)
    if not wins:
        rec["fit_error"] = (
            f"t_end = {t_end:g} ends before the validation's window (needs t_end >= {need:g})"
            if math.isfinite(need)
            else f"the validation has no window for {ic} at alpha = {params['alpha']:g}"
        )
        return
    root = dispersion_root(params["k"], species, guess).imag
    fits = [(w, fit_rate(tt, e_norm, window=w, method="lsq").rate) for w in wins]
    rec.update(rate=fits[0][1], rate_ref=root, rate_rel_err=fits[0][1] / root - 1)
    rec["rate_window"] = list(fits[0][0])
    rec["rate_fits"] = [[w[0], w[1], r] for w, r in fits]
    rec["alpha"] = params["alpha"]


def _summarize(rec: dict, spec: dict, out: dict, timed: _Timed | None) -> None:
    import numpy as np

    rec["state_bytes"] = out["state_bytes"]
    if spec.get("save_reference"):
        rec["reference_paths"] = {str(k): v for k, v in out["dist"].items()}
    else:
        for tt, d in out["dist"].items():
            rec[f"dist_{int(tt)}"] = d
    if out["blocks"]:
        q = np.percentile(out["blocks"], [25, 50, 75])
        rec.update(
            s_per_time=float(q[1]), s_per_time_iqr=float(q[2] - q[0]), blocks=len(out["blocks"])
        )
    if timed is not None and timed.count:
        rec["trunc_s"] = timed.seconds / timed.count
        rec["trunc_calls"] = timed.calls
    if out["ranks"]:
        rs = sorted(out["ranks"])
        rec["rank_summary"] = [rs[0], rs[len(rs) // 2], rs[-1], out["ranks"][-1]]
    d = {k: np.array(v) for k, v in out["diag"].items()}
    m = d["mass"]
    rec["mass_drift"] = float(np.max(np.abs(m - m[0])) / abs(m[0]))
    rec["momentum_drift"] = float(np.max(np.abs(d["momentum"] - d["momentum"][0])) / abs(m[0]))
    e = d["total_energy"]
    rec["energy_drift"] = float(np.max(np.abs(e - e[0])) / abs(e[0]))
    _fit_rates(rec, spec["case"], np.array(out["t"]), d, spec["t_end"])


#: The training simulation's settings recorded with a trained-model truncation.
_SIM_KEYS = ("ic", "ic_params", "nx", "nv", "t_end", "dt", "save_every", "scheme", "truncate_tol",
             "truncate_per")  # fmt: skip


def _model_info(name: str) -> dict[str, Any]:
    """What a trained-model truncation (``DIR[+refine]``) was trained on and what it cost,
    from the model's meta.json, its run's config.json and the training store's attributes
    (``{}`` for a factorizer name): ``fit_seconds``, ``model``, ``model_rank``, ``train``."""
    from neuralfactor.data.store import MatrixStore
    from neuralfactor.io import read_json

    path = Path(name.removesuffix("+refine"))
    mdir = next((d for d in (path, path / "model") if (d / "meta.json").exists()), None)
    if mdir is None:
        return {}
    meta = read_json(mdir / "meta.json")
    fac = meta.get("factorizer", {})
    out = {"fit_seconds": meta.get("fit_seconds"), "model": fac.get("model"),
           "model_rank": fac.get("rank")}  # fmt: skip
    cfg_path = mdir.parent / "config.json"
    if cfg_path.exists():
        cfg = read_json(cfg_path)
        st = cfg.get("settings", {})
        train = {k: st.get(k) for k in ("epochs", "lr", "dtype", "objective")}
        train.update(data=cfg.get("data"), split=cfg.get("split"), out=str(mdir.parent))
        if cfg.get("data") and Path(cfg["data"]).exists():
            attrs = MatrixStore.open(cfg["data"]).metadata
            sim = attrs.get("config", {})
            train["frames"] = attrs.get("n_frames")
            train["sim"] = {k: sim.get(k) for k in _SIM_KEYS}
        out["train"] = train
    return out


def worker(spec: dict, make_truncation: Callable[..., Any]) -> dict:
    """Run one (case, solver, truncation) and measure it; returns the record.

    ``make_truncation(name, tol=, rank=, frame_shape=)`` resolves a truncation name (the
    command line's ``--truncate-with`` resolver, passed in by the caller).
    """
    import numpy as np
    import torch

    from neuralfactor import __version__
    from neuralfactor.core.timing import pinned_threads
    from neuralfactor.vlasov import VlasovSolver
    from neuralfactor.vlasov.truncation import Truncation

    warnings.simplefilter("ignore")
    cfg, dt, save_every = _config(spec)
    rec = {
        **spec,
        "ic": CASES[spec["case"]][0],
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
    timed = None
    if spec["solver"] == "fd5":
        name, tol = spec["truncation"], cfg.stage_tol  # spec["tol"] per unit time or stage
        shape = (spec["nx"], spec["nv"])
        timed = _Timed(
            Truncation(tol=tol)
            if name == "svd"
            else make_truncation(name, tol=tol, rank=None, frame_shape=shape)
        )
        rec.update(_model_info(name))
        rec["mass_correction"] = bool(cfg.mass_correction)
    ref = None
    if spec.get("reference"):
        ref = {
            float(k): torch.tensor(np.load(v, allow_pickle=False))
            for k, v in spec["reference"].items()
        }
    with pinned_threads(1):
        solver = VlasovSolver(cfg, truncation=None if timed is None else timed._inner)
        if timed is not None:
            solver.truncation = timed
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            out = _run(solver, spec, ref)
        except Exception as exc:  # a run that stops (divergence, unreachable tol) is a result
            rec.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:300])
            return rec
    rec["peak_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    _summarize(rec, spec, out, timed)
    rec["status"] = "ok"
    rec["loadavg_1min_end"] = os.getloadavg()[0]
    return rec


def key(r: dict) -> tuple:
    """A record's identity; ``mass_correction`` (None in records measured before fd5 + T was
    mass-corrected by default) keeps the re-measured fd5 rows apart from the old ones, and
    ``tol_per`` (None in records measured before the tolerance could be per unit of time:
    per stage) the per-time rows apart from the per-stage ones."""
    return (r["case"], r["nx"], r["nv"], r["solver"], r["truncation"], r["tol"], r["t_end"],
            r.get("mass_correction"), r.get("tol_per"))  # fmt: skip


def run_campaign(
    grids: list[tuple[int, int]],
    cases: list[str],
    pairs: list[tuple[str, str | None]],
    *,
    t_end: float,
    tol: float,
    tol_per: str = "time",
    records: Path,
    refdir: Path,
    run_one: Callable[[dict], dict],
    log: Callable[[str], None] = print,
) -> None:
    """Every grid x case x (solver, truncation) not yet in ``records``, each by ``run_one``
    (a fresh process), its record appended; the spectral run first, as the reference."""
    from neuralfactor.io import append_jsonl, read_jsonl

    done = {key(r) for r in read_jsonl(records)} if records.exists() else set()
    for nx, nv in grids:
        for case in cases:
            reference = None
            for solver, trunc in pairs:
                spec = dict(case=case, nx=nx, nv=nv, t_end=t_end, solver=solver, truncation=trunc,
                            tol=None if solver == "spectral" else tol)  # fmt: skip
                if solver != "spectral":
                    spec["tol_per"] = tol_per
                if solver == "fd5":  # the solver's default since fd5 + T is mass-corrected
                    spec["mass_correction"] = True
                if solver == "spectral":
                    d = refdir / f"{case}-{nx}x{nv}-t{t_end:g}"
                    d.mkdir(parents=True, exist_ok=True)
                    paths = {str(tt): str(d / f"t{int(tt)}.npy") for tt in (10.0, 20.0, 40.0)}
                    if all(Path(p).exists() for tt, p in paths.items() if float(tt) <= t_end):
                        reference = {k: v for k, v in paths.items() if float(k) <= t_end}
                    if key(spec) in done and reference is not None:
                        continue
                    spec["save_reference"] = str(d)
                elif key(spec) in done:
                    continue
                else:
                    spec["reference"] = reference
                t0 = time.perf_counter()  # a whole run's wall time, printed only
                rec = run_one(spec)
                if solver == "spectral":
                    reference = rec.pop("reference_paths", None)
                    rec.pop("save_reference", None)
                else:
                    rec.pop("reference", None)
                log(f"{case} {nx}x{nv} {solver} {trunc}: {rec['status']} "
                    f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
                if key(spec) not in done:
                    append_jsonl(records, [rec])
                    done.add(key(spec))
