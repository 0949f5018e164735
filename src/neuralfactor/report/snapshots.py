"""Frames of a trained run saved for the report: f(x, v), its reconstructions, its spectrum.

:func:`save_snapshots` reads a finished run directory (as written by
:func:`neuralfactor.amortized.study.train_model`), picks a few test frames spread over the
simulated time, and writes ``run_dir/snapshots.npz`` with, for each of them, the frame, the
exact truncated SVD's rank-r reconstruction and the learned method's (the network's U with the
least-squares V, ``+refine``), plus the singular values of every test frame and the phase-space
grid. The HTML report draws its frame and spectrum figures from this file alone
(:func:`neuralfactor.report.figures.plot_frames`,
:func:`neuralfactor.report.figures.plot_singular_values`), so it needs neither the data nor
the model to be regenerated.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

__all__ = ["SNAPSHOTS_FILE", "load_snapshots", "save_snapshots", "snapshot_indices"]

#: File name of the snapshots inside a run directory.
SNAPSHOTS_FILE = "snapshots.npz"


def snapshot_indices(t: np.ndarray, n_times: int) -> np.ndarray:
    """Indices of ``n_times`` frames spread evenly over the sorted times ``t`` (first and last
    included), without repeats; fewer when ``t`` has fewer frames.

    >>> snapshot_indices(np.array([5.0, 1.0, 3.0, 2.0, 4.0]), 3).tolist()
    [1, 2, 0]
    """
    if n_times < 1:
        raise ValueError(f"The 'n_times' parameter must be an int >= 1. Got {n_times!r}.")
    order = np.argsort(np.asarray(t), kind="stable")
    if len(order) == 0:
        raise ValueError("snapshot_indices needs at least one frame; got none.")
    pos = np.unique(np.round(np.linspace(0, len(order) - 1, min(n_times, len(order)))))
    return order[pos.astype(int)]


def save_snapshots(run_dir: str | Path, *, n_times: int = 3) -> Path:
    """Write ``run_dir/snapshots.npz`` for a finished, non-nested training run; return its path.

    Parameters
    ----------
    run_dir : a finished run directory (``config.json`` and ``model/`` present).
    n_times : number of test frames shown, spread over the test times.

    Notes
    -----
    Arrays written: ``t`` (k,), ``frame``, ``svd``, ``learned`` (k, m, n) in the frames' own
    orientation (x along m, v along n), ``x`` (m,) and ``v`` (n,) cell coordinates,
    ``test_t`` (T,) and ``singular_values`` (T, min(m, n)) of every test frame (float64),
    ``rank`` and ``method`` (the learned method's name). Computed in float64 on the CPU.
    """
    from neuralfactor.amortized.factorizer import LearnedFactorizer
    from neuralfactor.amortized.study import StudyConfig, load_split_frames
    from neuralfactor.classical.svd import truncated_svd
    from neuralfactor.data.store import MatrixStore
    from neuralfactor.io import atomic_write_bytes, read_json

    run_dir = Path(run_dir)
    for need in ("config.json", "model/meta.json"):
        if not (run_dir / need).exists():
            raise FileNotFoundError(f"{run_dir} is not a finished training run: {need} is missing.")
    config = StudyConfig.from_dict(read_json(run_dir / "config.json"))
    if config.nested:
        raise ValueError(f"{run_dir} holds a nested model; snapshots are drawn for plain models.")
    frames, parts, t_all = load_split_frames(config)
    X, t = frames["test"], np.asarray(t_all[parts["test"]], dtype=np.float64)
    pick = snapshot_indices(t, n_times)
    learned = LearnedFactorizer.load(run_dir / "model", device="cpu", refine="lstsq")
    Xp = X[torch.as_tensor(pick)]
    sim = MatrixStore.open(config.data).metadata.get("config", {})
    m, n = X.shape[-2:]
    length, vmax = sim.get("length"), sim.get("vmax")
    x = np.arange(m) * (length / m) if length else np.arange(m, dtype=np.float64)
    v = -vmax + np.arange(n) * (2 * vmax / n) if vmax else np.arange(n, dtype=np.float64)
    arrays = {
        "t": t[pick],
        "frame": Xp.double().numpy(),
        "svd": truncated_svd(Xp.double(), config.rank).reconstruct().numpy(),
        "learned": learned.factorize(Xp).reconstruct().double().numpy(),
        "x": np.asarray(x, dtype=np.float64),
        "v": np.asarray(v, dtype=np.float64),
        "test_t": t,
        "singular_values": torch.linalg.svdvals(X.double()).numpy(),
        "rank": np.asarray(config.rank),
        "method": np.asarray(learned.name),
        "split": np.asarray(config.split),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(run_dir / SNAPSHOTS_FILE, buf.getvalue())


def load_snapshots(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a snapshots file; a corrupt or incomplete file is named in the error."""
    need = ("t", "frame", "svd", "learned", "x", "v", "singular_values", "rank", "method")
    try:
        with np.load(path, allow_pickle=False) as s:
            out = {k: s[k] for k in s.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"Corrupt snapshots file {path}: {exc}.") from None
    missing = [k for k in need if k not in out]
    if missing:
        raise ValueError(f"Snapshots file {path} lacks arrays {missing}; rerun the demo.")
    return out
