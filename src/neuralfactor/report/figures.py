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
    "method_style",
    "pareto_front",
    "plot_accuracy_speed",
    "plot_error_analysis",
    "plot_frames",
    "plot_loss_histograms",
    "plot_loss_vs_rank",
    "plot_loss_vs_time",
    "plot_reconstructions",
    "plot_singular_values",
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


#: Colour and marker of each known method: one hue per method (no two share a colour).
_STYLES = {
    "svd": ("black", "o"),
    "svds-arpack": ("tab:gray", "s"),
    "svds-propack": ("silver", "s"),
    "rsvd": ("tab:blue", "^"),
    "rsvd-gemm": ("tab:cyan", "v"),
    "sklearn-rsvd": ("navy", "<"),
    "warm-subspace": ("tab:green", "D"),
    "pod-basis": ("tab:brown", "P"),
    "convmf": ("tab:red", "*"),
    "convmf+refine": ("tab:orange", "X"),
    "convmf+subspace": ("tab:pink", "p"),
    "convmf-nested": ("tab:purple", "*"),
    "convmf-nested+refine": ("gold", "X"),
    "convmf-nested+subspace": ("tab:olive", "p"),
    "sketch": ("magenta", "h"),
    "sketch+refine": ("darkred", "h"),
    "sketch+subspace": ("lime", "h"),
}
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "p", "h", "*")


def method_style(name: str) -> dict[str, Any]:
    """Colour and marker of a method, the same in every figure; distinct for the known methods.

    Learned methods (names starting with a network's name) are drawn with larger markers;
    unknown names get a colour and marker from a stable hash of the name.
    """
    import zlib

    from matplotlib import colormaps

    if name in _STYLES:
        colour, marker = _STYLES[name]
    else:
        i = zlib.crc32(name.encode())
        colour, marker = colormaps["tab20"](i % 20), _MARKERS[i % len(_MARKERS)]
    learned = name.split("+")[0] in ("convmf", "convmf-nested", "fork", "danmf", "sketch")
    return {"color": colour, "marker": marker, "ms": 10 if learned else 7}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated in (time, ratio), both lower-is-better, sorted by time.

    >>> pareto_front([(1.0, 2.0), (2.0, 1.5), (3.0, 1.8), (4.0, 1.0)])
    [(1.0, 2.0), (2.0, 1.5), (4.0, 1.0)]
    """
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


#: Excess error (ratio - 1) drawn at this floor: the ratio is 1 to within round-off.
EXCESS_FLOOR = 1e-5


def _excess(ratio: float) -> float:
    return max(ratio - 1.0, EXCESS_FLOOR)


def _ratio_axis(ax, excesses: Sequence[float]) -> None:
    """A log axis of the excess ratio - 1, labelled with the ratio itself (1.001, 1.01, 2, ...)."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    lo, hi = min(excesses), max(excesses)
    ticks = [10.0**e for e in range(-5, 5) if lo / 3 <= 10.0**e <= hi * 3]
    ax.set_ylim(min(lo, EXCESS_FLOOR * 10) / 2, max(hi, 1e-2) * 2)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticklabels(
        ["≤1+1e-5" if t <= EXCESS_FLOOR else f"{1 + t:.6g}" for t in ticks], fontsize=8
    )


def _time_axis(ax) -> None:
    """Log time axis ticked at 1, 2, 5 x 10^k with plain labels (no overprinted minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}" if x >= 1 else f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_accuracy_speed(
    panels: Sequence[tuple[str, Records]], path: str | Path, *, band: float | None = None
) -> Path:
    """Accuracy against speed: ratio to the optimum vs µs per matrix, one panel per entry.

    ``panels`` is a list of (title, records of one timed evaluation). Every method is one
    point on log-log axes: the ratio's distance from 1 (ratio - 1, so that 1.001, 1.01 and 2
    are as far apart as they are different; ticks are labelled with the ratio, and ratios
    within ``EXCESS_FLOOR`` of 1 sit on the floor), the time with its quartiles as a bar; warm-started methods
    are drawn hollow and named "(warm)"; the Pareto front (no other method both faster and more
    accurate) is a dashed line; ``band`` draws the accuracy band of the conclusions. One legend
    for all panels, outside the data.
    """
    plt = _plt()
    n = len(panels)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.4 * rows), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, (title, recs) in zip(axes.flat, panels, strict=False):
        pts = []
        for r in sorted(recs, key=lambda r: r["method"]):
            us, ratio = r["seconds_per_matrix"] * 1e6, r["ratio_mean"]
            if not (us > 0 and ratio > 0):
                continue
            st = method_style(r["method"])
            label = r["method"] + (" (warm)" if r.get("warm") else "")
            lo = r.get("seconds_per_matrix_q25", r["seconds_per_matrix"]) * 1e6
            hi = r.get("seconds_per_matrix_q75", r["seconds_per_matrix"]) * 1e6
            y = _excess(ratio)
            ax.plot([lo, hi], [y, y], color=st["color"], lw=1.2, zorder=2)
            h = ax.plot(
                [us],
                [y],
                linestyle="none",
                marker=st["marker"],
                ms=st["ms"],
                color=st["color"],
                markerfacecolor="none" if r.get("warm") else st["color"],
                markeredgewidth=1.5,
                zorder=3,
            )[0]
            handles.setdefault(label, h)
            pts.append((us, y))
        front = pareto_front(pts)
        if front:
            fx, fy = zip(*front, strict=True)
            (h,) = ax.step(fx, fy, where="post", color="0.35", ls="--", lw=1, zorder=1)
            handles.setdefault("Pareto front", h)
        if band is not None:
            h = ax.axhline(band - 1, color="tab:red", lw=0.8, ls=":", zorder=0)
            handles.setdefault(f"{band}x the optimum", h)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if pts:
            _ratio_axis(ax, [p[1] for p in pts] + ([band - 1] if band else []))
        _time_axis(ax)
        ax.set_xlabel("time per matrix (µs, log scale)")
        ax.set_ylabel("ratio to the optimum (log scale of ratio - 1)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", color="0.9")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_frames(s: dict[str, np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """f(x, v) at a few times, its rank-r reconstructions and their error maps.

    ``s`` holds the arrays of :func:`neuralfactor.report.snapshots.save_snapshots`. Columns:
    the frame, the exact SVD's reconstruction, the learned method's, then the error of each
    (reconstruction minus frame). The three images of f share one colour scale, the two error
    maps one symmetric scale; each scale has its colour bar.
    """
    plt = _plt()
    rank, method = int(s["rank"]), str(s["method"])
    frames, svd, learned = (np.asarray(s[k]) for k in ("frame", "svd", "learned"))
    x, v = np.asarray(s["x"]), np.asarray(s["v"])
    k = frames.shape[0]
    fmin = float(min(a.min() for a in (frames, svd, learned)))
    fmax = float(max(a.max() for a in (frames, svd, learned)))
    emax = float(max(np.abs(svd - frames).max(), np.abs(learned - frames).max())) or 1.0
    cols = [
        ("f(x, v)", frames, "f"),
        (f"exact SVD, rank {rank}", svd, "f"),
        (f"{method}, rank {rank}", learned, "f"),
        ("error of the SVD", svd - frames, "e"),
        (f"error of {method}", learned - frames, "e"),
    ]
    fig, axes = plt.subplots(
        k, 5, figsize=(17, 2.7 * k + 0.6), squeeze=False, constrained_layout=True
    )
    extent = (x[0], x[-1] + (x[1] - x[0] if len(x) > 1 else 1), v[0], v[-1])
    ims = {}
    for i in range(k):
        for j, (name, arr, kind) in enumerate(cols):
            ax = axes[i, j]
            scale = dict(vmin=fmin, vmax=fmax, cmap="viridis")
            if kind == "e":
                scale = dict(vmin=-emax, vmax=emax, cmap="RdBu_r")
            ims[kind] = ax.imshow(arr[i].T, origin="lower", aspect="auto", extent=extent, **scale)
            err = ""
            if kind == "e":
                rel = np.linalg.norm(arr[i]) ** 2 / np.linalg.norm(frames[i]) ** 2
                err = f"\nscaled loss {rel:.2e}"
            ax.set_title(f"{name}, t = {float(s['t'][i]):.1f}{err}", fontsize=9)
            ax.set_xlabel("x (Debye lengths)" if i == k - 1 else "")
            ax.set_ylabel("v (thermal speeds)" if j == 0 else "")
    fig.colorbar(ims["f"], ax=axes[:, :3], shrink=0.9, label="f (phase-space density)")
    fig.colorbar(ims["e"], ax=axes[:, 3:], shrink=0.9, label="reconstruction - f")
    fig.suptitle(title or "Test frames (times in units of 1/ω_p)", fontsize=11)
    return _save(fig, path)


def plot_singular_values(s: dict[str, np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """Singular-value decay of the test frames: σ_k / σ_1 against k (log scale).

    The median over the test frames with the band between the smallest and largest value,
    the frames of :func:`plot_frames` as thin lines, and the rank of the run marked.
    """
    plt = _plt()
    sv = np.asarray(s["singular_values"], dtype=np.float64)
    rel = sv / np.maximum(sv[:, :1], np.finfo(np.float64).tiny)
    kk = np.arange(1, sv.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.fill_between(kk, rel.min(0), rel.max(0), color="tab:blue", alpha=0.2, label="range")
    ax.plot(kk, np.median(rel, 0), color="tab:blue", lw=1.8, label="median")
    test_t = np.asarray(s.get("test_t", []))
    for i, ti in enumerate(np.asarray(s["t"])):
        hit = np.flatnonzero(test_t == ti)
        if hit.size:
            ax.plot(kk, rel[hit[0]], lw=0.8, ls="--", color=f"C{i + 1}", label=f"t = {ti:.1f}")
    r = int(s["rank"])
    ax.axvline(r, color="0.3", ls=":", lw=1)
    ax.annotate(f"rank {r}", (r, 1.0), xytext=(4, -12), textcoords="offset points", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("index k")
    ax.set_ylabel("σ_k / σ_1 (log scale)")
    ax.set_title(title or f"Singular values of the {sv.shape[0]} test frames", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="major", color="0.9")
    return _save(fig, path)
