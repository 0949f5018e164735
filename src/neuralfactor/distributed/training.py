"""Data-parallel training of the amortized factorizers with ``torch.distributed`` (DDP).

Launch with ``torchrun`` (one process per GPU, or several CPU processes on gloo)::

    torchrun --standalone --nproc_per_node 2 --no-python neuralfactor train --distributed \\
        --data runs/landau.zarr --model convmf --rank 8 --batch-size 32 --out runs/convmf-ddp

Contract:

- ``--batch-size`` is the **global** batch B; each of the W processes draws B / W frames per
  step through a :class:`torch.utils.data.distributed.DistributedSampler` over the store's
  training frames (read lazily from Zarr, never the whole split). The sampler's permutation
  for epoch e is ``randperm(N, seed * 1_000_003 + e)`` -- the one the single-process trainer
  uses -- and rank w takes positions w, w + W, ..., so the W local batches of step i are
  exactly the single-process global batch i. DDP averages the gradients of the local means,
  i.e. the gradient of the global mean: W processes follow the single-process trajectory up
  to floating-point summation order.
- Checkpoints (``ckpt/last``, ``ckpt/best``, ``model``) are written by rank 0 only, atomically
  (:mod:`neuralfactor.train.checkpoint`). They hold the global step; the data order is a
  function of (seed, epoch, global step), so ``--resume`` continues correctly with any W that
  divides B (the sampler state is nothing but the epoch and the position in it).
- CPU uses the gloo backend, CUDA nccl (one device per local rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["DistContext", "StoreFrames", "init_distributed", "train_model_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size, device, and whether it made the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    owns_group: bool

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def init_distributed(device: str = "auto", *, timeout_s: float = 300.0) -> DistContext:
    """Join the process group ``torchrun`` describes (env ``RANK``, ``WORLD_SIZE``, ...).

    Without those variables this is one process (world size 1, no group). The backend is nccl
    for CUDA and gloo for CPU.
    """
    import datetime

    import torch.distributed as dist

    from neuralfactor.core.validation import resolve_device

    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if world == 1:
        return DistContext(0, 1, 0, dev, None, False)
    if not dist.is_available():
        raise RuntimeError("This PyTorch build has no torch.distributed support.")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, backend, owns)


class StoreFrames(torch.utils.data.Dataset):
    """Frames ``indices`` of one run of a MatrixStore, read from Zarr on demand.

    Frames are rounded to float32 (as the single-process study loads them) and cast to
    ``dtype``. :meth:`batch` reads a whole batch with one orthogonal selection.
    """

    def __init__(self, path: str | Path, run: int, indices: np.ndarray, dtype: torch.dtype):
        from neuralfactor.data.store import MatrixStore

        self._run = MatrixStore.open(path)[run]
        self.indices = np.asarray(indices, dtype=np.int64)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        return self.batch([i])[0]

    def frames32(self, positions: Any) -> Tensor:
        """The frames at ``positions`` as stored, rounded to float32 (before the cast)."""
        idx = self.indices[np.asarray(positions, dtype=np.int64)]
        return self._run.as_tensor(idx, dtype=torch.float32)

    def batch(self, positions: Any) -> Tensor:
        return self.frames32(positions).to(self.dtype)


def _split_indices(config: Any) -> dict[str, np.ndarray]:
    """Train/val/test frame indices of the study's split (as ``load_split_frames``), unloaded."""
    from neuralfactor.data.splits import extrapolation_split, interpolation_split
    from neuralfactor.data.store import MatrixStore

    run = MatrixStore.open(config.data)[config.run]
    idx_all = np.arange(0, run.shape[0], config.frame_stride)
    n = len(idx_all)
    if config.split == "interpolation":
        sp = interpolation_split(n, seed=config.split_seed, min_size=1)
    else:
        sp = extrapolation_split(n, min_size=1)
    return {"train": idx_all[sp.train], "val": idx_all[sp.val], "test": idx_all[sp.test]}


def train_model_distributed(
    config: Any,
    out: str | Path,
    *,
    max_steps: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Train ``config`` (a :class:`~neuralfactor.amortized.study.StudyConfig`) with DDP.

    Run under ``torchrun`` (or as one plain process: world size 1). Writes the same run
    directory as :func:`~neuralfactor.amortized.study.train_model` (config, split, ckpt,
    model), from rank 0, through the same training path
    (:meth:`~neuralfactor.amortized.factorizer.LearnedFactorizer.fit_frames`); this function
    adds the process group, the sampler and the rank-0 writes. ``max_steps`` stops after that
    many global steps with a resumable checkpoint (for time-boxed cluster jobs) and returns
    ``None``; otherwise every rank returns the trained
    :class:`~neuralfactor.amortized.factorizer.LearnedFactorizer`.
    """
    from neuralfactor.amortized.factorizer import LearnedFactorizer
    from neuralfactor.amortized.study import check_run_dir

    out = Path(out)
    ctx = init_distributed(config.settings.device)
    try:
        B, W = config.settings.batch_size, ctx.world_size
        if B % W:
            raise ValueError(
                f"The global batch size ({B}) must be a multiple of the number of processes "
                f"({W}); each process takes batch_size / world_size frames."
            )
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"The 'max_steps' parameter must be >= 1. Got {max_steps}.")
        if check_run_dir(config, out, resume=resume, overwrite=overwrite):
            return LearnedFactorizer.load(out / "model", device=str(ctx.device))
        f = LearnedFactorizer.from_config(
            config, checkpoint_dir=out / "ckpt", resume=resume, progress=progress and ctx.is_writer
        )
        data, parts = _store_frames(config, f, ctx)  # validated before anything is written
        if ctx.is_writer:
            _write_run_files(config, out, parts)
        ctx.barrier()
        result = f.fit_frames(
            data,
            ctx.device,
            wrap=_ddp_wrapper(ctx),
            write_checkpoints=ctx.is_writer,
            max_steps=max_steps,
        )
        ctx.barrier()
        total = config.settings.epochs * (data.count // B)
        if result.steps_done < total and result.stopped != "early-stopped":
            return None  # stopped at max_steps: resume later
        if ctx.is_writer:
            f.save(out / "model")
        ctx.barrier()
        return LearnedFactorizer.load(out / "model", device=str(ctx.device))
    finally:
        if ctx.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _store_frames(config: Any, f: Any, ctx: DistContext) -> tuple[Any, dict[str, np.ndarray]]:
    """The training frames of ``config`` as the training path takes them, read lazily: this
    process's share of each global batch through a ``DistributedSampler`` whose permutation
    of epoch e is the single process's (``seed * SEED_STRIDE + e``). Checks the frames
    against ``f`` (:meth:`~neuralfactor.amortized.factorizer.LearnedFactorizer.check_frames`)."""
    from torch.utils.data.distributed import DistributedSampler

    from neuralfactor.amortized.factorizer import SEED_STRIDE, TrainingFrames
    from neuralfactor.train.checkpoint import stream_fingerprint

    s = config.settings
    parts = _split_indices(config)
    train = StoreFrames(config.data, config.run, parts["train"], s.torch_dtype)
    m, n = (int(v) for v in train.batch([0]).shape[-2:])
    f.check_frames(len(train), (m, n))
    val = StoreFrames(config.data, config.run, parts["val"], s.torch_dtype)
    sampler = DistributedSampler(
        train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
        seed=s.seed * SEED_STRIDE, drop_last=True,
    )  # fmt: skip

    def order(epoch: int) -> list[int]:
        sampler.set_epoch(epoch)
        return list(iter(sampler))

    fingerprint = None
    if ctx.is_writer:  # the single process's fingerprint of the same frames (float32, as read)
        chunks = (
            train.frames32(range(i, min(i + 256, len(train)))) for i in range(0, len(train), 256)
        )
        fingerprint = stream_fingerprint((len(train), m, n), torch.float32, chunks)
    data = TrainingFrames(
        count=len(train),
        frame_shape=(m, n),
        take=lambda positions: train.batch(positions).to(ctx.device),
        val=val.batch(np.arange(len(val))).to(ctx.device),
        fingerprint=fingerprint,
        order=order,
        world_size=ctx.world_size,
    )
    return data, parts


def _write_run_files(config: Any, out: Path, parts: dict[str, np.ndarray]) -> None:
    from neuralfactor.amortized.study import DATA_FILE, store_identity
    from neuralfactor.io import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict())
    write_json(out / "split.json", {k: v.tolist() for k, v in parts.items()})
    write_json(out / DATA_FILE, store_identity(config))


def _ddp_wrapper(ctx: DistContext) -> Any:
    """Wrap the network in ``DistributedDataParallel`` (no wrapper for one process)."""
    if ctx.world_size == 1:
        return None
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return lambda module: DistributedDataParallel(module, device_ids=ids)
