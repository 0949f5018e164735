"""Training the LU network: ``L (U e_i) ~ A e_i`` by L-BFGS or Adam through ``run_training``.

Loss: ``||L U - A||_F^2 / ||A||_F^2`` evaluated with identity inputs (the network's outputs are
the columns of ``L U``). Options:

* ``transpose_loss``: also fit ``U^T (L^T e_i)`` to ``A^T e_i`` with the transposed graphs. On
  full-batch identity inputs this equals the plain loss (the total just doubles); it adds
  information only under block-wise training, where it fits block *column* k as well.
* ``blockwise``: stage ``k`` fits block-row ``k`` of ``L U`` (and block-column ``k`` with the
  transpose loss) until it converges, then freezes every parameter that feeds it (found by a
  gradient probe at random weights, so the dependency is structural) and moves on.

* ``precond_weight`` (``mu``, Levenberg-Marquardt only): add ``mu * vec(L0^{-1} (L U - A) U0^{-1})
  / sqrt(n)`` to the residual, where ``L0, U0`` are the factors frozen at the start of each LM
  step (dense triangular solves; ``A`` is never inverted). At ``L U = A`` this term is zero like
  the plain one, so the minimizer is unchanged; on the way it weighs the error by the factors'
  own inverse, i.e. as a preconditioner sees it (``(L U)^{-1} A - I``). The plain Frobenius loss
  cannot see a small nugget of the RBF kernel (1.1e-5 of its norm) and lets ``L U`` go
  singular; with this term the factors keep cond(L U) ~ cond(A) (``docs/results/learned-lu.md``).

Optimizers: ``'lm'`` (matrix-free Levenberg-Marquardt, :mod:`neuralfactor.train.lm`; one step
is one damped Gauss-Newton solve of at most ``cg_iters`` CG iterations) reaches the smallest
errors; L-BFGS in float64 (one step = ``inner`` iterations) stalls around 1e-5-1e-4 on
operators with cond(A) >= 1e4, and Adam plateaus around 1e-3 there (``docs/results/learned-lu.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from neuralfactor.lu.model import LUNetwork, as_dense_operator
from neuralfactor.train.lm import LevenbergMarquardt
from neuralfactor.train.loop import LoopConfig, LoopResult, run_training

__all__ = [
    "LU_PRESETS",
    "LUPreset",
    "LUTrainConfig",
    "LUTrainResult",
    "check_nonsingular",
    "check_spd",
    "lu_preset",
    "parse_precond_stages",
    "train_lu",
]

OptimizerName = Literal["lbfgs", "adam", "lm"]
DEFAULT_LR: dict[str, float] = {"lbfgs": 1.0, "adam": 1e-3, "lm": 1e-3}
PresetName = Literal["best", "original"]
#: an evaluation of ||LU - A||_F / ||A||_F above this multiple of its value before training
#: stops the run as diverged
DIVERGE_FACTOR = 10.0
REMEDY = (
    "The documented settings are the defaults (Levenberg-Marquardt with triangular diagonal "
    "blocks, docs/results/learned-lu.md); with adam or lbfgs lower --lr."
)
LU_PRESETS: tuple[str, ...] = get_args(PresetName)


@dataclass(frozen=True)
class LUTrainConfig:
    """How to train an :class:`~neuralfactor.lu.model.LUNetwork`.

    The defaults are the best settings known (the ``'best'`` preset of :func:`lu_preset`):
    Levenberg-Marquardt for 60 steps, which reaches 1.2e-6 on the 1-D Laplacian at n = 256
    where the original L-BFGS stalls at 4.4e-5 (``docs/results/learned-lu.md``).
    ``lu_preset('original')`` gives the original method (L-BFGS, 250 x 20 iterations, with
    block-diagonal factors).

    optimizer : ``'lm'`` (Levenberg-Marquardt, default; end-to-end only, without the transpose
        loss), ``'lbfgs'`` (strong-Wolfe line search) or ``'adam'``.
    steps : optimizer steps end-to-end (L-BFGS: each is up to ``inner`` iterations; LM: each
        is one damped Gauss-Newton solve).
    inner : L-BFGS iterations per step.
    lr : learning rate (L-BFGS: initial step, 1.0 is standard; Adam: 1e-3 typical; LM: the
        initial damping). ``None`` (default): 1.0 for L-BFGS, 1e-3 for Adam and LM.
    cg_iters : LM's conjugate-gradient iterations per step.
    history : L-BFGS history size.
    transpose_loss, blockwise : see the module docstring.
    block_steps : optimizer steps per block-row stage when ``blockwise``.
    polish_steps : end-to-end steps after the block-wise stages (0: none).
    precond_weight : weight of the preconditioned residual term (see the module docstring);
        0 (default) is the plain loss. LM only.
    precond_stages : further LM stages after ``steps``, as ``(weight, steps)`` pairs, each with
        a fresh damping and its own checkpoint directory (``precond1``, ...): a schedule of the
        weight (a large weight conditions the factors, a small one lets the Frobenius error
        fall; the RBF table uses ``0.03`` for 100 steps, then ``(0.01, 30), (0.003, 40),
        (0.001, 60)``).
    eval_every, patience : evaluation cadence and early stopping (in steps).
    """

    optimizer: OptimizerName = "lm"
    steps: int = 60
    inner: int = 20
    lr: float | None = None
    history: int = 50
    transpose_loss: bool = False
    blockwise: bool = False
    block_steps: int = 50
    polish_steps: int = 0
    eval_every: int = 10
    patience: int | None = None
    cg_iters: int = 100
    precond_weight: float = 0.0
    precond_stages: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        if self.optimizer not in get_args(OptimizerName):
            raise ValueError(
                f"The 'optimizer' parameter of LUTrainConfig must be one of "
                f"{list(get_args(OptimizerName))}. Got {self.optimizer!r}."
            )
        if self.optimizer == "lm" and (self.blockwise or self.transpose_loss):
            raise ValueError(
                "LUTrainConfig: optimizer='lm' trains end to end on the plain loss; drop "
                "blockwise/transpose_loss (on full-batch identity inputs the transpose loss equals "
                "the plain loss anyway) or use optimizer='lbfgs'."
            )
        for name in (
            "steps", "inner", "history", "block_steps", "polish_steps", "eval_every", "cg_iters"
        ):  # fmt: skip
            v = getattr(self, name)
            minimum = 0 if name in ("steps", "polish_steps") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(
                    f"The '{name}' parameter of LUTrainConfig must be an int >= {minimum}. "
                    f"Got {v!r}."
                )
        w = self.precond_weight
        if (
            isinstance(w, bool)
            or not isinstance(w, (int, float))
            or not (math.isfinite(w) and w >= 0)
        ):
            raise ValueError(
                f"The 'precond_weight' parameter of LUTrainConfig must be a number >= 0. Got {w!r}."
            )
        if w > 0 and self.optimizer != "lm":
            raise ValueError(
                "LUTrainConfig: precond_weight > 0 needs optimizer='lm' (the weights are frozen "
                "per Gauss-Newton step)."
            )
        try:
            stages = tuple((float(w), k) for w, k in self.precond_stages)
        except (TypeError, ValueError):
            stages = None
        if stages is None or any(
            not (math.isfinite(w) and w >= 0)
            or isinstance(k, bool)
            or not isinstance(k, int)
            or k < 1
            for w, k in stages
        ):
            raise ValueError(
                f"The 'precond_stages' parameter of LUTrainConfig must be (weight >= 0, steps >= "
                f"1) pairs. Got {self.precond_stages!r}."
            )
        object.__setattr__(self, "precond_stages", stages)
        if stages and self.optimizer != "lm":
            raise ValueError("LUTrainConfig: precond_stages needs optimizer='lm'.")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(
                f"The 'lr' parameter of LUTrainConfig must be a number > 0. Got {self.lr!r}."
            )


@dataclass
class LUTrainResult:
    """Outcome of :func:`train_lu`: the final relative Frobenius error and the stage results."""

    rel_fro: float
    seconds: float
    stages: list[dict[str, Any]]


@dataclass(frozen=True)
class LUPreset:
    """A model diagonal-block mode (``LUNetwork(diag=...)``) and a training configuration."""

    diag: str
    train: LUTrainConfig


_PRESET_VALUES: dict[str, dict[str, Any]] = {
    # LM with entry-wise triangular diagonal blocks: 1.2e-6 on the 1-D Laplacian (n = 256,
    # 60 steps), round-off on the convection-diffusion and 2-D operators
    "best": {"diag": "triangular", "optimizer": "lm", "steps": 60},
    # the original method: block-diagonal factors by L-BFGS (250 steps x 20 iterations)
    "original": {"diag": "full", "optimizer": "lbfgs", "steps": 250, "inner": 20},
}


def lu_preset(name: str = "best", **overrides: Any) -> LUPreset:
    """The settings of a named preset, with ``overrides`` (``diag`` or any
    :class:`LUTrainConfig` field) taking precedence; a ``None`` override is ignored.

    Parameters
    ----------
    name : ``'best'`` (the default of ``neuralfactor lu`` and of :class:`LUTrainConfig`:
        Levenberg-Marquardt, triangular diagonal blocks, 60 steps) or ``'original'`` (the
        original method: L-BFGS, block-diagonal factors, 250 steps of 20 iterations).
    """
    if name not in LU_PRESETS:
        raise ValueError(
            f"The 'preset' parameter of lu_preset must be one of {list(LU_PRESETS)}. Got "
            f"{name!r}; use 'best' (the default) or 'original' (the original method)."
        )
    values = {**_PRESET_VALUES[name], **{k: v for k, v in overrides.items() if v is not None}}
    diag = values.pop("diag")
    names = {f.name for f in fields(LUTrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"lu_preset got unknown settings {unknown}; expected 'diag' or fields of "
            f"LUTrainConfig {sorted(names)}."
        )
    return LUPreset(diag=diag, train=LUTrainConfig(**values))


def check_nonsingular(A: np.ndarray, *, caller: str = "train_lu") -> float:
    """Raise ``ValueError`` when ``A`` is numerically singular; return its 1-norm rcond."""
    import warnings

    import scipy.linalg as sla

    with warnings.catch_warnings():  # the singular case is reported below, as an error
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        lu, _ = sla.lu_factor(A, check_finite=False)
    piv = np.abs(np.diag(lu))
    tol = A.shape[0] * np.finfo(np.float64).eps * np.abs(A).max()
    if piv.min() <= tol:
        raise ValueError(
            f"The operator passed to {caller} is singular to working precision (smallest LAPACK "
            f"pivot {piv.min():.3e} <= n*eps*max|A| = {tol:.3e}); an LU factorization cannot "
            f"exist. Add a nugget/shift or fix the boundary conditions."
        )
    return float(1.0 / np.linalg.cond(A, 1))


def parse_precond_stages(text: str) -> tuple[tuple[float, int], ...]:
    """``'0.01:30,0.003:40'`` -> ``((0.01, 30), (0.003, 40))`` for ``precond_stages`` (the
    command-line form); ``ValueError`` naming the bad item."""
    stages = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        try:
            w, k = item.split(":")
            stages.append((float(w), int(k)))
        except ValueError:
            raise ValueError(
                f"The precond. stages take WEIGHT:STEPS pairs separated by commas, e.g. "
                f"0.01:30,0.003:40. Got {item!r}."
            ) from None
    return tuple(stages)


def check_spd(A: np.ndarray, *, caller: str = "train_lu") -> None:
    """Raise ``ValueError`` unless ``A`` is symmetric positive definite (what ``L L^T`` fits)."""
    asym = float(np.linalg.norm(A - A.T) / np.linalg.norm(A))
    if asym > 1e-12:
        raise ValueError(
            f"A symmetric LUNetwork (A ~ L L^T) was given to {caller} with a non-symmetric "
            f"operator (||A - A^T||_F/||A||_F = {asym:.1e}); use symmetric=False (L U)."
        )
    try:
        np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"A symmetric LUNetwork (A ~ L L^T) was given to {caller} with a symmetric operator "
            f"that is not positive definite; L L^T cannot fit it. Use symmetric=False (L U)."
        ) from None


class _Objective:
    """Relative squared Frobenius error of ``LU`` against ``A``, optionally on one block."""

    def __init__(
        self, model: LUNetwork, A: Tensor, transpose_loss: bool, precond_weight: float = 0.0
    ) -> None:
        self.model, self.A, self.tl = model, A, transpose_loss
        self.eye = torch.eye(A.shape[0], dtype=A.dtype)
        self.scale = float((A**2).sum())
        self.names = [n for n, _ in model.named_parameters()]  # order of ``residual``'s params
        self.mu = float(precond_weight)
        self.frozen: tuple[Tensor, Tensor] | None = None  # (L0, U0) of the current LM step
        self.inverted = False  # frozen holds (L0^{-1}, U0^{-1}) (block-triangular factors)

    @torch.no_grad()
    def refresh(self) -> None:
        """Freeze the current dense factors as the weights of the preconditioned term (a
        factor with a zero pivot leaves the term out for this step)."""
        if self.mu == 0.0:
            return
        L, U = self.model.dense_factors()
        if self.model.L.diag == "full":
            # block-triangular factors: weight with their inverses, formed once per step
            try:
                L, U = torch.linalg.inv(L), torch.linalg.inv(U)
            except torch.linalg.LinAlgError:
                self.frozen = None
                return
            self.frozen = (
                (L, U) if bool(torch.isfinite(L).all() and torch.isfinite(U).all()) else None
            )
            self.inverted = True
            return
        self.inverted = False
        ok = bool(torch.diagonal(L).abs().min() > 0 and torch.diagonal(U).abs().min() > 0)
        self.frozen = (L, U) if ok else None

    def __call__(self, block: slice | None = None) -> Tensor:
        F = self.model(self.eye)  # rows are columns of LU: F = (LU)^T
        At = self.A.T
        if block is None:
            loss = ((F - At) ** 2).sum()
        else:  # block-row k of LU is F[:, block]
            loss = ((F[:, block] - At[:, block]) ** 2).sum()
        if self.tl:
            T = self.model.rmatvec(self.eye)  # rows are rows of LU: T = LU
            if block is None:
                loss = loss + ((T - self.A) ** 2).sum()
            else:  # block-column k of LU
                loss = loss + ((T[:, block] - self.A[:, block]) ** 2).sum()
        return loss / self.scale

    def residual(self, params: Sequence[Tensor]) -> Tensor:
        """``vec(L U - A) / ||A||_F`` at the given parameter values (the model's
        ``named_parameters`` order), a pure function for :class:`LevenbergMarquardt`;
        its squared norm is ``self()``'s plain loss."""
        from torch.func import functional_call

        named = dict(zip(self.names, params, strict=True))
        F = functional_call(self.model, named, (self.eye,))
        r = ((F - self.A.T) / math.sqrt(self.scale)).reshape(-1)
        if self.frozen is None:
            return r
        L0, U0 = self.frozen  # R = F^T - A = L U - A, weighted: L0^{-1} R U0^{-1}
        if self.inverted:  # diag='full': the frozen pair holds the inverses
            W = L0 @ (F.T - self.A) @ U0
        else:
            W = torch.linalg.solve_triangular(L0, F.T - self.A, upper=False)
            W = torch.linalg.solve_triangular(U0, W, upper=True, left=False)
        return torch.cat([r, (self.mu / math.sqrt(self.A.shape[0])) * W.reshape(-1)])

    @torch.no_grad()
    def rel_fro(self) -> float:
        F = self.model(self.eye)
        return math.sqrt(float(((F - self.A.T) ** 2).sum()) / self.scale)


def _block_dependencies(model: LUNetwork, transpose_loss: bool) -> list[dict[str, Tensor]]:
    """For each block-row k: a per-parameter boolean mask over P x P blocks that feed it.

    Probed at random weights with a random weighting of the outputs, so a zero gradient means
    structurally independent (with probability one).
    """
    import copy

    probe = copy.deepcopy(model)
    g = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    n, P = model.n, model.leaf
    eye = torch.eye(n, dtype=model.dtype)
    masks = []
    for k in range(n // P):
        blk = slice(k * P, (k + 1) * P)
        probe.zero_grad(set_to_none=True)
        R = torch.randn(n, P, generator=g, dtype=model.dtype)
        out = (probe(eye)[:, blk] * R).sum()
        if transpose_loss:
            out = out + (probe.rmatvec(eye)[:, blk] * R).sum()
        out.backward()
        masks.append(
            {
                name: (p.grad is not None) and (p.grad.abs().sum(dim=(-1, -2)) != 0)
                if p.grad is not None
                else torch.zeros(p.shape[:-2], dtype=torch.bool)
                for name, p in probe.named_parameters()
            }
        )
    return masks


class _LBFGS(torch.optim.LBFGS):
    """L-BFGS whose state_dict holds no lists of tensors (its curvature history), so the
    project's checkpoints (tensors -> safetensors, the rest -> JSON) can store and resume it."""

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        loss = super().step(closure)
        return loss.detach() if isinstance(loss, Tensor) else loss  # a float for the loop

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        flat: dict[Any, dict[str, Any]] = {}
        for pid, ps in sd["state"].items():
            entry: dict[str, Any] = {}
            for k, v in ps.items():
                if isinstance(v, list):
                    entry[f"{k}#len"] = len(v)
                    for i, x in enumerate(v):
                        entry[f"{k}#{i}"] = x
                else:
                    entry[k] = v
            flat[pid] = entry
        return {"state": flat, "param_groups": sd["param_groups"]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state: dict[Any, dict[str, Any]] = {}
        for pid, ps in state_dict["state"].items():
            entry = {k: v for k, v in ps.items() if "#" not in k}
            for k, v in ps.items():
                if k.endswith("#len"):
                    base = k[: -len("#len")]
                    entry[base] = [ps[f"{base}#{i}"] for i in range(int(v))]
            state[pid] = entry
        super().load_state_dict({"state": state, "param_groups": state_dict["param_groups"]})


class _ReweightedLM(LevenbergMarquardt):
    """LM whose objective re-freezes the preconditioned term's factors before each step (from
    the current weights, so a resumed run continues identically)."""

    def __init__(self, params: Any, obj: _Objective, **kw: Any) -> None:
        super().__init__(params, obj.residual, **kw)
        self.obj = obj

    def step(self, closure: Any = None) -> Tensor:  # type: ignore[override]
        self.obj.refresh()
        return super().step(closure)


def _make_optimizer(
    params: list[Tensor], cfg: LUTrainConfig, obj: _Objective | None = None
) -> torch.optim.Optimizer:
    if cfg.optimizer == "lm":
        assert obj is not None
        if obj.mu > 0:
            return _ReweightedLM(params, obj, damping=cfg.lr, cg_iters=cfg.cg_iters)
        return LevenbergMarquardt(params, obj.residual, damping=cfg.lr, cg_iters=cfg.cg_iters)
    if cfg.optimizer == "lbfgs":
        return _LBFGS(
            params,
            lr=cfg.lr,
            max_iter=cfg.inner,
            history_size=cfg.history,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam(params, lr=cfg.lr)


def train_lu(
    A: Any,
    model: LUNetwork,
    config: LUTrainConfig | None = None,
    *,
    init: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> LUTrainResult:
    """Fit ``model`` so that ``L U ~ A`` (in the model's ordering, see ``LUNetwork.permute``).

    Parameters
    ----------
    A : square matrix (numpy, torch or scipy.sparse), non-singular.
    model : the network; trained in place in its own dtype.
    config : :class:`LUTrainConfig`.
    init : start from ``L = I``, ``U = block-upper(A)`` (recommended).
    checkpoint_dir : one sub-directory per stage (``e2e``, ``block0``.. , ``polish``) with the
        resumable checkpoints of :func:`neuralfactor.train.loop.run_training`.

    Raises
    ------
    ValueError for a non-square/singular operator or a size that does not match the model;
    :class:`neuralfactor.train.loop.TrainingDivergedError` on NaN or when the relative error
    rises above ``DIVERGE_FACTOR`` times its value before training (the model keeps its last
    good weights); :class:`neuralfactor.train.loop.TrainingStalledError` when the end-to-end
    stage ends no better than it started.

    Notes
    -----
    Cost per loss evaluation ``O(n * #weights)`` (n identity columns through both blocks);
    block-wise training evaluates the full product and restricts the loss, so each stage costs
    as much per step as end-to-end training.
    """
    cfg = config or LUTrainConfig()
    Ad = as_dense_operator(A, caller="train_lu")
    if Ad.shape[0] != model.n:
        raise ValueError(
            f"The operator of train_lu has size {Ad.shape[0]} but the model was built for "
            f"n={model.n}."
        )
    check_nonsingular(Ad)
    if model.symmetric:
        check_spd(Ad)
    Ap = model.permute(Ad)
    if init and not resume:
        model.init_from_operator(Ad)
    At = torch.as_tensor(Ap, dtype=model.dtype)
    obj = _Objective(model, At, cfg.transpose_loss, cfg.precond_weight)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    base_meta = {"lu_train_config": asdict(cfg), **(meta or {})}
    stages: list[dict[str, Any]] = []

    def run(name: str, steps: int, block: slice | None, params: list[Tensor]) -> LoopResult:
        opt = _make_optimizer(params, cfg, obj)
        whole = block is None  # a block-row's loss may start at 0: no relative checks there
        res = run_training(
            model,
            opt,
            lambda _step: obj(block),
            LoopConfig(
                steps,
                eval_every=cfg.eval_every,
                patience=cfg.patience,
                diverge_factor=DIVERGE_FACTOR if whole else None,
                require_progress=name == "e2e",
            ),
            eval_fn=(lambda: float(obj(block))) if block is not None else obj.rel_fro,
            checkpoint_dir=None if ckpt is None else ckpt / name,
            init_args=model.init_args,
            meta=base_meta,
            resume=resume,
            progress=progress,
            description=f"lu {name}",
            remedy=REMEDY,
        )
        stages.append(
            {
                "stage": name,
                "steps": res.steps_done,
                "stopped": res.stopped,
                "seconds": res.seconds,
                "rel_fro": obj.rel_fro(),
            }
        )
        return res

    params = list(model.parameters())
    # einsum with transposed maps can leave non-contiguous gradients, which L-BFGS's flat view
    # rejects; the frozen-block mask (block-wise training) is applied in the same hook.
    named = dict(model.named_parameters())
    frozen = {k: torch.zeros(v.shape[:-2], dtype=torch.bool) for k, v in named.items()}
    hooks = [
        p.register_hook(
            lambda grad, name=name: (
                grad * (~frozen[name]).to(grad.dtype)[..., None, None]
            ).contiguous()
        )
        for name, p in named.items()
    ]
    try:
        seconds = _run_stages(cfg, model, run, params, frozen, obj)
    finally:
        for h in hooks:
            h.remove()
    return LUTrainResult(rel_fro=obj.rel_fro(), seconds=seconds, stages=stages)


def _run_stages(cfg, model, run, params, frozen, obj) -> float:
    seconds = 0.0
    if not cfg.blockwise:
        seconds += run("e2e", cfg.steps, None, params).seconds
        for i, (weight, steps) in enumerate(cfg.precond_stages, start=1):
            obj.mu, obj.frozen = weight, None
            seconds += run(f"precond{i}", steps, None, params).seconds
    else:
        deps = _block_dependencies(model, cfg.transpose_loss)
        P = model.leaf
        for k in range(model.n // P):
            seconds += run(f"block{k}", cfg.block_steps, slice(k * P, (k + 1) * P), params).seconds
            for name in frozen:
                frozen[name] |= deps[k][name]
        if cfg.polish_steps:
            for name in frozen:
                frozen[name].zero_()
            seconds += run("polish", cfg.polish_steps, None, params).seconds
    return seconds
