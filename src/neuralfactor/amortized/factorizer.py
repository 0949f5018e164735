"""LearnedFactorizer: ``fit`` trains a network on frames, ``factorize`` infers factors.

Registered names: ``convmf``, ``fork``, ``danmf`` (the network's own U, V), the hybrids
``convmf+refine`` / ``fork+refine`` / ``danmf+refine`` (keep the network's U, solve V by least
squares: one m x r Gram orthonormalization and ``V = Q^T X``, O(m n r)), ``convmf+subspace``
(the least-squares refit followed by one subspace-iteration step, two more products with X),
and ``convmf-nested`` (one network trained with a nested loss so that its leading k columns
are a good rank-k factorization for every k <= rank).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from neuralfactor.amortized.models import MODELS, FactorNet, build_model
from neuralfactor.classical._kernels import (
    gram_orthonormalize,
    power_of_two_scale,
    rescale,
    subspace_step,
)
from neuralfactor.core.factorizer import BaseFactorizer, FactorizationError, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_matrix, check_option, did_you_mean, resolve_device

__all__ = [
    "LEARNING_RATES",
    "MODEL_META_KEYS",
    "OBJECTIVES",
    "REFINE",
    "SCHEDULES",
    "SEED_STRIDE",
    "TRAIN_META_KEYS",
    "TRAIN_PRESETS",
    "LearnedFactorizer",
    "TrainSettings",
    "TrainingFrames",
    "default_lr",
    "epoch_order",
    "frame_losses",
    "lr_scheduler",
    "nested_losses",
    "projection_losses",
    "refine_factors",
    "train_preset",
    "training_loss",
]

#: 'constant' (the original study) or 'cosine' (decay to 0 over the run).
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: post-processing of the network's U at inference (:func:`refine_factors`)
Refine = Literal["none", "lstsq", "subspace"]
REFINE: tuple[str, ...] = get_args(Refine)
#: 'factors' (the original study: ||X - UV||^2) or 'factors+projection' (adds the loss of the
#: least-squares refit of U, ||X - Q Q^T X||^2 with Q = orth(U): what ``+refine`` evaluates).
OBJECTIVES: tuple[str, ...] = ("factors", "factors+projection")


@dataclass(frozen=True)
class TrainSettings:
    """Training hyper-parameters; the defaults are the best-known recipe (``'best'`` preset of
    :func:`train_preset`): Adam 1e-3, batch 25, 240 epochs, a linear warmup over 5 epochs then
    a cosine decay to 0, the gradient norm clipped to 50, the ``'factors+projection'``
    objective. With it ConvMF+refine came within 1.005-1.089x of the SVD optimum at ranks 4-12
    (``docs/results/convmf-recipe.md``). ``train_preset('original')`` gives the original
    study's settings (Adam 1e-4, batch 25, 120 epochs, constant rate, no clipping, the plain
    ``||X - UV||`` loss).

    ``patience`` counts epochs without a validation improvement. ``grad_clip`` clips the global
    gradient norm (``None``: off). ``warmup_epochs`` raises the learning rate linearly from 1% to
    ``lr`` over that many epochs before the schedule starts (0: off). ``schedule`` is 'constant' or
    'cosine' (to 0 at the last step). ``restore_best``: at the end of training keep the weights
    of the best validation evaluation, not the last step's (a late divergence is not what gets
    used). ``objective``: 'factors' (the original ``||X - UV||_F^2``) or 'factors+projection',
    which adds ``||X - Q Q^T X||_F^2`` (Q = orth(U), the residual of the least-squares V that
    ``+refine`` computes) so the network's U is trained for the refit it is used with; the V
    branch keeps its own term. Validation (early stopping, ``restore_best``) uses the same sum.
    ``warmup_epochs=None`` (default) is 5 epochs, at most a tenth of the run
    (``min(5, epochs // 10)``), so a short run keeps a valid warmup.
    """

    epochs: int = 240
    lr: float = 1e-3
    batch_size: int = 25
    patience: int | None = None
    grad_clip: float | None = 50.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    schedule: str = "cosine"
    restore_best: bool = True
    warmup_epochs: int | None = None
    objective: str = "factors+projection"

    def __post_init__(self) -> None:
        if self.warmup_epochs is None and isinstance(self.epochs, int):
            object.__setattr__(self, "warmup_epochs", min(5, max(self.epochs, 0) // 10))
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"TrainSettings needs epochs >= 1, batch_size >= 1 and lr > 0. Got epochs="
                f"{self.epochs}, batch_size={self.batch_size}, lr={self.lr}."
            )
        check_option(
            self.dtype, ("float32", "float64", "bfloat16"), name="dtype", caller="TrainSettings"
        )
        check_option(self.schedule, SCHEDULES, name="schedule", caller="TrainSettings")
        check_option(self.objective, OBJECTIVES, name="objective", caller="TrainSettings")
        w = self.warmup_epochs
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < self.epochs:
            raise ValueError(
                f"The 'warmup_epochs' parameter of TrainSettings must be an int in [0, epochs="
                f"{self.epochs}). Got {w!r}."
            )
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, (int, float)) and 0 < self.grad_clip < math.inf
        ):
            raise ValueError(
                f"The 'grad_clip' parameter of TrainSettings must be a finite number > 0 or "
                f"None (off). Got {self.grad_clip!r}."
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        """The training dtype as a ``torch.dtype``."""
        return getattr(torch, self.dtype)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSettings:
        """Settings as written by ``asdict``; a setting missing from ``d`` (written before
        it existed) takes the original study's value, the behaviour that run had."""
        return cls(**{**_TRAIN_PRESET_VALUES["original"], **d})


#: Named settings for :func:`train_preset`.
TRAIN_PRESETS: tuple[str, ...] = ("best", "original")
_TRAIN_PRESET_VALUES: dict[str, dict[str, Any]] = {
    # the recipe of docs/results/convmf-recipe.md (ConvMF+refine within 1.10x at ranks 4-12)
    "best": {
        "epochs": 240,
        "lr": 1e-3,
        "schedule": "cosine",
        "warmup_epochs": None,
        "grad_clip": 50.0,
        "objective": "factors+projection",
    },
    # the original study: Adam 1e-4, 120 epochs, constant rate, no clipping, ||X - UV||^2
    "original": {
        "epochs": 120,
        "lr": 1e-4,
        "schedule": "constant",
        "warmup_epochs": 0,
        "grad_clip": None,
        "objective": "factors",
    },
}


#: Adam learning rate per model (:func:`default_lr`): ``neuralfactor train``'s default with the
#: best preset, and the benchmarks' short trainings. The recipe's 1e-3 for the dense networks;
#: 1e-2 for ``sketch``, whose sketch matrix Omega has entries of about 1/sqrt(n), which 1e-3
#: moves slowly in a few epochs.
LEARNING_RATES: dict[str, float] = {"convmf": 1e-3, "fork": 1e-3, "danmf": 1e-3, "sketch": 1e-2}


def default_lr(model: str) -> float:
    """The documented default learning rate of ``model`` (:data:`LEARNING_RATES`)."""
    if model not in LEARNING_RATES:
        raise ValueError(
            f"default_lr() knows the models {list(LEARNING_RATES)}; got {model!r}. Add its "
            "learning rate to neuralfactor.amortized.factorizer.LEARNING_RATES."
        )
    return LEARNING_RATES[model]


def train_preset(name: str = "best", **overrides: Any) -> TrainSettings:
    """:class:`TrainSettings` of a named preset with ``overrides`` (any field) on top.

    Parameters
    ----------
    name : ``'best'`` (the defaults: the recipe of ``docs/results/convmf-recipe.md``) or
        ``'original'`` (the original study's Adam 1e-4, 120 epochs, constant rate, no gradient
        clipping, the plain factor loss).
    **overrides : fields of :class:`TrainSettings`; every given value is used as is
        (``grad_clip=None`` turns clipping off).
    """
    if name not in TRAIN_PRESETS:
        raise ValueError(
            f"The 'preset' parameter of train_preset must be one of {list(TRAIN_PRESETS)}. Got "
            f"{name!r}; use 'best' (the default) or 'original' (the original study)."
        )
    return TrainSettings(**{**_TRAIN_PRESET_VALUES[name], **overrides})


def nested_losses(X: Tensor, U: Tensor, V: Tensor) -> Tensor:
    """``||X - U[:, :k] V[:k]||_F^2`` for every k = 1..r at once, shape (*, r).

    Uses ||X||^2 - 2 sum_{i<=k} u_i^T X v_i + sum_{i,j<=k} (U^T U)_{ij} (V V^T)_{ij}: the last
    term is the diagonal of a 2-D cumulative sum, so all r losses cost one O(mnr) pass.
    """
    xx = X.square().sum(dim=(-2, -1))
    cross = ((U.mT @ X) * V).sum(-1)  # (*, r): u_i^T X v_i
    M = (U.mT @ U) * (V @ V.mT)
    block = M.cumsum(-1).cumsum(-2).diagonal(dim1=-2, dim2=-1)
    return xx.unsqueeze(-1) - 2 * cross.cumsum(-1) + block


def projection_losses(X: Tensor, U: Tensor, *, nested: bool = False) -> Tensor:
    """``||X - Q Q^T X||_F^2`` with Q = orth(U) (QR): the loss of the least-squares V for
    span(U), shape ``X.shape[:-2]``; with ``nested`` shape (*, r), the loss of the leading k
    columns for every k (Q's leading k columns span U's, so one QR serves every k).

    U must have full column rank (QR's gradient is undefined otherwise); a network's U does
    generically, and a collapse shows as a non-finite loss that stops training. bfloat16
    inputs are computed in float32 (QR has no bfloat16 kernel).
    """
    if U.dtype == torch.bfloat16:
        X, U = X.float(), U.float()
    Q, _ = torch.linalg.qr(U)
    if nested:
        xx = X.square().sum(dim=(-2, -1))
        return xx.unsqueeze(-1) - (Q.mT @ X).square().sum(-1).cumsum(-1)
    return (X - Q @ (Q.mT @ X)).square().sum(dim=(-2, -1))


def frame_losses(
    X: Tensor, U: Tensor, V: Tensor, *, nested: bool, objective: str = "factors"
) -> Tensor:
    """Per-frame loss of a factor network, shape ``X.shape[:-2]``, unnormalized as in the
    original: ``||X - UV||_F^2``, or with ``nested`` the mean of the rank-1..r losses; with
    ``objective='factors+projection'`` plus :func:`projection_losses` (nested alike)."""
    loss = nested_losses(X, U, V) if nested else (X - U @ V).square().sum(dim=(-2, -1))
    if objective == "factors+projection":
        loss = loss + projection_losses(X, U, nested=nested)
    return loss.mean(-1) if nested else loss


def training_loss(
    X: Tensor, U: Tensor, V: Tensor, *, nested: bool, objective: str = "factors"
) -> Tensor:
    """The batch mean of :func:`frame_losses`: what the training loop minimizes."""
    return frame_losses(X, U, V, nested=nested, objective=objective).mean()


def lr_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of ``settings`` over ``total_steps`` (None: constant): an
    optional linear warmup of ``warmup_epochs`` epochs, then constant or cosine to 0."""
    sched = torch.optim.lr_scheduler
    warm = total_steps * settings.warmup_epochs // settings.epochs
    rest = max(total_steps - warm, 1)
    if settings.schedule == "cosine":
        main: sched.LRScheduler | None = sched.CosineAnnealingLR(optimizer, T_max=rest)
    else:
        main = None
    if warm == 0:
        return main
    main = main or sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    ramp = sched.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warm)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])


def refine_factors(X: Tensor, U: Tensor, rank: int, refine: Refine) -> LowRank:
    """Hybrid refinement of a learned left factor ``U`` (*, m, r) against the frame ``X``.

    ``lstsq``: Q = orth(U), V = Q^T X -- the least-squares V for span(U) ("calculated V").
    ``subspace``: then one subspace-iteration step from the right basis orth(X^T Q).
    A collapsed U (rank < r) gives zero columns, never NaN.
    """
    Q = gram_orthonormalize(U.to(X.dtype))
    X, inv = power_of_two_scale(X)  # huge/tiny frames would overflow the Gram kernels
    if refine == "lstsq":
        return rescale(LowRank(Q, Q.mT @ X), inv)
    P = gram_orthonormalize(X.mT @ Q)
    return rescale(subspace_step(X, P, rank, n_iter=1)[0], inv)


def _frames_tensor(frames: Any, name: str) -> Tensor:
    if hasattr(frames, "as_tensor") and not isinstance(frames, Tensor):
        frames = frames.as_tensor()
    X = check_matrix(frames, name=name, caller="LearnedFactorizer.fit")
    if X.ndim != 3:
        X = X.reshape(-1, *X.shape[-2:])
    return X


#: The data order of epoch ``e`` is ``randperm(N)`` from the seed ``seed * SEED_STRIDE + e``.
SEED_STRIDE = 1_000_003

#: The keys every training checkpoint (``last``, ``best``) and every saved model of a
#: :class:`LearnedFactorizer` carries beside the checkpoint's own, single- or multi-process:
#: ``factorizer`` (:meth:`LearnedFactorizer.get_params`), ``frame_shape`` ``[m, n]``,
#: ``data_fingerprint`` (:func:`~neuralfactor.train.checkpoint.tensor_fingerprint` of the
#: training frames) and ``distributed`` (world size, global batch, sampler seed; world size 1
#: for one process). A saved model adds ``fit_seconds`` and ``history``.
TRAIN_META_KEYS: tuple[str, ...] = ("factorizer", "frame_shape", "data_fingerprint", "distributed")
MODEL_META_KEYS: tuple[str, ...] = (*TRAIN_META_KEYS, "fit_seconds", "history")


def epoch_order(count: int, seed: int, epoch: int) -> Tensor:
    """The permutation of ``count`` training frames for ``epoch``: a function of
    ``(seed, epoch)`` alone, so a resumed run (on any number of processes) draws the batches
    an uninterrupted one draws. ``DistributedSampler(seed=seed * SEED_STRIDE)`` draws the
    same permutation."""
    g = torch.Generator().manual_seed(seed * SEED_STRIDE + epoch)
    return torch.randperm(count, generator=g)


@dataclass(frozen=True)
class TrainingFrames:
    """What the one training path (:meth:`LearnedFactorizer.fit_frames`) draws from.

    Attributes
    ----------
    count : the number N of training frames; an epoch is ``N // batch_size`` global steps.
    frame_shape : ``(m, n)``.
    take : positions -> those training frames ``(b, m, n)``, on the training device and dtype.
    val : the evaluation frames ``(V, m, n)`` on the training device and dtype.
    fingerprint : the data fingerprint written into the checkpoints (``None``: not computed,
        e.g. on processes that write nothing).
    order : epoch -> this process's positions for the epoch (default: :func:`epoch_order`
        of the single process); with ``world_size`` W each process takes ``batch_size / W``
        of them per step, so the W local batches of step i make up global batch i.
    world_size : processes sharing each global batch.
    """

    count: int
    frame_shape: tuple[int, int]
    take: Callable[[Any], Tensor]
    val: Tensor
    fingerprint: str | None
    order: Callable[[int], Any] | None = None
    world_size: int = 1


class LearnedFactorizer(BaseFactorizer):
    """A network that maps frames to rank-r factors, trained once, applied to unseen frames.

    Parameters
    ----------
    rank : int
    model : 'convmf' | 'fork' | 'danmf'
    refine : 'none' | 'lstsq' | 'subspace' -- post-processing of the network's U at inference.
    nested : train with the nested loss (mean over k of the rank-k losses) so one model
        serves every rank k <= rank via :meth:`at_rank`.
    settings : TrainSettings
    model_kwargs : extra layer sizes for the model (``stem``, ``branch``, ``channels``, ...).
    checkpoint_dir : where ``fit`` writes ``last``/``best`` checkpoints (resumable).
    resume : continue an interrupted ``fit`` from ``checkpoint_dir/last``.
    progress : show a progress bar while training.
    chunk : frames per forward pass at inference.
    use_rank : a nested model serves its leading ``use_rank`` columns (default: ``rank``).

    Attributes
    ----------
    model_ : FactorNet, the trained network (after :meth:`fit` or :meth:`load`).
    history_ : list of dict, one entry per evaluation (step, loss, metric, seconds).
    fit_seconds_ : float, the training time (the amortized cost).
    train_meta_ : dict, the checkpoint metadata of the training (:data:`TRAIN_META_KEYS`).

    ``model``, ``history`` and ``fit_seconds`` are deprecated aliases of the first three.

    Notes
    -----
    ``fit`` is the amortized cost and is reported separately (``fit_seconds_``); ``factorize``
    is one forward pass (plus the refinement), batched, on the model's device, in chunks of
    ``chunk`` frames. Variants of a trained factorizer (another ``refine``, fewer columns of a
    nested model) come from :meth:`clone` and share the trained network.
    """

    requires_fit = True
    #: parameters that only change inference: a :meth:`clone` changing nothing else keeps
    #: the trained network
    INFERENCE_PARAMS: frozenset[str] = frozenset({"refine", "use_rank", "chunk", "progress"})

    def __init__(
        self,
        rank: int,
        *,
        model: str = "convmf",
        refine: Refine = "none",
        nested: bool = False,
        settings: TrainSettings | None = None,
        model_kwargs: dict[str, Any] | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = False,
        chunk: int = 1024,
        use_rank: int | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(
                f"Unknown model {model!r}; expected one of {sorted(MODELS)}."
                + did_you_mean(model, MODELS)
            )
        check_option(refine, REFINE, name="refine", caller="LearnedFactorizer")
        suffix = {"none": "", "lstsq": "+refine", "subspace": "+subspace"}[refine]
        self.name = f"{model}{'-nested' if nested else ''}{suffix}"
        super().__init__(rank)
        if use_rank is not None:
            if not nested:
                raise ValueError(
                    f"{self.name} was not trained with the nested loss; use_rank needs nested=True."
                )
            ok = isinstance(use_rank, int) and not isinstance(use_rank, bool)
            if not (ok and 1 <= use_rank <= rank):
                raise ValueError(
                    f"The 'use_rank' parameter of LearnedFactorizer must be an int in [1, rank="
                    f"{rank}]. Got {use_rank!r}."
                )
        self.model_name, self.refine, self.nested = model, refine, nested
        self.settings = settings or TrainSettings()
        self.model_kwargs = dict(model_kwargs or {})
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume, self.progress, self.chunk = resume, progress, chunk
        self.use_rank = use_rank
        self.model_: FactorNet | None = None
        self.fit_seconds_ = 0.0
        self.history_: list[dict[str, float]] = []
        self.train_meta_: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: Any, **options: Any) -> LearnedFactorizer:
        """The factorizer of a run configuration: ``config`` has the attributes ``rank``,
        ``model``, ``nested``, ``settings`` and ``model_kwargs`` (a
        :class:`~neuralfactor.amortized.study.StudyConfig`); ``options`` are the other
        constructor arguments (``checkpoint_dir``, ``resume``, ``progress``, ...)."""
        keys = ("model", "nested", "settings", "model_kwargs")
        return cls(config.rank, **{k: getattr(config, k) for k in keys}, **options)

    def get_params(self) -> dict[str, Any]:
        """What the factorizer computes (checkpoints, records): rank, model, refine, nested,
        settings (a dict) and model_kwargs."""
        return {
            "rank": self.rank,
            "model": self.model_name,
            "refine": self.refine,
            "nested": self.nested,
            "settings": asdict(self.settings),
            "model_kwargs": self.model_kwargs,
        }

    def _params(self) -> dict[str, Any]:
        """Every constructor argument, as :meth:`clone` passes them."""
        return {
            "rank": self.rank,
            "model": self.model_name,
            "refine": self.refine,
            "nested": self.nested,
            "settings": self.settings,
            "model_kwargs": self.model_kwargs,
            "checkpoint_dir": self.checkpoint_dir,
            "resume": self.resume,
            "progress": self.progress,
            "chunk": self.chunk,
            "use_rank": self.use_rank,
        }

    def clone(self, **changes: Any) -> LearnedFactorizer:
        """A new factorizer built from this one's constructor parameters with ``changes``.

        When only :attr:`INFERENCE_PARAMS` change (``refine``, ``use_rank``, ``chunk``,
        ``progress``) a trained factorizer's clone shares its trained network, history and
        training time (the weights are not copied; neither object changes them); any other
        change gives an unfitted factorizer, as scikit-learn's ``clone`` does.
        """
        params = self._params()
        unknown = sorted(set(changes) - set(params))
        if unknown:
            raise TypeError(
                f"LearnedFactorizer.clone got unknown parameters {unknown}; expected some of "
                f"{sorted(params)}."
            )
        new = type(self)(**{**params, **changes})
        if self._fitted and set(changes) <= self.INFERENCE_PARAMS:
            new.model_, new.history_ = self.model_, self.history_
            new.fit_seconds_, new.train_meta_ = self.fit_seconds_, self.train_meta_
            new._fitted = True
        return new

    # deprecated aliases of the fitted state (scikit-learn's trailing-underscore convention)
    @property
    def model(self) -> FactorNet | None:
        """Deprecated alias of :attr:`model_`."""
        _deprecated("model", "model_")
        return self.model_

    @model.setter
    def model(self, value: FactorNet | None) -> None:
        _deprecated("model", "model_")
        self.model_ = value

    @property
    def history(self) -> list[dict[str, float]]:
        """Deprecated alias of :attr:`history_`."""
        _deprecated("history", "history_")
        return self.history_

    @history.setter
    def history(self, value: list[dict[str, float]]) -> None:
        _deprecated("history", "history_")
        self.history_ = value

    @property
    def fit_seconds(self) -> float:
        """Deprecated alias of :attr:`fit_seconds_`."""
        _deprecated("fit_seconds", "fit_seconds_")
        return self.fit_seconds_

    @fit_seconds.setter
    def fit_seconds(self, value: float) -> None:
        _deprecated("fit_seconds", "fit_seconds_")
        self.fit_seconds_ = value

    # ------------------------------------------------------------------ training
    def check_frames(self, count: int, frame_shape: tuple[int, int]) -> None:
        """The checks of the training data common to every path: the rank against the frame
        size, the batch size against the ``count`` training frames, and that the model can be
        built for these frames (its layer sizes, ``model_kwargs``)."""
        from neuralfactor.core.validation import check_rank

        m, n = (int(v) for v in frame_shape)
        check_rank(self.rank, (m, n), caller=self.name)
        if count < self.settings.batch_size:
            raise ValueError(
                f"The training split has {count} frames, fewer than one batch "
                f"(batch_size={self.settings.batch_size}); use more frames or a smaller batch."
            )
        with torch.random.fork_rng(devices=[]):  # the trial build leaves the global RNG alone
            try:
                build_model(self.model_name, m, n, self.rank, **self.model_kwargs)
            except TypeError as exc:
                raise ValueError(
                    f"Cannot build {self.model_name} for {m}x{n} frames with model_kwargs "
                    f"{self.model_kwargs}: {exc}."
                ) from None

    def check_fit(
        self, frames: Any, val_frames: Any = None
    ) -> tuple[Tensor, Tensor | None, torch.device]:
        """Every check :meth:`fit` makes before training, with nothing trained or written.

        Validates the frames, the device and :meth:`check_frames`. Returns
        ``(train, val, device)``; callers that write files (run directories) call it first so
        a refused run leaves nothing behind.
        """
        if frames is None:
            raise ValueError(
                f"{self.name} is learned: fit(frames) needs training frames (T, m, n)."
            )
        device = resolve_device(self.settings.device)
        train = _frames_tensor(frames, "frames")
        m, n = train.shape[-2:]
        val = _frames_tensor(val_frames, "val_frames") if val_frames is not None else None
        self.check_frames(int(train.shape[0]), (m, n))
        if val is not None and tuple(val.shape[-2:]) != (m, n):
            raise ValueError(
                f"Validation frames are {tuple(val.shape[-2:])}, training frames {(m, n)}."
            )
        return train, val, device

    def fit(self, frames: Any = None, val_frames: Any = None) -> LearnedFactorizer:
        """Train on ``frames`` (T, m, n); validate on ``val_frames`` (scaled loss) if given,
        else on the first ``4 * batch_size`` training frames."""
        from neuralfactor.train.checkpoint import tensor_fingerprint

        train, val, device = self.check_fit(frames, val_frames)
        dtype = self.settings.torch_dtype
        train_d = train.to(device=device, dtype=dtype)
        val_d = train_d[: 4 * self.settings.batch_size] if val is None else val
        data = TrainingFrames(
            count=int(train.shape[0]),
            frame_shape=(int(train.shape[-2]), int(train.shape[-1])),
            take=train_d.__getitem__,
            val=val_d.to(device=device, dtype=dtype),
            fingerprint=tensor_fingerprint(train),
        )
        self.fit_frames(data, device)
        return self

    def fit_frames(
        self,
        data: TrainingFrames,
        device: torch.device,
        *,
        wrap: Callable[[FactorNet], torch.nn.Module] | None = None,
        write_checkpoints: bool = True,
        max_steps: int | None = None,
    ) -> Any:
        """The one training path, shared by :meth:`fit` and the data-parallel trainer.

        Builds the network (weights from ``torch.Generator().manual_seed(settings.seed)``),
        Adam, the learning-rate schedule and the loop; trains on ``data`` and keeps the
        result as the fitted state. ``wrap`` wraps the network for the training steps (DDP);
        ``write_checkpoints=False`` reads but never writes ``checkpoint_dir`` (processes other
        than rank 0); ``max_steps`` stops early with a resumable checkpoint. Returns the
        :class:`~neuralfactor.train.loop.LoopResult`.
        """
        from neuralfactor.train.init import build_seeded
        from neuralfactor.train.loop import run_training

        s = self.settings
        m, n = data.frame_shape
        gen = torch.Generator().manual_seed(s.seed)
        model = build_seeded(
            lambda: build_model(self.model_name, m, n, self.rank, **self.model_kwargs), gen
        ).to(device=device, dtype=s.torch_dtype)
        loss_fn, eval_fn = self._objective(model, wrap(model) if wrap else model, data, device)
        fused = device.type in ("cpu", "cuda")  # fused Adam: ~1.5x faster steps on CPU too
        opt = torch.optim.Adam(model.parameters(), lr=s.lr, fused=fused)
        cfg = self._loop_config(data.count, max_steps, floor=self._objective_floor(data.val))
        total = s.epochs * (data.count // s.batch_size)
        meta = self._train_meta(data)
        many = f" x{data.world_size}" if data.world_size > 1 else ""
        t0 = time.perf_counter()
        with model.kernels(device):  # the network's kernel choice for whole steps
            result = run_training(
                model,
                opt,
                loss_fn,
                cfg,
                eval_fn=eval_fn,
                scheduler=lr_scheduler(opt, s, total),
                checkpoint_dir=self.checkpoint_dir,
                init_args=model.init_args,
                meta=meta,
                resume=self.resume,
                progress=self.progress,
                description=f"train {self.name} r={self.rank}{many}",
                write_checkpoints=write_checkpoints,
                remedy="Lower --lr; the recipe (the defaults: lr 1e-3, warmup 5 epochs, cosine, "
                "grad clip 50) is in docs/results/convmf-recipe.md.",
                loss_label="batch loss (unscaled objective)",
                metric_label="val scaled loss",
            )
        self.model_ = model.eval()
        self.history_ = result.history
        self.fit_seconds_ = result.seconds if self.resume else time.perf_counter() - t0
        self.train_meta_ = meta
        self._fitted = True
        return result

    def _objective_floor(self, val: Tensor) -> float:
        """The least value the validation evaluation can take: the mean Eckart-Young optimum
        of the validation frames at the model's rank (nested: averaged over ranks 1..r),
        twice that with the ``factors+projection`` objective (both terms are bounded by it);
        each term plus the round-off level of the training dtype
        (:func:`~neuralfactor.core.metrics.roundoff_floor`), which no step can improve on."""
        from neuralfactor.core.metrics import roundoff_floor

        s2 = torch.linalg.svdvals(val.detach().double()).square()
        tot = s2.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        tail = (tot - s2.cumsum(-1)[..., : self.rank]).clamp_min(0) / tot  # (B, r): k = 1..r
        per_frame = tail.mean(-1) if self.nested else tail[..., -1]
        both = 2.0 if self.settings.objective == "factors+projection" else 1.0
        noise = roundoff_floor(tuple(val.shape), self.settings.torch_dtype)
        return both * (float(per_frame.mean()) + noise)

    def _loop_config(self, count: int, max_steps: int | None, *, floor: float | None) -> Any:
        from neuralfactor.train.loop import LoopConfig

        s = self.settings
        steps_per_epoch = count // s.batch_size
        total = s.epochs * steps_per_epoch
        steps = total if max_steps is None else min(total, max_steps)
        return LoopConfig(
            steps=steps,
            eval_every=steps_per_epoch,
            patience=s.patience,
            grad_clip=s.grad_clip,
            restore_best=s.restore_best,
            diverge_factor=10.0,  # validation loss 10x above its value before training
            # and a finished run that never improved on it is unusable (a run stopped at
            # max_steps, to be resumed, is judged when it finishes)
            require_progress=steps == total,
            progress_floor=floor,
        )

    def _train_meta(self, data: TrainingFrames) -> dict[str, Any]:
        """The metadata of every checkpoint of this training (:data:`TRAIN_META_KEYS`)."""
        s = self.settings
        return {
            "factorizer": self.get_params(),
            "frame_shape": [int(v) for v in data.frame_shape],
            "data_fingerprint": data.fingerprint,
            "distributed": {
                "world_size": data.world_size,
                "global_batch": s.batch_size,
                "sampler_seed": s.seed * SEED_STRIDE,
            },
        }

    def _objective(
        self, model: FactorNet, net: torch.nn.Module, data: TrainingFrames, device: torch.device
    ) -> tuple[Callable[[int], Tensor], Callable[[], float]]:
        """``loss_fn(step)`` (the batch of global step ``step``, through ``net``) and
        ``eval_fn()`` (the mean scaled loss of ``data.val``, through ``model``)."""
        s = self.settings
        steps_per_epoch = data.count // s.batch_size
        b = s.batch_size // data.world_size
        order_of = data.order or (lambda e: epoch_order(data.count, s.seed, e).to(device))
        order: dict[int, Any] = {}

        def loss_fn(step: int) -> Tensor:
            epoch, i = divmod(step, steps_per_epoch)
            if epoch not in order:  # one permutation per epoch from (seed, epoch): resume-exact
                order.clear()
                order[epoch] = order_of(epoch)
            X = data.take(order[epoch][i * b : (i + 1) * b])
            U, V = net(X)
            return training_loss(X, U, V, nested=self.nested, objective=s.objective)

        def eval_fn() -> float:
            losses = []
            for i in range(0, data.val.shape[0], self.chunk):
                Xb = data.val[i : i + self.chunk]
                U, V = model(Xb)
                err = frame_losses(Xb, U, V, nested=self.nested, objective=s.objective)
                losses.append((err / Xb.square().sum(dim=(-2, -1))).float())
            return float(torch.cat(losses).mean())

        return loss_fn, eval_fn

    # ------------------------------------------------------------------ inference
    def at_rank(self, k: int) -> LearnedFactorizer:
        """A nested model serving its leading ``k`` columns (k <= rank): ``clone(use_rank=k)``,
        sharing the trained network."""
        if not self.nested:
            raise ValueError(
                f"{self.name} was not trained with the nested loss; at_rank needs nested=True."
            )
        if not 1 <= k <= self.rank:
            raise ValueError(f"The 'k' parameter of at_rank must be in [1, {self.rank}]. Got {k}.")
        return self.clone(use_rank=k)

    def _factorize(self, X: Tensor) -> LowRank:
        model = self.model_
        assert model is not None  # guarded by BaseFactorizer.factorize via _fitted
        model.check_input(X)
        p = next(model.parameters())
        k = self.use_rank or self.rank
        Us, Vs = [], []
        flat = X.reshape(-1, *X.shape[-2:])
        with torch.no_grad():
            for i in range(0, flat.shape[0], self.chunk):
                Xc = flat[i : i + self.chunk].to(device=p.device)  # X's dtype, for refine
                Xb = Xc.to(p.dtype)
                if not bool(torch.isfinite(Xb).all()):
                    raise ValueError(
                        f"{self.name}: X has entries of magnitude up to "
                        f"{float(Xc.abs().max()):.3g}, beyond the range of the model's "
                        f"{str(p.dtype).removeprefix('torch.')} weights; rescale X (the model was "
                        f"trained on frames of another scale anyway)."
                    )
                U, V = model(Xb)
                U, V = U[..., :k], V[..., :k, :]
                if not bool(torch.isfinite(U).all() and torch.isfinite(V).all()):
                    raise FactorizationError(
                        f"{self.name}: the network produced non-finite factors for frames "
                        f"{i}..{i + Xb.shape[0] - 1} (max |x| = {float(Xc.abs().max()):.3g}); "
                        f"such inputs are far outside the training data."
                    )
                if self.refine != "none":
                    lr = refine_factors(Xc, U, k, self.refine)
                    U, V = lr.U, lr.V
                Us.append(U.to(device=X.device, dtype=X.dtype))
                Vs.append(V.to(device=X.device, dtype=X.dtype))
        U = torch.cat(Us).reshape(*X.shape[:-2], X.shape[-2], k)
        V = torch.cat(Vs).reshape(*X.shape[:-2], k, X.shape[-1])
        return LowRank(U, V)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the trained model as a checkpoint directory (safetensors + JSON)."""
        from neuralfactor.train.checkpoint import save_checkpoint

        if self.model_ is None:
            raise ValueError(f"{self.name} has no trained model to save; call fit first.")
        meta = {
            **dict.fromkeys(TRAIN_META_KEYS),
            **self.train_meta_,
            "factorizer": self.get_params(),
            "fit_seconds": self.fit_seconds_,
            "history": self.history_,
        }
        return save_checkpoint(path, self.model_, init_args=self.model_.init_args, meta=meta)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", **overrides: Any) -> LearnedFactorizer:
        """Rebuild a trained factorizer from :meth:`save` output; refuses foreign checkpoints."""
        from neuralfactor.train.checkpoint import CheckpointError, load_checkpoint, load_model

        meta, _ = load_checkpoint(path)
        params = meta.get("factorizer")
        if not isinstance(params, dict) or params.get("model") not in MODELS:
            raise CheckpointError(f"{path} is not a LearnedFactorizer checkpoint.")
        model, meta = load_model(
            path, expected_class=MODELS[params["model"]], map_location=resolve_device(device)
        )
        settings = TrainSettings.from_dict(params["settings"])
        kw = {
            "model": params["model"],
            "refine": params["refine"],
            "nested": params["nested"],
            "settings": settings,
            "model_kwargs": params["model_kwargs"],
            **overrides,
        }
        f = cls(params["rank"], **kw)
        f.model_ = model.eval()
        f.fit_seconds_ = float(meta.get("fit_seconds", 0.0))
        f.history_ = meta.get("history", [])
        # a model saved before the metadata schema was one lacks some keys: None
        f.train_meta_ = {k: meta.get(k) for k in TRAIN_META_KEYS}
        f._fitted = True
        return f


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"LearnedFactorizer.{old} is deprecated; use LearnedFactorizer.{new} (scikit-learn's "
        f"trailing underscore for fitted state).",
        DeprecationWarning,
        stacklevel=3,
    )


def _register() -> None:
    for model in MODELS:
        register_factorizer(
            model, lambda rank, _m=model, **kw: LearnedFactorizer(rank, model=_m, **kw)
        )
        register_factorizer(
            f"{model}+refine",
            lambda rank, _m=model, **kw: LearnedFactorizer(rank, model=_m, refine="lstsq", **kw),
        )
    register_factorizer(
        "convmf+subspace",
        lambda rank, **kw: LearnedFactorizer(rank, model="convmf", refine="subspace", **kw),
    )
    register_factorizer(
        "convmf-nested",
        lambda rank, **kw: LearnedFactorizer(rank, model="convmf", nested=True, **kw),
    )
    register_factorizer(
        "convmf-nested+refine",
        lambda rank, **kw: LearnedFactorizer(
            rank, model="convmf", nested=True, refine="lstsq", **kw
        ),
    )


_register()
