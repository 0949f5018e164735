"""Terminal tables never hide their content: no "sci…", no word cut, at any width.

Rich squeezed tables wider than the terminal by truncating cells with an ellipsis; the method
names and numbers disappeared. Every table goes through ``cli._tables.render_table``; these
tests render realistic tables at 40, 80 and 200 columns (and piped, through the CLI) and check
that every word of every cell appears whole on some line.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from neuralfactor.cli import console as cli_console
from neuralfactor.cli import main
from neuralfactor.cli._tables import fmt_ratio, ratio_text, render_table

COLUMNS = ("method", "size", "rank", "batch", "us / matrix", "speed-up vs scipy-gesdd", "ratio")
ROWS = [
    ["convmf-nested+subspace calculated Sigma", "128x256", "12", "64", "1.23e+04", "0.518", "1.0123"],
    ["scipy-gesdd", "128x256", "12", "64", "9.87e+03", "1", "1.0000"],
    ["svds-propack", "128x256", "12", "64", "123", "80.2", "3.45e+11"],
]  # fmt: skip


def _render(width: int, rows=ROWS, columns=COLUMNS) -> str:
    buf = io.StringIO()
    render_table("bench", columns, rows, console=Console(file=buf, width=width), caption="c")
    return buf.getvalue()


def _assert_whole(text: str, rows) -> None:
    assert "…" not in text and "..." not in text
    lines = text.splitlines()
    for row in rows:
        for cell in row:
            for word in cell.split():
                assert any(word in line for line in lines), f"{word!r} is cut:\n{text}"


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_every_word_of_every_cell_is_whole(width):
    text = _render(width)
    _assert_whole(text, ROWS)
    if width >= 80:  # the block layout (40) leaves long values to the terminal's own wrapping
        assert max(len(line) for line in text.splitlines()) <= width


def test_layouts_by_width():
    """200: boxed table on one line per row; 80: compact table; 40: one block per row."""
    wide, mid, narrow = _render(200), _render(80), _render(40)
    assert "┃ method" in wide and "convmf-nested+subspace calculated Sigma" in wide
    assert "┃" not in mid and "method" in mid.splitlines()[2] + mid.splitlines()[1]
    assert all(len(line) <= 80 for line in mid.splitlines())
    assert "  method                  : convmf-nested+subspace calculated Sigma" in narrow
    assert narrow.count("  ratio                   : ") == 3


def test_a_word_longer_than_any_column_is_folded_not_cut():
    path = "/a/very/long/run/directory/" + "x" * 60
    text = _render(60, rows=[[path, "1.5"]], columns=("run", "ratio"))
    assert "…" not in text
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert len(body) >= 2  # folded over several lines
    assert "".join(line.split("│")[1].strip() for line in body) == path


def test_brackets_are_content_not_markup():
    rows = [["[bold]svd[/bold]", "runs/[x]"]]
    for width in (30, 200):
        text = _render(width, rows=rows, columns=("method", "[dim]dir"))
        assert "[bold]svd[/bold]" in text and "runs/[x]" in text and "[dim]dir" in text


def test_row_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="2 cells for 7 columns"):
        _render(80, rows=[["a", "b"]])


def test_ratio_text_counts_roundoff_frames_apart():
    s = {
        "frames": 51,
        "roundoff_frames": 1,
        "roundoff_loss_max": 2.25e-32,
        "ratio_median": 1.0,
        "within_1_01": 0.98,
        "within_1_05": 1.0,
        "ratio_max": 1515.8107,
    }
    assert ratio_text(s) == (
        "ratio to optimum median 1.0000, 98% within 1.01, 100% within 1.05, max 1515.8107 "
        "(50 frames); 1 frame with an optimum at round-off (ratio not meaningful; scaled "
        "loss <= 2.25e-32)"
    )
    assert fmt_ratio(3.4e11) == "3.4e+11"


@pytest.mark.parametrize("width", [80, 200])
def test_bench_output_is_whole_when_piped(width, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_console, "width", width)
    out = tmp_path / "r.jsonl"
    argv = ["-q", "bench", "--methods", "svd,rsvd,scipy-gesdd", "--size", "16x24", "--ranks", "2"]
    assert main([*argv, "--batches", "1", "--repeats", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    from neuralfactor.bench.tables import rows_for_display

    _assert_whole(text, rows_for_display(records))
    assert "speed-up" in text and "(> 1: faster)" in " ".join(text.split())
