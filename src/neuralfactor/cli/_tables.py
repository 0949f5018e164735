"""Terminal tables that never hide their content.

Rich squeezes a table wider than the terminal by cutting cells to "sci…", "128…": the method
names and numbers a user came for disappear. :func:`print_table` is the one way the CLI prints
a table:

* every column folds instead of truncating, and is never narrower than its longest word (a
  method name, a number): when the table is too wide the widest columns give way first, so
  wrapping happens between words, never inside one;
* when a boxed table cannot fit even at those widths, a compact one without the box is tried;
* when that does not fit the console either (a narrow terminal, or 80 columns when piped),
  the rows are printed one after another as ``column: value`` lines instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["fmt_ratio", "print_table", "ratio_text", "render_table"]

#: A single word longer than this may be folded (a long path); shorter words never are.
_MAX_WORD = 40


def _text(s: str | None) -> Text | None:
    return None if s is None else Text(s)


def _words(cell: object) -> list[str]:
    return str(cell).split() or [""]


def _min_width(header: str, cells: Sequence[object]) -> int:
    longest = max(len(w) for c in (header, *cells) for w in _words(c))
    return min(max(longest, 1), _MAX_WORD)


def render_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    console: Console,
    justify: str | Sequence[str] = "left",
    caption: str | None = None,
) -> None:
    """Print ``rows`` under ``columns`` on ``console``, whole (see the module docstring)."""
    rows = [["-" if c is None else str(c) for c in r] for r in rows]
    for r in rows:
        if len(r) != len(columns):
            raise ValueError(f"A table row has {len(r)} cells for {len(columns)} columns: {r}.")
    just = [justify] * len(columns) if isinstance(justify, str) else list(justify)
    mins = [_min_width(h, [r[i] for r in rows]) for i, h in enumerate(columns)]
    widths = [max(len(c) for c in (h, *(r[i] for r in rows))) for i, h in enumerate(columns)]
    n = len(columns)
    # boxed (a separator and a padding cell on each side per column, plus the two edges), then
    # compact (no box, one space between columns) when the boxed table cannot fit
    for boxed, overhead in ((True, 3 * n + 1), (False, n - 1)):
        room = console.width - overhead
        if sum(mins) > room:
            continue
        # narrow the widest column that can still give a character until the table fits
        # (Rich's own squeezing ignores minimum widths and crops or cuts words)
        while sum(widths) > room:
            i = max((k for k in range(n) if widths[k] > mins[k]), key=widths.__getitem__)
            widths[i] -= 1
        # Text, not str: a "[...]" in a path or a message is content, not Rich markup
        head = {"title": _text(title), "caption": _text(caption)}
        if boxed:
            table = Table(**head)
        else:
            table = Table(
                **head, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0)
            )
        for h, w, j in zip(columns, widths, just, strict=True):
            table.add_column(Text(h), justify=j, overflow="fold", no_wrap=False, width=w)
        for r in rows:
            table.add_row(*(Text(c) for c in r))
        console.print(table)
        return
    # narrow layout: one block per row, "column: value" lines
    if title:
        console.print(title, markup=False, highlight=False, soft_wrap=True)
    pad = max(len(h) for h in columns)
    for k, r in enumerate(rows):
        if k:
            console.print("")
        for h, v in zip(columns, r, strict=True):
            console.print(f"  {h:<{pad}} : {v}", markup=False, highlight=False, soft_wrap=True)
    if caption:
        console.print(caption, markup=False, highlight=False, soft_wrap=True)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    justify: str | Sequence[str] = "left",
    caption: str | None = None,
) -> None:
    """:func:`render_table` on the CLI's console."""
    from neuralfactor.cli import console

    render_table(title, columns, rows, console=console, justify=justify, caption=caption)


def fmt_ratio(x: float) -> str:
    """A ratio to the optimum: 4 decimals up to 1e4, then 3 significant digits."""
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.3g}"


def ratio_text(summary: Mapping[str, float | int]) -> str:
    """One line from :func:`~neuralfactor.core.metrics.ratio_summary`: median, shares within
    1.01 / 1.05 of the optimum and max, with the frames at round-off counted apart."""
    n_all, k = int(summary["frames"]), int(summary["roundoff_frames"])
    n = n_all - k
    parts = []
    if n:
        parts.append(
            f"ratio to optimum median {summary['ratio_median']:.4f}, "
            f"{summary['within_1_01']:.0%} within 1.01, {summary['within_1_05']:.0%} within 1.05, "
            f"max {fmt_ratio(summary['ratio_max'])} ({n} frames)"
        )
    if k:
        parts.append(
            f"{k} frame{'s' if k > 1 else ''} with an optimum at round-off (ratio not "
            f"meaningful; scaled loss <= {summary['roundoff_loss_max']:.2e})"
        )
    return "; ".join(parts) if parts else "no frames"
