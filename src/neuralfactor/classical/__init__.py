"""Classical factorizers (torch + SciPy + scikit-learn), batched, registered by name.

Every public submodule is imported here so that its factorizers are registered.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if not _info.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_info.name}")

from neuralfactor.classical._kernels import power_of_two_scale, rescale  # noqa: E402
from neuralfactor.classical.flopcount import FLOP_METHODS, flop_floor, flops, gemm_rate  # noqa: E402

__all__ = ["FLOP_METHODS", "flop_floor", "flops", "gemm_rate", "power_of_two_scale", "rescale"]
