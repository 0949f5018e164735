"""neuralfactor.data: datasets of matrices on disk (Zarr MatrixStore) and their splits."""

from neuralfactor.data.splits import Split, extrapolation_split, interpolation_split
from neuralfactor.data.store import (
    MatrixRun,
    MatrixStore,
    MatrixStoreWriter,
    StoreError,
    partial_path,
)

__all__ = [
    "MatrixRun",
    "MatrixStore",
    "MatrixStoreWriter",
    "Split",
    "StoreError",
    "extrapolation_split",
    "interpolation_split",
    "partial_path",
]
