"""Markdown of the ``frames`` suite: pure functions of its records.

Speed ratios are decided by :func:`neuralfactor.core.timing.speed_ratio` (``~1x`` within
noise); speed is compared only within the 1.05 accuracy band and warm-started rows say so.
"""

from __future__ import annotations

from typing import Any

from neuralfactor.bench.frames_config import BASELINE
from neuralfactor.bench.tables import fmt_number
from neuralfactor.core.timing import Spread, speed_ratio

__all__ = ["FRAME_COLUMNS", "flop_cells", "frames_markdown", "throughput_markdown"]

FRAME_COLUMNS = (
    "method",
    "family",
    "dtype",
    "timed",
    "us/matrix",
    "floor us",
    "x floor",
    "floor_flop us",
    "x flop floor",
    "x scipy-gesdd",
    "scaled loss",
    "ratio mean",
    "ratio max",
    "fit s",
)


def _fmt(x: float) -> str:
    return fmt_number(x, sci_above=1e5)


def flop_cells(r: dict[str, Any]) -> list[str]:
    """``floor_flop us`` and ``x flop floor`` of a row: ``not recorded`` for records that
    predate the flop floor, ``-`` where the method has no stated operation count."""
    if "gemm_rate_flops" not in r:
        return ["not recorded", "not recorded"]
    if r.get("flops") is None or r.get("floor_flop_s") is None:
        return ["-", "-"]
    return [_fmt(r["floor_flop_s"] * 1e6), _fmt(r["x_flop_floor"])]


def _case(r: dict[str, Any]) -> tuple:
    return (r["m"], r["n"], r["rank"], r["batch"])


def _is_warm(r: dict[str, Any]) -> bool:
    """Warm-started row (records before the harness recorded it: warm-subspace always was)."""
    return bool(r.get("warm", r["method"] == "warm-subspace"))


def frames_markdown(records: list[dict[str, Any]]) -> str:
    """Summary + one table per (size, rank, batch), from the records alone."""
    rows = [r for r in records if r.get("suite") == "frames"]
    base = {
        _case(r): Spread.from_record(r)
        for r in rows
        if r["method"] == BASELINE and r["dtype"] == "float32" and "error" not in r
    }
    cases = sorted({_case(r) for r in rows})
    out = [
        "| size | rank | batch | fastest with ratio max <= 1.05 | us/matrix | x floor "
        "| floor_flop us | x flop floor | x scipy-gesdd | best learned (+refine) | us/matrix "
        "| ratio mean | speed vs fastest classical, same band |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        ok = [r for r in rows if _case(r) == c and "error" not in r]
        good = [r for r in ok if r["ratio_max"] <= 1.05 and r["family"] != "learned"]
        good_all = [r for r in ok if r["ratio_max"] <= 1.05]
        best = min(good_all, key=lambda r: r["seconds_per_matrix"], default=None)
        warm = " warm" if best is not None and _is_warm(best) else ""
        best_cl = min(good, key=lambda r: r["seconds_per_matrix"], default=None)
        learned = [r for r in ok if r["family"] == "learned" and r["method"].endswith("+refine")]
        bl = min(learned, key=lambda r: r["ratio_mean"], default=None)
        b = base.get(c)
        cells = [f"{c[0]}x{c[1]}", str(c[2]), str(c[3])]
        if best is None:
            cells += ["none", "-", "-", "-", "-", "-"]
        else:
            cells += [
                f"{best.get('label', best['method'])} ({best['dtype']}{warm}, "
                f"ratio {best['ratio_max']:.4f})",
                _fmt(best["seconds_per_matrix"] * 1e6),
                _fmt(best["x_floor"]),
                *flop_cells(best),
                "1"
                if best["method"] == BASELINE
                else (str(speed_ratio(b, Spread.from_record(best))) if b else "-"),
            ]
        if bl is None:
            cells += ["-", "-", "-", "-"]
        else:
            # speed is compared only within the same accuracy band (ratio max <= 1.05)
            if best_cl is None or bl["ratio_max"] > 1.05:
                rel = "- (not in the 1.05 band)"
            else:
                rel = str(speed_ratio(Spread.from_record(best_cl), Spread.from_record(bl)))
                if _is_warm(best_cl):
                    rel += f" vs {best_cl['method']} (warm)"
            cells += [
                f"{bl['method']} ({bl['dtype']})",
                _fmt(bl["seconds_per_matrix"] * 1e6),
                f"{bl['ratio_mean']:.3f}",
                rel,
            ]
        out.append("| " + " | ".join(cells) + " |")
    text = ["### Summary", "", *out, ""]
    for c in cases:
        text += [f"### {c[0]}x{c[1]}, rank {c[2]}, batch {c[3]}", ""]
        text.append("| " + " | ".join(FRAME_COLUMNS) + " |")
        text.append("|" + "---|" * len(FRAME_COLUMNS))
        for r in rows:
            if _case(r) != c:
                continue
            if "error" in r:
                text.append(
                    f"| {r.get('label', r['method'])} | {r['family']} | {r['dtype']} | 0 | failed "
                    "| - | - | - | - | - | "
                    f"{r['error'][:90].replace('|', '/')} | - | - | - |"
                )
                continue
            b = base.get(c)
            cells = [
                r.get("label", r["method"]) + (" (warm)" if _is_warm(r) else ""),
                r["family"],
                r["dtype"],
                str(r["timed_batch"]),
                _fmt(r["seconds_per_matrix"] * 1e6),
                _fmt(r["floor_seconds_per_matrix"] * 1e6),
                _fmt(r["x_floor"]),
                *flop_cells(r),
                str(speed_ratio(b, Spread.from_record(r))) if b else "-",
                _fmt(r["scaled_loss_mean"]),
                f"{r['ratio_mean']:.4f}",
                f"{r['ratio_max']:.4f}",
                _fmt(r["fit_seconds"]) if r["fit_seconds"] else "-",
            ]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    return "\n".join(text)


def throughput_markdown(records: list[dict[str, Any]]) -> str:
    rows = [r for r in records if r.get("suite") == "train-throughput"]
    text = [
        "| device | size | rank | dtype | threads | batch | steps | s/step | frames/s | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text.append(
            f"| {r['device']} ({r['device_name']}) | {r['m']}x{r['n']} | {r['rank']} | "
            f"{r['dtype']} | {r['torch_threads']} | {r['batch_size']} | {r['steps']} | "
            f"{r['seconds_per_step']:.4f} | {r['frames_per_second']:.0f} | {r['parameters']:,} |"
        )
    return "\n".join(text) + "\n"
