"""``neuralfactor approx INPUT --rank K|auto --method ...``: low-rank approximation of one matrix.

INPUT is a ``.npy``, ``.csv``/``.txt``, ``.png``/``.jpg``/``.jpeg`` file or a gallery name
(:mod:`neuralfactor.data.gallery`). Prints the relative Frobenius and 2-norm errors of the
method and of the truncated SVD at the same rank, the ratio to the optimum and the rank check;
``--plot`` saves original / SVD / method side by side. The work is
:func:`neuralfactor.approx.approx_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from neuralfactor.approx import BUILTIN_METHODS

__all__ = ["register"]


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"The '--param' option must look like key=value. Got {item!r}.")
        key, val = item.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(val)
                break
            except ValueError:
                continue
        else:
            out[key] = val
    return out


def register(app: typer.Typer) -> None:
    """Add the ``approx`` command to the CLI."""

    @app.command("approx")
    def approx(
        input: str = typer.Argument(..., help="A .npy/.csv/.png/.jpg file or a gallery name."),
        rank: str = typer.Option("auto", "--rank", "-k", help="Target rank K, or 'auto'."),
        method: str = typer.Option(
            "svd", "--method", "-m", help=f"One of {', '.join(BUILTIN_METHODS)} or any factorizer."
        ),
        rank_method: str = typer.Option(
            "gavish-donoho", "--rank-method", help="For --rank auto: gavish-donoho|aic|gap."
        ),
        sigma: float | None = typer.Option(None, "--sigma", help="Known noise level (auto rank)."),
        tau: float | None = typer.Option(None, "--tau", help="svt threshold (default s_{K+1})."),
        channel: str | None = typer.Option(
            None, "--channel", help="For color images: red|green|blue|gray."
        ),
        param: list[str] = typer.Option(
            [], "--param", help="Gallery parameter key=value (repeatable), e.g. size=256."
        ),
        plot: Path | None = typer.Option(None, "--plot", help="Save original/SVD/method image."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the record as JSON."),
        seed: int = typer.Option(0, "--seed", help="Seed for randomized/learned methods."),
    ) -> None:
        """Low-rank approximation of one matrix, measured against the truncated SVD."""
        from neuralfactor.approx import ApproxConfig, approx_run
        from neuralfactor.cli import console, state

        config = ApproxConfig(
            input, rank, method, rank_method=rank_method, sigma=sigma, tau=tau, channel=channel,
            params=_parse_params(param), seed=seed, plot=plot, json_out=json_out,
        )  # fmt: skip
        rec = approx_run(config, progress=not state["quiet"]).record
        head = f"{'method':<16}{'rel. Frobenius':>16}{'rel. 2-norm':>14}{'ratio to SVD loss':>19}"
        lines = [
            f"{input}: {rec['m']}x{rec['n']}, rank {rec['rank']} (chosen by "
            f"{rec['rank_chosen_by']})",
            head + f"{'effective rank':>16}{'seconds':>10}",
            f"{rec['method']:<16}{rec['rel_fro']:>16.6g}{rec['rel_2']:>14.6g}"
            f"{rec['ratio_to_optimum']:>19.6g}{rec['effective_rank']:>16d}{rec['seconds']:>10.3g}",
            f"{'svd (optimum)':<16}{rec['svd_rel_fro']:>16.6g}{rec['svd_rel_2']:>14.6g}"
            f"{1:>19d}{rec['rank']:>16d}",
        ]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if rec["effective_rank"] < rec["rank"]:
            console.print(
                f"rank check: the {method} approximation has numerical rank "
                f"{rec['effective_rank']} < {rec['rank']}."
            )
        if plot is not None:
            console.print(f"saved {plot}")
