"""Train/validation/test splits of a time series of frames, as index arrays.

* :func:`interpolation_split`: a random permutation cut 70/20/10 (seeded): the test frames
  lie between training frames in time, so it measures interpolation.
* :func:`extrapolation_split`: time-ordered: the first 70% train, the next 20% validation,
  the last 10% test: it measures extrapolation to later times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "extrapolation_split", "interpolation_split"]


@dataclass(frozen=True)
class Split:
    """Sorted int64 frame indices of the three parts (disjoint, covering 0..n-1)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _sizes(n: int, fractions: Sequence[float], caller: str, min_size: int) -> tuple[int, int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(
            f"The 'n' parameter of {caller} must be an int (number of frames). Got {n!r}."
        )
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not math.isfinite(f) or f <= 0 for f in fr):
        raise ValueError(
            f"The 'fractions' parameter of {caller} must be three numbers > 0 "
            f"(train, val, test). Got {tuple(fractions)!r}."
        )
    if abs(sum(fr) - 1.0) > 1e-9:
        raise ValueError(
            f"The 'fractions' parameter of {caller} must sum to 1. Got "
            f"{tuple(fractions)!r} (sum {sum(fr):g})."
        )
    need = 3 * min_size
    if n < need:
        raise ValueError(
            f"The 'n' parameter of {caller} must be >= {need} so that each split "
            f"has at least {min_size} frame(s). Got {n}."
        )
    n_val = max(min_size, int(round(fr[1] * n)))
    n_test = max(min_size, int(round(fr[2] * n)))
    n_train = n - n_val - n_test
    sizes = (n_train, n_val, n_test)
    if min(sizes) < min_size:
        raise ValueError(
            f"{caller}: {n} frames split by {fr} give sizes (train, val, test) = {sizes}; each "
            f"needs at least {min_size} frame(s). Use more frames or other fractions."
        )
    return sizes


def interpolation_split(
    n: int, *, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 0, min_size: int = 1
) -> Split:
    """Random split of ``range(n)`` by ``fractions``.

    Validation and test sizes are ``round(fraction * n)`` but at least ``min_size``; training
    takes the rest.

    The permutation comes from ``numpy.random.default_rng(seed)``: the same seed gives the same
    split on every machine. Raises ``ValueError`` when a part would hold fewer than
    ``min_size`` frames.
    """
    n_train, n_val, _ = _sizes(n, fractions, "interpolation_split", min_size)
    perm = np.random.default_rng(seed).permutation(int(n)).astype(np.int64)
    return Split(
        np.sort(perm[:n_train]),
        np.sort(perm[n_train : n_train + n_val]),
        np.sort(perm[n_train + n_val :]),
    )


def extrapolation_split(
    n: int, *, fractions: Sequence[float] = (0.7, 0.2, 0.1), min_size: int = 1
) -> Split:
    """Time-ordered split: the first ``fractions[0]`` of frames train, then validation, then
    test. Raises ``ValueError`` when a part would hold fewer than ``min_size`` frames."""
    n_train, n_val, _ = _sizes(n, fractions, "extrapolation_split", min_size)
    idx = np.arange(int(n), dtype=np.int64)
    return Split(idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])
