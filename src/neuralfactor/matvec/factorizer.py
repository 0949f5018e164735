"""The ``matvec-ae`` factorizer: a choke-point network trained from products ``x -> A x``.

``make_factorizer("matvec-ae", rank=k).fit(A).factorize(A)`` trains on ``A`` in ``fit`` (only
products are used; ``A`` may be dense, ``scipy.sparse`` or any operator of
:mod:`neuralfactor.core.operators`) and returns the learned factors in ``factorize``.
``factorize(X)`` on a matrix that was not fitted trains a network on ``X`` (batched: one
network per matrix, trained together), so this is a per-matrix method: its cost is the
training, reported by :attr:`MatvecFactorizer.result_`.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from torch import Tensor

from neuralfactor.core.factorizer import BaseFactorizer
from neuralfactor.core.lowrank import LowRank, svd_flip
from neuralfactor.matvec.fit import MatvecFit, fit_matvec

__all__ = ["MatvecFactorizer"]


class MatvecFactorizer(BaseFactorizer):
    """Rank-``k`` factorization learned by a linear choke-point network from products.

    Parameters
    ----------
    rank : int
        Bottleneck width ``k`` (``1 <= k < min(m, n)``).
    **params
        Passed to :func:`neuralfactor.matvec.fit.fit_matvec` (``probes``, ``optimizer``,
        ``steps``, ``init``, ``seed``, ``on_collapse``, ...).

    Attributes
    ----------
    result_ : MatvecFit
        The last training's outcome (loss, rank check, product count, loop history).
    """

    name = "matvec-ae"

    def __init__(self, rank: int, **params: Any) -> None:
        super().__init__(rank)
        params.setdefault("progress", False)
        self.params = params
        self.result_: MatvecFit | None = None
        self._fitted_on: Any = None

    def get_params(self) -> dict[str, Any]:
        return {"rank": self.rank, **self.params}

    def fit(self, frames: Any = None) -> Self:
        """Train on ``frames`` (an operator or one ``(m, n)`` matrix); ``None`` is a no-op."""
        if frames is None:
            return self
        if isinstance(frames, (Tensor, np.ndarray)) and np.ndim(frames) != 2:
            raise ValueError(
                f"matvec-ae.fit expects one operator or one (m, n) matrix. Got shape "
                f"{tuple(np.shape(frames))}; factorize(X) trains on batches."
            )
        self.result_ = fit_matvec(frames, self.rank, **self.params)
        self._fitted_on = frames
        return self

    def _is_fitted_on(self, X: Any) -> bool:
        ref = self._fitted_on
        if ref is None or self.result_ is None:
            return False
        if X is ref:
            return True
        if isinstance(X, (Tensor, np.ndarray)) and isinstance(ref, (Tensor, np.ndarray)):
            a, b = torch.as_tensor(X), torch.as_tensor(ref)
            return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
        return False

    def factorize(self, X: Any) -> LowRank:
        """The learned factors of ``X`` (cached when ``X`` is what ``fit`` saw, else trained).

        ``X`` is a tensor ``(*, m, n)`` or, after ``fit(op)``, that same operator.
        """
        # BaseFactorizer.factorize applies the sign convention to tensors; these two paths
        # bypass it (cached result, operator input), so they apply it themselves.
        if self._is_fitted_on(X):
            return svd_flip(self.result_.lowrank)
        if not isinstance(X, (Tensor, np.ndarray)):
            res = fit_matvec(X, self.rank, **self.params)
            self.result_, self._fitted_on = res, X
            return svd_flip(res.lowrank)
        return super().factorize(X)

    def _factorize(self, X: Tensor) -> LowRank:
        res = fit_matvec(X, self.rank, **self.params)
        self.result_ = res
        return res.lowrank
