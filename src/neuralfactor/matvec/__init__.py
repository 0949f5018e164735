"""Low-rank approximation learned from matrix-vector products (the choke-point network).

Registers the factorizer ``matvec-ae``.
"""

from neuralfactor.core.factorizer import register_factorizer
from neuralfactor.matvec.compress import LinearCompression, compress_linear
from neuralfactor.matvec.factorizer import MatvecFactorizer
from neuralfactor.matvec.fit import (
    MatvecFit,
    RankCollapseError,
    RankCollapseWarning,
    SuboptimalFitError,
    SuboptimalFitWarning,
    fit_matvec,
)
from neuralfactor.matvec.model import ChokePointNet

__all__ = [
    "ChokePointNet",
    "LinearCompression",
    "MatvecFactorizer",
    "MatvecFit",
    "RankCollapseError",
    "RankCollapseWarning",
    "SuboptimalFitError",
    "SuboptimalFitWarning",
    "compress_linear",
    "fit_matvec",
]

register_factorizer("matvec-ae", MatvecFactorizer)
