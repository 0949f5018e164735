"""Training NeuralSVD (NestedLoRA) and the SpIN-style baseline through ``neuralfactor.train``.

``train_operator`` trains any operator of :mod:`neuralfactor.spectral.operators` with
:func:`neuralfactor.train.loop.run_training` (Adam or RMSprop, cosine learning-rate schedule,
EMA of the weights for evaluation, explicit generators, checkpoints, exact resume). The
differential-operator experiments (configuration, run directory, evaluation) are
:mod:`neuralfactor.spectral.run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import torch

from neuralfactor.core.validation import check_option, check_positive_float, check_positive_int
from neuralfactor.spectral.models import FunctionPair, SpectralModel
from neuralfactor.spectral.objectives import nestedlora_loss, nestedlora_loss_evd
from neuralfactor.spectral.operators import MatrixOperator, SchrodingerOperator, evd_moments
from neuralfactor.spectral.spin import spin_loss

__all__ = ["METHODS", "OPTIMIZERS", "train_operator", "tabular_model"]

Method = Literal["nestedlora-seq", "nestedlora-joint", "spin"]
Optimizer = Literal["adam", "rmsprop"]
#: The accepted ``method`` and ``optimizer`` values (one definition each: the aliases above).
METHODS: tuple[str, ...] = get_args(Method)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr)


def train_operator(
    op: Any,
    model: SpectralModel,
    method: Method,
    *,
    steps: int,
    batch: int | None,
    lr: float = 1e-3,
    optimizer: str = "adam",
    cosine: bool = True,
    ema_decay: float | None = 0.995,
    spin_decay: float = 0.99,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    sample_dtype: torch.dtype | None = None,
    eval_every: int = 500,
    eval_fn=None,
    grad_clip: float | None = None,
    checkpoint_dir: str | Path | None = None,
    init_args: dict | None = None,
    meta: dict | None = None,
    resume: bool = False,
    progress: bool = False,
    description: str = "spectral",
):
    """Train ``model.net`` on ``op`` by NestedLoRA (joint or sequential) or the SpIN baseline.

    Parameters
    ----------
    op : MatrixOperator | KernelOperator | SchrodingerOperator
    model : SpectralModel
        Holds the functions (``FunctionPair`` for matrices/kernels, or a ``ParallelMLP`` for
        differential operators), the EMA copy and the SpIN covariance.
    method : {'nestedlora-seq', 'nestedlora-joint', 'spin'}
    steps, batch : int
        Optimizer steps and samples per step (``batch=None``: exact moments, finite operators
        only). Minibatch NestedLoRA uses the unbiased two-half estimator (even ``batch``).
    ema_decay : float, optional
        EMA of the weights, ``None`` to disable (then ``model.ema`` stays at initialization).

    Returns
    -------
    neuralfactor.train.loop.LoopResult
    """
    from neuralfactor.train.loop import LoopConfig, run_training

    method = check_option(method, METHODS, name="method", caller="train_operator")
    optimizer = check_option(optimizer, OPTIMIZERS, name="optimizer", caller="train_operator")
    steps = check_positive_int(steps, name="steps", caller="train_operator")
    lr = check_positive_float(lr, name="lr", caller="train_operator")
    if batch is not None:
        batch = check_positive_int(batch, name="batch", caller="train_operator", minimum=2)
        if batch % 2 and method != "spin":
            raise ValueError(
                f"The 'batch' parameter of train_operator must be even for the unbiased two-half "
                f"estimator. Got {batch}."
            )
    if method == "spin" and not op.evd:
        raise ValueError("The SpIN-style baseline needs a self-adjoint operator (EVD form).")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    opt = _optimizer(optimizer, model.net.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cosine else None
    nesting = "seq" if method == "nestedlora-seq" else "joint"
    sequential = nesting == "seq"
    dtype = sample_dtype or next(model.net.parameters()).dtype
    is_schrodinger = isinstance(op, SchrodingerOperator)

    def draw():
        if is_schrodinger:
            return op.sample(batch, gen, dtype=dtype)
        return op.sample(batch, gen)

    def loss_fn(step: int) -> torch.Tensor:
        if ema_decay is not None and step > 0:
            model.update_ema(ema_decay)
        b = draw()
        if not op.evd:
            cross, P, Q = op.svd_moments(
                model.net, b, sequential=sequential, split=batch is not None
            )
            return nestedlora_loss(cross, P, Q, nesting=nesting, weights=weights)
        F, TF, w = op.features(model.net, b)
        if method == "spin":
            loss, _, new_avg = spin_loss(
                F, TF, w, model.sigma_avg, decay=spin_decay, initialized=bool(model.sigma_count > 0)
            )
            model.sigma_avg.copy_(new_avg)
            model.sigma_count += 1
            return loss
        diag, P = evd_moments(F, TF, w, sequential=sequential, split=batch is not None)
        return nestedlora_loss_evd(diag, P, nesting=nesting, weights=weights)

    cfg = LoopConfig(steps=steps, eval_every=min(eval_every, steps), grad_clip=grad_clip)
    return run_training(
        model,
        opt,
        loss_fn,
        cfg,
        eval_fn=eval_fn,
        scheduler=sched,
        generators={"sampler": gen},
        checkpoint_dir=checkpoint_dir,
        init_args=init_args if checkpoint_dir is not None else None,
        meta=meta,
        resume=resume,
        progress=progress,
        description=description,
    )


def tabular_model(op: MatrixOperator, modes: int, generator: torch.Generator) -> SpectralModel:
    """A ``SpectralModel`` of tables for a finite matrix operator."""
    net: FunctionPair = op.make_net(modes, generator=generator)
    return SpectralModel(net, modes)
