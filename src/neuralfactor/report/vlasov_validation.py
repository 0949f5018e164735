"""docs/results/vlasov-validation.md as a pure function of its records.

:func:`neuralfactor.vlasov.validation.measure_validation` (run by
``benchmarks/vlasov_validation.py``) measures one record per table row (and one
``"section": "run"`` record with the run conditions); :func:`render_vlasov_validation` turns
those records into the page, so every number on the page, tables and prose, is read from a
record. The published reference values quoted beside the measurements (Landau damping rate
and frequency, strong Landau rates) are literature constants of
:mod:`neuralfactor.vlasov.validation`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from neuralfactor.io import atomic_write_text, read_jsonl
from neuralfactor.vlasov.validation import LANDAU_FREQ, LANDAU_RATE

__all__ = [
    "COLUMNS",
    "PAGE_COMMAND",
    "load_records",
    "records_from_page",
    "render_vlasov_validation",
    "write_vlasov_validation",
]

PAGE_COMMAND = "python benchmarks/vlasov_validation.py --from-records"
RUN_COMMAND = (
    "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "
    "python benchmarks/vlasov_validation.py"
)
#: Targets: Landau rate / frequency relative errors, instability growth rate relative error.
RATE_TARGET, FREQ_TARGET, GROWTH_TARGET = 0.02, 0.01, 0.03
NOT_RECORDED = "not recorded"


def _num(x: Any) -> str:
    """The page's generic number format: 4 decimals, or 3 significant in e-notation."""
    if x is None:
        return "-"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.3e}"
        return f"{x:.4f}"
    return str(x)


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda x: "-" if x is None else f"{x:.{digits}f}"


def _species(s: Any) -> str:
    return str([tuple(float(v) for v in row) for row in s])


def _window(w: Sequence[float]) -> str:
    return f"[{w[0]:g}, {w[1]:g}]"


def _load(x: Sequence[float] | None) -> str:
    return NOT_RECORDED if x is None else " / ".join(f"{v:.2f}" for v in x)


def _times(ts: Sequence[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in ts)


def _yes_no(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _outcome(step: Any) -> str:
    return "completed" if step is None else f"diverged at step {step}"


def _speed(r: dict) -> str:
    if r.get("speed_up") is None:
        return ""
    return f"{r['speed_up']} (min: {r['speed_up_min']:.2f}x)"


#: Section -> [(header, record key, formatter)]; formatter None: computed (see ``_cell``).
COLUMNS: dict[str, list[tuple[str, str, Callable[[Any], str] | None]]] = {
    "dispersion": [
        ("case", "case", str),
        ("k", "k", _num),
        ("species (n, u, vt)", "species", _species),
        ("Re w", "re_w", _num),
        ("Im w", "im_w", _num),
        ("published", "published", str),
    ],
    "landau": [
        ("scheme", "scheme", str),
        ("dt", "dt", _fixed(5)),
        ("rate", "rate", _num),
        ("rel. err vs -0.1533", "rate_rel_err", _num),
        ("frequency", "frequency", _num),
        ("rel. err vs 1.4156", "freq_rel_err", _num),
        ("peaks", "peaks", str),
        ("within target", "within_target", None),
        ("wall s", "wall_s", _fixed(1)),
    ],
    "strong": [
        ("grid", "grid", str),
        ("scheme", "scheme", str),
        ("early rate", "early_rate", _num),
        ("rel. vs -0.29", "early_rel_err", _num),
        ("peak times used", "early_peak_times", _times),
        ("late rate [20,40]", "late_rate", _num),
        ("rel. vs 0.0815", "late_rel_err", _num),
        ("rate, all maxima [0,15]", "alt_rate", _num),
        ("wall s", "wall_s", _fixed(1)),
    ],
    "instability": [
        ("case", "case", str),
        ("alpha", "alpha", _num),
        ("scheme", "scheme", str),
        ("dt", "dt", _fixed(4)),
        ("window", "window", _window),
        ("fitted rate", "rate", _num),
        ("dispersion root", "root", _num),
        ("rel. err", "rel_err", _num),
        ("within 3%", "within_target", None),
    ],
    "conservation": [
        ("run", "run", str),
        ("T", "T", _num),
        ("mass rel. err", "mass_rel_err", _num),
        ("energy rel. drift", "energy_rel_drift", _num),
        ("L2 rel. change", "l2_rel_change", _num),
        ("entropy rel. change", "entropy_rel_change", _num),
        ("min f", "min_f", _num),
    ],
    "ensemble": [
        ("scheme", "scheme", str),
        ("N", "N", str),
        ("max abs diff", "max_abs_diff", lambda x: f"{x:.1e}"),
        ("bitwise equal", "bitwise_equal", str),
        ("ensemble s", "ensemble_s", _fixed(2)),
        ("{N} single runs s", "singles_s", _fixed(2)),
    ],
    "stability": [
        ("CFL", "cfl", _num),
        ("dt", "dt", _fixed(4)),
        ("outcome", "diverged_step", _outcome),
        ("max L2(t)/L2(0)", "max_l2_ratio", _num),
    ],
    "performance": [
        ("grid", "grid", str),
        ("B", "B", str),
        ("scheme", "scheme", str),
        ("K", "K", str),
        ("ms/step (median of {repeats})", "ms_median", _fixed(3)),
        ("ms/step (min)", "ms_min", _fixed(3)),
        ("steps/s", "steps_per_s", _fixed(0)),
        ("run-steps/s (x B)", "run_steps_per_s", _fixed(0)),
        ("speed-up vs NumPy (median)", "speed_up", None),
        ("load 1/5/15", "load", _load),
    ],
}


def _cell(section: str, key: str, fmt: Callable[[Any], str] | None, r: dict) -> str:
    if fmt is not None:
        return fmt(r.get(key))
    if section == "landau":
        return _yes_no(
            abs(r["rate_rel_err"]) <= RATE_TARGET and abs(r["freq_rel_err"]) <= FREQ_TARGET
        )
    if section == "instability":
        return _yes_no(abs(r["rel_err"]) <= GROWTH_TARGET)
    if section == "performance":
        return _speed(r)
    raise KeyError(f"no computed column {key!r} in section {section!r}")


def _table(section: str, rows: Iterable[dict], **fields: Any) -> str:
    cols = COLUMNS[section]
    out = [
        "| " + " | ".join(h.format(**fields) for h, _, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        out.append("| " + " | ".join(_cell(section, k, f, r) for _, k, f in cols) + " |")
    return "\n".join(out)


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines records file (:func:`neuralfactor.io.read_jsonl`)."""
    return read_jsonl(path, hint="regenerate the records with benchmarks/vlasov_validation.py")


def _by_section(records: Iterable[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r.get("section", "?"), []).append(r)
    return out


def _run_lines(run: dict) -> list[str]:
    out = []
    source = run.get("source")
    date = run.get("date") or NOT_RECORDED
    args = run.get("args") or ""
    made = f"`{RUN_COMMAND}{(' ' + args) if args else ''}` on {date}"
    if source:
        made += f" ({source})"
    out.append(
        f"Measured by {made}. Regenerate: `{PAGE_COMMAND}` (rewrites this page from "
        f"`docs/results/records/{run.get('records_file', NOT_RECORDED)}`, byte for byte, "
        "without measuring).\n"
    )
    shared = run.get("shared")
    shared_txt = f"**{shared}**" if shared else f"sharing {NOT_RECORDED}"
    cpu = f"{run.get('processor') or NOT_RECORDED}, {run.get('cpu_count') or NOT_RECORDED} cores"
    v = run.get("versions") or {}
    vers = ", ".join(
        f"{k} {v.get(k, NOT_RECORDED)}"
        for k in ("neuralfactor", "torch", "numpy", "scipy", "Python")
    )
    threads = run.get("torch_threads")
    out.append(
        f"Device: CPU ({cpu}, {shared_txt}), {threads if threads is not None else NOT_RECORDED} "
        f"thread: torch threads {threads if threads is not None else NOT_RECORDED}, "
        f"BLAS/OpenMP pools {run.get('threadpools', NOT_RECORDED)}. {vers}. Load average "
        f"(1/5/15 min) at start: {_load(run.get('load_start'))}. {_gpu_line(run)}.\n"
    )
    return out


def _gpu(run: dict) -> str:
    return run.get("gpu") or NOT_RECORDED


def _gpu_line(run: dict) -> str:
    note = run.get("gpu_note")
    return f"GPU: **{_gpu(run)}**" + (f" ({note})" if note else "")


def _exp(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _notes(s: dict[str, list[dict]], run: dict) -> str:
    lines = ["## Reading these tables\n"]
    bullets = []
    b = (
        "Targets of the issue and where they stand are in the tables' last columns (\"within "
        'target"); a miss is printed **no** and is not tuned away. The fit windows are fixed in '
        "the script, stated in each section, and were chosen before looking at the fitted values"
    )
    # a later window for the same case and amplitude was added after the first one missed
    extra = []
    seen: dict[tuple, list] = {}
    for r in s.get("instability", []):
        seen.setdefault((r["case"], r["alpha"]), [])
        if tuple(r["window"]) not in seen[(r["case"], r["alpha"])]:
            seen[(r["case"], r["alpha"])].append(tuple(r["window"]))
    for (case, alpha), wins in seen.items():
        if len(wins) < 2:
            continue
        first = [
            r
            for r in s["instability"]
            if (r["case"], r["alpha"], tuple(r["window"])) == (case, alpha, wins[0])
        ]
        worst = max(abs(r["rel_err"]) for r in first)
        if worst > GROWTH_TARGET:
            extra.append(
                f"except the later {case} window{'s' if len(wins) > 2 else ''} at alpha = "
                f"{_exp(alpha)} ({', '.join(_window(w) for w in wins[1:])}), added after "
                f"{_window(wins[0])} missed by {100 * (worst - GROWTH_TARGET):.1f} points to "
                "show how much the window moves the rate at that amplitude"
            )
    bullets.append(b + (", " + "; ".join(extra) if extra else "") + ".")
    strong = s.get("strong", [])
    if strong:
        alts = [r["alt_rate"] for r in strong]
        bullets.append(
            "Strong Landau: the early rate uses the first four maxima with t <= 10.5, the late "
            "rate the maxima in [20, 40]. With all maxima in [0, 15] the early rate is "
            f"{min(alts):.4f} to {max(alts):.4f} (against {min(r['early_rate'] for r in strong):.4f}"
            f" to {max(r['early_rate'] for r in strong):.4f}): the value depends on the window, "
            "as the issue warns."
        )
    ranks = s.get("rank", [])
    if ranks:
        last = []
        for grid in dict.fromkeys(r["grid"] for r in ranks):
            sp = [r for r in ranks if r["grid"] == grid and r["scheme"] == "spectral"]
            if sp:
                top = max(sp, key=lambda r: r["t"])
                last.append(f"{top['rank']} at {grid} (t = {round(top['t'], 1):g})")
        bullets.append(
            "Numerical ranks: the spectral scheme's frames reach rank "
            + ", ".join(last)
            + "; compare with the ranks the issue quotes for a spectral scheme and for the "
            "original truncated fd data (the counts depend on the scheme's filamentation and "
            "its resolution)."
        )
    perf = s.get("performance", [])
    if perf:
        parts = []
        for grid in dict.fromkeys(r["grid"] for r in perf):
            rat = []
            for r16 in (r for r in perf if r["grid"] == grid and r["B"] > 1):
                r1 = [
                    r
                    for r in perf
                    if r["grid"] == grid and r["B"] == 1 and r["scheme"] == r16["scheme"]
                ]
                if r1:
                    rat.append(
                        f"{r16['scheme']} {r16['run_steps_per_s'] / r1[0]['run_steps_per_s']:.2f}x"
                    )
            if rat:
                parts.append(f"{grid}: {', '.join(rat)}")
        bmax = max(r["B"] for r in perf)
        bullets.append(
            f"Batching (B = {bmax}) on one CPU thread, run-steps/s relative to B = 1 in this "
            f"run: {'; '.join(parts)}. Ensembles are meant for a GPU; this run: {_gpu(run)}."
        )
        loads = [r["load"][0] for r in perf if r.get("load")]
        if loads:
            bullets.append(
                f"The CPU was shared (load averages are recorded with every row; the 1-minute "
                f"load ranged {min(loads):.2f} to {max(loads):.2f} during the timings, on "
                f"{run.get('cpu_count') or NOT_RECORDED} cores, which inflates timings "
                f"unevenly). Timings are for {run.get('torch_threads', NOT_RECORDED)} thread; "
                "runs with more threads were not taken."
            )
    for text in bullets:
        lines.append(_wrap_bullet(text))
    return "\n".join(lines[:1]) + "\n" + "\n".join(lines[1:]) + "\n"


def _wrap_bullet(text: str, width: int = 90) -> str:
    words, out, cur = text.split(" "), [], "*"
    for w in words:
        if len(cur) + 1 + len(w) > width and cur.strip("* "):
            out.append(cur)
            cur = " "
        cur += " " + w
    out.append(cur)
    return "\n".join(out)


def _rank_tables(ranks: Sequence[dict]) -> list[str]:
    """One Markdown table of numerical ranks over time per grid (a column per scheme)."""
    md = []
    for grid in dict.fromkeys(r["grid"] for r in ranks):
        rs = [r for r in ranks if r["grid"] == grid]
        names = list(dict.fromkeys(r["scheme"] for r in rs))
        times = sorted({round(r["t"], 1) for r in rs})
        rows = []
        for tt in times:
            row = [f"{tt:.2f}"]
            for nm in names:
                hit = [r for r in rs if r["scheme"] == nm and abs(r["t"] - tt) < 0.05]
                if not hit:
                    row.append("-")
                else:
                    kept = hit[0].get("kept")
                    row.append(str(hit[0]["rank"]) + (f" (kept {kept})" if kept else ""))
            rows.append(row)
        head = ["t", *names]
        tab = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        tab += ["| " + " | ".join(r) + " |" for r in rows]
        md.append(f"**{grid}**\n\n" + "\n".join(tab) + "\n")
    return md


def _damping_sections(s: dict[str, list[dict]]) -> list[str]:
    """Sections 1-3: dispersion roots, linear and strong Landau damping, ranks over time."""
    md = ["## 1. Reference roots of the kinetic dispersion relation\n"]
    md.append(
        "eps(k, w) = 1 + sum_s n_s/(k vt_s)^2 (1 + z_s Z(z_s)), z_s = (w - k u_s)/(sqrt(2) k "
        "vt_s), Z(z) = i sqrt(pi) wofz(z), solved by a secant iteration "
        "(`neuralfactor.vlasov.dispersion_root`).\n"
    )
    md.append(_table("dispersion", s.get("dispersion", [])) + "\n")

    md.append(
        "## 2. Linear Landau damping (alpha = 0.01, k = 0.5, 64x128, x in [0, 4pi], "
        "v in [-2pi, 2pi])\n"
    )
    md.append(
        "Fit: local maxima of log ||E||_2 in t in [2, 25] (parabolic refinement), "
        f"frequency = pi / mean peak spacing. Targets: rate within {100 * RATE_TARGET:g}% of "
        f"{LANDAU_RATE}, frequency within {100 * FREQ_TARGET:g}% of {LANDAU_FREQ}.\n"
    )
    md.append(_table("landau", s.get("landau", [])) + "\n")

    cons = s.get("conservation", [])
    t_s = max((r["T"] for r in cons if r["run"].startswith("strong Landau")), default=None)
    md.append(
        f"## 3. Strong Landau damping (alpha = 0.5, k = 0.5), t in [0, "
        f"{NOT_RECORDED if t_s is None else format(t_s, 'g')}], dt = min(hx, hv)/20\n"
    )
    md.append(
        "Early rate: line through the first four maxima of log ||E||_2 with t <= 10.5; "
        "late rate: line through the maxima in t in [20, 40]. Published: ~ -0.29 "
        "and ~ +0.0815 (the early value depends strongly on the window: with all "
        "maxima in [0, 15] it differs, shown in the last columns).\n"
    )
    md.append(_table("strong", s.get("strong", [])) + "\n")
    md.append("### Numerical rank of the frames over time (singular values > 1e-3 x s_max)\n")
    md.append(
        "The spectral scheme keeps filaments (rank grows), fd5 dissipates them, and "
        "fd5 with the SVD truncation after every stage (rel. Frobenius tol 1e-5) stays "
        "lowest; 'kept' is the rank the truncation kept (tol 1e-5, so higher than the "
        "1e-3 count).\n"
    )
    return md + _rank_tables(s.get("rank", []))


def _instability_sections(s: dict[str, list[dict]]) -> list[str]:
    """Sections 4-7: growth rates, conservation, ensemble == singles, fd5 stability."""
    md = ["## 4. Two-stream and bump-on-tail growth rates (64x256)\n"]
    md.append(
        "Least-squares fit of log ||E||_2 on the window (both modes give a smooth "
        "||E|| envelope: two-stream is purely growing, bump-on-tail a single travelling "
        f"wave). Target: within {100 * GROWTH_TARGET:g}% of the dispersion root. With alpha = "
        "1e-3 the damped modes excited by the perturbation dominate until t ~ 15 and "
        "saturation starts near t ~ 28, leaving a short window; alpha = 1e-6 leaves "
        "[20, 40].\n"
    )
    md.append(_table("instability", s.get("instability", [])) + "\n")

    md.append("## 5. Conservation\n")
    md.append(
        "Max over t of |mass(t) - mass(0)| / mass(0) and of the total (kinetic + "
        "electric) energy, relative change of the L2 norm and of the entropy "
        "-int f log f (over f > 0) at the final time, and the most negative value of "
        "f. Mass is conserved to round-off by both schemes without truncation (zero "
        "Fourier modes untouched / telescoping upwind fluxes); the SVD truncation does "
        "not conserve mass exactly.\n"
    )
    md.append(_table("conservation", s.get("conservation", [])) + "\n")

    ens = s.get("ensemble", [])
    md.append("## 6. An ensemble of N equals N single runs\n")
    md.append(_table("ensemble", ens, N=ens[0]["N"] if ens else "N") + "\n")

    md.append("## 7. fd5 time-step stability (weak Landau, 32x64, t = 30)\n")
    md.append(
        "CFL = dt vmax / hx (max|E| ~ 0.02 is negligible here). The solver warns "
        "above 0.4; the original rule dt = min(hx, hv)/20 with hv = hx/2 gives vmax dt / "
        "hx = 0.157 plus max|E| dt / hv = max|E| / 20.\n"
    )
    md.append(_table("stability", s.get("stability", [])) + "\n")
    return md


def _performance_section(s: dict[str, list[dict]], run: dict) -> list[str]:
    """Section 8: steps per second against the NumPy reference, load and wall time."""
    threads = run.get("torch_threads", NOT_RECORDED)
    repeats = run.get("repeats", NOT_RECORDED)
    md = [f"## 8. Steps per second, CPU, {threads} thread\n"]
    md.append(
        f"Load average before timing: {_load(run.get('load_before_timing'))}. Median (and min) "
        f"of {repeats} timed calls of K steps "
        "after one warm-up, stepping only (no diagnostics, no I/O); the spectral "
        "scheme fuses the inner half steps in x as in a run saving every K steps. "
        "Baseline: the same Strang/FFT step in NumPy + scipy.fft (1 worker), "
        "written in the script and timed in the same run.\n"
    )
    md.append(_table("performance", s.get("performance", []), repeats=repeats) + "\n")
    md.append(f"{_gpu_line(run)}.\n")
    wall = run.get("wall_s")
    md.append(
        f"Load average at the end: {_load(run.get('load_end'))}; total wall time "
        f"{NOT_RECORDED if wall is None else format(wall, '.0f') + ' s'}.\n"
    )
    return md


def render_vlasov_validation(records: Sequence[dict[str, Any]]) -> str:
    """The whole page from the records (see the module docstring); no measurement."""
    s = _by_section(records)
    if "run" not in s:
        raise ValueError(
            "vlasov-validation records hold no 'run' record (run conditions); expected one line "
            'with "section": "run"; regenerate them with benchmarks/vlasov_validation.py.'
        )
    run = s["run"][0]
    md = ["# Vlasov-Poisson solver: validation and timing\n"]
    md += _run_lines(run)
    md.append(_notes(s, run))
    md += _damping_sections(s) + _instability_sections(s) + _performance_section(s, run)
    return "\n".join(md)


def write_vlasov_validation(records_path: str | Path, out: str | Path) -> Path:
    """Render the page from ``records_path`` and write it atomically to ``out``."""
    return atomic_write_text(out, render_vlasov_validation(load_records(records_path)))


# -- conversion of the earlier, hand-assembled page ---------------------------------------------

_SECTION_OF_HEADING = {
    "## 1.": "dispersion",
    "## 2.": "landau",
    "## 3.": "strong",
    "## 4.": "instability",
    "## 5.": "conservation",
    "## 6.": "ensemble",
    "## 7.": "stability",
    "## 8.": "performance",
}


def _parse_cell(section: str, key: str, text: str) -> Any:
    text = text.strip()
    if key in ("case", "scheme", "grid", "run", "published"):
        return text
    if key == "species":
        return [list(t) for t in ast.literal_eval(text)]
    if key == "early_peak_times":
        return [float(x) for x in text.split(",")]
    if key == "window":
        return [float(x) for x in text.strip("[]").split(",")]
    if key == "load":
        return [float(x) for x in text.split("/")]
    if key == "diverged_step":
        m = re.fullmatch(r"diverged at step (\d+)", text)
        return int(m.group(1)) if m else None
    if key == "bitwise_equal":
        return text == "True"
    if text in ("-", ""):
        return None
    if re.fullmatch(r"-?\d+", text) and key in ("peaks", "N", "B", "K"):
        return int(text)
    return float(text)


def records_from_page(text: str, source: str = "converted from the committed page") -> list[dict]:
    """Records holding exactly the values printed on an earlier version of the page.

    Used once to keep the numbers of a run whose records were not committed; every record
    carries ``"source": source``.
    """
    recs: list[dict] = []
    run: dict[str, Any] = {"section": "run", "source": source}
    section = None
    grid = None
    lines = text.splitlines()
    i = 0
    m = re.search(r"on (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text)
    run["date"] = m.group(1) if m else None
    m = re.search(
        r"Device: CPU \(([^,]+), (\d+) cores, \*\*([^*]+)\*\*\), (\d+) thread: torch threads "
        r"(\d+), BLAS/OpenMP pools (\{[^}]*\})\. (.*?)\. Load average \(1/5/15 min\) at start: "
        r"([\d. /]+)\. GPU: \*\*([^*]+)\*\*(?: \(([^)]*)\))?",
        text,
    )
    if m:
        run.update(
            processor=m.group(1),
            cpu_count=int(m.group(2)),
            shared=m.group(3),
            torch_threads=int(m.group(5)),
            threadpools=m.group(6),
            versions=dict(v.rsplit(" ", 1) for v in m.group(7).split(", ")),
            load_start=[float(x) for x in m.group(8).split("/")],
            gpu=m.group(9).strip(),
            gpu_note=m.group(10),
        )
    m = re.search(r"Load average before timing: ([\d. /]+)\. Median \(and min\) of (\d+)", text)
    if m:
        run["load_before_timing"] = [float(x) for x in m.group(1).split("/")]
        run["repeats"] = int(m.group(2))
    m = re.search(r"Load average at the end: ([\d. /]+); total wall time (\d+) s", text)
    if m:
        run["load_end"] = [float(x) for x in m.group(1).split("/")]
        run["wall_s"] = float(m.group(2))
    while i < len(lines):
        line = lines[i]
        for prefix, name in _SECTION_OF_HEADING.items():
            if line.startswith(prefix):
                section = name
        if line.startswith("### Numerical rank"):
            section = "rank"
        gm = re.fullmatch(r"\*\*(\d+x\d+)\*\*", line)
        if gm:
            grid = gm.group(1)
        if line.startswith("| ") and section and lines[i + 1].startswith("|---"):
            header = [h.strip() for h in line.strip("|").split("|")]
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if section == "rank":
                    for name, cell in zip(header[1:], cells[1:], strict=True):
                        if cell == "-":
                            continue
                        rm = re.fullmatch(r"(\d+)(?: \(kept (\d+)\))?", cell)
                        recs.append(
                            {
                                "section": "rank",
                                "grid": grid,
                                "scheme": name,
                                "t": float(cells[0]),
                                "rank": int(rm.group(1)),
                                "kept": int(rm.group(2)) if rm.group(2) else None,
                                "source": source,
                            }
                        )
                else:
                    rec: dict[str, Any] = {"section": section}
                    for (_, key, fmt), cell in zip(COLUMNS[section], cells, strict=True):
                        if fmt is None and section != "performance":
                            continue  # computed on rendering
                        if key == "speed_up":
                            sm = re.fullmatch(r"(\S+) \(min: ([\d.]+)x\)", cell)
                            rec["speed_up"] = sm.group(1) if sm else None
                            rec["speed_up_min"] = float(sm.group(2)) if sm else None
                            continue
                        rec[key] = _parse_cell(section, key, cell)
                    rec["source"] = source
                    recs.append(rec)
                i += 1
            continue
        i += 1
    return [run, *recs]
