"""Train one model of the amortized study, in one process or data-parallel under torchrun.

:func:`train_run` is what ``neuralfactor train`` calls: it pins the torch/BLAS thread pools
(a number given, or one chosen from the cores and shared by the processes torchrun starts on
the machine) and trains with :func:`~neuralfactor.amortized.study.train_model` or, with
``distributed``, :func:`~neuralfactor.distributed.training.train_model_distributed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrainRun", "train_run"]


@dataclass(frozen=True)
class TrainRun:
    """The outcome of :func:`train_run`.

    Attributes
    ----------
    factorizer : the trained :class:`~neuralfactor.amortized.factorizer.LearnedFactorizer`;
        None on the non-zero ranks of a distributed run (rank 0 reports).
    world_size : processes that trained (1 without ``distributed``).
    distributed : trained with DistributedDataParallel.
    """

    factorizer: Any | None
    world_size: int = 1
    distributed: bool = False


def train_run(
    config: Any,
    out: str | Path,
    *,
    threads: int = 0,
    distributed: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainRun:
    """Train ``config`` (a :class:`~neuralfactor.amortized.study.StudyConfig`) into the run
    directory ``out`` (resumable; see :func:`~neuralfactor.amortized.study.train_model`).

    Parameters
    ----------
    threads : torch/BLAS threads per process; 0 chooses
        :func:`~neuralfactor.core.timing.default_threads` divided among the
        ``LOCAL_WORLD_SIZE`` processes of a distributed run on this machine.
    distributed : data-parallel under ``torchrun`` (``config.settings.batch_size`` is the
        global batch).

    Raises
    ------
    ValueError
        ``threads < 0``, and what the training functions raise for bad configurations.
    """
    from neuralfactor.core.timing import default_threads, pinned_threads

    if threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: chosen from the cores). Got {threads}.")
    # torchrun starts LOCAL_WORLD_SIZE processes per machine: they share its cores
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if distributed else 1)
    with pinned_threads(threads or max(1, default_threads() // local)):
        if not distributed:
            from neuralfactor.amortized.study import train_model

            f = train_model(config, out, resume=resume, overwrite=overwrite, progress=progress)
            return TrainRun(f)
        from neuralfactor.distributed.training import train_model_distributed

        f = train_model_distributed(
            config, out, resume=resume, overwrite=overwrite, progress=progress
        )
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return TrainRun(f if rank == 0 else None, world, True)
