"""The "Learned truncation" section of ``docs/results/low-rank-solvers.md``.

Every ``fd5 + <trained model>`` record of the Results table (a record with ``fit_seconds``,
written by ``benchmarks/low_rank_solvers.py --learned DIR[+refine],...``) beside the classical
truncations (``svd``, ``rsvd``, ``warm-subspace``) of the same case, grid, t_end and mass
correction, at the same tolerance: accuracy (distance to the spectral run, gamma_1 against
it), speed per stage and per unit of simulated time, the training cost and the frames trained
on (from the record's ``train``, read from the model's run directory). A pure function of the
records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuralfactor.report.low_rank_solvers import derive, per, tol_label

__all__ = ["learned_label", "learned_lines"]

CLASSICAL = ("svd", "rsvd", "warm-subspace")

#: why a learned truncation of this kind costs what it does per stage (printed when it loses)
WHY = {
    "sketch": (
        "its stage cost is set by its trained width (two products with the frame at rank + "
        "oversample columns, the Rayleigh-Ritz step and the truncation's exact error check at "
        "that width) whatever rank the tolerance needs, while rsvd and warm-subspace work at a "
        "working rank sized to the need and the exact SVD of a frame this size is one LAPACK "
        "call"
    ),
    "convmf": (
        "the network's forward pass and the least-squares refit come on top of the "
        "truncation's exact error check, and its fixed rank sets an error floor a lower "
        "tolerance cannot pass"
    ),
}

WHY_ANY = (
    "a network's forward pass at its trained rank comes on top of the truncation's exact error "
    "check, whatever rank the tolerance needs"
)


def _mc(r: dict[str, Any]) -> str:
    mc = r.get("mass_correction")
    return (
        "not recorded (records before fd5 + T was mass-corrected by default)"
        if mc is None
        else ("on" if mc else "off")
    )


def _is_learned(r: dict[str, Any]) -> bool:
    return r.get("solver") == "fd5" and "fit_seconds" in r


def learned_label(r: dict[str, Any]) -> str:
    """``sketch r48 (240 ep, lr 0.01)`` (``+refine``) for a record that names its model and
    its training, else the truncation (the model directory)."""
    if not r.get("model"):
        return str(r["truncation"])
    refine = "+refine" if str(r["truncation"]).endswith("+refine") else ""
    t = r.get("train") or {}
    how = f" ({t['epochs']} ep, lr {t['lr']:g})" if t.get("epochs") and t.get("lr") else ""
    return f"{r['model']} r{r['model_rank']}{refine}{how}"


def _g(r: dict[str, Any], k: str, fmt: str = ".3g") -> str:
    v = r.get(k)
    return "-" if v is None else format(v, fmt)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:+.2f}%"


def _training(r: dict[str, Any]) -> str:
    """Where the model's frames came from and how it was trained (from the record)."""
    t = r.get("train")
    if not t:
        return f"training {r['fit_seconds']:.0f} s of CPU wall time"
    sim = t.get("sim") or {}
    params = ", ".join(f"{k} {v:g}" for k, v in sorted((sim.get("ic_params") or {}).items()))
    trunc = (
        "untruncated"
        if sim.get("truncate_tol") is None
        else f"truncated at tol {sim['truncate_tol']:g}"
    )
    return (
        f"trained by `neuralfactor train --data {t['data']} --out {t['out']} --model "
        f"{r['model']} --rank {r['model_rank']} --epochs {t['epochs']} --lr {t['lr']:g}` ("
        f"{t['dtype']}, {t['objective']}, {t['split']} split) in {r['fit_seconds']:.0f} s of "
        f"CPU wall time, on {t.get('frames', '?')} frames of a separate {sim.get('scheme', '?')}"
        f" run ({trunc}) of {sim.get('ic', '?')} ({params}) at "
        f"{sim.get('nx', '?')}x{sim.get('nv', '?')}, dt {sim.get('dt', '?')}, t in [0, "
        f"{sim.get('t_end', float('nan')):g}]"
    )


def _tk(r: dict[str, Any]) -> tuple[float, str | None]:
    """A row's tolerance with its rule (per unit of time or per stage): rows compare only
    at the same pair."""
    return (r["tol"], per(r))


def _order(r: dict[str, Any]) -> tuple[float, str]:
    """Largest tolerance first; per stage (the older rule) before per unit of time."""
    return (-r["tol"], str(_tk(r)[1] == "time"))


def _loads_differ(rows: Sequence[dict[str, Any]]) -> bool:
    loads = [r.get("loadavg_1min") for r in rows]
    if any(x is None for x in loads):
        return True
    return max(loads) > 1.5 * min(loads) + 0.5


def _verdict(r: dict[str, Any], peers: dict[str, dict[str, Any]]) -> str:
    """Faster or slower per stage than the fastest classical truncation, by how much, why."""
    timed = {k: v for k, v in peers.items() if v.get("trunc_s")}
    if not timed or not r.get("trunc_s"):
        return "no classical truncation of the same run set to compare with"
    best = min(timed, key=lambda k: timed[k]["trunc_s"])
    ratio = r["trunc_s"] / timed[best]["trunc_s"]
    out = (
        f"per stage {ratio:.2f}x the time of the fastest classical truncation, fd5 + {best}"
        + (
            f" (it loses by {ratio:.2f}x: {WHY.get(r.get('model'), 'see its row')})"
            if ratio > 1
            else " (it wins)"
        )  # fmt: skip
    )
    svd = peers.get("svd")
    if svd and svd.get("dist_10") and r.get("dist_10"):
        out += f"; distance to spectral at t = 10 {r['dist_10'] / svd['dist_10']:.4f}x fd5 + svd's"
    if _loads_differ([r, *peers.values()]):
        out += "; load averages differ between these runs: **not comparable**"
    return out


def _against_control(r: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """A trained model against its one-epoch control (same model, rank, data and tolerance)."""
    t = r.get("train") or {}
    if r["status"] != "ok" or not t.get("epochs") or t["epochs"] <= 1:
        return ""
    for c in rows:
        ct = c.get("train") or {}
        if (c["status"] == "ok" and ct.get("epochs") == 1 and ct.get("data") == t.get("data")
                and (c.get("model"), c.get("model_rank"), _tk(c))
                == (r.get("model"), r.get("model_rank"), _tk(r))):  # fmt: skip
            return (
                f"; against its untrained control (fd5 + {learned_label(c)}): distance to "
                f"spectral at t = 10 {r['dist_10'] / c['dist_10']:.4f}x, per stage "
                f"{r['trunc_s'] / c['trunc_s']:.2f}x"
            )
    return ""


def _table(rows: list[dict[str, Any]]) -> list[str]:
    head = (
        "| truncation | tol | status | dist t=10 | gamma_1 err | trunc. s / stage | "
        "s / unit t (median, IQR) | rank min/med/max (end) | training s | load 1 min |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        status = r["status"] if r["status"] == "ok" else "FAILED (below)"
        spt = (
            "-"
            if r.get("s_per_time") is None
            else f"{r['s_per_time']:.3g} ({r.get('s_per_time_iqr', float('nan')):.2g})"
        )
        rk = "-" if not r.get("rank_summary") else "{}/{}/{} ({})".format(*r["rank_summary"])
        name = learned_label(r) if _is_learned(r) else r["truncation"]
        out.append(
            f"| fd5 + {name} | {tol_label(r)} | {status} | {_g(r, 'dist_10', '.3e')} | "
            f"{_pct(r.get('gamma1_rel_err'))} | {_g(r, 'trunc_s')} | {spt} | {rk} | "
            f"{_g(r, 'fit_seconds', '.0f')} | {_g(r, 'loadavg_1min', '.1f')} |"
        )
    return out


INTRO = (
    "Learned factorizers trained on frames of the same problem truncating every fd5 stage "
    "(`--learned MODEL_DIR[+refine],...`); their rows are in the Results table too. A learned "
    "factorizer's rank is fixed by training (it is the working rank), so a stage it cannot "
    "compress to the tolerance stops the run. ConvMF (+refine, its least-squares refit): the "
    "network's factors, even after the refit, leave a relative error with a floor (set by how "
    "well the network's U spans the frames' leading subspace, which the training loss weights "
    "by energy, not by the tolerance), and a tolerance below that floor stops the run at the "
    "first stage. The sketch encoder (`neuralfactor train --model sketch`) reads Y = X Omega "
    "with a learned Omega of rank + oversample columns and keeps the Rayleigh-Ritz "
    "approximation in span(Y) (Halko, Martinsson & Tropp 2011 with a learned test matrix, as "
    "in Indyk, Vakilian & Yuan 2019): it reaches the tolerance while the frames' leading "
    "subspace at that tolerance fits in its width. A sketch trained for one epoch at a negligible "
    "rate keeps its seeded Gaussian Omega (the same draw the trained one starts from): it is "
    "the untrained control, showing what the training adds. Each configuration below lists the "
    "classical truncations of the same case, grid, t_end and mass correction beside the "
    "learned ones (speed ratios are per truncated stage, in-situ means); training seconds are "
    "the model's own record (`fit_seconds`, the training command alone, not the simulation of "
    "its frames)."
)


def learned_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The learned-truncation section ([] without learned records)."""
    records = derive(records)
    learned = [r for r in records if _is_learned(r)]
    if not learned:
        return []
    out = ["## Learned truncation", "", INTRO, ""]
    groups = sorted({(r["nx"], r["nv"], r["case"], r["t_end"], _mc(r)) for r in learned})
    for nx, nv, case, t_end, mc in groups:

        def same(r, nx=nx, nv=nv, case=case, t_end=t_end, mc=mc) -> bool:
            return (r["nx"], r["nv"], r["case"], r["t_end"], _mc(r)) == (nx, nv, case, t_end, mc)

        mine = [r for r in learned if same(r)]
        tols = {_tk(r) for r in mine}
        peers = [r for r in records if same(r) and r["solver"] == "fd5"
                 and r["truncation"] in CLASSICAL and _tk(r) in tols]  # fmt: skip
        rows = sorted(peers + mine, key=lambda r: (_order(r), _is_learned(r), str(r["truncation"])))
        out += [
            f"### {case} {nx}x{nv} to t = {t_end:g}, mass correction {mc}",
            "",
            *_table(rows),
            "",
        ]
        for r in sorted(mine, key=lambda r: (_order(r), learned_label(r))):
            head = f"- fd5 + {learned_label(r)}, tol {tol_label(r)}: {_training(r)}"
            if r["status"] != "ok":
                out.append(f"{head}; the run FAILED: {r.get('message', '?')}")
                continue
            same_tol = {p["truncation"]: p for p in peers if _tk(p) == _tk(r)}
            out.append(f"{head}; {_verdict(r, same_tol)}{_against_control(r, mine)}.")
        out.append("")
    return out
