"""Flop counts of a suite's rows and the flop floor they give at a measured GEMM rate.

One place for the benchmarks that put a compute floor beside the memory floor (the frames
suite, the random-access benchmark): a row's operation count per matrix
(:func:`method_flops`: :func:`neuralfactor.classical.flops` for the classical methods,
:func:`neuralfactor.amortized.sketch_flops` for the sketch encoder, :func:`convmf_flops` for
ConvMF), divided by the rate of the frame-sized product measured in the same run
(:func:`neuralfactor.classical.gemm_rate`), is the time the row would take if every operation
ran at that rate (:func:`flop_fields`). Counting conventions: Golub & Van Loan (2013),
*Matrix Computations*, 4th ed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuralfactor.amortized.sketch import refine_flops

__all__ = ["NO_FORMULA", "convmf_flops", "flop_fields", "method_flops", "refine_flops"]

#: Why a row has no flop count (the pages print "-" and say this).
NO_FORMULA = (
    "no operation count is stated for methods whose work depends on the data or on a "
    "library's internal choices (ARPACK, LOBPCG and PROPACK iteration counts, scikit-learn's "
    "and torch's randomized SVDs, Dask's compressed SVD, NMF's multiplicative updates)"
)


def convmf_flops(
    m: int,
    n: int,
    rank: int,
    *,
    stem: Sequence[int] = (500, 200),
    branch: Sequence[int] = (300,),
    refine: bool = True,
) -> float:
    """Flops of one ConvMF forward pass (multiply-adds x 2), plus the ``+refine`` refit.

    Convolutions ``2 * 25 (m+2)(n+2)`` (kernel 5, padding 3, one channel) and ``2 * 9 mn``;
    the dense stem from ``mn`` inputs, two branches, heads to ``mr`` and ``rn`` values; the
    refit as in :func:`refine_flops`. The layers are those of
    :class:`neuralfactor.amortized.ConvMF` (the original study's network).
    """
    dense = [m * n, *stem]
    count = 2 * 25 * (m + 2) * (n + 2) + 2 * 9 * m * n
    count += sum(2 * a * b for a, b in zip(dense[:-1], dense[1:], strict=False))
    br = [stem[-1], *branch]
    count += 2 * sum(2 * a * b for a, b in zip(br[:-1], br[1:], strict=False))
    count += 2 * branch[-1] * (m * rank + rank * n)
    if refine:
        count += refine_flops(m, n, rank)
    return float(count)


def _classical_params(method: str, params: dict[str, Any], device: str) -> dict[str, Any]:
    """The parameters of ``params`` that change a classical count; ``kernel='auto'`` resolved
    as the factorizers resolve it (LAPACK on the CPU, GEMM elsewhere; rsvd-gemm: GEMM)."""
    if method in ("svd", "scipy-gesdd"):
        return {}  # the exact SVD's count has no parameters
    kw = {k: params[k] for k in ("n_iter", "oversample", "extra", "tol") if k in params}
    kernel = params.get("kernel", "auto")
    if kernel in ("lapack", "gemm"):
        kw["kernel"] = kernel
    elif method != "rsvd-gemm":
        kw["kernel"] = "lapack" if str(device).startswith("cpu") else "gemm"
    return kw


def method_flops(
    method: str,
    m: int,
    n: int,
    rank: int,
    params: dict[str, Any],
    *,
    trained_rank: int | None = None,
    device: str = "cpu",
) -> float | None:
    """Flops per frame of a row; None where no formula is stated (:data:`NO_FORMULA`).

    ``params``: the row's factorizer parameters (for learned rows their ``model_kwargs``);
    a measured mean iteration count may be passed as ``n_iter`` (warm-subspace's adaptive
    iterations). ``trained_rank``: the rank a nested ConvMF was trained at (its network
    computes every column; the refit uses ``rank``). ``device`` resolves ``kernel='auto'``.
    """
    from neuralfactor.amortized.sketch import sketch_flops
    from neuralfactor.classical import FLOP_METHODS, flops

    refine = method.endswith("+refine")
    if method.startswith("sketch"):
        kw = {k: params[k] for k in ("oversample", "head", "hidden") if k in params}
        return sketch_flops(m, n, rank, refine=refine, **kw)
    if method in ("convmf", "convmf+refine", "convmf-nested", "convmf-nested+refine"):
        kw = {k: params[k] for k in ("stem", "branch") if k in params}
        count = convmf_flops(m, n, trained_rank or rank, refine=False, **kw)
        return count + (refine_flops(m, n, rank) if refine else 0.0)
    if method in FLOP_METHODS:
        return flops(method, m, n, rank, **_classical_params(method, params, device))
    return None


def flop_fields(flop_count: float | None, rate: float, seconds: float) -> dict[str, Any]:
    """The record fields of a row: ``flops``, ``gemm_rate_flops``, ``floor_flop_s`` (flops /
    rate) and ``x_flop_floor`` (``seconds`` / that floor); None where the count is None."""
    known = flop_count is not None and rate > 0
    return {
        "flops": flop_count,
        "gemm_rate_flops": rate,
        "floor_flop_s": flop_count / rate if known else None,
        "x_flop_floor": seconds * rate / flop_count if known and flop_count > 0 else None,
    }
