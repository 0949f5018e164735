"""neuralfactor: learned low-rank and structured factorizations, measured against classical
linear algebra.

>>> import neuralfactor as nf
>>> f = nf.make_factorizer("rsvd", rank=12)
>>> lr = f.factorize(X)            # X: (*, m, n) tensor -> LowRank, X ~ lr.reconstruct()
"""

from importlib.metadata import PackageNotFoundError, version

from neuralfactor.core import (
    BaseFactorizer,
    FactorizationError,
    Factorizer,
    LowRank,
    NotFittedError,
    available_factorizers,
    make_factorizer,
    register_factorizer,
)

try:
    __version__ = version("neuralfactor")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: The top-level names: the core's factorizer interface, plus the version.
__all__ = ["BaseFactorizer", "FactorizationError", "Factorizer", "LowRank", "NotFittedError",
           "__version__", "available_factorizers", "make_factorizer", "register_factorizer"]  # fmt: skip
