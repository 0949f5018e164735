"""neuralfactor.bench: the one benchmark harness (see DESIGN.md).

:func:`measure_many` (from :mod:`neuralfactor.core.timing`, where the study's baselines use it
too) times factorizers interleaved and scores them against the optimum; :mod:`.peers` holds
the peer settings (documented defaults and our budget); :mod:`.runner` and :mod:`.frames` are
the suites built on it.
"""

from neuralfactor.bench.peers import PEER_SETTINGS, expand_peers
from neuralfactor.core.timing import Spread, measure_many, speed_ratio, time_interleaved

__all__ = [
    "PEER_SETTINGS",
    "Spread",
    "expand_peers",
    "measure_many",
    "speed_ratio",
    "time_interleaved",
]
