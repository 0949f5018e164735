"""Figures of the amortized-factorization study, drawn from saved records only.

Every function takes records (flat dicts as written by
:func:`neuralfactor.amortized.study.evaluate_run`) or saved sample arrays and a PNG path, and
draws nothing else: a report can be regenerated from ``records*.jsonl`` and ``samples*.npz``
without recomputation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_error_analysis",
    "plot_loss_histograms",
    "plot_loss_vs_rank",
    "plot_loss_vs_time",
    "plot_reconstructions",
    "plot_time_vs_rank",
]

Records = Sequence[dict[str, Any]]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    import io

    from neuralfactor.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _by_method(records: Records, key: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        if r.get("kind") == "analysis":
            continue
        v = r.get(key)
        if v is not None and v == v:
            out[r["method"]].append((int(r["rank"]), float(v)))
    return {k: sorted(v) for k, v in out.items()}


def plot_loss_vs_rank(records: Records, path: str | Path, *, title: str = "") -> Path:
    """Scaled loss (mean over test frames) vs rank, linear and log axes, SVD optimum dashed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    series = _by_method(records, "scaled_loss_mean")
    opt = sorted({(int(r["rank"]), float(r["optimum_mean"])) for r in records})
    for ax, log in zip(axes, (False, True), strict=True):
        for name, pts in sorted(series.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
        ax.plot([p[0] for p in opt], [p[1] for p in opt], "k--", lw=1.5, label="optimum (SVD)")
        ax.set_xlabel("rank")
        ax.set_ylabel("scaled loss  ||X - UV||² / ||X||²")
        if log:
            ax.set_yscale("log")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title or "Scaled loss vs rank")
    return _save(fig, path)


def plot_time_vs_rank(records: Records, path: str | Path, *, title: str = "") -> Path:
    """Seconds per matrix vs rank for every method (log scale), measured in the same run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, pts in sorted(_by_method(records, "seconds_per_matrix").items()):
        ax.plot([p[0] for p in pts], [p[1] * 1e6 for p in pts], marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("µs per matrix")
    ax.legend(fontsize=7)
    ax.set_title(title or "Execution time vs rank")
    return _save(fig, path)


def plot_loss_histograms(
    records: Records, path: str | Path, *, methods: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Histograms of per-frame scaled loss, one per method, at one rank."""
    plt = _plt()
    rows = [r for r in records if r.get("kind") != "analysis" and "per_frame_loss" in r]
    if methods is not None:
        rows = [r for r in rows if r["method"] in methods]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    allv = np.concatenate([np.asarray(r["per_frame_loss"]) for r in rows])
    allv = allv[allv > 0]
    bins = np.logspace(np.log10(allv.min()), np.log10(allv.max()), 40) if allv.size else 20
    for r in rows:
        ax.hist(r["per_frame_loss"], bins=bins, histtype="step", label=r["method"])
    ax.set_xscale("log")
    ax.set_xlabel("scaled loss per frame")
    ax.set_ylabel("frames")
    ax.legend(fontsize=7)
    ax.set_title(title or "Per-frame loss")
    return _save(fig, path)


def plot_loss_vs_time(
    records: Records,
    path: str | Path,
    *,
    methods: Sequence[str] | None = None,
    train_until: float | None = None,
    title: str = "",
) -> Path:
    """Per-frame scaled loss against simulation time (extrapolation: the training range shaded)."""
    plt = _plt()
    rows = [r for r in records if r.get("kind") != "analysis" and "t" in r]
    if methods is not None:
        rows = [r for r in rows if r["method"] in methods]
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        order = np.argsort(r["t"])
        ax.plot(
            np.asarray(r["t"])[order],
            np.asarray(r["per_frame_loss"])[order],
            lw=1,
            label=r["method"],
        )
    if rows:
        r = rows[0]
        order = np.argsort(r["t"])
        ax.plot(
            np.asarray(r["t"])[order],
            np.asarray(r["per_frame_optimum"])[order],
            "k--",
            lw=1.2,
            label="optimum (SVD)",
        )
    if train_until is not None:
        ax.axvspan(ax.get_xlim()[0], train_until, color="0.9", label="training times")
    ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("scaled loss")
    ax.legend(fontsize=7)
    ax.set_title(title or "Loss along the time series")
    return _save(fig, path)


def plot_error_analysis(records: Records, path: str | Path, *, title: str = "") -> Path:
    """Grouped bars per rank: the network, its calculated U / V / Sigma refits, and the SVD."""
    plt = _plt()
    by_rank: dict[int, dict[str, float]] = defaultdict(dict)
    for r in records:
        m = r["method"]
        if r.get("kind") == "analysis":
            label = m.split(" ", 1)[1]
        elif r.get("kind") == "learned" and "+" not in m:
            label = "network U, V"
        else:
            continue
        by_rank[int(r["rank"])][label] = r["scaled_loss_mean"]
        by_rank[int(r["rank"])]["SVD optimum"] = r["optimum_mean"]
    labels = ["network U, V", "calculated U", "calculated V", "calculated Sigma", "SVD optimum"]
    ranks = sorted(by_rank)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    w = 0.8 / len(labels)
    for i, lab in enumerate(labels):
        ax.bar(
            np.arange(len(ranks)) + i * w,
            [by_rank[k].get(lab, np.nan) for k in ranks],
            w,
            label=lab,
        )
    ax.set_xticks(np.arange(len(ranks)) + 0.4 - w / 2, [str(k) for k in ranks])
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("scaled loss (mean over test frames)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Error analysis: which factor is the better half?")
    return _save(fig, path)


def plot_reconstructions(
    samples: Sequence[tuple[int, dict[str, np.ndarray]]], path: str | Path, *, title: str = ""
) -> Path:
    """Worst test frame: original, network, network+refine and SVD, one row per rank."""
    plt = _plt()
    cols = [
        ("frame", "original"),
        ("learned", "network"),
        ("refined", "network + refine"),
        ("svd", "SVD"),
    ]
    fig, axes = plt.subplots(
        len(samples), len(cols), figsize=(3 * len(cols), 2.4 * len(samples)), squeeze=False
    )
    for row, (rank, s) in enumerate(samples):
        vmin, vmax = float(np.min(s["frame"])), float(np.max(s["frame"]))
        for c, (key, name) in enumerate(cols):
            ax = axes[row, c]
            if key in s:
                ax.imshow(
                    np.asarray(s[key]).T,
                    origin="lower",
                    aspect="auto",
                    vmin=vmin,
                    vmax=vmax,
                    cmap="viridis",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"{name} (r={rank})" if key != "frame" else f"original, t={float(s['t']):.2f}",
                fontsize=8,
            )
    fig.suptitle(title or "Worst test frame and its reconstructions (x horizontal, v vertical)")
    return _save(fig, path)
