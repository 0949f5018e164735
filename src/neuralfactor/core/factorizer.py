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
from typing import Any, Protocol, Self, runtime_checkable

from torch import Tensor

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_matrix, check_rank, did_you_mean

__all__ = [
    "BaseFactorizer",
    "FactorizationError",
    "Factorizer",
    "NotFittedError",
    "available_factorizers",
    "check_factorizer_name",
    "make_factorizer",
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
_loaded = False


class NotFittedError(RuntimeError):
    """``factorize`` was called on a data-driven factorizer before ``fit``."""


class FactorizationError(RuntimeError):
    """A solver failed on valid input (no convergence, breakdown); the message says why."""


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
    entries, rank range) once, here, so every method rejects bad input the same way.
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
        return self._factorize(X)

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
