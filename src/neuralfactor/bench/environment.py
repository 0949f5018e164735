"""Run conditions recorded beside every benchmark row: versions, CPU, device."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

__all__ = ["environment"]


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions (neuralfactor, torch, NumPy, SciPy, scikit-learn, Python), CPU, device name,
    CUDA version and device, and the float32 matmul precision in force."""
    import numpy
    import scipy

    from neuralfactor import __version__

    device = torch.device(device)
    env = {
        "version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        "scipy_version": scipy.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
        ),
        "cuda_version": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "matmul_precision": torch.get_float32_matmul_precision(),
    }
    try:
        import sklearn

        env["sklearn_version"] = sklearn.__version__
    except ImportError:  # pragma: no cover - sklearn is a core dependency
        env["sklearn_version"] = None
    return env
