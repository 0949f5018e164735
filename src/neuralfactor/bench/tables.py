"""Tables from benchmark records (pure functions of the records: rerunnable from saved JSONL).

Speed ratios are decided by :func:`neuralfactor.core.timing.speed_ratio`: a ratio whose two
timings' interquartile ranges overlap by more than their medians differ prints ``~1x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuralfactor.core.timing import Spread, speed_ratio

__all__ = ["fmt_number", "is_warm", "markdown_table", "rows_for_display"]

COLUMNS = (
    "method",
    "size",
    "rank",
    "batch",
    "timed",
    "us/matrix",
    "IQR us",
    "x baseline",
    "scaled loss",
    "ratio mean",
    "ratio max",
    "fit s",
)


def fmt_number(x: float, digits: int = 3, *, sci_above: float = 1e4) -> str:
    """``digits`` significant digits; scientific notation from ``sci_above`` and below 1e-3."""
    if x != x:  # NaN
        return "nan"
    if x == 0:
        return "0"
    if abs(x) >= sci_above or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def is_warm(r: dict[str, Any]) -> bool:
    """A warm-started row; records from before the harness recorded it: a streaming method on
    more than one matrix (each frame after the first warm-started from the previous one)."""
    if "warm" in r:
        return bool(r["warm"])
    return r["method"] == "warm-subspace" and r.get("timed_batch", 1) > 1


def rows_for_display(
    records: Sequence[dict[str, Any]], *, baseline: str = "scipy-gesdd"
) -> list[list[str]]:
    """One row per record; ``x baseline`` is the baseline's time / this method's time measured
    in the same run for the same (size, rank, batch, dtype, device) (> 1: faster), printed by
    :class:`~neuralfactor.core.timing.SpeedRatio` (``~1x`` within noise, else with the range
    the quartiles allow)."""
    base = {
        (r["m"], r["n"], r["rank"], r["batch"], r["dtype"], r["device"]): Spread.from_record(r)
        for r in records
        if r["method"] == baseline and "error" not in r
    }
    rows = []
    for r in records:
        if "error" in r:
            rows.append(
                [
                    r.get("label", r["method"]),
                    f"{r['m']}x{r['n']}",
                    str(r["rank"]),
                    str(r["batch"]),
                    "0",
                    "failed",
                    "-",
                    "-",
                    r["error"][:60],
                    "-",
                    "-",
                    "-",
                ]
            )
            continue
        key = (r["m"], r["n"], r["rank"], r["batch"], r["dtype"], r["device"])
        b = base.get(key)
        speed = str(speed_ratio(b, Spread.from_record(r))) if b else "-"
        if r["method"] == baseline:
            speed = "1"
        q25, q75 = r.get("seconds_per_matrix_q25"), r.get("seconds_per_matrix_q75")
        iqr = fmt_number((q75 - q25) * 1e6) if q25 is not None else "not recorded"
        rows.append(
            [
                r.get("label", r["method"]) + (" (warm)" if is_warm(r) else ""),
                f"{r['m']}x{r['n']}",
                str(r["rank"]),
                str(r["batch"]),
                str(r["timed_batch"]),
                fmt_number(r["seconds_per_matrix"] * 1e6),
                iqr,
                speed,
                fmt_number(r["scaled_loss_mean"]),
                f"{r['ratio_mean']:.4f}",
                f"{r['ratio_max']:.4f}",
                fmt_number(r["fit_seconds"]) if r["fit_seconds"] else "-",
            ]
        )
    return rows


def markdown_table(records: Sequence[dict[str, Any]], *, baseline: str = "scipy-gesdd") -> str:
    rows = rows_for_display(records, baseline=baseline)
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(row) + " |\n" for row in rows)
