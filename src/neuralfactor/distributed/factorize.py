"""Factorize every frame of a MatrixStore chunk by chunk with ``dask.array``, resumably.

``factorize_store(store, factorizer, out)`` reads the frames of each run with
``dask.array.from_zarr`` (one Dask block per storage chunk, so no frame is read twice and the
frames are never all in memory), factorizes each block in a task and writes, per frame, the
factors ``U`` (T, m, r) and ``V`` (T, r, n) with ``X ~ U @ V`` (singular values, when the method
returns them, are folded into ``U``), the scaled loss and the ratio to the Eckart-Young optimum
into a new Zarr store. Scheduling is Dask's: the local threaded scheduler by default,
``"processes"``, ``"synchronous"``, or a ``dask.distributed`` scheduler given by address
(``tcp://host:8786``).

Layout of the output (a Zarr v3 group)::

    out.zarr/                 root attrs: format, spec (method, params, rank, input checksum,
                              shapes, chunking), complete = true, summary
        run-000/
            U  (T, m, r)      chunked like the input frames (chunk_frames, m, r)
            V  (T, r, n)
            scaled_loss (T,)  ||X - UV||_F^2 / ||X||_F^2, float64
            ratio       (T,)  scaled loss / optimal scaled loss at the same rank
            done (n_chunks,)  one Zarr chunk per data chunk: 1 once that chunk's data is on disk

Fault tolerance (idempotent by default, no ``--resume`` flag): work happens at
``<out>.partial``. Each task writes its chunk's data, then its ``done`` marker (every Zarr
chunk is written to a temporary file and renamed). Only when every marker is set are the root
attributes marked ``complete`` and the directory renamed to ``out``; a killed run therefore
never leaves anything at ``out``. Calling again with the same method, parameters and input
recomputes only the chunks without a marker; a different method/rank/input is refused unless
``overwrite`` (an existing complete ``out`` is replaced only once the new one is complete).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralfactor.core.factorizer import Factorizer, make_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.metrics import ratio_summary
from neuralfactor.core.validation import check_positive_float, check_rank
from neuralfactor.data.store import MatrixStore, StoreError, partial_path
from neuralfactor.io import replace_dir

__all__ = ["FACTOR_FORMAT", "SCHEDULERS", "FactorStore", "FactorizeResult", "factorize_store"]

#: Value of the root attribute ``format`` of a factor store.
FACTOR_FORMAT = "neuralfactor.FactorStore/1"
#: Local Dask schedulers accepted by name; anything containing ``://`` is a cluster address.
SCHEDULERS: tuple[str, ...] = ("threads", "processes", "synchronous")
_NP = {torch.float64: np.dtype("<f8"), torch.float32: np.dtype("<f4")}


@dataclass(frozen=True)
class FactorizeResult:
    """What one call of :func:`factorize_store` did."""

    path: str
    method: str
    rank: int
    n_runs: int
    n_frames: int
    chunks_total: int
    chunks_computed: int
    chunks_skipped: int
    seconds: float
    scaled_loss_mean: float
    ratio_mean: float
    ratio_max: float
    scheduler: str
    #: The median is the robust summary: a frame whose optimum is at round-off level (e.g. a
    #: rank-1 initial condition at rank 4) has a ratio that measures noise (up to 1e14) and
    #: dominates the mean. ``ratio_median``, ``ratio_max`` and the shares within 1.01 / 1.05
    #: exclude those frames, counted in ``roundoff_frames`` (see
    #: :func:`~neuralfactor.core.metrics.ratio_summary`); ``ratio_mean`` includes every frame.
    ratio_median: float = float("nan")
    within_1_01: float = float("nan")
    within_1_05: float = float("nan")
    roundoff_frames: int = 0
    roundoff_loss_max: float = float("nan")

    @property
    def frames_per_second(self) -> float:
        """Frames factorized per wall-clock second in this call (computed chunks only)."""
        done = self.n_runs * self.n_frames * self.chunks_computed / max(1, self.chunks_total)
        return done / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _spec_of(f: Factorizer, store: MatrixStore, chunk_frames: int) -> dict[str, Any]:
    params = f.get_params() if hasattr(f, "get_params") else {"rank": f.rank}
    return _jsonable(
        {
            "method": f.name,
            "rank": int(f.rank),
            "params": params,
            "input_checksum": store.metadata.get("checksum"),
            "shape": list(store.shape),
            "dtype": str(store.dtype).removeprefix("torch."),
            "chunk_frames": int(chunk_frames),
        }
    )


def _describe_mismatch(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = [k for k in ("method", "rank", "params", "input_checksum", "shape", "chunk_frames")]
    diff = [f"{k}={old.get(k)!r} (now {new.get(k)!r})" for k in keys if old.get(k) != new.get(k)]
    return ", ".join(diff) or "another configuration"


# -- the task ---------------------------------------------------------------------------------
def _factorize_block(
    block: np.ndarray,
    *,
    factorizer: Factorizer,
    out: str,
    run: str,
    start: int,
    index: int,
    torch_threads: int | None,
) -> np.ndarray:
    """Factorize frames ``start : start + len(block)`` of ``run``, write them, then the marker.

    Runs in a Dask task (thread, process or remote worker). Each task works on its own copy of
    the factorizer, so stateful methods (warm-subspace) start cold in every chunk and the result
    does not depend on the schedule.
    """
    import zarr

    from neuralfactor.core.metrics import optimal_scaled_loss, scaled_loss
    from neuralfactor.core.timing import pinned_threads

    f = copy.deepcopy(factorizer)
    if hasattr(f, "reset"):
        f.reset()
    X = torch.from_numpy(np.ascontiguousarray(block))
    with pinned_threads(torch_threads):
        lr = f.factorize(X)
        A, B = lr.factors()
        loss = scaled_loss(X, LowRank(A, B))
        opt = optimal_scaled_loss(X, f.rank)
    ratio = torch.where((opt == 0) & (loss == 0), torch.ones_like(loss), loss / opt)
    k = X.shape[0]
    g = zarr.open_group(out, mode="r+")[run]
    npdt = np.dtype(g["U"].dtype)
    g["U"][start : start + k] = A.detach().cpu().numpy().astype(npdt, copy=False)
    g["V"][start : start + k] = B.detach().cpu().numpy().astype(npdt, copy=False)
    g["scaled_loss"][start : start + k] = loss.numpy()
    g["ratio"][start : start + k] = ratio.numpy()
    g["done"][index] = 1  # after the data: a marker always means the chunk is on disk
    return loss.numpy()


# -- the output store -------------------------------------------------------------------------
def _create_output(part: Path, spec: dict[str, Any], store: MatrixStore, cf: int, npdt) -> None:
    import zarr

    shutil.rmtree(part, ignore_errors=True)
    part.parent.mkdir(parents=True, exist_ok=True)
    R, T, m, n = store.shape
    r = spec["rank"]
    n_chunks = -(-T // cf)
    root = zarr.open_group(str(part), mode="w")
    for name in store.runs:
        g = root.create_group(name)
        g.create_array("U", shape=(T, m, r), chunks=(cf, m, r), dtype=npdt)
        g.create_array("V", shape=(T, r, n), chunks=(cf, r, n), dtype=npdt)
        for d in ("scaled_loss", "ratio"):
            g.create_array(d, shape=(T,), chunks=(cf,), dtype="<f8", fill_value=np.nan)
        g.create_array("done", shape=(n_chunks,), chunks=(1,), dtype="u1", fill_value=0)
    # the spec last: a directory without it is not a resumable output and is started over
    root.attrs.update(
        {"format": FACTOR_FORMAT, "spec": spec, "input": str(store.path), "complete": False}
    )


def _read_spec(path: Path) -> dict[str, Any] | None:
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - a damaged leftover is simply started over
        return None
    if attrs.get("format") != FACTOR_FORMAT:
        return None
    return attrs.get("spec")


def _done_chunks(part: Path, runs: tuple[str, ...]) -> dict[str, np.ndarray]:
    import zarr

    root = zarr.open_group(str(part), mode="r")
    return {name: np.asarray(root[name]["done"][:]).astype(bool) for name in runs}


class FactorStore:
    """Read access to a completed output of :func:`factorize_store`.

    >>> fs = FactorStore.open("runs/landau-r12.zarr")
    >>> fs.spec["method"], fs.runs                   # 'rsvd-gemm', ('run-000',)
    >>> lr = fs.lowrank(0, frames=slice(0, 10))      # LowRank (10, m, r) @ (10, r, n)
    >>> fs.diagnostics(0)["ratio"]                    # (T,) ratio to the optimum
    """

    def __init__(self, path: Path, group: Any) -> None:
        self.path = path
        self._g = group

    @classmethod
    def open(cls, path: str | os.PathLike) -> FactorStore:
        """Open a complete factor store; a partial or foreign one is a :class:`StoreError`."""
        import zarr

        path = Path(path)
        if not path.exists():
            part = partial_path(path)
            extra = f" (an unfinished run is at {part}; rerun factorize to complete it)"
            raise FileNotFoundError(f"No factor store at {path}{extra if part.exists() else ''}.")
        try:
            g = zarr.open_group(str(path), mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises several types for damage
            raise StoreError(f"{path} is not a readable Zarr group: {exc}") from None
        attrs = dict(g.attrs)
        if attrs.get("format") != FACTOR_FORMAT:
            raise StoreError(f"{path} is not a neuralfactor factor store.")
        if attrs.get("complete") is not True:
            raise StoreError(f"{path} is marked incomplete.")
        return cls(path, g)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._g.attrs["spec"])

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self._g.attrs.get("summary", {}))

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(sorted(self._g.group_keys()))

    def _run(self, run: int | str) -> Any:
        name = self.runs[run] if isinstance(run, int) else run
        return self._g[name]

    def lowrank(self, run: int | str = 0, frames: slice = slice(None)) -> LowRank:
        """Factors of a slice of frames as a :class:`LowRank` (CPU tensors)."""
        g = self._run(run)
        U = torch.from_numpy(np.ascontiguousarray(g["U"][frames]))
        V = torch.from_numpy(np.ascontiguousarray(g["V"][frames]))
        return LowRank(U, V)

    def diagnostics(self, run: int | str = 0) -> dict[str, np.ndarray]:
        g = self._run(run)
        return {k: np.asarray(g[k][:]) for k in ("scaled_loss", "ratio")}


# -- scheduling -------------------------------------------------------------------------------
def _check_scheduler(scheduler: str | None, workers: int | None) -> str:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise TypeError(f"The 'workers' parameter must be an int >= 1. Got {workers!r}.")
    if workers is not None and workers < 1:
        raise ValueError(f"The 'workers' parameter must be an int >= 1. Got {workers}.")
    sched = scheduler or "threads"
    if "://" not in sched and sched not in SCHEDULERS:
        raise ValueError(
            f"The 'scheduler' parameter must be one of {list(SCHEDULERS)} or a dask.distributed "
            f"address like tcp://host:8786. Got {scheduler!r}."
        )
    return sched


def _connect(address: str, timeout: float) -> Any:
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ImportError(
            "A --scheduler address needs dask.distributed: pip install 'neuralfactor[distributed]'."
        ) from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(
            f"Could not connect to the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Start one with `dask scheduler` or check the address."
        ) from None


def _compute(arrays: list, sched: str, workers: int | None, progress: bool, client: Any):
    import dask

    if client is not None:
        futures = client.compute(arrays)
        if progress:
            from distributed import progress as dprogress

            dprogress(futures)
        return client.gather(futures)
    kw: dict[str, Any] = {"scheduler": sched}
    if workers is not None and sched != "synchronous":
        kw["num_workers"] = workers
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=0.5):
            return dask.compute(*arrays, **kw)
    return dask.compute(*arrays, **kw)


# -- the entry point --------------------------------------------------------------------------
def factorize_store(
    store: str | os.PathLike | MatrixStore,
    factorizer: str | Factorizer,
    out: str | os.PathLike,
    *,
    rank: int | None = None,
    params: Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    torch_threads: int | None = 1,
    connect_timeout: float = 10.0,
) -> FactorizeResult:
    """Factorize every frame of every run of ``store`` into the factor store ``out``.

    Parameters
    ----------
    store : path of a completed MatrixStore (or an open one).
    factorizer : a registered name (then ``rank`` is required and ``params`` go to
        :func:`~neuralfactor.make_factorizer`) or a built factorizer, e.g. a trained
        ``LearnedFactorizer.load(...)``; it must be picklable for processes and clusters.
    out : destination Zarr directory; work happens at ``<out>.partial``.
    scheduler : ``"threads"`` (default), ``"processes"``, ``"synchronous"`` or the address of
        a ``dask.distributed`` scheduler (``tcp://host:8786``).
    workers : threads/processes of a local scheduler (default: Dask's, the number of cores).
        Ignored for a cluster, whose workers are fixed when it is started.
    overwrite : replace an ``out`` (or unfinished ``<out>.partial``) made with another method,
        rank, parameters or input; without it such a rerun is refused.
    progress : show Dask's progress bar.
    torch_threads : torch/BLAS threads inside each task (1: the workers are the parallelism).
    connect_timeout : seconds to wait for a cluster scheduler before failing.

    Returns
    -------
    FactorizeResult : chunks computed and skipped (resumed), wall time, mean scaled loss and
        ratio to the optimum over all frames.

    Notes
    -----
    Idempotent: a complete ``out`` with the same specification is left alone (0 chunks
    computed); an unfinished one is completed (only chunks without a ``done`` marker). Peak
    memory is about ``workers`` input chunks plus their factors, whatever the store's size.
    Each chunk is factorized as a batch, so methods that share randomness across a batch (rsvd)
    give results that depend on the chunking (recorded in the spec), not on the schedule.
    """
    from neuralfactor.distributed import require_dask

    require_dask()
    connect_timeout = check_positive_float(
        connect_timeout, name="connect_timeout", caller="factorize_store"
    )
    sched = _check_scheduler(scheduler, workers)
    # fail fast on a bad address, before any output is touched
    client = _connect(sched, connect_timeout) if "://" in sched else None
    try:
        return _run(
            store,
            factorizer,
            out,
            rank,
            params,
            sched,
            workers,
            overwrite,
            progress,
            torch_threads,
            client,
        )
    finally:
        if client is not None:
            client.close()


def _run(
    store, factorizer, out, rank, params, sched, workers, overwrite, progress, torch_threads, client
) -> FactorizeResult:
    from neuralfactor.core.timing import pinned_threads
    from neuralfactor.distributed import require_dask

    da = require_dask()
    store, f = _resolve(store, factorizer, rank, params)
    R, T, m, n = store.shape
    cf = store[0].chunk_frames
    out = Path(out)
    part = partial_path(out)
    spec = _spec_of(f, store, cf)
    n_chunks = -(-T // cf)
    if _prepare_output(out, part, spec, store, cf, overwrite):
        fs = FactorStore.open(out)
        return FactorizeResult(
            **{**fs.summary, "chunks_computed": 0, "chunks_skipped": R * n_chunks},
            seconds=0.0,
            scheduler=sched,
        )
    done = _done_chunks(part, store.runs)

    # threads share one process: pin its pools once here, not per task (the pools are global)
    in_process = sched in ("threads", "synchronous")
    task_threads = None if in_process else torch_threads
    # the wall time of the whole run (graph, compute, writes), reported as the run's seconds
    t0 = time.perf_counter()
    token = uuid.uuid4().hex[:8]
    arrays = []
    for name in store.runs:
        X = da.from_zarr(str(store.path), component=f"{name}/f")[:T]
        for i in range(n_chunks):
            if done[name][i]:
                continue
            arrays.append(
                da.map_blocks(
                    _factorize_block,
                    X.blocks[i],
                    drop_axis=[1, 2],
                    dtype=np.float64,
                    name=f"nf-factorize-{token}-{name}-{i}",
                    factorizer=f,
                    out=str(part),
                    run=name,
                    start=i * cf,
                    index=i,
                    torch_threads=task_threads,
                )
            )
    if arrays:
        with pinned_threads(torch_threads if in_process else None):
            _compute(arrays, sched, workers, progress, client)
    seconds = time.perf_counter() - t0
    summary = _finalize(part, out, store, f, n_chunks)
    return FactorizeResult(
        **summary,
        chunks_computed=len(arrays),
        chunks_skipped=R * n_chunks - len(arrays),
        seconds=seconds,
        scheduler=sched,
    )


def _resolve(store, factorizer, rank, params) -> tuple[MatrixStore, Factorizer]:
    """The opened store and the factorizer, checked on one frame before anything is written."""
    if not isinstance(store, MatrixStore):
        store = MatrixStore.open(store)
    if store.partial is not None:
        raise StoreError(f"{store.path} is an unfinished MatrixStore; finish it first.")
    if isinstance(factorizer, str):
        if rank is None:
            raise ValueError("factorize_store needs 'rank' when the factorizer is given by name.")
        f = make_factorizer(factorizer, rank=rank, **dict(params or {}))
    else:
        if rank is not None and rank != factorizer.rank:
            raise ValueError(
                f"The 'rank' parameter ({rank}) differs from the factorizer's rank "
                f"({factorizer.rank}); leave it out."
            )
        f = factorizer
    check_rank(f.rank, store.shape[-2:], caller="factorize_store")
    if getattr(f, "requires_fit", False) and not getattr(f, "_fitted", True):
        raise ValueError(
            f"{f.name} is data-driven and not fitted; pass a trained factorizer "
            f"(e.g. LearnedFactorizer.load(model_dir)) or a classical method."
        )
    # one frame through a copy of the factorizer before anything is written: a factorizer
    # that cannot take these frames (a model trained on another frame size, a method that
    # refuses them) fails here and leaves no <out>.partial to block the corrected command
    probe = copy.deepcopy(f)
    if hasattr(probe, "reset"):
        probe.reset()
    probe.factorize(store[0].as_tensor(slice(0, 1)))
    return store, f


def _prepare_output(
    out: Path, part: Path, spec: dict[str, Any], store: MatrixStore, cf: int, overwrite: bool
) -> bool:
    """True when ``out`` is already this factorization (nothing to do); else make sure
    ``part`` holds an output to (re)fill: resumed when made the same way, refused when made
    differently unless ``overwrite``."""
    if out.exists():
        old = _read_spec(out)
        if old == spec:
            return True
        if not overwrite:
            what = _describe_mismatch(old, spec) if old else "not a factor store"
            raise FileExistsError(
                f"{out} exists and was made differently ({what}); pass --overwrite to "
                f"replace it or choose another --out."
            )
    resume = False
    if part.exists():
        old = _read_spec(part)
        if old == spec:
            resume = True
        elif old is not None and not overwrite:
            raise FileExistsError(
                f"An unfinished factorization at {part} was made differently "
                f"({_describe_mismatch(old, spec)}); pass --overwrite to start over."
            )
    if not resume:
        _create_output(part, spec, store, cf, _NP[store.dtype])
    return False


def _finalize(
    part: Path, out: Path, store: MatrixStore, f: Factorizer, n_chunks: int
) -> dict[str, Any]:
    """Summarize ``part`` and move it to ``out``, only when every chunk's marker is set."""
    import zarr

    R, T, m, n = store.shape
    done = _done_chunks(part, store.runs)
    missing = sum(int((~d).sum()) for d in done.values())
    if missing:
        raise StoreError(
            f"{missing} chunks of {part} have no completion marker after the run; rerun to "
            f"complete them."
        )
    root = zarr.open_group(str(part), mode="r+")
    loss = np.concatenate([np.asarray(root[r]["scaled_loss"][:]) for r in store.runs])
    ratio = np.concatenate([np.asarray(root[r]["ratio"][:]) for r in store.runs])
    # the optimum per frame, back from loss / ratio (a ratio of 0 or inf: optimum 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        opt = np.where((ratio > 0) & np.isfinite(ratio), loss / ratio, 0.0)
    robust = ratio_summary(
        torch.from_numpy(loss), torch.from_numpy(opt), shape=(m, n), dtype=store.dtype
    )
    summary = {
        "path": str(out),
        "method": f.name,
        "rank": int(f.rank),
        "n_runs": R,
        "n_frames": T,
        "chunks_total": R * n_chunks,
        "scaled_loss_mean": float(loss.mean()),
        "ratio_mean": float(ratio[np.isfinite(ratio)].mean()) if np.isfinite(ratio).any() else 1.0,
        **{k: v for k, v in robust.items() if k != "frames"},
    }
    root.attrs.update({"summary": summary, "complete": True})
    replace_dir(part, out)  # an old store (overwrite) is replaced only now, complete
    return summary
