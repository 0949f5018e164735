"""Learned hierarchical (FMM-structured) LU factors, structured solves and preconditioning.

* :mod:`~neuralfactor.lu.gfmm`: the GFMM-block (1-D binary tree, 2-D quad-tree), exactly
  block-lower / block-upper triangular variants, transposed graph, dense extraction.
* :mod:`~neuralfactor.lu.model`: :class:`LUNetwork` ``L (U x)``.
* :mod:`~neuralfactor.lu.train`: :func:`train_lu` (Levenberg-Marquardt / L-BFGS / Adam, transpose
  loss, block-wise, presets).
* :mod:`~neuralfactor.lu.solve`: :class:`LUSolver` (structured substitution), refinement,
  conditioning diagnostic.
* :mod:`~neuralfactor.lu.precond`: Krylov iteration counts vs none / Jacobi / ILU(0) / AMG.
* :mod:`~neuralfactor.lu.evaluate`: metrics against LAPACK.
* :mod:`~neuralfactor.lu.run`: :func:`train_run` / :func:`evaluate_run`, the run directories of
  ``neuralfactor lu`` (configuration :class:`LURunConfig`).
* :mod:`~neuralfactor.lu.operators`: the test operators (1-D/2-D Laplacian,
  convection-diffusion, biharmonic, RBF kernel).
"""

from neuralfactor.lu.evaluate import evaluate_lapack, evaluate_learned, solve_errors
from neuralfactor.lu.gfmm import GFMMBlock, GFMMStructure, check_leaf_layout
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import OPERATORS, make_operator
from neuralfactor.lu.precond import PRECONDITIONERS, ilu0, iteration_counts, make_preconditioner
from neuralfactor.lu.run import LURunConfig, LURunSummary, evaluate_run, train_run
from neuralfactor.lu.solve import (
    IllConditionedFactorsWarning,
    LUSolver,
    SingularBlockError,
    factor_conditioning,
)
from neuralfactor.lu.train import (
    LU_PRESETS,
    LUPreset,
    LUTrainConfig,
    LUTrainResult,
    check_nonsingular,
    lu_preset,
    train_lu,
)

__all__ = [
    "LU_PRESETS",
    "OPERATORS",
    "PRECONDITIONERS",
    "GFMMBlock",
    "GFMMStructure",
    "IllConditionedFactorsWarning",
    "LUNetwork",
    "LUPreset",
    "LURunConfig",
    "LURunSummary",
    "LUSolver",
    "LUTrainConfig",
    "LUTrainResult",
    "SingularBlockError",
    "check_leaf_layout",
    "check_nonsingular",
    "evaluate_lapack",
    "evaluate_learned",
    "evaluate_run",
    "factor_conditioning",
    "ilu0",
    "iteration_counts",
    "lu_preset",
    "make_operator",
    "make_preconditioner",
    "solve_errors",
    "train_lu",
    "train_run",
]
