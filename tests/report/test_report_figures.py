"""The report's opening figures: accuracy against speed, the frames, the singular values."""

import numpy as np
import pytest

from neuralfactor.report import figures
from neuralfactor.report.snapshots import load_snapshots, snapshot_indices


@pytest.fixture
def captured(monkeypatch):
    """Keep the figure a plotting function draws instead of closing it."""
    got = []

    def keep(fig, path):
        got.append(fig)
        return path

    monkeypatch.setattr(figures, "_save", keep)
    yield got
    import matplotlib.pyplot as plt

    for fig in got:
        plt.close(fig)


def test_pareto_front_planted():
    pts = [(5.0, 1.0), (1.0, 3.0), (2.0, 3.5), (3.0, 1.2), (4.0, 1.2), (0.5, 9.0)]
    assert figures.pareto_front(pts) == [(0.5, 9.0), (1.0, 3.0), (3.0, 1.2), (5.0, 1.0)]
    assert figures.pareto_front([]) == []


def test_method_styles_are_distinct_for_the_demo_methods():
    names = [
        "svd",
        "svds-arpack",
        "rsvd",
        "rsvd-gemm",
        "warm-subspace",
        "pod-basis",
        "convmf",
        "convmf+refine",
        "convmf+subspace",
        "convmf-nested",
        "convmf-nested+refine",
        "convmf-nested+subspace",
    ]
    styles = {(figures.method_style(n)["color"], figures.method_style(n)["marker"]) for n in names}
    assert len(styles) == len(names)
    colours = {figures.method_style(n)["color"] for n in names}
    assert len(colours) == len(names)  # colour alone tells them apart (no wrap-around)


def _rec(method, ratio, us, warm=False, kind="classical"):
    return {
        "method": method,
        "kind": kind,
        "ratio_mean": ratio,
        "seconds_per_matrix": us * 1e-6,
        "seconds_per_matrix_q25": us * 0.9e-6,
        "seconds_per_matrix_q75": us * 1.1e-6,
        "warm": warm,
    }


def test_accuracy_speed_figure(captured, tmp_path):
    recs = [
        _rec("svd", 1.0, 800.0),
        _rec("rsvd", 1.0004, 300.0),
        _rec("warm-subspace", 1.02, 1200.0, warm=True),
        _rec("pod-basis", 1.4, 200.0),
        _rec("convmf+refine", 1.03, 250.0, kind="learned"),
    ]
    figures.plot_accuracy_speed(
        [("interpolation, rank 4", recs), ("interpolation, rank 8", recs[:2])],
        tmp_path / "a.png",
        band=1.05,
    )
    (fig,) = captured
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert "µs" in ax.get_xlabel() and "ratio to the optimum" in ax.get_ylabel()
    assert axes[0].get_title() == "interpolation, rank 4"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels))  # one legend, no duplicates
    assert "warm-subspace (warm)" in labels and "Pareto front" in labels
    assert "1.05x the optimum" in labels
    # the drawn front is exactly the non-dominated methods: pod-basis, convmf+refine, rsvd,
    # svd (exact, slowest); warm-subspace is dominated by rsvd
    front = next(line for line in axes[0].get_lines() if line.get_linestyle() == "--")
    xs, ys = front.get_data()
    assert list(np.round(xs, 6)) == [200.0, 250.0, 300.0, 800.0]
    # drawn as ratio - 1 on the log axis; the exact SVD (ratio 1) sits on the floor
    assert np.allclose(ys, [0.4, 0.03, 4e-4, figures.EXCESS_FLOOR])
    # the warm-started method is hollow, the others filled
    marks = {
        tuple(np.round(line.get_xdata(), 6)): line.get_markerfacecolor()
        for line in axes[0].get_lines()
        if line.get_marker() not in (None, "None", "")
    }
    assert marks[(1200.0,)] == "none" and marks[(300.0,)] != "none"


def _snap(k=3, m=16, n=24, rank=2):
    rng = np.random.default_rng(0)
    frame = rng.standard_normal((k, m, n))
    return {
        "t": np.array([0.0, 10.0, 20.0])[:k],
        "frame": frame,
        "svd": frame * 0.9,
        "learned": frame * 0.8,
        "x": np.linspace(0, 4 * np.pi, m, endpoint=False),
        "v": np.linspace(-6, 6, n, endpoint=False),
        "test_t": np.array([20.0, 0.0, 5.0, 10.0])[: max(k, 4)],
        "singular_values": np.sort(rng.random((4, min(m, n))), axis=1)[:, ::-1],
        "rank": np.asarray(rank),
        "method": np.asarray("convmf+refine"),
    }


def test_frames_figure_shares_colour_scales(captured, tmp_path):
    s = _snap()
    figures.plot_frames(s, tmp_path / "f.png")
    (fig,) = captured
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 15  # 3 times x (frame, SVD, learned, 2 error maps)
    clims = [ax.images[0].get_clim() for ax in panels]
    f_scale = {clims[i] for i in range(15) if i % 5 < 3}
    e_scale = {clims[i] for i in range(15) if i % 5 >= 3}
    assert len(f_scale) == 1 and len(e_scale) == 1
    (lo, hi), (elo, ehi) = f_scale.pop(), e_scale.pop()
    assert lo == pytest.approx(s["frame"].min()) and hi == pytest.approx(s["frame"].max())
    # the learned error (0.2 f) is the larger one; the error scale is symmetric around 0
    assert ehi == pytest.approx(0.2 * np.abs(s["frame"]).max()) and elo == -ehi
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 2
    assert {c.get_ylabel() for c in colorbars} == {"f (phase-space density)", "reconstruction - f"}
    assert "x (Debye lengths)" in {ax.get_xlabel() for ax in panels}
    assert "v (thermal speeds)" in {ax.get_ylabel() for ax in panels}
    assert "t = 10.0" in panels[5].get_title()
    # the learned error map's title gives its scaled loss: ||0.2 f||^2 / ||f||^2 = 0.04
    assert "scaled loss 4.00e-02" in panels[4].get_title()


def test_singular_value_figure(captured, tmp_path):
    s = _snap()
    figures.plot_singular_values(s, tmp_path / "s.png")
    (fig,) = captured
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and "σ_k / σ_1" in ax.get_ylabel()
    median = next(line for line in ax.get_lines() if line.get_label() == "median")
    sv = s["singular_values"]
    assert np.allclose(median.get_ydata(), np.median(sv / sv[:, :1], axis=0))
    labels = {line.get_label() for line in ax.get_lines()}
    assert {"t = 0.0", "t = 10.0", "t = 20.0"} <= labels


def test_snapshot_indices_spread_over_time():
    t = np.array([3.0, 0.0, 9.0, 6.0, 1.0, 7.0, 2.0])
    assert snapshot_indices(t, 3).tolist() == [1, 0, 2]  # t = 0, 3 (the middle one), 9
    assert sorted(t[snapshot_indices(t, 3)]) == [0.0, 3.0, 9.0]
    assert snapshot_indices(t[:2], 5).tolist() == [1, 0]  # fewer frames than asked
    with pytest.raises(ValueError, match="'n_times' parameter must be an int >= 1"):
        snapshot_indices(t, 0)
    with pytest.raises(ValueError, match="needs at least one frame"):
        snapshot_indices(np.array([]), 2)


def test_load_snapshots_names_bad_files(tmp_path):
    bad = tmp_path / "snapshots.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Corrupt snapshots file .*snapshots.npz"):
        load_snapshots(bad)
    np.savez(bad, t=np.zeros(1))
    with pytest.raises(ValueError, match=r"lacks arrays \['frame'"):
        load_snapshots(bad)
