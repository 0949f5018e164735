"""neuralfactor.distributed: beyond one machine, on existing engines (see DESIGN.md).

- :func:`factorize_store` maps any registered factorizer over the frames of a
  :class:`~neuralfactor.data.MatrixStore` chunk by chunk with ``dask.array`` (local threads or
  processes, or a ``dask.distributed`` cluster by address) into a resumable Zarr
  :class:`FactorStore`.
- ``svd-compressed`` (:mod:`neuralfactor.distributed.factorizers`): one huge matrix through
  ``dask.array.linalg.svd_compressed``, registered as a factorizer.
- :mod:`neuralfactor.distributed.training`: ``neuralfactor train --distributed`` under
  ``torchrun`` (DistributedDataParallel, a ``DistributedSampler`` over the store).

Dask is imported lazily, so the base package works without it; a call that needs it raises an
``ImportError`` naming the ``[distributed]`` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FACTOR_FORMAT",
    "FactorStore",
    "FactorizeResult",
    "factorize_store",
    "require_dask",
]


def require_dask() -> Any:
    """Import ``dask.array`` or raise an ``ImportError`` that names the extra to install."""
    try:
        import dask.array as da
    except ModuleNotFoundError as exc:
        raise ImportError(
            "neuralfactor.distributed needs Dask: pip install 'neuralfactor[distributed]' "
            f"(missing module {exc.name!r})."
        ) from None
    return da


def __getattr__(name: str) -> Any:
    if name in ("FACTOR_FORMAT", "FactorStore", "FactorizeResult", "factorize_store"):
        from neuralfactor.distributed import factorize

        return getattr(factorize, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
