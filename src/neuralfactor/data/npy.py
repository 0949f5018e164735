"""Frames ``(T, m, n)`` from a ``.npy`` file (a user's own data for the benchmarks)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

__all__ = ["load_npy_frames"]


def load_npy_frames(path: str | os.PathLike, *, name: str = "--data-file") -> Tensor:
    """Read a ``.npy`` array of frames of shape ``(T, m, n)`` (no pickles).

    ``name`` is the option or parameter the path came from, for the messages.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ValueError
        the file is not a readable ``.npy`` array, or not three-dimensional.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} {path} does not exist.")
    try:
        frames = torch.from_numpy(np.load(path, allow_pickle=False))
    except ValueError as exc:
        raise ValueError(f"{name} {path} is not a readable .npy array: {exc}") from None
    if frames.ndim != 3:
        raise ValueError(f"{name} must hold frames of shape (T, m, n). Got {tuple(frames.shape)}.")
    return frames
