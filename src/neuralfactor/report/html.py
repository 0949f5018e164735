"""A static, self-contained HTML report rendered from saved records only.

``render_report(run_dir)`` reads ``run_dir/*/records*.jsonl`` (one directory per trained model,
as written by :func:`neuralfactor.amortized.study.evaluate_run`), the ``samples*.npz`` beside
them and ``run_dir/demo.json`` (resolved configuration, versions, device), draws the figures
into ``run_dir/report/`` and writes ``run_dir/report/index.html`` with the PNGs inlined. No
number is recomputed from data: every figure and table can be regenerated from the records.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from neuralfactor.io import atomic_write_text, read_json, read_jsonl
from neuralfactor.report import figures

__all__ = ["ReportError", "collect_records", "conclusions", "render_report"]

REQUIRED = (
    "method",
    "rank",
    "split",
    "scaled_loss_mean",
    "ratio_mean",
    "seconds_per_matrix",
    "optimum_mean",
    "per_frame_loss",
    "t",
    "kind",
)


class ReportError(ValueError):
    """A run directory's records are missing or corrupt; the message names the file."""


def collect_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """All evaluation records under ``run_dir``, validated; errors name the file and the problem."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory.")
    files = sorted(run_dir.glob("*/records*.jsonl"))
    if not files:
        raise ReportError(
            f"{run_dir} holds no records (expected */records*.jsonl from `neuralfactor evaluate` "
            f"or `neuralfactor demo`)."
        )
    out = []
    for f in files:
        try:
            rows = read_jsonl(f)
        except ValueError as exc:
            raise ReportError(f"Corrupt records file: {exc}") from None
        if not rows:
            raise ReportError(f"Records file {f} is empty.")
        for i, r in enumerate(rows, 1):
            missing = [k for k in REQUIRED if k not in r]
            if missing:
                raise ReportError(f"{f}, record {i}: missing fields {missing}.")
            r["_source"] = str(f.relative_to(run_dir))
        out += rows
    return out


def _fmt_us(s: float) -> str:
    return "-" if s != s else f"{s * 1e6:,.0f}"


def _primary(at: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of one timed run: the evaluation of the plain (non-nested) model if any."""
    sources = sorted({r["_source"] for r in at})
    plain = [r["_source"] for r in at if r["kind"] == "learned" and not r.get("nested", False)]
    src = plain[0] if plain else sources[0]
    return [r for r in at if r["_source"] == src]


#: Accuracy band of the conclusions: speeds are compared only between methods within it.
BAND = 1.05


def _name(r: dict[str, Any]) -> str:
    """A method's name, marked ``(warm)`` when it was warm-started."""
    return r["method"] + (" (warm)" if r.get("warm") else "")


def _speed(base: dict[str, Any], other: dict[str, Any]) -> str:
    """:func:`~neuralfactor.core.timing.speed_ratio`'s verdict on ``other`` against ``base``."""
    from neuralfactor.core.timing import Spread, speed_ratio

    return speed_ratio(Spread.from_record(base), Spread.from_record(other)).verdict


def conclusions(records: list[dict[str, Any]]) -> list[str]:
    """Plain-language findings computed from the records (accuracy, speed, training, failure).

    Every comparison uses the records of one timed run (one evaluation), so a speed is never
    compared with a baseline timed in another run; speeds are compared only between methods
    within ``BAND`` times the optimum, ties within timing noise are named
    (:func:`~neuralfactor.core.timing.speed_ratio`), and warm-started methods say ``warm``.
    """
    lines = []
    main = [r for r in records if r["kind"] != "analysis"]
    for split in ("interpolation", "extrapolation"):
        rs = [r for r in main if r["split"] == split]
        if not rs:
            continue
        for k in sorted({r["rank"] for r in rs}):
            at = _primary([r for r in rs if r["rank"] == k])
            nonexact = [r for r in at if r["method"] not in ("svd", "svds-arpack")]
            best = min(nonexact, key=lambda r: r["ratio_mean"])
            learned = [r for r in at if r["kind"] == "learned"]
            line = (
                f"{split}, rank {k}: most accurate method other than the exact SVD is "
                f"<b>{best['method']}</b> ({best['ratio_mean']:.3f}x the optimum)"
            )
            band = [r for r in at if r["ratio_mean"] <= BAND]
            if band:
                fast = min(band, key=lambda r: r["seconds_per_matrix"])
                ties = [
                    _name(r) for r in band if r is not fast and _speed(fast, r) == "within noise"
                ]
                line += (
                    f"; fastest within {BAND}x of the optimum is <b>{_name(fast)}</b> "
                    f"({_fmt_us(fast['seconds_per_matrix'])} µs/matrix"
                    + (f"; within timing noise of {', '.join(ties)}" if ties else "")
                    + ")."
                )
            else:
                line += "."
            for plain in [r for r in learned if "+" not in r["method"]] or learned[:1]:
                line += " " + _learned_sentence(plain, learned, band)
            lines.append(line)
    nested = [
        r for r in main if r.get("nested") and r["kind"] == "learned" and "+" not in r["method"]
    ]
    if nested:
        by_rank = ", ".join(
            f"rank {r['rank']}: {r['ratio_mean']:.2f}x"
            for r in sorted(nested, key=lambda r: r["rank"])
        )
        lines.append(
            f"One nested model ({nested[0]['method']}, trained once in "
            f"{nested[0]['fit_seconds']:.0f} s) serves every rank: {by_rank} the optimum."
        )
    ex = {(r["method"], r["rank"]): r for r in main if r["split"] == "extrapolation"}
    it = {
        (r["method"], r["rank"]): r
        for r in main
        if r["split"] == "interpolation" and not r.get("nested", False)
    }
    for (m, k), r in sorted(ex.items()):
        if r["kind"] == "learned" and "+" not in m and (m, k) in it:
            a, b = r["ratio_mean"], it[(m, k)]["ratio_mean"]
            refined = ex.get((m + "+refine", k), {}).get("ratio_mean", float("nan"))
            # a failure only where extrapolation leaves the band and is clearly worse
            fails = a > BAND and a > BAND * b
            lines.append(
                (
                    "Where learning fails: on extrapolation (unseen later times) "
                    if fails
                    else "On extrapolation (unseen later times) "
                )
                + f"{m} at rank {k} is {a:.2f}x the optimum against {b:.2f}x on "
                f"interpolation; least-squares refinement brings it to {refined:.2f}x."
            )
    return lines


def _learned_sentence(
    plain: dict[str, Any], learned: list[dict[str, Any]], band: list[dict[str, Any]]
) -> str:
    """One learned model of a timed evaluation: its ratio alone and refined, its training
    time, and whether its speed pays for the training against the fastest classical method
    within ``BAND`` of the optimum."""
    cost = plain["fit_seconds"]
    peers = [r for r in band if r["kind"] != "learned"]
    if plain["ratio_mean"] > BAND or not peers:
        be = (
            f"is outside {BAND}x of the optimum, so its speed is not compared with methods that are"
            if plain["ratio_mean"] > BAND
            else f"has no classical method within {BAND}x of the optimum to be compared with"
        )
    else:
        ref = min(peers, key=lambda r: r["seconds_per_matrix"])
        per = ref["seconds_per_matrix"] - plain["seconds_per_matrix"]
        if _speed(ref, plain) == "faster" and per > 0:
            be = (
                f"pays for its training after {cost / per:,.0f} matrices against "
                f"{_name(ref)}, the fastest other method within {BAND}x"
            )
        else:
            be = (
                f"is not faster per matrix than {_name(ref)} (within {BAND}x of the "
                "optimum too), so training never pays off in time"
            )
    refined = next((r for r in learned if r["method"] == plain["method"] + "+refine"), None)
    return (
        f"The network alone ({plain['method']}) is {plain['ratio_mean']:.2f}x the optimum"
        + (
            f", with least-squares refinement ({refined['method']}) "
            f"<b>{refined['ratio_mean']:.3f}x</b>"
            if refined
            else ""
        )
        + f"; its training took {cost:.0f} s and it {be}."
    )


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>split</th><th>rank</th><th>method</th><th>scaled loss</th>"
        "<th>ratio to optimum</th><th>µs / matrix</th><th>training s</th><th>timed in</th></tr>"
    )
    body = ""
    for r in rows:
        fit = f"{r['fit_seconds']:.1f}" if r.get("fit_seconds") else "-"
        body += (
            f"<tr><td>{r['split']}</td><td>{r['rank']}</td><td>{html.escape(r['method'])}</td>"
            f"<td>{r['scaled_loss_mean']:.3e}</td><td>{r['ratio_mean']:.3f}</td>"
            f"<td>{_fmt_us(r['seconds_per_matrix'])}</td><td>{fit}</td>"
            f"<td>{html.escape(r['_source'].split('/')[0])}</td></tr>"
        )
    return f"<table>{head}{body}</table>"


def _img(path: Path, alt: str, *, wide: bool = False) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure{cls}><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


CSS = """body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:nth-child(3),th{text-align:left}.summary{background:#f3f6fa;border-left:4px solid #3a6ea5;padding:.6em 1em}
figure{display:inline-block;margin:.5em;vertical-align:top}img{max-width:620px}figure.wide img{max-width:100%}
figure.wide{display:block}figcaption{font-size:13px;color:#444;max-width:1200px}
details{margin:.8em 0}summary{cursor:pointer;font-weight:600}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}"""


def _panels(records: list[dict[str, Any]]) -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """Per split, one (title, records of one timed evaluation) panel per rank."""
    main = [r for r in records if r["kind"] != "analysis"]
    out: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for split in ("interpolation", "extrapolation"):
        rs = [r for r in main if r["split"] == split]
        out[split] = [
            (f"{split}, rank {k}", _primary([r for r in rs if r["rank"] == k]))
            for k in sorted({r["rank"] for r in rs})
        ]
    return {k: v for k, v in out.items() if v}


def _snapshots(run_dir: Path, records: list[dict[str, Any]]) -> list[tuple[str, dict]]:
    """(split, arrays) of every ``*/snapshots.npz`` under ``run_dir``, interpolation first."""
    from neuralfactor.report.snapshots import SNAPSHOTS_FILE, load_snapshots

    found = []
    for npz in sorted(run_dir.glob(f"*/{SNAPSHOTS_FILE}")):
        try:
            s = load_snapshots(npz)
        except ValueError as exc:
            raise ReportError(str(exc)) from None
        found.append((str(s.get("split", "interpolation")), s))
    return sorted(found, key=lambda p: (p[0] != "interpolation", p[0], int(p[1]["rank"])))


def _figures(run_dir: Path, records: list[dict[str, Any]], out: Path) -> tuple[str, str]:
    """The figures that open the report and those folded under "more figures" (HTML)."""
    top, more = [], []
    for split, panels in _panels(records).items():
        p = figures.plot_accuracy_speed(panels, out / f"{split}-accuracy-speed.png", band=BAND)
        top.append(
            _img(
                p,
                f"{split}: accuracy against speed, every method of one timed evaluation per "
                f"rank. Lower is more accurate (1 = the exact SVD's error), left is faster; "
                f"hollow markers are warm-started methods, horizontal bars the timing quartiles, "
                f"the dashed line the Pareto front, the dotted line {BAND}x the optimum.",
                wide=True,
            )
        )
    snaps = _snapshots(run_dir, records)
    for split, s in snaps:
        k = int(s["rank"])
        p = figures.plot_frames(s, out / f"{split}-frames-r{k}.png")
        top.append(
            _img(
                p,
                f"{split}: test frames f(x, v) at {len(s['t'])} times, their rank-{k} "
                f"reconstructions by the exact SVD and by {s['method']}, and the error maps "
                f"(shared colour scales; x in Debye lengths, v in thermal speeds, t in 1/ω_p).",
                wide=True,
            )
        )
    for split, s in snaps[:1]:
        p = figures.plot_singular_values(s, out / f"{split}-singular-values.png")
        top.append(
            _img(p, f"{split}: singular-value decay of the test frames (how compressible they are)")
        )
    for split, panels in _panels(records).items():
        k, at = max(((int(t.rsplit(" ", 1)[1]), recs) for t, recs in panels), key=lambda p: p[0])
        at = [
            r
            for r in at
            if r["method"] in ("pod-basis", "svd")
            or (r["kind"] == "learned" and r["method"].split("+")[-1] in (r["method"], "refine"))
        ]
        p = figures.plot_loss_vs_time(
            at, out / f"{split}-loss-vs-time.png", title=f"{split}: per-frame loss, rank {k}"
        )
        more.append(_img(p, f"{split}: per-frame scaled loss along simulated time at rank {k}"))
        recs = [r for r in records if r["split"] == split and not r.get("nested", False)]
        p = figures.plot_error_analysis(recs, out / f"{split}-error-analysis.png")
        more.append(_img(p, f"{split}: network factors vs least-squares refits"))
    return "".join(top), "".join(more)


def render_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report/index.html`` (self-contained) and its PNG figures; return the path.

    The page opens with the figures (accuracy against speed per split and rank, the frames and
    their reconstructions, the singular-value decay), then the conclusions; the table of every
    record, further figures and the configuration follow, collapsed.
    """
    run_dir = Path(run_dir)
    records = collect_records(run_dir)
    meta_path = run_dir / "demo.json"
    meta = read_json(meta_path) if meta_path.exists() else {}
    out = run_dir / "report"
    top, more = _figures(run_dir, records, out)
    rows = sorted(
        (r for r in records if r["kind"] != "analysis"),
        key=lambda r: (r["split"], r["rank"], r["_source"], r["ratio_mean"]),
    )
    summary = "".join(f"<li>{line}</li>" for line in conclusions(records))
    env = {
        k: meta.get(k)
        for k in ("version", "torch_version", "device", "threads", "python", "started", "finished")
        if k in meta
    }
    body = f"""<h1>neuralfactor report</h1>
<p>Learned (ConvMF, the sketch encoder) and classical low-rank approximations of frames f(x, v) of a
Vlasov&ndash;Poisson simulation. The <b>optimum</b> is the exact truncated SVD's error at the same
rank (Eckart&ndash;Young); a method's <b>ratio to the optimum</b> is its scaled loss
||X &minus; X<sub>r</sub>||&sup2;/||X||&sup2; divided by the optimum's (1 = optimal).</p>
{top}
<div class="summary"><h2>Conclusion</h2><ul>{summary}</ul>
<p>Times are per matrix, all methods on the same device, dtype and batch, measured in one
run; training time is reported separately.</p></div>
<details><summary>Results table (every record)</summary><p>Rows are grouped by the evaluation
that timed them ("timed in"): each evaluation times its model and the classical baselines back
to back on the same test frames, so compare times within a group. A nested model's evaluations
repeat the baselines.</p>{_table(rows)}</details>
<details><summary>More figures</summary>{more}</details>
<details><summary>Configuration and environment</summary><pre>{html.escape(json.dumps({"environment": env, "configuration": meta.get("config", {})}, indent=2))}</pre></details>
<p>Records: {", ".join(sorted({html.escape(r["_source"]) for r in records}))}. Regenerate with
<code>neuralfactor report {html.escape(str(run_dir))}</code>.</p>"""
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>neuralfactor report'
        f"</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )
    return atomic_write_text(out / "index.html", page)
