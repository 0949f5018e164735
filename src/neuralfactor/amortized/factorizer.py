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
    "OBJECTIVES",
    "REFINE",
    "SCHEDULES",
    "TRAIN_PRESETS",
    "LearnedFactorizer",
    "TrainSettings",
    "frame_losses",
    "lr_scheduler",
    "nested_losses",
    "projection_losses",
    "refine_factors",
    "train_preset",
    "training_loss",
]

Refine = Literal["none", "lstsq", "subspace"]
REFINE: tuple[str, ...] = get_args(Refine)
#: 'constant' (the original study) or 'cosine' (decay to 0 over the run).
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
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

    Notes
    -----
    ``fit`` is the amortized cost and is reported separately (``fit_seconds``); ``factorize``
    is one forward pass (plus the refinement), batched, on the model's device, in chunks of
    ``chunk`` frames.
    """

    requires_fit = True

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
        self.model_name, self.refine, self.nested = model, refine, nested
        self.settings = settings or TrainSettings()
        self.model_kwargs = dict(model_kwargs or {})
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume, self.progress, self.chunk = resume, progress, chunk
        self.model: FactorNet | None = None
        self.fit_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self._use_rank = rank

    def get_params(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "model": self.model_name,
            "refine": self.refine,
            "nested": self.nested,
            "settings": asdict(self.settings),
            "model_kwargs": self.model_kwargs,
        }

    # ------------------------------------------------------------------ training
    def check_fit(
        self, frames: Any, val_frames: Any = None
    ) -> tuple[Tensor, Tensor | None, torch.device]:
        """Every check :meth:`fit` makes before training, with nothing trained or written.

        Validates the frames, the batch size against the training split, the device, the
        rank against the frame size and that the model can be built for these frames (its
        layer sizes, ``model_kwargs``). Returns ``(train, val, device)``; callers that write
        files (run directories) call it first so a refused run leaves nothing behind.
        """
        from neuralfactor.core.validation import check_rank

        if frames is None:
            raise ValueError(
                f"{self.name} is learned: fit(frames) needs training frames (T, m, n)."
            )
        s = self.settings
        device = resolve_device(s.device)
        train = _frames_tensor(frames, "frames")
        m, n = train.shape[-2:]
        check_rank(self.rank, train.shape, caller=self.name)
        if train.shape[0] < s.batch_size:
            raise ValueError(
                f"The training split has {train.shape[0]} frames, fewer than one batch "
                f"(batch_size={s.batch_size}); use more frames or a smaller batch."
            )
        val = _frames_tensor(val_frames, "val_frames") if val_frames is not None else None
        if val is not None and tuple(val.shape[-2:]) != (m, n):
            raise ValueError(
                f"Validation frames are {tuple(val.shape[-2:])}, training frames {(m, n)}."
            )
        with torch.random.fork_rng(devices=[]):  # the trial build leaves the global RNG alone
            try:
                build_model(self.model_name, int(m), int(n), self.rank, **self.model_kwargs)
            except TypeError as exc:
                raise ValueError(
                    f"Cannot build {self.model_name} for {m}x{n} frames with model_kwargs "
                    f"{self.model_kwargs}: {exc}."
                ) from None
        return train, val, device

    def fit(self, frames: Any = None, val_frames: Any = None) -> LearnedFactorizer:
        """Train on ``frames`` (T, m, n); validate on ``val_frames`` (scaled loss) if given."""
        from neuralfactor.train.checkpoint import tensor_fingerprint
        from neuralfactor.train.loop import LoopConfig, run_training

        s = self.settings
        train, val, device = self.check_fit(frames, val_frames)
        dtype = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}[
            s.dtype
        ]
        m, n = train.shape[-2:]
        torch.manual_seed(s.seed)  # parameter init only; data order uses its own generator
        self.model = build_model(self.model_name, int(m), int(n), self.rank, **self.model_kwargs)
        self.model.to(device=device, dtype=dtype)
        train_d = train.to(device=device, dtype=dtype)
        val_d = val.to(device=device, dtype=dtype) if val is not None else None
        steps_per_epoch = train.shape[0] // s.batch_size
        order: dict[int, Tensor] = {}

        def batch_for(step: int) -> Tensor:
            epoch, i = divmod(step, steps_per_epoch)
            if epoch not in order:  # a permutation per epoch from (seed, epoch): resume-exact
                order.clear()
                g = torch.Generator().manual_seed(s.seed * 1_000_003 + epoch)
                order[epoch] = torch.randperm(train.shape[0], generator=g).to(device)
            idx = order[epoch][i * s.batch_size : (i + 1) * s.batch_size]
            return train_d[idx]

        def loss_fn(step: int) -> Tensor:
            X = batch_for(step)
            U, V = self.model(X)
            return training_loss(X, U, V, nested=self.nested, objective=s.objective)

        def eval_fn() -> float:
            ref = val_d if val_d is not None else train_d[: 4 * s.batch_size]
            losses = []
            for i in range(0, ref.shape[0], self.chunk):
                Xb = ref[i : i + self.chunk]
                U, V = self.model(Xb)
                err = frame_losses(Xb, U, V, nested=self.nested, objective=s.objective)
                losses.append((err / Xb.square().sum(dim=(-2, -1))).float())
            return float(torch.cat(losses).mean())

        fused = device.type in ("cpu", "cuda")  # fused Adam: ~1.5x faster steps on CPU too
        opt = torch.optim.Adam(self.model.parameters(), lr=s.lr, fused=fused)
        cfg = LoopConfig(
            steps=s.epochs * steps_per_epoch,
            eval_every=steps_per_epoch,
            patience=s.patience,
            grad_clip=s.grad_clip,
            restore_best=s.restore_best,
            diverge_factor=10.0,  # validation loss 10x above its value before training
            require_progress=True,  # and a run that never improved on it is unusable
        )
        meta = {
            "factorizer": self.get_params(),
            "frame_shape": [int(m), int(n)],
            "data_fingerprint": tensor_fingerprint(train),
        }
        t0 = time.perf_counter()
        result = run_training(
            self.model,
            opt,
            loss_fn,
            cfg,
            eval_fn=eval_fn,
            scheduler=lr_scheduler(opt, s, cfg.steps),
            checkpoint_dir=self.checkpoint_dir,
            init_args=self.model.init_args,
            meta=meta,
            resume=self.resume,
            progress=self.progress,
            description=f"train {self.name} r={self.rank}",
            remedy="Lower --lr; the recipe (the defaults: lr 1e-3, warmup 5 epochs, cosine, "
            "grad clip 50) is in docs/results/convmf-recipe.md.",
            loss_label="batch loss (unscaled objective)",
            metric_label="val scaled loss",
        )
        self.fit_seconds = result.seconds if self.resume else time.perf_counter() - t0
        self.history = result.history
        self.model.eval()
        self._fitted = True
        return self

    # ------------------------------------------------------------------ inference
    def at_rank(self, k: int) -> LearnedFactorizer:
        """A view of a nested model that returns its leading ``k`` columns (k <= rank)."""
        if not self.nested:
            raise ValueError(
                f"{self.name} was not trained with the nested loss; at_rank needs nested=True."
            )
        if not 1 <= k <= self.rank:
            raise ValueError(f"The 'k' parameter of at_rank must be in [1, {self.rank}]. Got {k}.")
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._use_rank = k
        return view

    def _factorize(self, X: Tensor) -> LowRank:
        model = self.model
        assert model is not None  # guarded by BaseFactorizer.factorize via _fitted
        model.check_input(X)
        p = next(model.parameters())
        k = self._use_rank
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

        if self.model is None:
            raise ValueError(f"{self.name} has no trained model to save; call fit first.")
        return save_checkpoint(
            path,
            self.model,
            init_args=self.model.init_args,
            meta={
                "factorizer": self.get_params(),
                "fit_seconds": self.fit_seconds,
                "history": self.history,
            },
        )

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
        f.model = model.eval()
        f.fit_seconds = float(meta.get("fit_seconds", 0.0))
        f.history = meta.get("history", [])
        f._fitted = True
        return f


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
