"""Checks of a MatrixStore's untrusted on-disk metadata and chunks, before anything is allocated
or read: root attributes, the frames array against them, the partial-store marker, chunk decoding
errors and allocation size. A store is a file a user may have received from anyone; every field
is checked for type and range so that a damaged or edited store gives a clear :class:`StoreError`,
never a crash, a huge allocation or a path smuggled into a key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Marker file inside an in-progress (partial) store.
MARKER = "neuralfactor-partial.json"
_TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class StoreError(ValueError):
    """A store that is partial, corrupt or fails its checksum (a ``ValueError``)."""


def _read(arr: Any, sel: Any, where: str) -> np.ndarray:
    """Read ``arr[sel]``; a chunk that cannot be decoded becomes a :class:`StoreError`."""
    try:
        if isinstance(sel, np.ndarray):
            return arr.get_orthogonal_selection((sel, slice(None), slice(None)))
        return arr[sel]
    except (IndexError, MemoryError):
        raise
    except Exception as exc:  # blosc/zstd/zarr raise RuntimeError, ValueError, ... on damage
        raise StoreError(
            f"{where}: a chunk cannot be decoded ({type(exc).__name__}: {exc}); the file is "
            f"truncated or was modified. Recreate the store (or check it with verify())."
        ) from None


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def _check_allocation(nbytes: int, where: str) -> None:
    """Refuse, before allocating, a read larger than the machine's physical memory."""
    limit = _physical_memory()
    if nbytes > limit:
        raise StoreError(
            f"{where}: reading this selection needs {nbytes / 2**30:.1f} GiB but the machine has "
            f"{limit / 2**30:.1f} GiB; read fewer frames (iter_chunks) or check the store's "
            f"declared shape."
        )


def _check_root_attrs(path: Path, attrs: Mapping[str, Any]) -> None:
    """Refuse root attributes that are missing, of the wrong type or inconsistent."""

    def bad(what: str) -> StoreError:
        return StoreError(f"{path}: corrupt MatrixStore metadata: {what}.")

    for key in ("n_runs", "n_frames"):
        v = attrs.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "n_runs" else 0):
            raise bad(f"{key!r} must be a non-negative int, got {v!r}")
    shape = attrs.get("matrix_shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    ):
        raise bad(f"'matrix_shape' must be [m, n] with positive ints, got {shape!r}")
    if attrs.get("dtype") not in _TORCH_DTYPES:
        raise bad(f"'dtype' must be one of {sorted(_TORCH_DTYPES)}, got {attrs.get('dtype')!r}")


def _count_chunk_files(array_dir: Path) -> int:
    """Chunk files of a Zarr v3 array on disk (``<array>/c/...``), counted without zarr (whose
    count enumerates the declared chunk grid, however large a tampered shape makes it)."""
    root = array_dir / "c"
    return sum(len(files) for _, _, files in os.walk(root)) if root.is_dir() else 0


def _check_frames_array(
    arr: Any,
    where: str,
    n_frames: int,
    matrix_shape: Sequence[int],
    dtype: str,
    array_dir: Path | None = None,
) -> None:
    """The array ``f`` must match the root attributes and hold every chunk of its frames.

    A deleted chunk would otherwise read back as zeros, and a declared shape edited to be
    huge would be allocated on the first read.
    """
    shape = tuple(int(s) for s in arr.shape)
    if len(shape) != 3 or shape[0] < n_frames or list(shape[1:]) != list(matrix_shape):
        raise StoreError(
            f"{where}: array 'f' has shape {shape}, but the store declares {n_frames} frames of "
            f"{matrix_shape[0]}x{matrix_shape[1]} (corrupt store)."
        )
    if str(arr.dtype) != dtype:
        raise StoreError(
            f"{where}: array 'f' has dtype {arr.dtype}, the store declares {dtype} (corrupt store)."
        )
    chunks = tuple(int(c) for c in arr.chunks)
    need = -(-n_frames // chunks[0]) * -(-shape[1] // chunks[1]) * -(-shape[2] // chunks[2])
    if not n_frames:
        return
    if array_dir is not None and array_dir.is_dir():
        have = _count_chunk_files(array_dir)
    else:  # pragma: no cover - not a local directory store
        have = int(arr.nchunks_initialized)
    if have < need:
        raise StoreError(
            f"{where}: {need - have} of the {need} chunks holding its {n_frames} frames are "
            f"missing from disk (truncated or damaged store)."
        )


def _check_marker(part: Path, marker: Any) -> dict[str, Any]:
    """A partial store's marker must have the fields the writer wrote, with sane values (the
    history slot names a Zarr key, so it may only be 0 or 1, and the state step a file name,
    so it may only be a step number: no path can be smuggled in)."""

    def bad(what: str) -> StoreError:
        return StoreError(f"{part / MARKER} is corrupt: {what}; pass --overwrite to start over.")

    if not isinstance(marker, dict):
        raise bad("not a JSON object")
    ints = {}
    for key in ("frames_written", "n_frames", "step", "history"):
        v = marker.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"{key!r} must be a non-negative int, got {v!r}")
        ints[key] = v
    if ints["frames_written"] > ints["n_frames"]:
        raise bad(f"{ints['frames_written']} frames written of {ints['n_frames']}")
    if marker.get("history_slot") not in (None, 0, 1):
        raise bad(f"'history_slot' must be 0 or 1, got {marker.get('history_slot')!r}")
    st = marker.get("state_step")
    if st is not None and (isinstance(st, bool) or not isinstance(st, int) or st < 0):
        # it names the state file: only a step number, no path
        raise bad(f"'state_step' must be null or a non-negative int, got {st!r}")
    if not isinstance(marker.get("metadata", {}), dict):
        raise bad("'metadata' must be a JSON object")
    return marker
