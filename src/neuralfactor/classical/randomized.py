"""Randomized SVD: the Halko range finder, a GEMM-only batched variant, and two library peers.

Registered factorizers:

- ``rsvd``: Halko, Martinsson & Tropp (2011), Alg. 4.4 (power iterations with Householder
  re-orthonormalization) + Alg. 5.1 (SVD of the small projected matrix).
- ``rsvd-gemm``: the same range finder built only from batched GEMMs and k x k float64 work
  (Gram-matrix orthonormalization and a Rayleigh-Ritz eigh), for GPUs.
- ``torch-lowrank``: ``torch.svd_lowrank`` (peer).
- ``sklearn-rsvd``: ``sklearn.utils.extmath.randomized_svd`` per matrix (peer).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from neuralfactor.classical._kernels import (
    gram_orthonormalize,
    power_of_two_scale,
    rayleigh_ritz,
    rescale,
)
from neuralfactor.core.factorizer import BaseFactorizer, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    as_generator,
    check_matrix,
    check_positive_int,
    check_rank,
)

__all__ = ["RandomizedSVD", "randomized_svd", "randomized_svd_gemm"]


def _sketch_width(rank: int, oversample: int, m: int, n: int) -> int:
    return min(rank + oversample, m, n)


def _gaussian(X: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    gen = as_generator(generator, X.device)
    return torch.randn(X.shape[-1], k, generator=gen, device=X.device, dtype=X.dtype)


def _check(X, rank, oversample, n_iter, caller):
    X = check_matrix(X, caller=caller)
    rank = check_rank(rank, X.shape, caller=caller)
    check_positive_int(oversample, name="oversample", caller=caller, minimum=0)
    check_positive_int(n_iter, name="n_iter", caller=caller, minimum=0)
    return X, rank


def randomized_svd(
    X: Tensor,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | int | None = None,
) -> LowRank:
    """Truncated SVD by a randomized range finder (Halko, Martinsson & Tropp 2011, Alg. 4.4).

    Parameters
    ----------
    X : Tensor of shape (*, m, n)
    rank : int, 1 <= rank <= min(m, n)
    oversample : extra sketch columns (k = rank + oversample, capped at min(m, n)); 5-10 is usual.
    n_iter : power iterations, each re-orthonormalized by Householder QR; raise it when the
        spectrum decays slowly.
    generator : torch.Generator or seed for the Gaussian test matrix (shared across the batch).

    Returns
    -------
    LowRank with orthonormal ``U``, ``V`` and singular values ``S``.

    Notes
    -----
    Cost O(m n k (2 n_iter + 2)) plus a k x n SVD. For rank close to min(m, n) the exact SVD
    is faster. On CUDA, ``torch.linalg.qr`` of many tall matrices loops over the batch: use
    ``randomized_svd_gemm`` there.
    """
    X, rank = _check(X, rank, oversample, n_iter, "rsvd")
    m, n = X.shape[-2:]
    k = _sketch_width(rank, oversample, m, n)
    Q = torch.linalg.qr(X @ _gaussian(X, k, generator)).Q
    for _ in range(n_iter):
        Z = torch.linalg.qr(X.mT @ Q).Q
        Q = torch.linalg.qr(X @ Z).Q
    Ub, S, Vh = torch.linalg.svd(Q.mT @ X, full_matrices=False)
    return LowRank(
        (Q @ Ub[..., :rank]).contiguous(),
        Vh[..., :rank, :].contiguous(),
        S[..., :rank].contiguous(),
    )


def randomized_svd_gemm(
    X: Tensor,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | int | None = None,
) -> LowRank:
    """Randomized SVD from batched GEMMs and k x k float64 eigh only (GPU friendly).

    Same range finder as :func:`randomized_svd`, but each orthonormalization is two passes of
    Gram-matrix eigh (:func:`~neuralfactor.classical._kernels.gram_orthonormalize`) and the
    final step is a Rayleigh-Ritz eigh of ``B B^T`` with ``B = Q^T X``. Numerically
    rank-deficient input (float32 included) gives zero columns, never NaN.

    Returns
    -------
    LowRank with orthonormal ``U`` and ``V = U^T X`` (no ``S``; the rows of ``V`` have norms
    equal to the Ritz values).

    Notes
    -----
    Cost O(m n k (2 n_iter + 2)) in GEMMs plus O((m + n) k^2) and a few k x k eigh. On CUDA,
    batched eigh is fast for k <= 32 (``syevjBatched``) and falls off beyond; keep
    ``rank + oversample <= 32`` there or expect that cost.
    """
    X, rank = _check(X, rank, oversample, n_iter, "rsvd-gemm")
    m, n = X.shape[-2:]
    k = _sketch_width(rank, oversample, m, n)
    X, inv = power_of_two_scale(X)  # huge/subnormal entries would overflow the Gram kernels
    Q = gram_orthonormalize(X @ _gaussian(X, k, generator))
    for _ in range(n_iter):
        Z = gram_orthonormalize(X.mT @ Q)
        Q = gram_orthonormalize(X @ Z)
    return rescale(rayleigh_ritz(X, Q, rank)[0], inv)


class RandomizedSVD(BaseFactorizer):
    """``rsvd`` / ``rsvd-gemm``: randomized SVD with an explicit seed (reproducible)."""

    _hidden_params = ("gemm",)  # the registered name says it

    def __init__(
        self, rank: int, *, oversample: int = 10, n_iter: int = 2, seed: int = 0, gemm: bool = False
    ) -> None:
        self.name = "rsvd-gemm" if gemm else "rsvd"
        super().__init__(rank)
        self.oversample = check_positive_int(
            oversample, name="oversample", caller=self.name, minimum=0
        )
        self.n_iter = check_positive_int(n_iter, name="n_iter", caller=self.name, minimum=0)
        self.seed, self.gemm = seed, gemm

    def _factorize(self, X: Tensor) -> LowRank:
        fn = randomized_svd_gemm if self.gemm else randomized_svd
        gen = as_generator(self.seed, X.device)
        return fn(X, self.rank, oversample=self.oversample, n_iter=self.n_iter, generator=gen)


class TorchLowRank(BaseFactorizer):
    """``torch-lowrank``: ``torch.svd_lowrank`` (peer; q = rank + oversample, niter).

    ``torch.svd_lowrank`` draws its test matrix from the global RNG; it is called inside
    ``torch.random.fork_rng`` with ``seed`` so results are reproducible and the caller's global
    RNG state is left untouched.
    """

    name = "torch-lowrank"

    def __init__(self, rank: int, *, oversample: int = 10, n_iter: int = 2, seed: int = 0) -> None:
        super().__init__(rank)
        self.oversample, self.n_iter, self.seed = oversample, n_iter, seed

    def _factorize(self, X: Tensor) -> LowRank:
        q = _sketch_width(self.rank, self.oversample, *X.shape[-2:])
        devices = [X.device] if X.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            U, S, V = torch.svd_lowrank(X, q=q, niter=self.n_iter)
        r = self.rank
        return LowRank(U[..., :r].contiguous(), V[..., :r].mT.contiguous(), S[..., :r].contiguous())


class SklearnRandomizedSVD(BaseFactorizer):
    """``sklearn-rsvd``: ``sklearn.utils.extmath.randomized_svd`` per matrix (peer)."""

    name = "sklearn-rsvd"

    def __init__(
        self, rank: int, *, oversample: int = 10, n_iter: int | str = "auto", seed: int = 0
    ) -> None:
        super().__init__(rank)
        self.oversample, self.n_iter, self.seed = oversample, n_iter, seed

    def _factorize(self, X: Tensor) -> LowRank:
        from sklearn.utils.extmath import randomized_svd as sk_rsvd

        from neuralfactor.classical.svd import _per_matrix

        m, n = X.shape[-2:]
        over = max(0, _sketch_width(self.rank, self.oversample, m, n) - self.rank)

        def one(a: np.ndarray):
            return sk_rsvd(
                a, self.rank, n_oversamples=over, n_iter=self.n_iter, random_state=self.seed
            )

        return _per_matrix(X, one)


register_factorizer("rsvd", lambda rank, **kw: RandomizedSVD(rank, gemm=False, **kw))
register_factorizer("rsvd-gemm", lambda rank, **kw: RandomizedSVD(rank, gemm=True, **kw))
register_factorizer("torch-lowrank", TorchLowRank)
register_factorizer("sklearn-rsvd", SklearnRandomizedSVD)
