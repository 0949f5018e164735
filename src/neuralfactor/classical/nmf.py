"""Nonnegative matrix factorization through scikit-learn, and the ``nmf`` factorizer.

Registers the factorizer ``nmf`` (nonnegative input only).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from neuralfactor.core.factorizer import (
    BaseFactorizer,
    Contract,
    FactorizationError,
    register_contract,
    register_factorizer,
)
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    check_matrix,
    check_option,
    check_positive_float,
    check_rank,
)

__all__ = ["NMFFactorizer", "nmf", "sparse_nmf"]


def _check_nonnegative(X: Tensor, caller: str) -> None:
    neg = X < 0
    if bool(neg.any()):
        count = int(neg.sum())
        flat = int(torch.argmin(X.reshape(-1)))
        where = tuple(int(i) for i in np.unravel_index(flat, tuple(X.shape)))
        raise ValueError(
            f"The 'X' parameter of {caller} must be nonnegative: found {count} negative "
            f"entr{'y' if count == 1 else 'ies'} (min {float(X.reshape(-1)[flat]):.4g} at index "
            f"{where}). NMF needs X >= 0; shift or clip the data, or use 'svd'."
        )


def nmf(
    X: Tensor,
    rank: int,
    *,
    alpha_W: float = 0.0,
    alpha_H: float | str = "same",
    l1_ratio: float = 0.0,
    init: str | None = "nndsvda",
    solver: str = "cd",
    max_iter: int = 1000,
    tol: float = 1e-6,
    seed: int = 0,
) -> LowRank:
    """Nonnegative matrix factorization ``X ~ W H`` with ``W, H >= 0`` (scikit-learn).

    Parameters
    ----------
    X : Tensor of shape (*, m, n), nonnegative
    rank : int in [1, min(m, n)]
    alpha_W, alpha_H, l1_ratio : regularization passed to :class:`sklearn.decomposition.NMF`
        (``l1_ratio = 1`` gives sparse factors; see :func:`sparse_nmf`).
    init, solver, max_iter, tol, seed : passed to scikit-learn.

    Returns
    -------
    LowRank with ``U = W`` (*, m, rank) and ``V = H`` (*, rank, n), both nonnegative, in X's
    dtype and device.

    Notes
    -----
    Objective ``1/2 ||X - W H||_F^2`` (+ penalties). NMF is never better than the truncated
    SVD in Frobenius error (Eckart-Young); it trades accuracy for nonnegative, often
    parts-based, factors (Lee & Seung, Nature 401, 1999). scikit-learn works on one matrix at a
    time, so batches are looped (cost per matrix ``O(m n rank)`` per iteration). The
    factorization is not unique (scaling/permutation); compare subspaces, not factors.
    """
    from sklearn.decomposition import NMF

    X = check_matrix(X, caller="nmf")
    rank = check_rank(rank, X.shape, caller="nmf")
    _check_nonnegative(X, "nmf")
    Xn = X.detach().cpu().double().numpy().reshape(-1, *X.shape[-2:])
    Ws, Hs = [], []

    def fit(Xi: np.ndarray, how: str | None) -> tuple[np.ndarray, np.ndarray]:
        model = NMF(
            n_components=rank,
            init=how,
            solver=solver,
            max_iter=max_iter,
            tol=tol,
            alpha_W=alpha_W,
            alpha_H=alpha_H,
            l1_ratio=l1_ratio,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Maximum number of iterations")
            warnings.filterwarnings(
                "ignore", message="invalid value encountered", category=RuntimeWarning
            )
            W = model.fit_transform(Xi)
        return W, model.components_

    for Xi in Xn:  # scikit-learn has no batched NMF
        # Without penalties NMF is scale-equivariant: fit max |x| in [0.5, 1) (a power of two,
        # exact), since scikit-learn's stopping and zero thresholds are absolute (1e-200 data
        # came back worse than the zero matrix).
        amax = float(Xi.max())
        unpenalized = alpha_W == 0 and alpha_H in (0, "same")
        exp = int(np.frexp(amax)[1]) if amax > 0 and unpenalized else 0
        Xi = Xi * 2.0 ** (-exp // 2) * 2.0 ** (-exp - (-exp // 2))
        W, H = fit(Xi, init)
        if not (np.isfinite(W).all() and np.isfinite(H).all()) and init != "random":
            # NNDSVD divides by the norms of singular-vector parts, which vanish on very
            # sparse input (e.g. one nonzero entry at rank 2): restart from a seeded random init.
            W, H = fit(Xi, "random")
        if not (np.isfinite(W).all() and np.isfinite(H).all()):
            raise FactorizationError(
                f"nmf produced non-finite factors on a {Xi.shape[0]}x{Xi.shape[1]} matrix at "
                f"rank {rank} (init {init!r} and 'random'); try a smaller rank."
            )
        Ws.append(W * 2.0 ** (exp // 2) * 2.0 ** (exp - exp // 2))
        Hs.append(H)
    W = torch.as_tensor(np.stack(Ws)).reshape(*X.shape[:-1], rank)
    H = torch.as_tensor(np.stack(Hs)).reshape(*X.shape[:-2], rank, X.shape[-1])
    return LowRank(W.to(X.dtype).to(X.device), H.to(X.dtype).to(X.device))


def sparse_nmf(
    X: Tensor,
    rank: int,
    *,
    alpha: float = 1e-3,
    sparse: Literal["H", "W", "both"] = "H",
    **kwargs: Any,
) -> LowRank:
    """NMF with an L1 penalty on the parts ``H`` (default), the weights ``W``, or both.

    scikit-learn's objective with ``l1_ratio = 1``: ``1/2 ||X - W H||_F^2 + alpha n ||W||_1
    + alpha m ||H||_1`` for the penalized factor(s) (the penalty scales with the other
    dimension, scikit-learn >= 1.2). ``sparse="H"`` gives sparse, parts-based components
    (rows of ``H``); larger ``alpha`` sparsifies more at a larger reconstruction error.
    """
    alpha = check_positive_float(alpha, name="alpha", caller="sparse_nmf", allow_zero=True)
    check_option(sparse, ("H", "W", "both"), name="sparse", caller="sparse_nmf")
    a_w = alpha if sparse in ("W", "both") else 0.0
    a_h = alpha if sparse in ("H", "both") else 0.0
    return nmf(X, rank, alpha_W=a_w, alpha_H=a_h, l1_ratio=1.0, **kwargs)


class NMFFactorizer(BaseFactorizer):
    """Registry wrapper of :func:`nmf` (``make_factorizer("nmf", rank=k, alpha_W=...)``).

    Only nonnegative matrices are accepted; a negative entry raises ``ValueError``.

    Contract (``NMF_CONTRACT``): every finite float32/float64 X >= 0 with
    1 <= rank <= min(m, n) is accepted. NMF is not an Eckart-Young approximation; its bound is
    relative to the best rank-1 approximation (see ``NMF_CONTRACT.accuracy``).
    """

    name = "nmf"

    def __init__(self, rank: int, **params: Any) -> None:
        super().__init__(rank)
        self.params = params

    def get_params(self) -> dict[str, Any]:
        return {"rank": self.rank, **self.params}

    def _factorize(self, X: Tensor) -> LowRank:
        return nmf(X, self.rank, **self.params)


#: For X >= 0 the leading singular pair is nonnegative (Perron-Frobenius), so the best rank-1
#: approximation is a nonnegative factorization. The default NNDSVDa start is built from the
#: leading singular pairs (Boutsidis & Gallopoulos 2008, "SVD based initialization: A head
#: start for nonnegative matrix factorization") and coordinate descent does not increase the
#: loss, so the fit ends at or below the rank-1 optimum. This is a stated bound checked by the
#: property suite, not a theorem (NNDSVDa fills zeros with the mean; a random restart is used
#: for input NNDSVD cannot start from). NMF is nonconvex: no rank-r bound holds in general.
NMF_CONTRACT = Contract(
    accuracy=(
        "scaled loss <= that of the best rank-1 approximation + 1e-8 (the solver's stopping "
        "tolerance); not the rank-r optimum (NMF is nonconvex)"
    ),
    slack=1e-8,
    relative_to_rank_one=True,
    nonnegative=True,
)
register_factorizer("nmf", NMFFactorizer)
register_contract("nmf", NMF_CONTRACT)
