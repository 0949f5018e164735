"""Sections of ``docs/results/low-rank-solvers.md`` from ``low-rank-speed.jsonl``.

Two record kinds, both written by ``benchmarks/low_rank_solvers.py`` through
:mod:`neuralfactor.bench.solver_speed`: ``speed-window`` (one solver's interleaved short-window
timing and memory at one grid) and ``mass-drift`` (one short ``fd5 + T`` run's mass drift).
:func:`render_speed_section` is a pure function of the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuralfactor.core.timing import Spread, speed_ratio
from neuralfactor.report.low_rank_learned import learned_lines
from neuralfactor.report.low_rank_solvers import per

__all__ = ["learned_lines", "mass_lines", "render_speed_section", "speed_lines"]

SPEEDUP_FACTORED = 10.0  # factored vs fd5+svd per simulated time at 512x1024
MEMORY_FACTORED = 0.1  # factored memory / fd5+svd memory
SPEEDUP_TRUNC = 5.0  # fastest truncation vs svd truncation per stage
MASS_TOL = 1e-10
_FACTORED = ("lowrank", "dlr")


def _spread(q: dict[str, float] | None) -> Spread | None:
    return None if not q else Spread(q["median"], q["q25"], q["q75"])


def _q(q: dict[str, float] | None, fmt: str = ".3g") -> str:
    if not q:
        return "-"
    return f"{q['median']:{fmt}} ({q['q25']:{fmt}}-{q['q75']:{fmt}})"


def _mb(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


def _runs(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, dict]]:
    """(grid, date) -> solver -> the speed-window record: every run (repeat) of a grid."""
    out: dict[tuple, dict[str, dict]] = {}
    for r in records:
        if r.get("kind") == "speed-window":
            out.setdefault((r["nx"], r["nv"], r["date"]), {})[r["solver"]] = r
    return out


def _step_rule(rows: dict[str, dict]) -> bool:
    """Whether a run's memory was measured after warm-up steps (``step_rss_mb``: a step's
    working memory on top of the state) rather than from set-up (``rss_increase_mb``)."""
    return any("step_rss_mb" in r for r in rows.values())


def _peak_mb(r: dict) -> float | None:
    """Peak working memory of the stepping (MB): the state plus a step's working memory."""
    if r.get("step_rss_mb") is None:
        return None
    return r["state_bytes"] / 2**20 + r["step_rss_mb"]


def _memory_cells(r: dict, step_rule: bool) -> str:
    if not step_rule:
        return _mb(r.get("rss_increase_mb"))
    return f"{_mb(r.get('step_rss_mb'))} | {_mb(_peak_mb(r))}"


def _table(rows: dict[str, dict]) -> list[str]:
    base = rows.get("fd5+svd")
    step_rule = _step_rule(rows)
    mem_head = "step MB | peak MB (state + step)" if step_rule else "RSS increase MB"
    head = (
        "| solver | s / unit t, median (IQR) | vs fd5 + svd | trunc. s / stage, median (IQR) "
        f"| trunc. vs svd | trunc. share of step | state MB | {mem_head} | ranks (min-max) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, r in rows.items():
        st = _spread(r["s_per_time"])
        ratio = str(speed_ratio(_spread(base["s_per_time"]), st)) if base else "-"
        tr, tr_ratio, share = r.get("trunc_s") or r.get("recompress_s"), "-", "-"
        if tr:
            share = f"{tr['median'] / (r['s_per_time']['median'] * r['dt']):.0%}"
            if base and base.get("trunc_s"):
                tr_ratio = str(speed_ratio(_spread(base["trunc_s"]), _spread(tr)))
        if r is base:
            ratio = tr_ratio = "1 (baseline)"
        rk = r.get("rank_summary")
        lines.append(
            f"| {label} | {_q(r['s_per_time'])} | {ratio} | {_q(tr)} | {tr_ratio} | {share} | "
            f"{r['state_bytes'] / 2**20:.3g} | {_memory_cells(r, step_rule)} | "
            f"{'-' if not rk else f'{rk[0]}-{rk[1]}'} |"
        )
    return lines


def _meets(sp: Any, target: float) -> str:
    """ "met" when even the quartile range clears ``target``, else what the median says."""
    if sp.verdict == "faster" and sp.low >= target:
        return "met"
    if sp.ratio >= target:
        return f"met by the median, not by the quartile range (its low end {sp.low:.2g}x)"
    return "MISSED"


def _factored_line(grid: tuple[int, int], where: str, fac: str, r: dict, base: dict) -> str:
    sp = speed_ratio(_spread(base["s_per_time"]), _spread(r["s_per_time"]))
    mem = r["state_bytes"] / base["state_bytes"]
    if "step_rss_mb" in r or "step_rss_mb" in base:
        what = "peak working memory (state + step)"
        a, b = _peak_mb(r), _peak_mb(base)
    else:
        what = "peak working memory (RSS increase)"
        a, b = r.get("rss_increase_mb"), base.get("rss_increase_mb")
    rss = a / b if a and b else None
    line = (
        f"- {grid[0]}x{grid[1]}{where}: {fac} vs fd5 + svd per simulated time {sp} (target "
        f">= {SPEEDUP_FACTORED:g}x: {_meets(sp, SPEEDUP_FACTORED)}); memory (target <= 1/10): "
        f"state {mem:.3f} of fd5 + svd's ({'met' if mem <= MEMORY_FACTORED else 'MISSED'}), "
        f"{what} {_mb(rss)} of it"
        f" ({'met' if rss is not None and rss <= MEMORY_FACTORED else 'MISSED'})."
    )
    rc = r.get("recompress_s")
    if rc:
        share = rc["median"] / (r["s_per_time"]["median"] * r["dt"])
        line += (
            f" Its recompression of a stage ({rc['columns']} stacked columns: QR of the "
            f"(m + n) x {rc['columns']} factors + SVD of the core, O((m + n) R^2)), timed alone, "
            f"is {rc['median']:.3g} s = {share:.0%} of its step."
        )
        base_peak = _peak_mb(base)
        if base_peak:
            stack = (r["nx"] + r["nv"]) * rc["columns"] * 8 / 2**20
            line += (
                f" Those stacked factors alone take (m + n) x {rc['columns']} x 8 bytes = "
                f"{stack:.3g} MB, {stack / base_peak:.3f} of fd5 + svd's peak: a floor under the "
                "step memory of a stack-and-QR recompression at this rank."
            )
    return line


def _verdicts(grid: tuple[int, int], rows: dict[str, dict]) -> list[str]:
    base = rows.get("fd5+svd")
    if base is None:
        return []
    big = grid[0] * grid[1] >= 512 * 1024
    where = "" if big else " (the targets are at 512x1024)"
    out = [_factored_line(grid, where, fac, rows[fac], base) for fac in _FACTORED if fac in rows]
    trs = {k: v for k, v in rows.items() if k != "fd5+svd" and v.get("trunc_s")}
    if trs and base.get("trunc_s"):
        best = min(trs, key=lambda k: trs[k]["trunc_s"]["median"])
        sp = speed_ratio(_spread(base["trunc_s"]), _spread(trs[best]["trunc_s"]))
        share = base["trunc_s"]["median"] / (base["s_per_time"]["median"] * base["dt"])
        rest = base["s_per_time"]["median"] * base["dt"] - base["trunc_s"]["median"]
        same = trs[best].get("rank_summary") == base.get("rank_summary")
        out.append(
            f"- {grid[0]}x{grid[1]}{where}: fastest truncation {best} vs the svd truncation per "
            f"stage {sp} (target >= {SPEEDUP_TRUNC:g}x: {_meets(sp, SPEEDUP_TRUNC)}); ranks "
            f"{'the same' if same else 'differ'} ({trs[best].get('rank_summary')} vs "
            f"{base.get('rank_summary')}). What dominates (measured: truncation time x stages "
            f"/ step time): the svd truncation is {share:.0%} of an fd5 + svd step; the rest, "
            f"{rest:.3g} s per step, is the fd5 right-hand side and field solve on the full grid, "
            f"so no truncation can make fd5 + T more than "
            f"{base['s_per_time']['median'] * base['dt'] / rest:.3g}x faster than fd5 + svd."
        )
    return out


def _rule_lines(runs: dict[tuple, dict[str, dict]]) -> list[str]:
    """Per grid measured under both tolerance rules, the latest run of each side by side: the
    rank each rule keeps and the factored solvers' speed-ups (the cost of the tighter stage
    tolerance of the default)."""
    from neuralfactor.vlasov.solver import stage_tolerance

    latest: dict[tuple, dict[str | None, dict[str, dict]]] = {}
    for (nx, nv, _), rows in sorted(runs.items()):  # dates sort: the last one wins
        latest.setdefault((nx, nv), {})[per(next(iter(rows.values())))] = rows
    out = []
    for (nx, nv), by in sorted(latest.items()):
        if (
            set(by) != {"time", "stage"}
            or "fd5+svd" not in by["time"]
            or "fd5+svd" not in by["stage"]
        ):
            continue
        parts = []
        for rule, words in (("time", "per unit of time (the default)"), ("stage", "per stage")):
            rows, base = by[rule], by[rule]["fd5+svd"]
            ups = ", ".join(
                f"{fac} {speed_ratio(_spread(base['s_per_time']), _spread(rows[fac]['s_per_time'])).ratio:.3g}x"
                for fac in _FACTORED
                if fac in rows
            )
            parts.append(
                f"{words}: stage tolerance {stage_tolerance(base['tol'], rule, base['dt']):.2g}, "
                f"ranks {base.get('rank_summary')}, {ups} against fd5 + svd"
            )
        out.append(
            f"- {nx}x{nv}, the two tolerance rules (latest run of each): {'; '.join(parts)}. The "
            "tighter stage tolerance keeps more rank; fd5 + svd's full SVD costs the same at any "
            "rank, while a factored step grows as (m + n) R^2 with R = 6r stacked columns."
        )
    return out


def speed_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The speed-window section: method, one table per grid, the verdicts."""
    runs = _runs(records)
    if not runs:
        return []
    lines = [
        "## Speed and memory: short windows, solvers interleaved",
        "",
        "Generated from `docs/results/records/low-rank-speed.jsonl`, written by "
        "`python benchmarks/low_rank_solvers.py --speed-window T --grid MxN` (strong Landau, "
        "tol 1e-5; with T = 0.05 about 5 minutes at 512x1024 on a loaded 2-core machine). Every "
        "run is listed, repeats are not merged: the difference between two runs of a grid is "
        "the load's effect beyond what the interleaving evens out. A "
        "full-rank spectral run advances to t = warm-up; every solver starts from that frame, "
        "runs two untimed blocks, then blocks of `block_steps` steps over T units of simulated "
        "time, the solvers' blocks interleaved round by round in a rotating order (one "
        "process, one thread) so machine load hits all of them alike. Times: wall seconds per "
        "unit simulated time, median and quartiles over the blocks (a block's time ends at its "
        "last step: the frame's diagnostics are excluded). `vs fd5 + svd`: ratio of medians "
        "with its quartile range, `within noise` when the spreads overlap "
        "(`neuralfactor.core.timing.speed_ratio`). State MB: the exact bytes carried between "
        "steps (fd5: three m x n grids; lowrank: three factored states; dlr: one). Memory "
        "is measured in a fresh process per solver, the peak resident set read after every "
        "step, before any frame is formed (allocations >= 64 KiB mmapped, so the peak is the "
        "live working set; `neuralfactor.bench.solver_speed.measure_memory`). Step MB (newer "
        "runs): the peak over a few steps above the resident set after three "
        "unmeasured warm-up steps, the same for every solver (the full state is then carried "
        "and one-time costs, such as a first LAPACK call paging its code in, are paid): the "
        "working memory of a step on top of the state (stage terms, the truncation's or "
        "recompression's workspace, the new state before the oldest is freed); peak MB = "
        "state MB + step MB, the memory target's measure. RSS increase MB (older runs): the "
        "peak above the resident set right after set-up, so it also counted the state's growth "
        "over the first steps and the one-time costs. For "
        "lowrank the `trunc.` columns are its recompression of a stage timed alone (QR of the "
        "stacked factors + SVD of the core, on random factors of the stage's width, which keep "
        "every column: an upper bound), beside its step time measured in the window; the rest "
        "of its step (the factored stage terms, densities, field solve and Python overhead) is "
        "not broken down.",
        "",
    ]
    for (nx, nv, date), rows in sorted(runs.items()):
        grid = (nx, nv)
        r0 = next(iter(rows.values()))
        lines += [
            f"### {nx}x{nv}, run of {date}",
            "",
            (
                ""
                if per(r0) is None
                else f"Tolerance {r0['tol']:g} per "
                f"{'unit of simulated time' if per(r0) == 'time' else 'stage'}; "
            )
            + f"dt {r0['dt']:g}, warm-up to t = {r0['warmup']:g}, window T = {r0['window']:g} in "
            f"blocks of {r0['block_steps']} steps ({r0['blocks']} timed blocks per solver); "
            f"{r0['platform']}, torch {r0['torch']}, {r0['threads']} thread; "
            f"load average (1 min) {r0['loadavg_before']:.2f} before and "
            f"{r0['loadavg_after']:.2f} after the timing"
            + (
                " (**shared machine under load: the interleaving spreads the load over all "
                "solvers alike, the absolute times are indicative only**)."
                if max(r0["loadavg_before"], r0["loadavg_after"]) > 1.5
                else "."
            ),
            "",
            *_table(rows),
            "",
            *_verdicts(grid, rows),
            "",
        ]
    rules = _rule_lines(runs)
    return lines + ([*rules, ""] if rules else [])


def mass_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The mass-drift section (fd5 + T with and without the default correction)."""
    rows = [r for r in records if r.get("kind") == "mass-drift"]
    if not rows:
        return []
    latest = {(r["case"], r["solver"], r["mass_correction"]): r for r in rows}
    on = [r for r in latest.values() if r["mass_correction"]]
    worst = max(on, key=lambda r: r["mass_drift"]) if on else None
    r0 = rows[0]
    lines = [
        "## Mass of fd5 + T with the default mass correction",
        "",
        "The Results table's fd5 rows above were measured before fd5 with a truncation was "
        "mass-corrected by default (they carry no `mass_correction` key: plain truncation). "
        f"Short runs at {r0['nx']}x{r0['nv']} to t = {r0['t_end']:g}, tol {r0['tol']:g} "
        "(`--mass-drift`), with the default correction (the rank-one c w(v) term after every "
        "truncation) and, for svd, without it:",
        "",
        "| case | solver | mass correction | mass drift |",
        "|---|---|---|---|",
    ]
    for (case, solver, corr), r in sorted(latest.items()):
        lines.append(f"| {case} | {solver} | {'on' if corr else 'off'} | {r['mass_drift']:.1e} |")
    if worst is not None:
        met = worst["mass_drift"] <= MASS_TOL
        lines += [
            "",
            f"- Mass conserved to {MASS_TOL:g} relative by fd5 + T with the correction: "
            f"{'met' if met else 'MISSED'} (worst {worst['mass_drift']:.1e}: "
            f"{worst['solver']}, {worst['case']}).",
        ]
    return lines + [""]


def render_speed_section(
    records: Sequence[dict[str, Any]], main_records: Sequence[dict[str, Any]] = ()
) -> str:
    """The sections as text to append to the page ("" without records): mass drift and speed
    windows from ``records``, the learned truncation from the Results table's
    ``main_records``."""
    lines = learned_lines(main_records) + mass_lines(records) + speed_lines(records)
    return "\n".join(lines) if not lines else "\n" + "\n".join(lines)
