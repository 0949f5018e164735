"""The factorizer protocol, a small base class and the name -> factory registry.

Classical and learned methods sit behind one interface: ``fit`` is the amortized cost (a
no-op for classical methods), ``factorize`` the per-matrix cost. Providers register their
factorizers when their module is imported; :func:`available_factorizers` imports the known
providers, so the registry is complete whichever module a user imported first.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import Tensor

from neuralfactor.core.lowrank import LowRank, svd_flip
from neuralfactor.core.validation import check_matrix, check_rank, did_you_mean

__all__ = [
    "BaseFactorizer",
    "Contract",
    "FactorizationError",
    "Factorizer",
    "NotFittedError",
    "available_factorizers",
    "check_factorizer_name",
    "factorizer_contract",
    "load_factorizer",
    "make_factorizer",
    "register_contract",
    "register_factorizer",
]

#: Modules that register factorizers on import. A provider whose optional dependency is
#: missing is skipped (its factorizers are then not available).
_PROVIDERS: tuple[str, ...] = (
    "neuralfactor.classical",
    "neuralfactor.amortized",
    "neuralfactor.matvec",
    "neuralfactor.distributed.factorizers",
)

_REGISTRY: dict[str, Callable[..., Factorizer]] = {}
_CONTRACTS: dict[str, Contract] = {}
#: Readers of trained factorizer directories, ``"module:Class.method"``, called as
#: ``reader(path, device=..., **overrides)``; imported when first needed, as the providers are.
_LOADERS: tuple[str, ...] = ("neuralfactor.amortized.factorizer:LearnedFactorizer.load",)
_loaded = False


class NotFittedError(RuntimeError):
    """``factorize`` was called on a data-driven factorizer before ``fit``."""


class FactorizationError(RuntimeError):
    """A solver failed on valid input (no convergence, breakdown); the message says why."""


@dataclass(frozen=True)
class Contract:
    """What a factorizer promises: the inputs it must accept and its accuracy on them.

    **Valid input** is every finite float32/float64 tensor ``X`` of shape ``(*, m, n)`` with
    ``1 <= rank <= min(m, n)``, narrowed only by the flags below. A factorizer must accept
    every valid input (a refusal is a defect, not a documented error) and return factors
    whose scaled loss ``||X - X_r||_F^2 / ||X||_F^2`` satisfies

        loss <= loss_factor * optimum + roundoff + slack,

    with ``optimum`` the Eckart-Young loss at the same rank (Eckart & Young 1936, "The
    approximation of one matrix by another of lower rank") and ``roundoff =
    100 eps max(m, n)`` for ``X``'s dtype (plus the spacing of subnormals relative to the
    largest entry, for subnormal data). ``loss_factor = 1`` states an exact method.

    Parameters
    ----------
    accuracy : str
        The bound in words, with its budget (the default parameters it holds at).
    loss_factor : float
        Multiple of the optimum allowed (1 for exact methods).
    slack : float
        Extra absolute scaled loss allowed (e.g. directions below a Gram threshold).
    gram_threshold : bool
        The method drops directions whose squared singular value is below
        ``max((k eps)^2, 10 k eps64)`` of the largest (Gram/Cholesky-QR orthonormalization, k
        the sketch width): the bound adds ``min(m, n)`` times that floor, with k = min(m, n).
    relative_to_rank_one : bool
        The bound is ``loss_factor`` times the rank-1 optimum instead (methods that are not
        Eckart-Young approximations, e.g. NMF).
    nonnegative : bool
        Only ``X >= 0`` is valid.
    fit_on_same_shape : bool
        Valid only after ``fit`` on frames of X's (m, n).
    """

    accuracy: str
    loss_factor: float = 1.0
    slack: float = 0.0
    gram_threshold: bool = False
    relative_to_rank_one: bool = False
    nonnegative: bool = False
    fit_on_same_shape: bool = False

    def preconditions(self) -> str:
        """The valid inputs in words (for docstrings, the reliability page and test output)."""
        parts = ["finite float32/float64 X (*, m, n)", "1 <= rank <= min(m, n)"]
        if self.nonnegative:
            parts.append("X >= 0")
        if self.fit_on_same_shape:
            parts.append("fit on frames of the same (m, n) first")
        return "; ".join(parts)

    def is_valid(self, X: Tensor, rank: int) -> bool:
        """Is ``(X, rank)`` inside the preconditions (``fit`` is the caller's part)?"""
        if not isinstance(X, Tensor) or X.dtype not in (torch.float32, torch.float64):
            return False
        if X.ndim < 2 or X.numel() == 0 or not bool(torch.isfinite(X).all()):
            return False
        if isinstance(rank, bool) or not isinstance(rank, int):
            return False
        if not 1 <= rank <= min(X.shape[-2:]):
            return False
        return not (self.nonnegative and bool((X < 0).any()))

    def loss_bound(self, X: Tensor, singular_values: Tensor, rank: int) -> Tensor:
        """The largest scaled loss allowed per matrix of ``X``, from its float64 singular values
        (shape (*, min(m, n)), descending). Zero matrices get bound ``roundoff``."""
        s2 = singular_values.double() ** 2
        total = s2.sum(-1)
        denom = torch.where(total > 0, total, torch.ones_like(total))
        opt = s2[..., (1 if self.relative_to_rank_one else rank) :].sum(-1) / denom
        fi = torch.finfo(X.dtype)
        m, n = X.shape[-2:]
        amax = X.detach().double().abs().amax(dim=(-2, -1))
        amax = amax.clamp_min(fi.smallest_normal * fi.eps)
        subnormal = 10 * (m * n) ** 0.5 * fi.smallest_normal * fi.eps / amax
        roundoff = 100 * fi.eps * max(m, n) + subnormal
        slack = self.slack
        if self.gram_threshold:
            k = min(m, n)
            slack += k * max((k * fi.eps) ** 2, 10 * k * torch.finfo(torch.float64).eps)
        return self.loss_factor * opt + roundoff + slack


def register_contract(name: str, contract: Contract) -> None:
    """State the :class:`Contract` of the factorizer registered as ``name``."""
    _CONTRACTS[name] = contract


def factorizer_contract(name: str) -> Contract | None:
    """The registered :class:`Contract` of ``name`` (``None`` when it states none)."""
    _load_providers()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown factorizer {name!r}; expected one of {sorted(_REGISTRY)}.")
    return _CONTRACTS.get(name)


@runtime_checkable
class Factorizer(Protocol):
    """Anything that maps matrices ``(*, m, n)`` to a :class:`LowRank` of a fixed rank."""

    name: str
    rank: int

    def fit(self, frames: Any = None) -> Self: ...

    def factorize(self, X: Tensor) -> LowRank: ...


class BaseFactorizer:
    """Validation and bookkeeping shared by the built-in factorizers.

    Subclasses set ``name``, implement ``_factorize(X)`` for a validated tensor and, when
    data-driven, override ``fit``. ``factorize`` checks the input (dtype, shape, finite
    entries, rank range) once, here, so every method rejects bad input the same way, and
    applies the one sign convention (:func:`~neuralfactor.core.lowrank.svd_flip`: the
    largest-magnitude entry of each column of ``U`` positive, ``V`` flipped with it) to every
    result, so factors are reproducible across seeds and methods. Subclasses return raw
    factors from ``_factorize`` and keep any warm-start state internal (never the flipped
    output).
    """

    name: str = "base"
    #: Data-driven methods set this: ``factorize`` before ``fit`` raises NotFittedError.
    requires_fit: bool = False

    def __init__(self, rank: int) -> None:
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(
                f"The 'rank' parameter of {self.name} must be an int >= 1. Got {rank!r}."
            )
        if rank < 1:
            raise ValueError(
                f"The 'rank' parameter of {self.name} must be an int >= 1. Got {rank}."
            )
        self.rank = rank
        self._fitted = not self.requires_fit

    def fit(self, frames: Any = None) -> Self:
        """Classical methods learn nothing: ``fit`` returns ``self``."""
        return self

    def factorize(self, X: Tensor) -> LowRank:
        """Factorize ``X`` of shape ``(*, m, n)``; the result keeps X's device and dtype."""
        X = check_matrix(X, caller=self.name)
        check_rank(self.rank, X.shape, caller=self.name)
        if not self._fitted:
            raise NotFittedError(
                f"{self.name} is data-driven: call fit(frames) before factorize(X)."
            )
        return svd_flip(self._factorize(X))

    def _factorize(self, X: Tensor) -> LowRank:  # pragma: no cover - abstract
        raise NotImplementedError

    #: Constructor parameters left out of :meth:`get_params` (implied by the registered name,
    #: or execution settings that do not change the result).
    _hidden_params: tuple[str, ...] = ()

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, for records, specs and reprs.

        Read from the ``__init__`` signature: every named parameter (but ``_hidden_params``)
        is stored under an attribute of the same name. Subclasses whose parameters live
        elsewhere override this.
        """
        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and name not in self._hidden_params
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def register_factorizer(name: str, factory: Callable[..., Factorizer]) -> None:
    """Register ``factory(rank=..., **params)`` under ``name`` (re-registering replaces it)."""
    _REGISTRY[name] = factory


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    for module in _PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            provider_absent = module == missing or module.startswith(missing + ".")
            optional_extra = not missing.startswith("neuralfactor")
            if not (provider_absent or optional_extra):
                raise
    _loaded = True


def available_factorizers() -> list[str]:
    """Sorted names accepted by :func:`make_factorizer`."""
    _load_providers()
    return sorted(_REGISTRY)


def check_factorizer_name(name: str) -> str:
    """Refuse a name :func:`make_factorizer` does not know, suggesting the nearest one."""
    _load_providers()
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown factorizer {name!r}; expected one of {sorted(_REGISTRY)}."
            + did_you_mean(name, _REGISTRY)
        )
    return name


def make_factorizer(name: str, rank: int, **params: Any) -> Factorizer:
    """Build a registered factorizer: ``make_factorizer("rsvd", rank=12, n_iter=2)``."""
    return _REGISTRY[check_factorizer_name(name)](rank=rank, **params)


def load_factorizer(path: str | PathLike, *, device: str = "cpu", **overrides: Any) -> Factorizer:
    """A trained factorizer from the directory it was saved to (``meta.json`` beside weights).

    Lower layers (the Vlasov solver's truncation) reach trained models through this function
    instead of importing the packages that define them; the readers are named in
    ``_LOADERS`` and imported here, as :func:`available_factorizers` imports its providers.

    Raises
    ------
    FileNotFoundError
        ``path`` holds no ``meta.json``.
    ValueError
        no reader recognises the directory (each reader's message is given).
    """
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{path} is not a trained model directory (no meta.json).")
    errors = []
    for spec in _LOADERS:
        module, _, attr = spec.partition(":")
        try:
            reader: Any = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an optional dependency of the provider is missing
            if (exc.name or "").startswith("neuralfactor"):
                raise
            continue
        for part in attr.split("."):
            reader = getattr(reader, part)
        try:
            return reader(path, device=device, **overrides)
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError(
        f"{path} holds no trained factorizer that an installed provider can read"
        + (f": {'; '.join(errors)}" if errors else ".")
    )
