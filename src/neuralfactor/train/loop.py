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

from neuralfactor.core.validation import check_positive_int
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
    progress_floor : the least value the evaluation can take (e.g. the Eckart-Young optimum
        of the validation frames), when known: a model whose best evaluation is within
        ``MIN_PROGRESS`` of it has nothing left to learn and is not reported as stalled, even
        when it started there (``None``: unknown).
    """

    steps: int
    eval_every: int = 100
    patience: int | None = None
    min_delta: float = 0.0
    grad_clip: float | None = None
    restore_best: bool = False
    diverge_factor: float | None = None
    require_progress: bool = False
    progress_floor: float | None = None

    def __post_init__(self) -> None:
        if self.diverge_factor is not None and not self.diverge_factor > 1:
            raise ValueError(
                f"LoopConfig.diverge_factor must be > 1 or None. Got {self.diverge_factor}."
            )
        check_positive_int(self.steps, name="steps", caller="LoopConfig", minimum=0)
        check_positive_int(self.eval_every, name="eval_every", caller="LoopConfig")
        if self.patience is not None:
            check_positive_int(self.patience, name="patience", caller="LoopConfig")


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


@dataclass
class _Progress:
    """The loop's state, as ``ckpt/last`` keeps it (``elapsed`` = seconds before this call)."""

    step: int = 0
    best: float = math.inf
    best_step: int = -1
    history: list[dict[str, float]] = field(default_factory=list)
    bad_evals: int = 0
    elapsed: float = 0.0
    initial: float | None = None

    def record(self, loss: float, metric: float, seconds: float, min_delta: float) -> bool:
        """Add the evaluation at this step to the history; True when it is the new best."""
        self.history.append({"step": self.step, "loss": loss, "metric": metric, "seconds": seconds})
        if metric < self.best * (1 - min_delta) or self.best_step < 0:
            self.best, self.best_step, self.bad_evals = metric, self.step, 0
            return True
        self.bad_evals += 1
        return False


@dataclass
class _Checkpoints:
    """Reads and writes ``ckpt/last`` (resumable) and ``ckpt/best`` of one training run;
    writes nothing without a directory or with ``write=False``."""

    ckpt: Path | None
    write: bool
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generators: dict[str, torch.Generator]
    init_args: dict[str, Any]
    meta: dict[str, Any] | None
    config: LoopConfig

    def resume(self, st: _Progress) -> str | None:
        """Load ``ckpt/last`` into the model, optimizer, scheduler, generators and ``st``;
        returns how that run stopped (``None``: it did not)."""
        assert self.ckpt is not None
        m, tensors = load_checkpoint(self.ckpt / "last")
        load_state(self.model, tensors, self.ckpt / "last")
        restore_optimizer(self.optimizer, m, tensors)
        ts = m["train_state"]
        if self.scheduler is not None and ts.get("scheduler") is not None:
            self.scheduler.load_state_dict(ts["scheduler"])
        for name, g in self.generators.items():
            key = f"extra.gen.{name}"
            if key not in tensors:
                raise ValueError(
                    f"Checkpoint {self.ckpt / 'last'} lacks the state of generator {name!r}."
                )
            g.set_state(tensors[key])
        st.step, st.best, st.best_step = ts["step"], ts["best"], ts["best_step"]
        st.history, st.bad_evals, st.elapsed = (
            ts["history"],
            ts["bad_evals"],
            ts.get("seconds", 0.0),
        )
        st.initial = ts.get("initial")
        return ts.get("stopped")

    def last(self, st: _Progress, stopped: str | None, seconds: float) -> None:
        if self.ckpt is None or not self.write:
            return
        ts = {
            "step": st.step,
            "best": st.best,
            "best_step": st.best_step,
            "history": st.history,
            "bad_evals": st.bad_evals,
            "stopped": stopped,
            "seconds": seconds,
            "config": asdict(self.config),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "initial": st.initial,
        }
        extra = {f"gen.{n}": g.get_state() for n, g in self.generators.items()}
        save_checkpoint(
            self.ckpt / "last",
            self.model,
            init_args=self.init_args,
            optimizer=self.optimizer,
            train_state=ts,
            extra_tensors=extra,
            meta=self.meta,
        )

    def best(self, step: int, metric: float) -> None:
        if self.ckpt is None or not self.write:
            return
        save_checkpoint(
            self.ckpt / "best",
            self.model,
            init_args=self.init_args,
            train_state={"step": step, "metric": metric},
            meta=self.meta,
        )


def _progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def _initial_metric(model: torch.nn.Module, eval_fn: Callable[[], float]) -> float:
    """``eval_fn`` before the first step; a non-finite value is a TrainingDivergedError."""
    model.eval()
    with torch.no_grad():
        initial = float(eval_fn())
    if not math.isfinite(initial):
        raise TrainingDivergedError(
            f"The evaluation before training is {initial}: the model or the data already "
            f"hold NaN/Inf. Check the input and the initialization."
        )
    return initial


def _optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[int], Tensor],
    step: int,
    grad_clip: float | None,
) -> float:
    """One optimizer step (closure form: L-BFGS re-evaluates it); the loss as a float."""
    model.train()
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step)
        if torch.isfinite(loss):
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
        return loss

    return float(optimizer.step(closure).detach())


def _evaluate(model: torch.nn.Module, eval_fn: Callable[[], float] | None, lval: float) -> float:
    model.eval()
    with torch.no_grad():
        return float(eval_fn()) if eval_fn is not None else lval


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
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and init_args is None:
        raise ValueError("run_training needs init_args (JSON) to write checkpoints.")
    io = _Checkpoints(
        ckpt, write_checkpoints, model, optimizer, scheduler, generators or {},
        init_args or {}, meta, config,
    )  # fmt: skip
    st = _Progress()
    checks = eval_fn is not None and (config.diverge_factor is not None or config.require_progress)
    if resume and ckpt is not None and (ckpt / "last").exists():
        how = io.resume(st)
        if st.step >= config.steps or how == "early-stopped":
            if config.restore_best:
                _restore_best(model, None, st.best_step, st.step, ckpt)
            return LoopResult(
                st.step, st.best, st.best_step, "resumed-complete", st.elapsed, st.history,
                st.initial,
            )  # fmt: skip
    elif checks:
        st.initial = _initial_metric(model, eval_fn)
    where = f"; the last good checkpoint is {ckpt / 'last'}" if ckpt else ""
    last_good, best_state = _state_copy(model), None
    t0, stopped = time.perf_counter(), "completed"
    with _progress_bar(progress) as bar:
        task = bar.add_task(description, total=config.steps, completed=st.step, info="")
        while st.step < config.steps:
            lval = _optimizer_step(model, optimizer, loss_fn, st.step, config.grad_clip)
            if not math.isfinite(lval):
                model.load_state_dict(last_good)
                raise TrainingDivergedError(
                    f"The training loss became {lval} at step {st.step}{where}. Try a smaller "
                    f"learning rate or gradient clipping."
                )
            if scheduler is not None:
                scheduler.step()
            st.step += 1
            last = f"; {metric_label} {st.history[-1]['metric']:.3e}" if st.history else ""
            bar.update(task, completed=st.step, info=f"{loss_label} {lval:.3e}{last}")
            if st.step % config.eval_every and st.step != config.steps:
                continue
            metric = _evaluate(model, eval_fn, lval)
            if checks and _blew_up(config, st.initial, metric):
                model.load_state_dict(last_good)
                raise TrainingDivergedError(
                    f"Training diverged: the evaluation rose from {st.initial:.3e} before "
                    f"training to {metric:.3e} at step {st.step} (more than "
                    f"{config.diverge_factor:g}x){where}. {remedy}"
                )
            if st.record(lval, metric, st.elapsed + time.perf_counter() - t0, config.min_delta):
                best_state = _state_copy(model) if config.restore_best else None
                io.best(st.step, metric)
            last_good = _state_copy(model)
            if config.patience is not None and st.bad_evals >= config.patience:
                stopped = "early-stopped"
            io.last(
                st,
                None if stopped == "completed" else stopped,
                st.elapsed + time.perf_counter() - t0,
            )
            if stopped == "early-stopped":
                break
    if config.restore_best:
        _restore_best(model, best_state, st.best_step, st.step, ckpt)
    if checks and config.require_progress and _stalled(st, config.progress_floor):
        raise TrainingStalledError(
            f"Training did not converge: the best evaluation {st.best:.3e} (step "
            f"{st.best_step}) is no better than {st.initial:.3e} before training after "
            f"{st.step} steps; the result is unusable. {remedy}"
        )
    return LoopResult(
        st.step, st.best, st.best_step, stopped, st.elapsed + time.perf_counter() - t0,
        st.history, st.initial,
    )  # fmt: skip


def _blew_up(config: LoopConfig, initial: float | None, metric: float) -> bool:
    """``diverge_factor``: the evaluation exceeds that multiple of the initial one."""
    factor = config.diverge_factor
    return initial is not None and factor is not None and not metric <= factor * initial


def _stalled(st: _Progress, floor: float | None = None) -> bool:
    """``require_progress``: the best evaluation is not below the initial one (and, when the
    evaluation's ``floor`` is known, not within ``MIN_PROGRESS`` of it either)."""
    at_floor = floor is not None and st.best <= (1 + MIN_PROGRESS) * floor
    return (
        st.initial is not None
        and bool(st.history)
        and not st.best < (1 - MIN_PROGRESS) * st.initial
        and not at_floor
    )
