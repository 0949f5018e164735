"""Tables from benchmark records (pure functions of the records: rerunnable from saved JSONL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["fmt_number", "markdown_table", "rows_for_display"]

COLUMNS = (
    "method",
    "size",
    "rank",
    "batch",
    "timed",
    "us/matrix",
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


def rows_for_display(
    records: Sequence[dict[str, Any]], *, baseline: str = "scipy-gesdd"
) -> list[list[str]]:
    """One row per record; ``x baseline`` is the baseline's time / this method's time measured
    in the same run for the same (size, rank, batch, dtype, device) (> 1: faster)."""
    base = {
        (r["m"], r["n"], r["rank"], r["batch"], r["dtype"], r["device"]): r["seconds_per_matrix"]
        for r in records
        if r["method"] == baseline
    }
    rows = []
    for r in records:
        if "error" in r:
            rows.append(
                [
                    r["method"],
                    f"{r['m']}x{r['n']}",
                    str(r["rank"]),
                    str(r["batch"]),
                    "0",
                    "failed",
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
        speed = fmt_number(b / r["seconds_per_matrix"]) if b else "-"
        rows.append(
            [
                r["method"],
                f"{r['m']}x{r['n']}",
                str(r["rank"]),
                str(r["batch"]),
                str(r["timed_batch"]),
                fmt_number(r["seconds_per_matrix"] * 1e6),
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
