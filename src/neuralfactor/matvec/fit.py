"""Train a choke-point network from products ``x -> A x`` and return a rank-``k`` factorization.

Theory (Baldi & Hornik 1989): for isotropic probes (``E[x x^T] = I``) the loss
``E ||A x - W_2 W_1 x||^2`` equals ``||A - W_2 W_1||_F^2``, whose global minimum over rank-``k``
products is the Eckart-Young truncation of ``A``, and every local minimum is global (the other
critical points are saddles). So a correct implementation must reach the SVD's errors.

Choice of probes (``probes=``)
------------------------------
``"identity"`` (default)
    The ``n`` columns of ``I_n``: ``n`` products, computed once. The empirical second moment
    ``P P^T = I`` is *exactly* isotropic, so the training loss is exactly
    ``||A - W||_F^2 / ||A||_F^2``: deterministic, no sampling bias and no gradient noise, which
    is what lets a quasi-Newton method (L-BFGS) converge to the Eckart-Young optimum to
    round-off. Use it whenever ``n`` products are affordable.
``"orthogonal"``
    The ``n`` columns of a Haar-random orthogonal matrix: also exactly isotropic (same loss as
    ``identity``); useful when the operator is cheap on dense blocks but one does not want
    axis-aligned probes.
``"gaussian"``
    ``n_probes`` fresh standard Gaussian vectors per step (``E[x x^T] = I`` only in
    expectation). A fixed finite Gaussian block ``P`` would bias the optimum towards the
    truncation of ``A (P P^T / s)^{1/2}``, an error of order ``sqrt(n / s)``; fresh draws remove
    the bias but add gradient noise, so pair it with Adam and expect errors ``~ lr``-limited
    rather than round-off. Use it only when fewer than ``n`` products per step are wanted.

Conditioning: the targets are divided by ``c = ||A||_F / sqrt(min(m, n))`` (the rms singular
value, estimated from the probes) so that weights are O(1); the factors are rescaled at the
end. Training runs in float64 by default.

Cost per L-BFGS iteration with ``s`` probes: ``O(k * sum_l d_l d_{l-1} + (m + n) k s)``; the
``s`` products with ``A`` are paid once for ``identity``/``orthogonal`` probes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.metrics import effective_rank
from neuralfactor.core.operators import as_operator
from neuralfactor.core.validation import (
    FLOAT_DTYPES,
    as_generator,
    check_option,
    check_positive_float,
    check_positive_int,
)
from neuralfactor.matvec.model import INIT_OPTIONS, ChokePointNet, Init
from neuralfactor.train.loop import LoopConfig, LoopResult, run_training

__all__ = [
    "OPTIMIZER_OPTIONS",
    "PROBE_OPTIONS",
    "MatvecFit",
    "RankCollapseError",
    "RankCollapseWarning",
    "SuboptimalFitError",
    "SuboptimalFitWarning",
    "fit_matvec",
]

Probes = Literal["identity", "orthogonal", "gaussian"]
Optimizer = Literal["lbfgs", "adam"]
OnCollapse = Literal["warn", "raise", "ignore"]
PROBE_OPTIONS: tuple[str, ...] = ("identity", "orthogonal", "gaussian")
OPTIMIZER_OPTIONS: tuple[str, ...] = ("lbfgs", "adam")
COLLAPSE_OPTIONS: tuple[str, ...] = ("warn", "raise", "ignore")


class RankCollapseWarning(UserWarning):
    """The learned rank-k factorization has numerical rank < k although A is not that simple."""


class RankCollapseError(RuntimeError):
    """Raised instead of :class:`RankCollapseWarning` with ``on_collapse="raise"``."""


class SuboptimalFitWarning(UserWarning):
    """Training stopped away from the Eckart-Young optimum (e.g. at a saddle point)."""


class SuboptimalFitError(RuntimeError):
    """Raised instead of :class:`SuboptimalFitWarning` with ``on_collapse="raise"``."""


@dataclass
class MatvecFit:
    """Outcome of :func:`fit_matvec`.

    lowrank : LowRank ``U @ V`` with ``U`` (*, m, k), ``V`` (*, k, n), on A's device/dtype.
    train_loss : per-matrix final loss ``||A P - W P||_F^2 / ||A P||_F^2`` (for isotropic
        complete probe sets this *is* the scaled loss ``||A - W||_F^2 / ||A||_F^2``).
    effective_rank : per-matrix numerical rank of the learned map (the rank check).
    rank_ok : every matrix has effective rank ``k``, or the loss is at round-off (``A`` has
        rank < k and was reproduced exactly).
    n_matvecs : products ``x -> A x`` the training used (per matrix).
    residual_ratio : per-matrix ``||A - W||_2 / s_k(W)`` (complete probe sets only, else
        None). At the Eckart-Young optimum it is ``s_{k+1}(A) / s_k(A) <= 1``; a value > 1
        means a direction left in the residual is stronger than the weakest learned one, so
        the network is not at the optimum (a saddle, or stopped too early).
    optimal : ``residual_ratio <= 1`` (within 1e-3) for every matrix, or None.
    """

    lowrank: LowRank
    train_loss: Tensor
    effective_rank: Tensor
    rank_ok: bool
    n_matvecs: int
    loop: LoopResult
    probes: str
    optimizer: str
    seconds: float
    residual_ratio: Tensor | None = None
    optimal: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _product_fn(A: Any) -> tuple[Any, tuple[int, ...], int, int, torch.dtype, torch.device]:
    """A batched product ``P (n, s) -> (*, m, s)`` and the operator's geometry."""
    if isinstance(A, (Tensor, np.ndarray)) and torch.as_tensor(A).ndim > 2:
        T = torch.as_tensor(A)
        if T.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"The 'A' parameter of fit_matvec must be float32 or float64. Got {T.dtype}."
            )
        if not bool(torch.isfinite(T).all()):
            raise ValueError("The 'A' parameter of fit_matvec contains NaN or Inf.")
        return (lambda P: T @ P), tuple(T.shape[:-2]), T.shape[-2], T.shape[-1], T.dtype, T.device
    op = as_operator(A)
    m, n = op.shape
    return op.matvec, (), m, n, op.dtype, op.device


def fit_matvec(
    A: Any,
    rank: int,
    *,
    probes: Probes = "identity",
    n_probes: int | None = None,
    optimizer: Optimizer = "lbfgs",
    lr: float | None = None,
    steps: int | None = None,
    inner_iters: int = 25,
    patience: int = 4,
    min_delta: float = 1e-10,
    tol: float = 1e-8,
    init: Init = "orthogonal",
    encoder_widths: tuple[int, ...] | None = None,
    decoder_widths: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float64,
    seed: int | torch.Generator | None = 0,
    rank_rtol: float | None = None,
    on_collapse: OnCollapse = "warn",
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> MatvecFit:
    """Learn a rank-``rank`` approximation of ``A`` from products ``x -> A x`` only.

    Parameters
    ----------
    A : LinearOperator, scipy.sparse matrix, Tensor/ndarray (m, n), or Tensor (*, m, n)
        Only ``matvec`` is called (never ``rmatvec`` or the entries). A batched dense tensor
        trains one independent network per matrix, all in one module.
    rank : int in [1, n - 1]
        The bottleneck width ``k``; ``k >= n`` is no choke point and is refused.
    probes : {"identity", "orthogonal", "gaussian"}
        See the module docstring for the justification (default ``identity``: exactly
        isotropic, deterministic loss).
    n_probes : int, optional
        Gaussian probes per step (default ``n``); ignored for complete probe sets.
    optimizer : {"lbfgs", "adam"}
        ``lbfgs`` (default; strong-Wolfe line search, ``inner_iters`` iterations per loop
        step) for the deterministic probes; ``adam`` for stochastic ones.
    lr : float, optional
        Learning rate (default 1 for L-BFGS, 1e-2 for Adam).
    steps : int, optional
        Loop steps (default 400 for L-BFGS, i.e. at most 10,000 iterations, and 5000 for Adam).
    patience, min_delta :
        Early stopping: stop after ``patience`` evaluations whose loss improved by less than a
        relative ``min_delta``.
    tol : float, default 1e-8
        A relative squared loss below ``tol`` counts as exact (relative Frobenius error
        ``sqrt(tol)`` = 1e-4) and ends training. It matters when ``A`` has (numerical) rank
        <= k: the surplus bottleneck directions then decay to 0 only sublinearly (the loss
        behaves like ``1/t^2``), so relative improvements never become small. Pass
        ``tol=0`` to train to the optimum of a matrix whose Eckart-Young tail (relative
        squared) is below ``1e-8``.
    init : {"orthogonal", "normal", "small"}
        Weight initialization (:class:`ChokePointNet`).
    encoder_widths, decoder_widths :
        Hidden widths (default ``(n,)`` and ``()``: the study's ``n -> n -> k -> m``).
    dtype : float32 or float64 (default float64; float32 limits the reachable accuracy to
        ~1e-4 in the relative errors).
    seed : int, torch.Generator or None
        Initial weights and probes come only from this generator.
    rank_rtol : float, optional
        Relative threshold of the rank check (default ``sqrt(eps)`` of ``dtype``).
    on_collapse : {"warn", "raise", "ignore"}
        What to do when the rank check or the optimality check fails (the latter needs a
        complete probe set: ``identity`` or ``orthogonal``).
    progress : bool
        Show a Rich progress bar.
    checkpoint_dir, resume :
        Passed to :func:`neuralfactor.train.loop.run_training`.

    Returns
    -------
    MatvecFit

    Notes
    -----
    Use an exact or randomized SVD when the matrix is available: this routine exists to study
    (and to offer) learning a low-rank map from products; with ``identity`` probes it needs
    ``n`` products, the same as forming ``A``. References: P. Baldi and K. Hornik, Neural
    networks and principal component analysis: learning from examples without local minima,
    Neural Networks 2 (1989) 53-58; Eckart & Young (1936).
    """
    _check_options(probes, optimizer, init, on_collapse, dtype)
    apply, batch, m, n, a_dtype, device = _product_fn(A)
    rank = _check_rank(rank, m, n)
    opts = _Options.of(
        optimizer=optimizer, probes=probes, n=n, n_probes=n_probes, lr=lr, steps=steps,
        inner_iters=inner_iters, patience=patience, min_delta=min_delta, tol=tol,
    )  # fmt: skip
    gen = as_generator(seed, device)
    data = _Targets.draw(apply, probes, opts.n_probes, m, n, a_dtype, dtype, gen)
    net = ChokePointNet(
        n, m, rank, encoder_widths=encoder_widths, decoder_widths=decoder_widths,
        batch_shape=batch, init=init, scale=1.0, generator=gen, dtype=dtype, device=device,
    )  # fmt: skip
    # Below this the relative squared loss counts as exact (``tol``, at least round-off):
    # clamping the metric there lets early stopping end the run instead of chasing 0 when A
    # has rank <= k.
    floor = max(opts.tol, (100 * torch.finfo(dtype).eps) ** 2)

    def eval_fn() -> float:
        # Fixed probe sets: the exact scaled loss. Gaussian: the first (held) probe block.
        return max(float(data.loss(net, data.P, data.Y, data.denom).sum()), floor)

    loop = run_training(
        net,
        _optimizer(net, optimizer, opts),
        lambda step: data.loss(net, *data.batch(step)).sum(),
        LoopConfig(
            steps=opts.steps,
            eval_every=1 if optimizer == "lbfgs" else 50,
            patience=opts.patience,
            min_delta=opts.min_delta,
            diverge_factor=10.0,  # the scaled loss 10x above its value at the initialization
            require_progress=True,  # a fit that never improved on its start is unusable
        ),
        eval_fn=eval_fn,
        generators={"probes": gen},
        checkpoint_dir=checkpoint_dir,
        init_args=net.init_args if checkpoint_dir else None,
        meta={"kind": "matvec-ae", "probes": probes, "matvec_optimizer": optimizer},
        resume=resume,
        progress=progress,
        description=f"matvec-ae k={rank}",
        remedy="Lower lr (Adam) or use optimizer='lbfgs' (docs/results/matvec-and-toolkit.md).",
    )
    with torch.no_grad():
        train_loss = data.loss(net, data.P, data.Y, data.denom).detach()
        U, V = net.factors()
        lr_out = LowRank((U * data.scale_b).detach().to(a_dtype), V.detach().to(a_dtype))
    rtol = rank_rtol if rank_rtol is not None else math.sqrt(torch.finfo(dtype).eps)
    eff = effective_rank(lr_out, rtol=rtol)
    explained = train_loss <= max(10 * floor, 1e3 * torch.finfo(dtype).eps)  # A has rank < k
    rank_ok = _rank_check(eff, explained, train_loss, rank, rtol, bool(batch), on_collapse)
    residual_ratio, optimal = None, None
    if data.fixed:
        residual_ratio, optimal = _optimality_check(
            net, data, U, V, rank, floor, explained, bool(batch), on_collapse
        )
    return MatvecFit(
        residual_ratio=residual_ratio,
        optimal=optimal,
        lowrank=lr_out,
        train_loss=train_loss,
        effective_rank=eff,
        rank_ok=rank_ok,
        n_matvecs=data.n_products,
        loop=loop,
        probes=probes,
        optimizer=optimizer,
        seconds=loop.seconds,
        info={"scale": data.scale.tolist() if batch else float(data.scale)},
    )


def _check_options(probes: str, optimizer: str, init: str, on_collapse: str, dtype: Any) -> None:
    caller = "fit_matvec"
    check_option(probes, PROBE_OPTIONS, name="probes", caller=caller)
    check_option(optimizer, OPTIMIZER_OPTIONS, name="optimizer", caller=caller)
    check_option(init, INIT_OPTIONS, name="init", caller=caller)
    check_option(on_collapse, COLLAPSE_OPTIONS, name="on_collapse", caller=caller)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"The 'dtype' parameter of {caller} must be float32 or float64. Got {dtype}."
        )


def _check_rank(rank: Any, m: int, n: int) -> int:
    caller = "fit_matvec"
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise TypeError(
            f"The 'rank' parameter of {caller} must be an int in [1, n - 1={n - 1}]. Got {rank!r}."
        )
    if not 1 <= rank < min(m, n):
        raise ValueError(
            f"The 'rank' parameter of {caller} must be an int in [1, min(m, n) - 1="
            f"{min(m, n) - 1}] for a {m}x{n} operator: a bottleneck k >= min(m, n) is no choke "
            f"point (the identity map is exact). Got {rank}."
        )
    return int(rank)


@dataclass(frozen=True)
class _Options:
    """The numeric options of :func:`fit_matvec`, checked, with the optimizer's defaults."""

    n_probes: int
    lr: float
    steps: int
    inner_iters: int
    patience: int
    min_delta: float
    tol: float

    @classmethod
    def of(cls, *, optimizer: str, probes: str, n: int, **kw: Any) -> _Options:
        caller = "fit_matvec"
        steps = kw["steps"] if kw["steps"] is not None else (400 if optimizer == "lbfgs" else 5000)
        lr = kw["lr"] if kw["lr"] is not None else (1.0 if optimizer == "lbfgs" else 1e-2)
        s = n if kw["n_probes"] is None or probes != "gaussian" else kw["n_probes"]
        return cls(
            inner_iters=check_positive_int(kw["inner_iters"], name="inner_iters", caller=caller),
            patience=check_positive_int(kw["patience"], name="patience", caller=caller),
            min_delta=check_positive_float(
                kw["min_delta"], name="min_delta", caller=caller, allow_zero=True
            ),
            tol=check_positive_float(kw["tol"], name="tol", caller=caller, allow_zero=True),
            steps=check_positive_int(steps, name="steps", caller=caller),
            lr=check_positive_float(lr, name="lr", caller=caller),
            n_probes=check_positive_int(s, name="n_probes", caller=caller),
        )


@dataclass
class _Targets:
    """Probes ``P`` (n, s) and normalized products ``Y = A P / c`` (*, m, s), ``c`` the rms
    singular value estimate (``scale``); ``denom`` = ``||Y||_F^2`` per matrix. Gaussian probes
    are drawn afresh every step (:meth:`batch`)."""

    apply: Any
    P: Tensor
    Y: Tensor
    denom: Tensor
    scale: Tensor
    fixed: bool
    n_products: int
    gen: torch.Generator
    a_dtype: torch.dtype
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def scale_b(self) -> Tensor:
        return self.scale[..., None, None]

    @classmethod
    def draw(
        cls, apply: Any, probes: str, s: int, m: int, n: int, a_dtype: torch.dtype,
        dtype: torch.dtype, gen: torch.Generator,
    ) -> _Targets:  # fmt: skip
        device = gen.device
        fixed = probes in ("identity", "orthogonal")
        if probes == "identity":
            P = torch.eye(n, dtype=a_dtype, device=device)
        elif probes == "orthogonal":
            G = torch.randn(n, n, generator=gen, dtype=torch.float64, device=device)
            Q, R = torch.linalg.qr(G)
            P = (Q * torch.sign(torch.diagonal(R))).to(a_dtype)
        else:
            P = torch.randn(n, s, generator=gen, dtype=a_dtype, device=device)
        Y = apply(P)
        if tuple(Y.shape[-2:]) != (m, P.shape[1]):  # pragma: no cover - operators check this
            raise ValueError(
                f"The products of A have shape {tuple(Y.shape)}; expected (*, {m}, {s})."
            )
        P, Y = P.to(dtype), Y.to(dtype)
        y_norm2 = Y.square().sum(dim=(-2, -1))
        fro_est = torch.sqrt(y_norm2 * (1.0 if fixed else n / s))  # ||A||_F estimate per matrix
        scale = fro_est / math.sqrt(min(m, n))
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        denom = (y_norm2 / scale.square()).clamp_min(torch.finfo(dtype).tiny)
        Yn = Y / scale[..., None, None]
        return cls(apply, P, Yn, denom, scale, fixed, P.shape[1], gen, a_dtype)

    def batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """The probes, targets and norms of ``step`` (fresh Gaussian ones once per step: L-BFGS
        re-evaluates a step)."""
        if self.fixed:
            return self.P, self.Y, self.denom
        c = self.cache
        if c.get("step") != step:
            n, s = self.P.shape
            Pk = torch.randn(n, s, generator=self.gen, dtype=self.a_dtype, device=self.gen.device)
            Yk = self.apply(Pk).to(self.P.dtype) / self.scale_b
            self.n_products += s
            c.update(step=step, P=Pk.to(self.P.dtype), Y=Yk, d=Yk.square().sum(dim=(-2, -1)))
        return c["P"], c["Y"], c["d"]

    def loss(self, net: ChokePointNet, Pk: Tensor, Yk: Tensor, dk: Tensor) -> Tensor:
        """Per-matrix relative squared loss ``||Y - net(P)||_F^2 / ||Y||_F^2``."""
        tiny = torch.finfo(Pk.dtype).tiny
        return (Yk - net(Pk)).square().sum(dim=(-2, -1)) / dk.clamp_min(tiny)


def _optimizer(net: ChokePointNet, optimizer: str, opts: _Options) -> torch.optim.Optimizer:
    if optimizer == "lbfgs":
        return torch.optim.LBFGS(
            net.parameters(),
            lr=opts.lr,
            max_iter=opts.inner_iters,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-14,
            tolerance_change=1e-16,
        )
    return torch.optim.Adam(net.parameters(), lr=opts.lr)


def _report(msg: str, on_collapse: str, error: type[Exception], warning: type[Warning]) -> None:
    """``on_collapse``: raise ``error``, warn ``warning`` (from fit_matvec's caller) or ignore."""
    if on_collapse == "raise":
        raise error(msg)
    if on_collapse == "warn":
        warnings.warn(msg, warning, stacklevel=4)


def _rank_check(
    eff: Tensor, explained: Tensor, train_loss: Tensor, rank: int, rtol: float, batched: bool,
    on_collapse: str,
) -> bool:  # fmt: skip
    """The rank check: every matrix has effective rank ``rank`` unless A itself has less."""
    collapsed = (eff < rank) & ~explained
    if not bool(collapsed.any()):
        return True
    idx = torch.nonzero(collapsed.reshape(-1))[:, 0].tolist()
    effs = eff.reshape(-1)[idx].tolist()
    _report(
        f"matvec-ae rank check failed: the learned rank-{rank} map has numerical rank "
        f"{effs[0] if len(effs) == 1 else effs} (relative threshold {rtol:.1e})"
        f"{'' if not batched else f' for batch entries {idx}'} while its loss "
        f"{float(train_loss.reshape(-1)[idx[0]]):.3e} is not at round-off: the network "
        f"collapsed. Try init='orthogonal', optimizer='lbfgs', probes='identity' or more steps.",
        on_collapse, RankCollapseError, RankCollapseWarning,
    )  # fmt: skip
    return False


def _optimality_check(
    net: ChokePointNet, data: _Targets, U: Tensor, V: Tensor, rank: int, floor: float,
    explained: Tensor, batched: bool, on_collapse: str,
) -> tuple[Tensor, bool]:  # fmt: skip
    """``(residual_ratio, optimal)`` for complete isotropic probes.

    They give the residual exactly: ``||A - W||_2 = ||(A - W) P||_2``. At the optimum it equals
    ``s_{k+1}(A) <= s_k(A) = s_k(W)``. The rank check cannot see a network stuck at the saddle
    near 0 (all k learned directions tiny but equal); this can.
    """
    with torch.no_grad():
        res2 = torch.linalg.matrix_norm(data.Y - net(data.P), ord=2)
        ru = torch.linalg.qr(U.double(), mode="r").R
        rv = torch.linalg.qr(V.double().mT, mode="r").R
        s_k = torch.linalg.svdvals(ru @ rv.mT)[..., rank - 1]
        slack = 10 * torch.sqrt(floor * data.denom)
        residual_ratio = res2 / s_k.clamp_min(torch.finfo(torch.float64).tiny)
        good = (res2 <= s_k * (1 + 1e-3) + slack) | explained
    optimal = bool(good.all())
    if not optimal:
        idx = torch.nonzero(~good.reshape(-1))[:, 0].tolist()
        ratio = float(residual_ratio.reshape(-1)[idx[0]])
        _report(
            f"matvec-ae optimality check failed{'' if not batched else f' for {idx}'}: the "
            f"residual keeps a direction {ratio:.3g}x stronger than the weakest learned one "
            f"(the Eckart-Young optimum has this ratio <= 1), so training stopped away from "
            f"the optimum (a saddle point or too few steps). Try init='orthogonal', "
            f"optimizer='lbfgs' or more steps.",
            on_collapse, SuboptimalFitError, SuboptimalFitWarning,
        )  # fmt: skip
    return residual_ratio, optimal
