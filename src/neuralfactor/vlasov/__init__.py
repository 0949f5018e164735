"""neuralfactor.vlasov: the 1D1V Vlasov-Poisson simulator (no neural code; files only through
:func:`simulate_to_store`, which streams a run to a MatrixStore).

>>> from neuralfactor.vlasov import SimulationConfig, simulate
>>> res = simulate(SimulationConfig(ic="landau-weak", nx=32, nv=64, t_end=20.0, dt=0.05))
>>> res.diagnostics["e_norm"].shape   # (B, T)
"""

from neuralfactor.vlasov.diagnostics import (
    DIAGNOSTIC_NAMES,
    RateFit,
    dispersion_relation,
    dispersion_root,
    field_energy,
    fit_rate,
    numerical_rank,
    phase_space_diagnostics,
)
from neuralfactor.vlasov.initial import (
    InitialCondition,
    available_initial_conditions,
    get_initial_condition,
    maxwellian,
)
from neuralfactor.vlasov.lowrank import DLRVlasovSolver, LowRankVlasovSolver
from neuralfactor.vlasov.run import (
    SimulationInterrupted,
    StoredSimulation,
    make_truncation,
    simulate_to_store,
)
from neuralfactor.vlasov.solver import (
    FACTORED_SCHEMES,
    PRESETS,
    SCHEMES,
    Frame,
    SimulationConfig,
    SimulationDivergedError,
    SimulationResult,
    SolverState,
    VlasovSolver,
    VlasovWarning,
    make_solver,
    simulate,
)
from neuralfactor.vlasov.truncation import Truncation, TruncationError

__all__ = [
    "DIAGNOSTIC_NAMES",
    "FACTORED_SCHEMES",
    "DLRVlasovSolver",
    "LowRankVlasovSolver",
    "Truncation",
    "TruncationError",
    "make_solver",
    "PRESETS",
    "SCHEMES",
    "Frame",
    "InitialCondition",
    "RateFit",
    "SimulationConfig",
    "SimulationDivergedError",
    "SimulationInterrupted",
    "SimulationResult",
    "SolverState",
    "StoredSimulation",
    "VlasovSolver",
    "VlasovWarning",
    "available_initial_conditions",
    "dispersion_relation",
    "dispersion_root",
    "field_energy",
    "fit_rate",
    "get_initial_condition",
    "make_truncation",
    "maxwellian",
    "numerical_rank",
    "phase_space_diagnostics",
    "simulate",
    "simulate_to_store",
]
