"""MatrixStore: time series of matrices (frames) on Zarr v3, written atomically, read in chunks.

Layout of a store ``runs/landau.zarr`` (a Zarr v3 group)::

    zarr.json                 root attrs: format, n_runs, frame shape, dtype, metadata
                              (e.g. the full simulation config, seed, package version),
                              checksum, complete = true
    run-000/                  one group per run (ensemble member)
        f                     (T, m, n) frames, chunked (chunk_frames, m, n), Blosc-zstd + shuffle
        t                     (T,) times
        diag/<name>           (T,) diagnostics (electric energy, mass, ...)
        zarr.json             run attrs: checksum (sha256 of the frames)
    run-001/ ...

Writes go to ``<path>.partial`` (with a marker file ``neuralfactor-partial.json`` saying how
many frames are safely on disk and, for multistep schemes, where the solver's history is,
and, for producers with an exact state beyond frames and history, a safetensors file
``neuralfactor-state-<step>.safetensors`` keyed by the step of the last flushed frame)
and are renamed to ``<path>`` only when complete, so a completed store is the only thing ever
at the final path. :meth:`MatrixStoreWriter.resume` continues an interrupted write from its
last flushed frame.

Reading never loads a whole dataset unless asked: :meth:`MatrixRun.__getitem__`,
:meth:`MatrixRun.as_tensor` (a slice of frames as a torch tensor) and
:meth:`MatrixRun.iter_chunks` (aligned chunks, for streaming and Dask).

>>> store = MatrixStore.open("runs/landau.zarr")
>>> store.runs, store.frame_shape, store.dtype     # ('run-000',), (8149, 64, 128), torch.float64
>>> X = store[0].as_tensor(frames=slice(100, 200))  # (100, 64, 128)
>>> for start, block in store[0].iter_chunks(): ...
>>> store.verify()                                  # recompute the sha256 checksum
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_tensors
from torch import Tensor

from neuralfactor.data._store_checks import (
    _TORCH_DTYPES,
    MARKER,
    StoreError,
    _check_allocation,
    _check_frames_array,
    _check_marker,
    _check_root_attrs,
    _read,
)
from neuralfactor.io import atomic_write_bytes, read_json, write_json

__all__ = [
    "FORMAT",
    "MARKER",
    "MatrixRun",
    "MatrixStore",
    "MatrixStoreWriter",
    "StoreError",
    "partial_path",
    "state_file_name",
]

#: Value of the root attribute ``format`` identifying a MatrixStore.
FORMAT = "neuralfactor.MatrixStore/1"

_NP_DTYPES = {torch.float64: np.dtype("<f8"), torch.float32: np.dtype("<f4")}


def partial_path(path: str | os.PathLike) -> Path:
    """Where the in-progress store for ``path`` lives: ``<path>.partial``."""
    p = Path(path)
    return p.with_name(p.name + ".partial")


_STATE_PREFIX = "neuralfactor-state-"


def state_file_name(step: int) -> str:
    """Name of the producer-state file of a partial store, keyed by the step it belongs to."""
    return f"{_STATE_PREFIX}{int(step):012d}.safetensors"


def _snapshot(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Private contiguous CPU copies (safetensors refuses views and shared storage)."""
    return {str(k): v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def _run_name(i: int) -> str:
    return f"run-{i:03d}"


def _default_chunk_frames(m: int, n: int, itemsize: int) -> int:
    """About 2 MiB per chunk, at least 1 frame."""
    return max(1, min(1024, (2 << 20) // max(1, m * n * itemsize)))


def _compressor(npdt: np.dtype) -> Any:
    """Blosc-zstd with byte shuffle: smooth float frames compress far better shuffled."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=npdt.itemsize)


def _hash_run(arr: Any, n_frames: int, name: str, chunk: int) -> str:
    h = hashlib.sha256()
    shape = (n_frames, *arr.shape[1:])
    h.update(f"{name}|{shape}|{np.dtype(arr.dtype).str}".encode())
    for a in range(0, n_frames, chunk):
        block = np.ascontiguousarray(_read(arr, slice(a, min(a + chunk, n_frames)), name))
        h.update(block.astype(np.dtype(arr.dtype).newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def _combine(checksums: Sequence[str]) -> str:
    return hashlib.sha256("".join(checksums).encode()).hexdigest()


def _open_group(path: Path, mode: str = "r") -> Any:
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # zarr raises several types for a damaged group
        raise StoreError(
            f"{path} is not a readable Zarr group (corrupt or not a MatrixStore): "
            f"{type(exc).__name__}: {exc}"
        ) from None


class MatrixRun:
    """One run of a store: frames ``f`` (T, m, n), times ``t`` and diagnostics."""

    def __init__(
        self,
        group: Any,
        name: str,
        n_frames: int,
        expected: tuple[Sequence[int], str] | None = None,
        store_path: Path | None = None,
    ) -> None:
        self._g = group
        self.name = name
        self._n = n_frames
        try:
            self._f = group["f"]
        except KeyError:
            raise StoreError(f"Run {name!r} has no array 'f' (corrupt store).") from None
        self._where = f"{store_path}: run {name!r}" if store_path else f"run {name!r}"
        if expected is not None:
            array_dir = store_path / name / "f" if store_path is not None else None
            _check_frames_array(self._f, self._where, n_frames, *expected, array_dir)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, m, n): saved frames x rows x columns."""
        return (self._n, *tuple(self._f.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[str(self._f.dtype)]

    @property
    def chunk_frames(self) -> int:
        return int(self._f.chunks[0])

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._g.attrs)

    def __len__(self) -> int:
        return self._n

    @property
    def t(self) -> np.ndarray:
        """Times of the frames, shape (T,)."""
        return np.asarray(self._g["t"][: self._n])

    @property
    def diagnostics(self) -> dict[str, np.ndarray]:
        """name -> (T,) float64 diagnostics saved with the frames."""
        d = self._g["diag"]
        return {k: np.asarray(d[k][: self._n]) for k in sorted(d.array_keys())}

    def _index(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return slice(*idx.indices(self._n))
        if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool):
            i = int(idx) + (self._n if idx < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"Frame index {int(idx)} out of range for {self._n} frames.")
            return i
        arr = np.asarray(idx)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise TypeError(
                f"Frames are indexed by an int, a slice or a 1-D int array. Got "
                f"{type(idx).__name__}."
            )
        arr = np.where(arr < 0, arr + self._n, arr)
        if arr.size and (arr.min() < 0 or arr.max() >= self._n):
            raise IndexError(f"Frame indices out of range for {self._n} frames.")
        return arr

    def __getitem__(self, idx: Any) -> Tensor:
        """Frames as a CPU tensor: ``run[i]`` (m, n), ``run[a:b]`` (k, m, n), ``run[[i, j]]``."""
        ix = self._index(idx)
        if isinstance(ix, np.ndarray):
            k = ix.size
        elif isinstance(ix, slice):
            k = len(range(*ix.indices(self._n)))
        else:
            k = 1
        m, n = self._f.shape[1:]
        _check_allocation(k * m * n * np.dtype(self._f.dtype).itemsize, self._where)
        out = _read(self._f, ix, self._where)
        return torch.from_numpy(np.ascontiguousarray(out))

    def as_tensor(
        self,
        frames: slice | Sequence[int] | np.ndarray = slice(None),
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """A selection of frames, shape (k, m, n), on ``device`` (optionally cast)."""
        out = self[frames]
        return out.to(device=device, dtype=dtype or out.dtype)

    def iter_chunks(
        self, *, frames: slice = slice(None), chunk_frames: int | None = None
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, block)`` with ``block`` = frames[start:start+k] (k, m, n), aligned to
        the storage chunks by default, so each read decompresses each chunk once."""
        a, b, step = frames.indices(self._n)
        if step != 1:
            raise ValueError(
                f"iter_chunks needs a contiguous slice of frames (step 1). Got {step}."
            )
        c = chunk_frames or self.chunk_frames
        if c < 1:
            raise ValueError(f"The 'chunk_frames' parameter must be >= 1. Got {c}.")
        s = a
        while s < b:
            e = min(b, (s // c + 1) * c) if chunk_frames is None else min(b, s + c)
            yield s, self[s:e]
            s = e

    def checksum(self) -> str:
        """sha256 of the frames (recomputed, streaming one chunk at a time)."""
        return _hash_run(self._f, self._n, self.name, self.chunk_frames)


class MatrixStore:
    """Read access to a completed (or, with ``allow_partial``, an in-progress) store.

    Open with :meth:`open`. Runs are reached by name or index (``store["run-000"]``,
    ``store[0]``) as :class:`MatrixRun`; all runs share ``frame_shape`` and ``dtype``.
    """

    def __init__(self, path: Path, group: Any, n_frames: int, partial: dict | None) -> None:
        self.path = path
        self._g = group
        self._n = n_frames
        self.partial = partial
        attrs = dict(group.attrs)
        _check_root_attrs(path, attrs)
        self._runs = tuple(_run_name(i) for i in range(int(attrs["n_runs"])))

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, allow_partial: bool = False, verify: bool = False
    ) -> MatrixStore:
        """Open a store; missing -> ``FileNotFoundError``; partial/corrupt -> :class:`StoreError`.

        With ``allow_partial`` an interrupted or diverged run's ``<path>.partial`` is opened
        (its frames up to the last flush). ``verify`` recomputes the checksum.
        """
        path = Path(path)
        part = partial_path(path) if not path.name.endswith(".partial") else path
        if path.exists() and not path.name.endswith(".partial"):
            if not path.is_dir():
                raise StoreError(f"{path} is not a MatrixStore (a file, not a Zarr directory).")
            if not (path / "zarr.json").exists():
                raise StoreError(
                    f"{path} is not a MatrixStore: no zarr.json (corrupt or not Zarr)."
                )
            g = _open_group(path)
            attrs = dict(g.attrs)
            if attrs.get("format") != FORMAT:
                raise StoreError(
                    f"{path} is a Zarr group but not a MatrixStore (format "
                    f"{attrs.get('format')!r}, expected {FORMAT!r})."
                )
            if attrs.get("complete") is not True or "checksum" not in attrs:
                raise StoreError(f"{path} is marked incomplete or has no checksum (corrupt).")
            _check_root_attrs(path, attrs)
            store = cls(path, g, int(attrs["n_frames"]), None)
        elif part.exists():
            try:
                marker = read_json(part / MARKER)
            except FileNotFoundError:
                raise StoreError(
                    f"{part} has no {MARKER} marker (corrupt partial store)."
                ) from None
            marker = _check_marker(part, marker)
            if not allow_partial:
                raise StoreError(
                    f"{path} is incomplete: the run stopped ({marker.get('status')}) with "
                    f"{marker['frames_written']} of {marker['n_frames']} frames written, kept at "
                    f"{part}; rerun with --resume to continue, or open it with allow_partial=True."
                )
            store = cls(part, _open_group(part), int(marker["frames_written"]), marker)
        else:
            raise FileNotFoundError(f"No MatrixStore at {path} (and no partial store at {part}).")
        if verify:
            store.verify()
        return store

    # -- structure ----------------------------------------------------------------------------
    @property
    def runs(self) -> tuple[str, ...]:
        return self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[MatrixRun]:
        return (self[i] for i in range(len(self._runs)))

    def __getitem__(self, key: int | str) -> MatrixRun:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(self._runs) <= key < len(self._runs):
                raise IndexError(f"Run index {key} out of range for {len(self._runs)} runs.")
            key = self._runs[key]
        if key not in self._runs:
            raise KeyError(f"No run {key!r}; runs are {list(self._runs)}.")
        try:
            g = self._g[key]
        except KeyError:
            raise StoreError(
                f"{self.path}: run group {key!r} is missing (corrupt store)."
            ) from None
        md = self.metadata
        return MatrixRun(g, key, self._n, (md["matrix_shape"], md["dtype"]), self.path)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(T, m, n) of every run."""
        return (self._n, *self.metadata["matrix_shape"])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(runs, T, m, n)."""
        return (len(self._runs), *self.frame_shape)

    @property
    def dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.metadata["dtype"]]

    @property
    def metadata(self) -> dict[str, Any]:
        """Root attributes: ``format``, ``n_runs``, ``n_frames``, ``matrix_shape``, ``dtype``,
        ``checksum``, and what the writer passed (e.g. ``config``, ``seed``, ``version``)."""
        return dict(self._g.attrs)

    # -- reading ------------------------------------------------------------------------------
    def as_tensor(
        self,
        frames: slice | Sequence[int] | np.ndarray = slice(None),
        *,
        runs: Sequence[int | str] | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Frames of several runs stacked: (R, k, m, n). Loads what it returns, nothing more."""
        sel = range(len(self._runs)) if runs is None else runs
        return torch.stack([self[r].as_tensor(frames, device=device, dtype=dtype) for r in sel])

    def iter_chunks(self, *, chunk_frames: int | None = None) -> Iterator[tuple[str, int, Tensor]]:
        """``(run, start, block)`` over every run's frames, chunk by chunk."""
        for run in self:
            for start, block in run.iter_chunks(chunk_frames=chunk_frames):
                yield run.name, start, block

    def verify(self) -> str:
        """Recompute the sha256 of every run's frames; :class:`StoreError` on a mismatch."""
        sums = []
        for run in self:
            got = run.checksum()
            want = run.attrs.get("checksum")
            if self.partial is None and got != want:
                raise StoreError(
                    f"{self.path}: checksum mismatch in {run.name} (stored {want}, "
                    f"recomputed {got}); the frames were modified or damaged."
                )
            sums.append(got)
        total = _combine(sums)
        if self.partial is None and total != self.metadata.get("checksum"):
            raise StoreError(
                f"{self.path}: store checksum mismatch (stored "
                f"{self.metadata.get('checksum')}, recomputed {total})."
            )
        return total


class MatrixStoreWriter:
    """Writes a store frame by frame at ``<path>.partial`` and renames it when complete.

    Frames are buffered and flushed every ``chunk_frames`` frames or ``flush_seconds`` of wall
    time, whichever comes first; after a flush the marker records the frames on disk (and the
    solver history needed to continue), so :meth:`resume` loses at most one buffer.

    A producer whose exact state is more than its frames and history (factored solvers, a
    truncation carrying a warm-start basis) passes it to :meth:`append` as named tensors; a
    flush writes them, after the frames, to a state file named by the step, atomically
    (temporary file, fsync, rename), then the marker naming that step, then deletes the files
    of earlier steps. A crash at any point leaves the marker pairing the flushed frames with the
    state of their own step; :meth:`last_state` checks the step recorded inside the file.
    """

    def __init__(self, path: Path, group: Any, marker: dict[str, Any], flush_seconds: float):
        self.path = path
        self.partial = partial_path(path)
        self._g = group
        self._marker = marker
        self._buf: list[tuple[np.ndarray, float, dict[str, np.ndarray]]] = []
        self._history: tuple[Tensor, ...] = ()
        self._state: dict[str, Tensor] | None = None
        self._step = int(marker["step"])
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._np_dtype = np.dtype(marker["np_dtype"])
        self._arrays: dict[int, tuple[Any, Any, dict[str, Any]]] = {}
        self._chunk_frames = int(self._run_arrays(0)[0].chunks[0])  # append checks it per frame

    # -- creation -----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        n_runs: int,
        n_frames: int,
        matrix_shape: tuple[int, int],
        dtype: torch.dtype = torch.float64,
        diagnostics: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        history: int = 0,
        chunk_frames: int | None = None,
        overwrite: bool = False,
        flush_seconds: float = 30.0,
    ) -> MatrixStoreWriter:
        """Start a new store at ``<path>.partial`` (refusing an existing ``path`` or partial
        store unless ``overwrite``; an existing ``path`` is replaced only at :meth:`finalize`).

        ``history`` is the number of extra (B, m, n) states the producer needs to continue
        (2 for the fd5 multistep scheme); they are saved at every flush for :meth:`resume`.
        """
        import zarr

        path = Path(path)
        part = partial_path(path)
        if dtype not in _NP_DTYPES:
            raise TypeError(
                f"The 'dtype' parameter of MatrixStoreWriter must be float32 or "
                f"float64. Got {dtype}."
            )
        checks = (("n_runs", n_runs), ("n_frames", n_frames), ("chunk_frames", chunk_frames))
        for name, val in checks:
            if name == "chunk_frames" and val is None:
                continue
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(
                    f"The '{name}' parameter of MatrixStoreWriter must be an int >= 1. Got {val!r}."
                )
        if not overwrite:
            if path.exists():
                raise FileExistsError(
                    f"{path} exists; pass --overwrite to replace it or --resume "
                    f"to continue an interrupted run."
                )
            if part.exists():
                raise FileExistsError(
                    f"An interrupted run exists at {part}; pass --resume to "
                    f"continue it or --overwrite to start over."
                )
        if part.exists():
            shutil.rmtree(part)
        part.parent.mkdir(parents=True, exist_ok=True)
        m, n = (int(s) for s in matrix_shape)
        npdt = _NP_DTYPES[dtype]
        cf = chunk_frames or _default_chunk_frames(m, n, npdt.itemsize)
        root = zarr.open_group(str(part), mode="w")
        attrs = {
            "format": FORMAT,
            "n_runs": n_runs,
            "n_frames": n_frames,
            "matrix_shape": [m, n],
            "dtype": str(dtype).removeprefix("torch."),
            "complete": False,
            **dict(metadata or {}),
        }
        root.attrs.update(attrs)
        for i in range(n_runs):
            g = root.create_group(_run_name(i))
            g.create_array(
                "f",
                shape=(n_frames, m, n),
                chunks=(cf, m, n),
                dtype=npdt,
                compressors=_compressor(npdt),
            )
            g.create_array("t", shape=(n_frames,), chunks=(min(n_frames, 65536),), dtype="<f8")
            d = g.create_group("diag")
            for name in diagnostics:
                d.create_array(name, shape=(n_frames,), chunks=(min(n_frames, 65536),), dtype="<f8")
        if history:
            r = root.create_group("_resume")
            for slot in (0, 1):
                r.create_array(
                    f"slot{slot}", shape=(history, n_runs, m, n), chunks=(1, 1, m, n), dtype=npdt
                )
        marker = {
            "status": "running",
            "frames_written": 0,
            "n_frames": n_frames,
            "step": 0,
            "history": history,
            "history_slot": None,
            "state_step": None,
            "np_dtype": npdt.str,
            "diagnostics": list(diagnostics),
            "metadata": dict(metadata or {}),
        }
        write_json(part / MARKER, marker)
        return cls(path, root, marker, flush_seconds)

    @classmethod
    def resume(
        cls, path: str | os.PathLike, *, flush_seconds: float = 30.0, allow_empty: bool = False
    ) -> MatrixStoreWriter:
        """Reopen the partial store of ``path`` to continue after its last flushed frame.

        A store interrupted before its first flush holds no frame to continue from: refused,
        unless ``allow_empty``, which returns a writer at frame 0 (the producer starts over,
        in the store whose metadata it has checked).
        """
        path = Path(path)
        part = partial_path(path)
        if not part.exists():
            if path.exists():
                raise FileExistsError(
                    f"{path} is already complete; nothing to resume (pass "
                    f"--overwrite to recompute it)."
                )
            raise FileNotFoundError(f"Nothing to resume: no partial store at {part}.")
        try:
            marker = read_json(part / MARKER)
        except FileNotFoundError:
            raise StoreError(
                f"{part} has no {MARKER} marker (corrupt); pass --overwrite to start over."
            ) from None
        marker = _check_marker(part, marker)
        if marker.get("status") != "running":
            raise StoreError(
                f"The run at {part} stopped with status {marker.get('status')!r} "
                f"({marker.get('message', '')}); it cannot be resumed. Pass "
                f"--overwrite to start over."
            )
        if marker["frames_written"] < 1 and not allow_empty:
            raise StoreError(
                f"The run at {part} has no frame on disk to resume from; pass "
                f"--overwrite to start over."
            )
        return cls(path, _open_group(part, mode="r+"), marker, flush_seconds)

    # -- state --------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._marker["metadata"])

    @property
    def frames_written(self) -> int:
        """Frames safely on disk (flushed)."""
        return int(self._marker["frames_written"])

    @property
    def n_frames(self) -> int:
        return int(self._marker["n_frames"])

    @property
    def step(self) -> int:
        """Producer step of the last flushed frame."""
        return int(self._marker["step"])

    def last_frame(self) -> Tensor:
        """The last flushed frame of every run, (B, m, n), to resume from."""
        i = self.frames_written - 1
        runs = [np.asarray(self._g[_run_name(r)]["f"][i]) for r in range(self._g.attrs["n_runs"])]
        return torch.from_numpy(np.stack(runs))

    def last_history(self) -> tuple[Tensor, ...]:
        """The producer history saved with the last flush (empty if none)."""
        slot = self._marker.get("history_slot")
        if not self._marker["history"] or slot is None:
            return ()
        arr = np.asarray(self._g["_resume"][f"slot{slot}"][...])
        return tuple(torch.from_numpy(a) for a in arr)

    def last_state(self) -> dict[str, Tensor] | None:
        """The producer's exact state saved with the last flush (see :meth:`append`), or None
        when that flush saved none (a producer without one, or a store written before state
        files existed).

        Raises
        ------
        StoreError
            the file is missing, unreadable, or records another step than the flushed frames.
        """
        step = self._marker.get("state_step")
        if step is None:
            return None
        path = self.partial / state_file_name(step)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (OSError, SafetensorError) as exc:
            raise StoreError(
                f"{path} (the solver state of the last flushed frames) cannot be read: {exc}; "
                f"pass --overwrite to start over."
            ) from None
        if meta.get("step") != str(step) or step != self.step:
            raise StoreError(
                f"{path} holds the state of step {meta.get('step')!r}, but the flushed frames end "
                f"at step {self.step}; pass --overwrite to start over."
            )
        return tensors

    # -- writing ------------------------------------------------------------------------------
    def append(
        self,
        f: Tensor,
        t: float,
        diagnostics: Mapping[str, Tensor] | None = None,
        *,
        step: int | None = None,
        history: Sequence[Tensor] = (),
        state: Mapping[str, Tensor] | None = None,
    ) -> None:
        """Add one frame per run: ``f`` (B, m, n), its time, diagnostics name -> (B,), the
        producer's step and history (kept by reference; pass tensors that are not mutated),
        and its exact state beyond them as named tensors, or None (copied here: a producer
        may go on changing what it passed)."""
        n_written = self.frames_written + len(self._buf)
        if n_written >= self.n_frames:
            raise ValueError(f"The store holds {self.n_frames} frames; cannot append more.")
        arr = f.detach().cpu().numpy().astype(self._np_dtype, copy=False)
        diag = {
            k: np.asarray(v.detach().cpu().double())
            if isinstance(v, Tensor)
            else np.asarray(v, dtype=np.float64)
            for k, v in (diagnostics or {}).items()
        }
        self._buf.append((arr, float(t), diag))
        self._step = int(step) if step is not None else self._step + 1
        self._history = tuple(history)
        self._state = None if state is None else _snapshot(state)
        if (
            len(self._buf) >= self._chunk_frames
            or time.monotonic() - self._last_flush >= self._flush_seconds
        ):
            self.flush()

    def _run_arrays(self, r: int) -> tuple[Any, Any, dict[str, Any]]:
        """Run ``r``'s frame, time and diagnostic arrays, looked up once per writer: a zarr
        group lookup costs about a millisecond, as much as a small simulator step, and the
        writer is called once per saved frame."""
        if r not in self._arrays:
            g = self._g[_run_name(r)]
            names = self._marker["diagnostics"]
            self._arrays[r] = (g["f"], g["t"], {name: g["diag"][name] for name in names})
        return self._arrays[r]

    def flush(self) -> None:
        """Write buffered frames, the history, the state file, then the marker (in that order)
        and delete older state files."""
        if not self._buf:
            return
        a = self.frames_written
        b = a + len(self._buf)
        block = np.stack([x[0] for x in self._buf], axis=1)  # (B, k, m, n)
        ts = np.array([x[1] for x in self._buf])
        names = self._marker["diagnostics"]
        for r in range(block.shape[0]):
            f_arr, t_arr, diag_arrs = self._run_arrays(r)
            f_arr[a:b] = block[r]
            t_arr[a:b] = ts
            for name in names:
                diag_arrs[name][a:b] = np.array([x[2][name][r] for x in self._buf])
        marker = dict(self._marker, frames_written=b, step=self._step)
        if self._marker["history"] and not self._history and self._step == 0:
            # the initial state of a multistep producer has no history yet (its first steps
            # start without one): nothing to save, a resume starts from the initial frame
            marker["history_slot"] = None
        elif self._marker["history"]:
            cur = self._marker.get("history_slot")
            slot = 0 if cur is None else 1 - int(cur)
            if len(self._history) != self._marker["history"]:
                raise ValueError(
                    f"The producer must pass {self._marker['history']} history "
                    f"states with each frame. Got {len(self._history)}."
                )
            hist = np.stack([h.detach().cpu().numpy() for h in self._history])
            self._g["_resume"][f"slot{slot}"][...] = hist.astype(self._np_dtype, copy=False)
            marker["history_slot"] = slot
        marker["state_step"] = None
        if self._state is not None:
            data = save_tensors(self._state, metadata={"step": str(self._step)})
            atomic_write_bytes(self.partial / state_file_name(self._step), data)
            marker["state_step"] = self._step
        write_json(self.partial / MARKER, marker)
        self._marker = marker
        self._buf.clear()
        self._last_flush = time.monotonic()
        self._remove_state_files(keep=marker["state_step"])

    def _remove_state_files(self, keep: int | None) -> None:
        name = None if keep is None else state_file_name(keep)
        for p in self.partial.glob(f"{_STATE_PREFIX}*"):
            if p.name != name:
                p.unlink(missing_ok=True)

    def mark_failed(self, message: str) -> Path:
        """Flush what is buffered and mark the partial store failed (kept, not resumable)."""
        self.flush()
        marker = dict(self._marker, status="failed", message=message)
        write_json(self.partial / MARKER, marker)
        self._marker = marker
        return self.partial

    def finalize(self) -> MatrixStore:
        """Checksum every run, mark complete and rename ``<path>.partial`` to ``path``."""
        self.flush()
        if self.frames_written != self.n_frames:
            raise StoreError(
                f"Cannot finalize {self.path}: {self.frames_written} of "
                f"{self.n_frames} frames written."
            )
        sums = []
        for r in range(int(self._g.attrs["n_runs"])):
            name = _run_name(r)
            g = self._g[name]
            cs = _hash_run(g["f"], self.n_frames, name, int(g["f"].chunks[0]))
            g.attrs["checksum"] = cs
            sums.append(cs)
        shutil.rmtree(self.partial / "_resume", ignore_errors=True)
        self._remove_state_files(keep=None)
        self._g.attrs.update({"checksum": _combine(sums), "complete": True})
        os.unlink(self.partial / MARKER)
        if self.path.exists():  # --overwrite: replace only now that the new store is complete
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.partial, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.partial, self.path)
        return MatrixStore.open(self.path)
