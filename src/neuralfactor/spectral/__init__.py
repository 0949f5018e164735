"""neuralfactor.spectral: NeuralSVD (NestedLoRA) and a SpIN-style baseline (see DESIGN.md).

Ordered singular/eigenfunctions of operators by nested low-rank approximation (Ryu et al.,
ICML 2024): the objective (:mod:`.objectives`), operators with samplers (:mod:`.operators`:
finite matrices, RBF kernels, 2-D hydrogen and harmonic oscillator), function models
(:mod:`.models`), the SpIN-style baseline (:mod:`.spin`), training through
``neuralfactor.train`` (:mod:`.trainer`), the run directory of one experiment (:mod:`.run`) and evaluation against exact spectra (:mod:`.evaluate`,
:mod:`.analytic`). Results: docs/results/neuralsvd.md.
"""

from neuralfactor.spectral.models import FunctionPair, ParallelMLP, SpectralModel, TabularFunctions
from neuralfactor.spectral.objectives import (
    gram,
    nested_weights,
    nestedlora_loss,
    nestedlora_loss_evd,
    prefix_losses,
)
from neuralfactor.spectral.operators import (
    KernelOperator,
    MatrixOperator,
    SchrodingerOperator,
    evd_moments,
)
from neuralfactor.spectral.run import (
    SPECTRAL_PRESETS,
    SpectralConfig,
    evaluate_run,
    run_spectral,
    spectral_preset,
)
from neuralfactor.spectral.spin import spin_loss, spin_whiten
from neuralfactor.spectral.trainer import train_operator

__all__ = [
    "SPECTRAL_PRESETS",
    "FunctionPair",
    "KernelOperator",
    "MatrixOperator",
    "ParallelMLP",
    "SchrodingerOperator",
    "SpectralConfig",
    "SpectralModel",
    "TabularFunctions",
    "evaluate_run",
    "evd_moments",
    "gram",
    "nested_weights",
    "nestedlora_loss",
    "nestedlora_loss_evd",
    "prefix_losses",
    "run_spectral",
    "spectral_preset",
    "spin_loss",
    "spin_whiten",
    "train_operator",
]
