"""``svd-compressed``: one huge matrix through ``dask.array.linalg.svd_compressed``.

Registered only when Dask is installed (the ``[distributed]`` extra); Dask itself is imported
on first use. For in-memory tensors :meth:`SVDCompressed.factorize` wraps each matrix of the
batch in a row-chunked Dask array; for a matrix that does not fit in memory use
:meth:`SVDCompressed.factorize_dask` on a Dask array (e.g. ``da.from_zarr(...)``): only the
rank-r factors are ever materialized.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from neuralfactor.classical import power_of_two_scale, rescale
from neuralfactor.core.factorizer import (
    BaseFactorizer,
    Contract,
    FactorizationError,
    register_contract,
    register_factorizer,
)
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_positive_int, check_rank

__all__ = ["CompressedOptions", "SVDCompressed", "svd_compressed"]

_MAX_BLOCK_BYTES = 64 << 20


def _row_chunk(m: int, n: int, itemsize: int, q: int, row_chunk: int | None) -> int:
    if row_chunk is not None:
        return max(int(row_chunk), q)
    rows = max(1, _MAX_BLOCK_BYTES // max(1, n * itemsize))
    return m if rows >= m else max(rows, q)


@dataclass(frozen=True)
class CompressedOptions:
    """Options of :func:`svd_compressed` and :class:`SVDCompressed`.

    n_power_iter : power iterations (2 is accurate for moderately decaying spectra).
    oversample : extra sample columns (clipped so rank + oversample <= min(m, n)).
    seed : seed of the Gaussian test matrix (reproducible).
    row_chunk : rows per block when the matrix is in memory (default: whole matrix up to
        64 MiB).
    scheduler : the Dask scheduler for the computation (``"threads"``, ``"synchronous"``,
        ...); under a ``dask.distributed`` client pass ``None`` to use it.
    """

    n_power_iter: int = 2
    oversample: int = 10
    seed: int = 0
    row_chunk: int | None = None
    scheduler: str | None = "threads"

    def __post_init__(self) -> None:
        for name in ("n_power_iter", "oversample"):
            check_positive_int(getattr(self, name), name=name, caller="svd-compressed", minimum=0)


def svd_compressed(A: Any, rank: int, **options: Any) -> LowRank:
    """Truncated SVD of one (possibly out-of-core) matrix by Dask's randomized algorithm.

    Parameters
    ----------
    A : (m, n) Dask array, NumPy array or torch Tensor. A Dask array is used as chunked; it
        is rechunked to one column block (tall-skinny QR needs it).
    rank : int, 1 <= rank <= min(m, n)
    **options : the fields of :class:`CompressedOptions` (``n_power_iter=2``,
        ``oversample=10``, ``seed=0``, ``row_chunk=None``, ``scheduler="threads"``).

    Returns
    -------
    LowRank with U (m, r), V (r, n) (the right singular vectors as rows) and S (r,), as
    float64/float32 CPU tensors matching A's dtype.

    Notes
    -----
    Halko, Martinsson & Tropp (2011) with Dask's TSQR: cost O(mn(rank + oversample)
    (2 n_power_iter + 2)) in passes over A, each pass streaming A's blocks; memory is
    O((m + n)(rank + oversample)) plus the blocks in flight. For matrices that fit in memory
    the torch ``rsvd`` is much faster (no graph overhead).
    """
    opts = CompressedOptions(**options)
    from neuralfactor.distributed import require_dask

    da = require_dask()
    if isinstance(A, Tensor):
        A = A.detach().cpu().numpy()
    if A.ndim != 2:
        raise ValueError(f"svd_compressed needs one (m, n) matrix. Got shape {tuple(A.shape)}.")
    m, n = (int(s) for s in A.shape)
    rank = check_rank(rank, (m, n), caller="svd-compressed")
    over = max(0, min(int(opts.oversample), min(m, n) - rank))
    q = rank + over
    if not isinstance(A, da.Array):
        A = da.from_array(A, chunks=(_row_chunk(m, n, A.dtype.itemsize, q, opts.row_chunk), n))
    elif len(A.chunks[1]) != 1:
        A = A.rechunk({1: -1})
    u, s, v = da.linalg.svd_compressed(
        A, rank, n_power_iter=opts.n_power_iter, n_oversamples=over, seed=opts.seed,
        coerce_signs=True,
    )  # fmt: skip
    try:
        u, s, v = da.compute(u, s, v, scheduler=opts.scheduler)
    except np.linalg.LinAlgError as exc:
        raise FactorizationError(
            f"svd-compressed: LAPACK failed on a block ({exc}); the matrix may hold entries "
            "whose squares overflow (scale it, e.g. by a power of two) or non-finite values."
        ) from exc
    dtype = torch.float32 if np.dtype(A.dtype) == np.float32 else torch.float64
    t = [torch.from_numpy(np.ascontiguousarray(x)).to(dtype) for x in (u, v, s)]
    return LowRank(t[0], t[1], t[2])


class SVDCompressed(BaseFactorizer):
    """``svd-compressed``: :func:`svd_compressed` as a registered factorizer.

    A batch is factorized matrix by matrix with the same seed (batched == looped). Results
    come back on the input's device and dtype. ``**options``: :class:`CompressedOptions`.
    """

    name = "svd-compressed"

    def __init__(self, rank: int, **options: Any) -> None:
        super().__init__(rank)
        self.options = CompressedOptions(**options)

    def get_params(self) -> dict[str, Any]:
        """The rank and the options but the scheduler (where it runs, not what it computes)."""
        params = {k: v for k, v in asdict(self.options).items() if k != "scheduler"}
        return {"rank": self.rank, **params}

    def _kw(self) -> dict[str, Any]:
        return asdict(self.options)

    def _factorize(self, X: Tensor) -> LowRank:
        # exact power-of-two scaling: huge entries would overflow the Gram/QR blocks
        Xs, inv = power_of_two_scale(X.double())
        flat = Xs.reshape(-1, *X.shape[-2:])
        parts = [svd_compressed(x, self.rank, **self._kw()) for x in flat]
        U = torch.stack([p.U for p in parts]).reshape(*X.shape[:-1], self.rank)
        V = torch.stack([p.V for p in parts]).reshape(*X.shape[:-2], self.rank, X.shape[-1])
        S = torch.stack([p.S for p in parts]).reshape(*X.shape[:-2], self.rank)
        lr = rescale(LowRank(U, V, S), inv)
        return LowRank(*(t.to(device=X.device, dtype=X.dtype) for t in (lr.U, lr.V, lr.S)))

    def factorize_dask(self, A: Any) -> LowRank:
        """Factorize one (m, n) Dask array without loading it (CPU tensors, A's dtype)."""
        return svd_compressed(A, self.rank, **self._kw())


#: Valid inputs and accuracy (see :class:`~neuralfactor.core.factorizer.Contract`).
SVD_COMPRESSED_CONTRACT = Contract(
    accuracy=(
        "at the defaults (oversample 10, 2 power iterations): scaled loss <= 1.1 x the optimum; "
        "exact when rank + oversample >= min(m, n) (Halko, Martinsson & Tropp 2011)"
    ),
    loss_factor=1.1,
)

if importlib.util.find_spec("dask") is not None:
    register_factorizer("svd-compressed", SVDCompressed)
    register_contract("svd-compressed", SVD_COMPRESSED_CONTRACT)
