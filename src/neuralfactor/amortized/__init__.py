"""Networks that map a matrix to its factors (one network, many matrices).

Importing this package registers the learned factorizers (``convmf``, ``fork``, ``danmf``,
``sketch`` (a learned encoder reading X Omega), their ``+refine`` hybrids, ``convmf+subspace`` and ``convmf-nested``).
"""

from neuralfactor.amortized.factorizer import (
    LEARNING_RATES,
    OBJECTIVES,
    REFINE,
    TRAIN_PRESETS,
    LearnedFactorizer,
    TrainSettings,
    default_lr,
    nested_losses,
    projection_losses,
    refine_factors,
    train_preset,
)
from neuralfactor.amortized.models import DANMF, MODELS, ConvMF, Fork, build_model
from neuralfactor.amortized.sketch import SketchMF, sketch_flops

__all__ = [
    "DANMF",
    "LEARNING_RATES",
    "MODELS",
    "OBJECTIVES",
    "REFINE",
    "TRAIN_PRESETS",
    "ConvMF",
    "Fork",
    "LearnedFactorizer",
    "SketchMF",
    "TrainSettings",
    "build_model",
    "default_lr",
    "nested_losses",
    "projection_losses",
    "refine_factors",
    "sketch_flops",
    "train_preset",
]
