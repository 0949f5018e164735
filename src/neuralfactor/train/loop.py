"""One training loop for every network in neuralfactor.

The caller supplies ``loss_fn(step) -> Tensor`` (the loss of one optimization step; it draws its
own batch from generators it owns) and optionally ``eval_fn() -> float`` (lower is better). The
loop owns: the optimizer step (closure form, so Adam and L-BFGS both work), gradient clipping,
a Rich progress bar, evaluation every ``eval_every`` steps, early stopping, NaN detection,
and checkpoints that make ``resume=True`` continue bit-identically:

    ckpt_dir/last   model + optimizer + scheduler + generator states + history (resumable)
    ckpt_dir/best   model weights at the best evaluation

With ``restore_best`` the model ends with the weights of its best evaluation (from memory, or
from ``ckpt_dir/best`` when that evaluation happened before a resume); ``ckpt_dir/last`` still
holds the last step's state, so a resume continues the run where it stopped.

On a non-finite loss the loop stops, restores the last good weights and raises
:class:`TrainingDivergedError` naming the step; the checkpoints on disk are left as they were.

Failure against the method's own criterion (opt-in, through :class:`LoopConfig`): before the
first step the loop evaluates ``eval_fn`` once (the *initial* metric, kept in the checkpoint so
a resumed run keeps it). ``diverge_factor`` raises :class:`TrainingDivergedError` when an
evaluation exceeds that multiple of the initial metric (the loss blew up although it stayed
finite); ``require_progress`` raises :class:`TrainingStalledError` at the end when the best
evaluation is no better than the initial one (the loss never decreased). Both messages are one
line naming the numbers and the caller's ``remedy``; the checkpoints are kept for inspection.
Both criteria assume a positive metric where lower is better (a relative error, a scaled loss).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from neuralfactor.train.checkpoint import (
    load_checkpoint,
    load_state,
    restore_optimizer,
    save_checkpoint,
)

__all__ = [
    "LoopConfig",
    "LoopResult",
    "TrainingDivergedError",
    "TrainingStalledError",
    "run_training",
]

#: the relative improvement of the best evaluation over the initial one below which
#: ``require_progress`` reports a stalled training
MIN_PROGRESS = 1e-3


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/Inf, or (``diverge_factor``) an evaluation blew up far above the
    initial one; the message names the step and the last good checkpoint."""


class TrainingStalledError(RuntimeError):
    """``require_progress``: the best evaluation is no better than the initial one."""


@dataclass(frozen=True)
class LoopConfig:
    """How long and how carefully to train.

    steps : total optimizer steps.
    eval_every : evaluate (and checkpoint) every this many steps; the last step is always
        evaluated.
    patience : stop after this many evaluations without an improvement of ``min_delta``
        (relative); ``None`` never stops early.
    grad_clip : clip the global gradient norm to this value (``None``: no clipping).
    restore_best : end with the weights of the best evaluation instead of the last step's.
    diverge_factor : raise :class:`TrainingDivergedError` when an evaluation exceeds this
        multiple of the initial one (``None``: off; needs ``eval_fn``).
    require_progress : raise :class:`TrainingStalledError` when the best evaluation is not
        below ``(1 - MIN_PROGRESS)`` times the initial one at the end (needs ``eval_fn``).
    """

    steps: int
    eval_every: int = 100
    patience: int | None = None
    min_delta: float = 0.0
    grad_clip: float | None = None
    restore_best: bool = False
    diverge_factor: float | None = None
    require_progress: bool = False

    def __post_init__(self) -> None:
        if self.diverge_factor is not None and not self.diverge_factor > 1:
            raise ValueError(
                f"LoopConfig.diverge_factor must be > 1 or None. Got {self.diverge_factor}."
            )
        if self.steps < 0 or self.eval_every < 1:
            raise ValueError(
                f"LoopConfig needs steps >= 0 and eval_every >= 1. Got steps={self.steps}, "
                f"eval_every={self.eval_every}."
            )
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"LoopConfig.patience must be >= 1 or None. Got {self.patience}.")


@dataclass
class LoopResult:
    steps_done: int
    best_metric: float
    best_step: int
    stopped: str  # "completed" | "early-stopped" | "resumed-complete"
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    initial_metric: float | None = None  # eval_fn before the first step (checks enabled)


def _state_copy(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _restore_best(
    model: torch.nn.Module,
    state: dict[str, Tensor] | None,
    best_step: int,
    step: int,
    ckpt: Path | None,
) -> None:
    """Load the best evaluation's weights into ``model`` (a no-op if the last step was best)."""
    if best_step < 0 or best_step == step:
        return
    if state is None:  # the best evaluation predates a resume: it is on disk
        if ckpt is None or not (ckpt / "best").exists():
            raise ValueError(
                f"restore_best: the best evaluation (step {best_step}) is not in memory and "
                f"there is no checkpoint {ckpt}/best to read it from."
            )
        _, state = load_checkpoint(ckpt / "best")
        load_state(model, state, ckpt / "best")
        return
    model.load_state_dict(state)


def run_training(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[int], Tensor],
    config: LoopConfig,
    *,
    eval_fn: Callable[[], float] | None = None,
    scheduler: Any | None = None,
    generators: dict[str, torch.Generator] | None = None,
    checkpoint_dir: str | Path | None = None,
    init_args: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    description: str = "training",
    write_checkpoints: bool = True,
    remedy: str = "Try a smaller learning rate or gradient clipping.",
    loss_label: str = "batch loss",
    metric_label: str = "eval",
) -> LoopResult:
    """Train ``model`` for ``config.steps`` steps; see the module docstring for the contract.

    The progress bar shows ``loss_label`` with the last step's loss and ``metric_label`` with
    the last evaluation (name them what they are: "batch loss ||X - UV||^2", "val scaled
    loss"), so the bar and the caller's summary are not two unexplained numbers.

    ``write_checkpoints=False`` reads ``checkpoint_dir`` (to resume) but never writes it: the
    non-zero ranks of a distributed run, where rank 0 alone writes. ``remedy`` ends the
    one-line message of a diverged or stalled training (the method's documented fix).
    """
    generators = generators or {}
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and init_args is None:
        raise ValueError("run_training needs init_args (JSON) to write checkpoints.")
    start, best, best_step, history, bad_evals = 0, math.inf, -1, [], 0
    elapsed0 = 0.0
    checks = eval_fn is not None and (config.diverge_factor is not None or config.require_progress)
    initial: float | None = None

    if resume and ckpt is not None and (ckpt / "last").exists():
        m, tensors = load_checkpoint(ckpt / "last")
        load_state(model, tensors, ckpt / "last")
        restore_optimizer(optimizer, m, tensors)
        ts = m["train_state"]
        if scheduler is not None and ts.get("scheduler") is not None:
            scheduler.load_state_dict(ts["scheduler"])
        for name, g in generators.items():
            key = f"extra.gen.{name}"
            if key not in tensors:
                raise ValueError(
                    f"Checkpoint {ckpt / 'last'} lacks the state of generator {name!r}."
                )
            g.set_state(tensors[key])
        start, best, best_step = ts["step"], ts["best"], ts["best_step"]
        history, bad_evals, elapsed0 = ts["history"], ts["bad_evals"], ts.get("seconds", 0.0)
        initial = ts.get("initial")
        if start >= config.steps or ts.get("stopped") == "early-stopped":
            if config.restore_best:
                _restore_best(model, None, best_step, start, ckpt)
            return LoopResult(
                start, best, best_step, "resumed-complete", elapsed0, history, initial
            )
    elif checks:
        model.eval()
        with torch.no_grad():
            initial = float(eval_fn())
        if not math.isfinite(initial):
            raise TrainingDivergedError(
                f"The evaluation before training is {initial}: the model or the data already "
                f"hold NaN/Inf. Check the input and the initialization."
            )

    def save(step: int, stopped: str | None, seconds: float) -> None:
        if ckpt is None or not write_checkpoints:
            return
        extra = {f"gen.{n}": g.get_state() for n, g in generators.items()}
        ts = {
            "step": step,
            "best": best,
            "best_step": best_step,
            "history": history,
            "bad_evals": bad_evals,
            "stopped": stopped,
            "seconds": seconds,
            "config": asdict(config),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "initial": initial,
        }
        save_checkpoint(
            ckpt / "last",
            model,
            init_args=init_args or {},
            optimizer=optimizer,
            train_state=ts,
            extra_tensors=extra,
            meta=meta,
        )

    last_good = _state_copy(model)
    best_state: dict[str, Tensor] | None = None
    t0 = time.perf_counter()
    stopped = "completed"
    params = [p for g in optimizer.param_groups for p in g["params"]]

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=config.steps, completed=start, info="")
        step = start
        while step < config.steps:
            model.train()

            def closure(step: int = step) -> Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(step)
                if torch.isfinite(loss):
                    loss.backward()
                    if config.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                return loss

            loss = optimizer.step(closure)
            lval = float(loss.detach())
            if not math.isfinite(lval):
                model.load_state_dict(last_good)
                where = f"; the last good checkpoint is {ckpt / 'last'}" if ckpt else ""
                raise TrainingDivergedError(
                    f"The training loss became {lval} at step {step}{where}. Try a smaller "
                    f"learning rate or gradient clipping."
                )
            if scheduler is not None:
                scheduler.step()
            step += 1
            info = f"{loss_label} {lval:.3e}"
            if history:
                info += f"; {metric_label} {history[-1]['metric']:.3e}"
            bar.update(task, completed=step, info=info)
            if step % config.eval_every == 0 or step == config.steps:
                model.eval()
                with torch.no_grad():
                    metric = float(eval_fn()) if eval_fn is not None else lval
                if (
                    checks
                    and initial is not None
                    and config.diverge_factor is not None
                    and not metric <= config.diverge_factor * initial
                ):
                    model.load_state_dict(last_good)
                    where = f"; the last good checkpoint is {ckpt / 'last'}" if ckpt else ""
                    raise TrainingDivergedError(
                        f"Training diverged: the evaluation rose from {initial:.3e} before "
                        f"training to {metric:.3e} at step {step} (more than "
                        f"{config.diverge_factor:g}x){where}. {remedy}"
                    )
                history.append(
                    {
                        "step": step,
                        "loss": lval,
                        "metric": metric,
                        "seconds": elapsed0 + time.perf_counter() - t0,
                    }
                )
                if metric < best * (1 - config.min_delta) or best_step < 0:
                    best, best_step, bad_evals = metric, step, 0
                    if config.restore_best:
                        best_state = _state_copy(model)
                    if ckpt is not None and write_checkpoints:
                        save_checkpoint(
                            ckpt / "best",
                            model,
                            init_args=init_args or {},
                            train_state={"step": step, "metric": metric},
                            meta=meta,
                        )
                else:
                    bad_evals += 1
                last_good = _state_copy(model)
                if config.patience is not None and bad_evals >= config.patience:
                    stopped = "early-stopped"
                save(
                    step,
                    stopped if stopped != "completed" else None,
                    elapsed0 + time.perf_counter() - t0,
                )
                if stopped == "early-stopped":
                    break
    if config.restore_best:
        _restore_best(model, best_state, best_step, step, ckpt)
    if (
        checks
        and config.require_progress
        and initial is not None
        and history
        and not best < (1 - MIN_PROGRESS) * initial
    ):
        raise TrainingStalledError(
            f"Training did not converge: the best evaluation {best:.3e} (step {best_step}) is "
            f"no better than {initial:.3e} before training after {step} steps; the result is "
            f"unusable. {remedy}"
        )
    return LoopResult(
        step, best, best_step, stopped, elapsed0 + time.perf_counter() - t0, history, initial
    )
