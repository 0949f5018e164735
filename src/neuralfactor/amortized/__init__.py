"""Networks that map a matrix to its factors (one network, many matrices).

Importing this package registers the learned factorizers (``convmf``, ``fork``, ``danmf``,
their ``+refine`` hybrids, ``convmf+subspace`` and ``convmf-nested``).
"""

from neuralfactor.amortized.factorizer import (
    OBJECTIVES,
    REFINE,
    TRAIN_PRESETS,
    LearnedFactorizer,
    TrainSettings,
    nested_losses,
    projection_losses,
    refine_factors,
    train_preset,
)
from neuralfactor.amortized.models import DANMF, MODELS, ConvMF, Fork, build_model

__all__ = [
    "DANMF",
    "MODELS",
    "OBJECTIVES",
    "REFINE",
    "TRAIN_PRESETS",
    "ConvMF",
    "Fork",
    "LearnedFactorizer",
    "TrainSettings",
    "build_model",
    "nested_losses",
    "projection_losses",
    "refine_factors",
    "train_preset",
]
