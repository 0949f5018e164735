"""neuralfactor.bench: the one benchmark harness (see DESIGN.md).

:func:`measure_many` (from :mod:`neuralfactor.core.timing`, where the study's baselines use it
too) times factorizers interleaved and scores them against the optimum, with one
:class:`TimingConfig`; :mod:`.peers` holds the peer settings (documented defaults and our
budget); :mod:`.runner` (with :mod:`.baselines`) and the frames suite (:mod:`.frames_config`,
:mod:`.frames`, :mod:`.frames_render`) are the suites built on it; :mod:`.kernels`,
:mod:`.matvec_study`, :mod:`.toolkit_demo` and :mod:`.low_rank_solvers` hold the studies that
``benchmarks/`` scripts run.
"""

from neuralfactor.bench.peers import PEER_SETTINGS, expand_peers
from neuralfactor.core.timing import (
    Spread,
    TimingConfig,
    measure_many,
    speed_ratio,
    time_interleaved,
)

__all__ = [
    "PEER_SETTINGS",
    "Spread",
    "TimingConfig",
    "expand_peers",
    "measure_many",
    "speed_ratio",
    "time_interleaved",
]
