"""``neuralfactor demo`` (the main job) and ``neuralfactor report``."""

from __future__ import annotations

from pathlib import Path

import typer

from neuralfactor.cli import console, state


def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory (resumable)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    quick: bool = typer.Option(False, help="A smoke test: 32x64 grid, 8 epochs, about a minute."),
) -> None:
    """Simulate -> train ConvMF -> compare with classical baselines -> HTML report."""
    from neuralfactor.demo import run_demo

    report = run_demo(
        out,
        quick=quick,
        device=device,
        progress=not state["quiet"],
        log=(lambda s: None) if state["quiet"] else (lambda s: console.print(s, highlight=False)),
    )
    from neuralfactor.report.html import collect_records, conclusions

    records = collect_records(out)
    for line in conclusions(records):
        console.print(
            "  " + line.replace("<b>", "").replace("</b>", "").replace("&nbsp;", ""),
            highlight=False,
        )
    console.print(f"report: {report}")


def report(run_dir: Path = typer.Argument(..., help="A demo output directory.")) -> None:
    """Render the static HTML report of a run directory from its saved records."""
    from neuralfactor.report.html import render_report

    console.print(f"report: {render_report(run_dir)}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("report")(report)
