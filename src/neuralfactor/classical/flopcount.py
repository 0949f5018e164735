"""Floating-point operation counts per matrix, and the GEMM rate that turns them into a floor.

A method's *flop floor* at a shape is ``flops(method, m, n, rank, **params) / gemm_rate(...)``:
the time it would take if every operation ran at the speed of the frame-sized product
``X P`` (m x n times n x l), the fastest dense kernel it calls. ``x flop floor`` (measured time
over that floor) then says how much of a method's time is overhead: small factorizations, which
run below the GEMM rate, Python and dispatch, memory traffic.

Conventions (Golub & Van Loan, 2013, *Matrix Computations*, 4th ed., §1.1, §5.2, §8.6):

- a product of an (a x b) and a (b x c) matrix: ``2abc``;
- Householder QR of an a x k matrix (a >= k) with its thin Q formed: ``4ak^2 - 4k^3/3``
  (factorization ``2k^2(a - k/3)`` plus backward accumulation of Q, the same again);
- thin SVD of an a x k matrix (a >= k) with both factors, R-SVD: ``6ak^2 + 20k^3``;
- symmetric eigendecomposition of a k x k matrix with eigenvectors: ``9k^3``;
- the exact thin SVD of the m x n frame (``svd``, ``scipy-gesdd``): ``6pq^2 + 20q^3`` with
  ``p = max(m, n)``, ``q = min(m, n)``.

Random test matrices, norms, O(mn) checks and O(k^2) work are not counted, except the
``2mn`` of the ``||X||_F^2`` that warm-subspace's adaptive check reads. Counts are leading
terms as written, not a trace of LAPACK's blocked code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from neuralfactor.core.timing import time_call

__all__ = ["FLOP_METHODS", "flop_floor", "flops", "gemm_rate"]


def _qr(a: int, k: int) -> float:
    a, k = max(a, k), min(a, k)
    return 4 * a * k * k - 4 * k**3 / 3


def _svd(a: int, k: int) -> float:
    a, k = max(a, k), min(a, k)
    return 6 * a * k * k + 20 * k**3


def _eigh(k: int) -> float:
    return 9 * k**3


def _gram_orth(a: int, k: int) -> float:
    # two passes of: Gram (2ak^2), float64 eigh (9k^3), Y W (2ak^2)
    return 2 * (4 * a * k * k + _eigh(k))


def _exact(m: int, n: int, rank: int) -> float:
    return _svd(max(m, n), min(m, n))


def _rsvd(
    m: int,
    n: int,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: float = 2,
    kernel: str = "lapack",
    **_: Any,
) -> float:
    k = min(rank + oversample, m, n)
    products = 2 * m * n * k * (2 * n_iter + 2)
    if kernel == "lapack":
        orth = _qr(m, k) + n_iter * (_qr(n, k) + _qr(m, k))
        final = _svd(n, k) + 2 * m * k * rank  # SVD of Z = X^T Q, U = Q W_r
    else:
        orth = _gram_orth(m, k) + n_iter * (_gram_orth(n, k) + _gram_orth(m, k))
        final = 2 * n * k * k + _eigh(k) + 2 * m * k * rank + 2 * n * k * rank
    return products + orth + final


def _rsvd_gemm(m: int, n: int, rank: int, *, kernel: str = "gemm", **params: Any) -> float:
    return _rsvd(m, n, rank, kernel=kernel, **params)


def _iteration(m: int, n: int, rank: int, l: int, kernel: str) -> float:  # noqa: E741
    products = 2 * 2 * m * n * l
    if kernel == "lapack":  # qr(X P), SVD of X^T Q, U = Q W_r
        return products + _qr(m, l) + _svd(n, l) + 2 * m * l * rank
    # Gram-orth(X P), B B^T + eigh, U = Q W_r, V = W_r^T B, Gram-orth(B^T)
    small = _gram_orth(m, l) + 2 * n * l * l + _eigh(l) + _gram_orth(n, l)
    return products + small + 2 * m * l * rank + 2 * rank * l * n


def _warm(
    m: int,
    n: int,
    rank: int,
    *,
    extra: int = 5,
    n_iter: float = 1,
    kernel: str = "lapack",
    tol: float | None = 1e-2,
    **_: Any,
) -> float:
    l = min(rank + extra, m, n)  # noqa: E741
    check = 2 * m * n if tol is not None else 0
    return n_iter * _iteration(m, n, rank, l, kernel) + check


def _pod(
    m: int, n: int, rank: int, *, extra: int = 5, n_iter: float = 1, kernel: str = "lapack", **_
) -> float:
    return _warm(m, n, rank, extra=extra, n_iter=n_iter, kernel=kernel, tol=None)


_FORMULAS: dict[str, Callable[..., float]] = {
    "svd": _exact,
    "scipy-gesdd": _exact,
    "rsvd": _rsvd,
    "rsvd-gemm": _rsvd_gemm,
    "warm-subspace": _warm,
    "pod-basis": _pod,
}
#: Methods :func:`flops` knows.
FLOP_METHODS: tuple[str, ...] = tuple(sorted(_FORMULAS))


def flops(method: str, m: int, n: int, rank: int, **params: Any) -> float:
    """Floating-point operations to factorize one m x n matrix with ``method`` at ``rank``.

    Parameters
    ----------
    method : one of :data:`FLOP_METHODS`.
    m, n, rank : the frame's shape and the rank.
    **params : the factorizer's parameters that change the count, with its defaults:
        ``rsvd``/``rsvd-gemm``: ``oversample=10``, ``n_iter=2``, ``kernel`` (``"lapack"`` for
        ``rsvd``, ``"gemm"`` for ``rsvd-gemm``); ``warm-subspace``: ``extra=5``, ``n_iter=1``
        (iterations per frame; a measured mean such as 1.03 may be passed), ``kernel="lapack"``,
        ``tol=1e-2`` (adds the 2mn of the check; ``None`` drops it); ``pod-basis``: ``extra``,
        ``n_iter``, ``kernel``. Others are ignored. In rsvd's ``tol`` mode pass the iterations
        used as ``n_iter``; the residual checks are then not counted.

    Returns
    -------
    float, per the module's counting conventions (Golub & Van Loan 2013).

    Examples
    --------
    >>> flops("svd", 4, 6, 2)  # 6*6*4^2 + 20*4^3
    1856.0
    """
    if method not in _FORMULAS:
        raise ValueError(
            f"flops() knows the methods {list(FLOP_METHODS)}; got {method!r}. Add its formula to "
            f"neuralfactor.classical.flopcount to give it a flop floor."
        )
    for name, value in (("m", m), ("n", n), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"flops() needs {name} as an int >= 1; got {value!r}.")
    if rank > min(m, n):
        raise ValueError(f"flops() needs rank <= min(m, n) = {min(m, n)}; got rank={rank}.")
    return float(_FORMULAS[method](m, n, rank, **params))


def gemm_rate(
    m: int,
    n: int,
    k: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    min_seconds: float = 0.2,
) -> float:
    """Measured rate (flop/s) of the product of an m x n and an n x k matrix.

    Median over repeats (at least ``min_seconds`` in all) via :func:`neuralfactor.core.timing.
    time_call`. The thread count in force is used: pin it first (``pinned_threads(1)`` for the
    single-core rate). Measure it in the same run as the methods it is compared with.
    """
    g = torch.Generator(device=device).manual_seed(0)
    A = torch.randn(m, n, generator=g, device=device, dtype=dtype)
    B = torch.randn(n, k, generator=g, device=device, dtype=dtype)
    t = time_call(lambda: A @ B, device=device, warmup=3, repeats=20, min_seconds=min_seconds)
    return 2.0 * m * n * k / t.median


def flop_floor(method: str, m: int, n: int, rank: int, rate: float, **params: Any) -> float:
    """Seconds per matrix at ``rate`` flop/s: ``flops(method, m, n, rank, **params) / rate``."""
    if not rate > 0:
        raise ValueError(f"flop_floor() needs a measured rate > 0 flop/s; got {rate!r}.")
    return flops(method, m, n, rank, **params) / rate
