"""The vocabulary every other package speaks: no torch.nn, no files."""

from neuralfactor.core.factorizer import (
    BaseFactorizer,
    FactorizationError,
    Factorizer,
    NotFittedError,
    available_factorizers,
    make_factorizer,
    register_factorizer,
)
from neuralfactor.core.lowrank import LowRank, svd_flip

__all__ = [
    "BaseFactorizer",
    "FactorizationError",
    "Factorizer",
    "LowRank",
    "NotFittedError",
    "available_factorizers",
    "make_factorizer",
    "register_factorizer",
    "svd_flip",
]
