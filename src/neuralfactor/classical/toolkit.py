"""The classical low-rank toolkit: NMF, nuclear-norm methods, rank selection, identifiability,
low-rank powers and compression of linear layers.

Well-kept libraries do the work where they exist (scikit-learn's NMF, LAPACK SVDs through
torch); what is written here is the glue and the few formulas no library ships correctly
(the Gavish-Donoho threshold, checked against the published closed form).

Registers the factorizer ``nmf`` (nonnegative input only).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
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
from neuralfactor.core.metrics import principal_angles
from neuralfactor.core.validation import (
    check_matrix,
    check_option,
    check_positive_float,
    check_positive_int,
    check_rank,
)

__all__ = [
    "GAP_CRITERIA",
    "RANK_METHODS",
    "Identifiability",
    "NMFFactorizer",
    "aic_rank",
    "factored_nuclear_gd",
    "gap_rank",
    "gavish_donoho_lambda",
    "gavish_donoho_omega",
    "gavish_donoho_rank",
    "gavish_donoho_threshold",
    "identifiability",
    "lowrank_power",
    "marchenko_pastur_median",
    "nmf",
    "nuclear_norm",
    "select_rank",
    "sparse_nmf",
    "svt",
]

RankMethod = Literal["aic", "gavish-donoho", "gap"]
RANK_METHODS: tuple[str, ...] = ("aic", "gavish-donoho", "gap")
GapCriterion = Literal["ratio", "difference"]
GAP_CRITERIA: tuple[str, ...] = ("ratio", "difference")


# ============================================================================ NMF
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


# ============================================================================ nuclear norm
def nuclear_norm(X: Tensor) -> Tensor:
    """``||X||_* = sum_i s_i`` per matrix (float64)."""
    X = check_matrix(X, caller="nuclear_norm")
    return torch.linalg.svdvals(X.double()).sum(-1)


def svt(X: Tensor, tau: float | Tensor) -> LowRank:
    """Singular value thresholding: the proximal operator of ``tau ||.||_*``.

    ``svt(X, tau) = argmin_Y 1/2 ||Y - X||_F^2 + tau ||Y||_* = U diag((s - tau)_+) V^T``
    (Cai, Candes & Shen, SIAM J. Optim. 20, 2010, Thm 2.1).

    Parameters
    ----------
    X : Tensor (*, m, n)
    tau : float >= 0, or Tensor of shape ``X.shape[:-2]`` (one threshold per matrix)

    Returns
    -------
    LowRank in SVD form (``S`` = shrunk singular values, zeros kept so shapes are fixed:
    rank ``min(m, n)``; use ``effective_rank`` for the number of nonzero ones).

    Notes
    -----
    Cost: one full SVD, ``O(m n min(m, n))``.
    """
    X = check_matrix(X, caller="svt")
    if isinstance(tau, Tensor):
        if tuple(tau.shape) != tuple(X.shape[:-2]) or bool((tau < 0).any()):
            raise ValueError(
                f"The 'tau' parameter of svt must be >= 0 with shape {tuple(X.shape[:-2])}. "
                f"Got shape {tuple(tau.shape)}."
            )
        t = tau.to(X.dtype)[..., None]
    else:
        t = check_positive_float(tau, name="tau", caller="svt", allow_zero=True)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    return LowRank(U, Vh, (S - t).clamp_min(0))


@dataclass
class NuclearGDResult:
    """Outcome of :func:`factored_nuclear_gd`: factors, objective history, iterations."""

    lowrank: LowRank
    objective: list[float]
    iterations: int
    converged: bool
    grad_norm: float


def factored_nuclear_gd(
    M: Tensor,
    lam: float,
    rank: int,
    *,
    step: float | None = None,
    max_iter: int = 20000,
    tol: float = 1e-10,
    init_scale: float = 0.1,
    seed: int = 0,
) -> NuclearGDResult:
    """Gradient descent on ``f(U, V) = 1/2 ||U V^T - M||_F^2 + lam/2 (||U||_F^2 + ||V||_F^2)``.

    Since ``||X||_* = min_{U V^T = X} (||U||_F^2 + ||V||_F^2) / 2`` (Srebro, Rennie & Jaakkola
    2005), the minimum of ``f`` over ``U`` (m x r), ``V`` (n x r) with ``r >= rank(svt(M, lam))``
    equals ``min_X 1/2 ||X - M||_F^2 + lam ||X||_*``, attained at ``U V^T = svt(M, lam)``;
    weight decay on the factors is nuclear-norm regularization of the product.

    Parameters
    ----------
    M : Tensor (m, n) (or batched (*, m, n); the objective is summed over the batch)
    lam : float > 0, the regularization weight
    rank : int, the factor width ``r`` (take it >= the expected rank of the solution)
    step : float, optional; default ``1 / (3 ||M||_2 + lam)`` (a local Lipschitz bound
        for balanced factors of size up to ``||M||_2``)
    max_iter, tol : stop when ``||grad f||_F <= tol * ||M||_F`` or after ``max_iter`` steps
    init_scale : the factors start as Gaussian times ``init_scale * sqrt(||M||_2 / r)``
    seed : for the initial factors

    Returns
    -------
    NuclearGDResult with ``lowrank = LowRank(U, V^T)``.

    Notes
    -----
    Plain full-batch gradient descent, float64, ``O(m n r)`` per step. Prefer :func:`svt`
    when an SVD is affordable: this is the route that scales to problems where only the
    factored form fits, and the check that weight decay = nuclear norm holds.
    """
    M = check_matrix(M, caller="factored_nuclear_gd", name="M")
    lam = check_positive_float(lam, name="lam", caller="factored_nuclear_gd")
    rank = check_rank(rank, M.shape, caller="factored_nuclear_gd")
    max_iter = check_positive_int(max_iter, name="max_iter", caller="factored_nuclear_gd")
    Md = M.double()
    s1 = float(torch.linalg.matrix_norm(Md, ord=2).max())
    if step is None:
        step = 1.0 / (3.0 * s1 + lam)
    step = check_positive_float(step, name="step", caller="factored_nuclear_gd")
    g = torch.Generator().manual_seed(seed)
    m, n = M.shape[-2:]
    c = init_scale * math.sqrt(max(s1, 1e-300) / rank)
    U = torch.randn(*M.shape[:-2], m, rank, generator=g, dtype=torch.float64) * c
    V = torch.randn(*M.shape[:-2], n, rank, generator=g, dtype=torch.float64) * c
    fro = float(torch.linalg.matrix_norm(Md).square().sum().sqrt())
    history: list[float] = []
    converged, gnorm = False, math.inf
    it = 0
    for it in range(1, max_iter + 1):  # iterations, not matrices: one GD step per pass
        R = U @ V.mT - Md
        gU = R @ V + lam * U
        gV = R.mT @ U + lam * V
        gnorm = float(torch.sqrt(gU.square().sum() + gV.square().sum()))
        if it % 100 == 1:
            obj = 0.5 * R.square().sum() + 0.5 * lam * (U.square().sum() + V.square().sum())
            history.append(float(obj))
        if gnorm <= tol * fro:
            converged = True
            break
        U = U - step * gU
        V = V - step * gV
    lr = LowRank(U.to(M.dtype), V.mT.to(M.dtype))
    return NuclearGDResult(lr, history, it, converged, gnorm)


# ============================================================================ rank selection
def _svals(X: Tensor | np.ndarray, caller: str) -> tuple[Tensor, int, int]:
    X = check_matrix(X, caller=caller)
    if X.ndim != 2:
        raise ValueError(f"{caller} works on one matrix (m, n). Got shape {tuple(X.shape)}.")
    m, n = X.shape
    return torch.linalg.svdvals(X.double()), m, n


def aic_rank(
    X: Tensor, *, sigma: float | None = None, max_rank: int | None = None
) -> tuple[int, Tensor]:
    """Rank minimizing Akaike's criterion for ``X = rank-r signal + i.i.d. N(0, sigma^2) noise``.

    ``AIC(r) = RSS_r / sigma^2 + 2 k_r`` (-2 log-likelihood + 2 x parameters, constants
    dropped) with ``RSS_r = sum_{i > r} s_i^2`` (the Eckart-Young residual) and
    ``k_r = r (m + n - r)`` free parameters of a rank-``r`` matrix.

    Parameters
    ----------
    X : Tensor (m, n)
    sigma : float, optional
        The noise level. When ``None`` it is estimated robustly from the median singular
        value, ``sigma = median(s) / sqrt(max(m, n) mu_beta)`` with ``mu_beta`` the
        Marchenko-Pastur median (as in Gavish & Donoho 2014, eq. (10)).
    max_rank : int, optional (default ``min(m, n)``)

    Returns
    -------
    (rank, aic) with ``aic`` of shape ``(max_rank + 1,)`` for r = 0..max_rank.

    Notes
    -----
    The profile-likelihood form ``N log(RSS_r / N) + 2 k_r`` (sigma fitted per r) is *not*
    used: as ``r -> min(m, n)`` its ``log RSS_r -> -inf`` and it selected rank 199 of 200 for
    a noisy rank-5 200 x 1000 matrix. With a fixed sigma, AIC keeps directions with
    ``s_r^2 > 2 sigma^2 (m + n - 2r + 1)``. Compare the noise edge ``sigma (sqrt(m) +
    sqrt(n))``: for strongly rectangular matrices the AIC threshold lies above it, but for
    near-square ones it lies *below* it and AIC keeps one or more pure-noise directions
    (it over-selects). Gavish-Donoho's threshold is the MSE-optimal choice.
    """
    s, m, n = _svals(X, "aic_rank")
    k = min(m, n)
    max_rank = (
        k if max_rank is None else check_rank(max_rank, (m, n), caller="aic_rank", name="max_rank")
    )
    if sigma is None:
        beta = k / max(m, n)
        sigma = float(torch.median(s)) / math.sqrt(max(m, n) * marchenko_pastur_median(beta))
        if sigma == 0.0:  # more than half the singular values vanish: use the smallest > 0
            pos = s[s > s[0] * max(m, n) * torch.finfo(torch.float64).eps]
            sigma = float(pos[-1]) * 1e-3 if pos.numel() else 1.0
    else:
        sigma = check_positive_float(sigma, name="sigma", caller="aic_rank")
    s2 = s.square()
    tail = torch.cat(
        [torch.flip(torch.cumsum(torch.flip(s2, [0]), 0), [0]), torch.zeros(1, dtype=torch.float64)]
    )  # tail[r] = sum_{i >= r}
    r = torch.arange(max_rank + 1, dtype=torch.float64)
    aic = tail[: max_rank + 1] / sigma**2 + 2 * r * (m + n - r)
    return int(torch.argmin(aic)), aic


def gavish_donoho_lambda(beta: float) -> float:
    """Optimal hard-threshold coefficient for known noise (Gavish & Donoho 2014, eq. (11)).

    ``lambda*(beta) = sqrt(2 (beta + 1) + 8 beta / (beta + 1 + sqrt(beta^2 + 14 beta + 1)))``
    with ``beta = min(m, n) / max(m, n)``; ``lambda*(1) = 4 / sqrt(3)``.
    """
    b = _check_beta(beta, "gavish_donoho_lambda")
    return math.sqrt(2 * (b + 1) + 8 * b / (b + 1 + math.sqrt(b * b + 14 * b + 1)))


def _check_beta(beta: Any, caller: str) -> float:
    b = check_positive_float(beta, name="beta", caller=caller)
    if b > 1:
        raise ValueError(
            f"The 'beta' parameter of {caller} must be in (0, 1] (min(m, n) / max(m, n)). Got {b}."
        )
    return b


def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law with aspect ratio ``beta`` in (0, 1] (variance 1).

    Solved numerically (SciPy ``quad`` + ``brentq``) on the support
    ``[(1 - sqrt(beta))^2, (1 + sqrt(beta))^2]``.
    """
    from scipy.integrate import quad
    from scipy.optimize import brentq

    b = _check_beta(beta, "marchenko_pastur_median")
    lo, hi = (1 - math.sqrt(b)) ** 2, (1 + math.sqrt(b)) ** 2

    def density(t: float) -> float:
        return math.sqrt(max((hi - t) * (t - lo), 0.0)) / (2 * math.pi * b * t)

    def cdf_minus_half(x: float) -> float:
        return quad(density, lo, x, limit=200)[0] - 0.5

    return float(brentq(cdf_minus_half, lo, hi, xtol=1e-13))


def gavish_donoho_omega(beta: float, *, exact: bool = False) -> float:
    """Threshold coefficient for unknown noise: ``tau = omega(beta) * median(s)``.

    ``exact=False`` (default): the published approximation
    ``omega(beta) ~ 0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43`` (Gavish & Donoho 2014,
    eq. (5)); ``exact=True``: ``lambda*(beta) / sqrt(mu_beta)`` with ``mu_beta`` the
    Marchenko-Pastur median (eq. (9)).
    """
    b = _check_beta(beta, "gavish_donoho_omega")
    if exact:
        return gavish_donoho_lambda(b) / math.sqrt(marchenko_pastur_median(b))
    return 0.56 * b**3 - 0.95 * b**2 + 1.82 * b + 1.43


def gavish_donoho_threshold(X: Tensor, sigma: float | None = None) -> float:
    """The Gavish-Donoho optimal hard threshold for the singular values of ``X`` (m x n).

    Known noise level ``sigma`` (entries of the noise i.i.d. with variance ``sigma^2``):
    ``tau = lambda*(beta) sqrt(max(m, n)) sigma``. Unknown noise: ``tau = omega(beta) *
    median(s)``. Here ``beta = min(m, n) / max(m, n)``.

    Notes
    -----
    The ``sqrt`` is of the *larger* dimension: the noise singular values concentrate in
    ``sigma (sqrt(max) +- sqrt(min))``. (The ``optht`` package's known-noise branch was seen
    to use ``sqrt(min(m, n))``, which keeps ~all noise directions for a 200 x 1000 matrix.)
    Reference: M. Gavish and D. L. Donoho, The optimal hard threshold for singular values is
    4/sqrt(3), IEEE Trans. Inf. Theory 60 (2014) 5040-5053.
    """
    s, m, n = _svals(X, "gavish_donoho_threshold")
    beta = min(m, n) / max(m, n)
    if sigma is not None:
        sigma = check_positive_float(sigma, name="sigma", caller="gavish_donoho_threshold")
        return gavish_donoho_lambda(beta) * math.sqrt(max(m, n)) * sigma
    return gavish_donoho_omega(beta) * float(torch.median(s))


def gavish_donoho_rank(X: Tensor, sigma: float | None = None) -> int:
    """Number of singular values of ``X`` above :func:`gavish_donoho_threshold`."""
    s, _, _ = _svals(X, "gavish_donoho_rank")
    return int((s > gavish_donoho_threshold(X, sigma)).sum())


def gap_rank(
    X: Tensor, *, max_rank: int | None = None, criterion: GapCriterion = "ratio"
) -> tuple[int, Tensor]:
    """Rank at the largest singular-value gap.

    ``criterion="ratio"`` (default) maximizes ``s_r / s_{r+1}`` (scale-free: the log-gap);
    ``"difference"`` maximizes ``s_r - s_{r+1}``. Exactly zero singular values count as
    an infinite ratio. Searches ``r = 1..max_rank`` (default ``max(1, min(m, n) // 2)``:
    the signal is assumed to occupy at most half the spectrum; searching to the end lets the
    smallest singular values of a square noise matrix, which approach 0, win the ratio: it
    chose rank 299 for a noisy rank-5 300 x 300 matrix).

    Returns ``(rank, gaps)`` with ``gaps[r - 1]`` the criterion at ``r``.
    """
    check_option(criterion, GAP_CRITERIA, name="criterion", caller="gap_rank")
    s, m, n = _svals(X, "gap_rank")
    k = min(m, n)
    if k < 2:
        return 1, torch.zeros(0, dtype=torch.float64)
    max_rank = (
        max(1, k // 2)
        if max_rank is None
        else min(check_rank(max_rank, (m, n), caller="gap_rank", name="max_rank"), k - 1)
    )
    a, b = s[:max_rank], s[1 : max_rank + 1]
    if criterion == "ratio":
        tiny = torch.finfo(torch.float64).tiny
        gaps = torch.where(b > 0, a / b.clamp_min(tiny), torch.full_like(a, math.inf))
        gaps = torch.where(a > 0, gaps, torch.zeros_like(a))
    else:
        gaps = a - b
    return int(torch.argmax(gaps)) + 1, gaps


def select_rank(
    X: Tensor,
    method: RankMethod = "gavish-donoho",
    *,
    sigma: float | None = None,
    max_rank: int | None = None,
) -> int:
    """Choose a rank by ``"aic"``, ``"gavish-donoho"`` (default) or ``"gap"``; at least 1."""
    check_option(method, RANK_METHODS, name="method", caller="select_rank")
    if method == "aic":
        r = aic_rank(X, sigma=sigma, max_rank=max_rank)[0]
    elif method == "gap":
        r = gap_rank(X, max_rank=max_rank)[0]
    else:
        r = gavish_donoho_rank(X, sigma)
        if max_rank is not None:
            r = min(r, max_rank)
    return max(int(r), 1)


# ============================================================================ identifiability
@dataclass(frozen=True)
class Identifiability:
    """Principal angles between two estimated subspaces, with the spectral gap behind them.

    angles : (*, r) principal angles in radians, ascending
    max_angle : (*,) the largest angle (``sin`` of it is the subspace distance)
    gap : (*,) ``s_r - s_{r+1}`` of the reference matrix, or None
    wedin_bound : (*,) ``||E||_2 / gap`` (Wedin's sin-theta bound for a perturbation ``E``),
        or None when no perturbation is given
    """

    angles: Tensor
    max_angle: Tensor
    gap: Tensor | None
    wedin_bound: Tensor | None


def identifiability(
    A: Tensor,
    B: Tensor,
    *,
    X: Tensor | None = None,
    rank: int | None = None,
    perturbation: Tensor | None = None,
) -> Identifiability:
    """Compare two estimated subspaces (columns of ``A`` and ``B``) and relate them to the gap.

    Uses :func:`neuralfactor.core.metrics.principal_angles`. With ``X`` and ``rank`` the gap
    ``s_r - s_{r+1}`` of ``X`` is reported: a rank-r subspace is identifiable (stable) when the
    gap is large compared with the perturbation; with ``perturbation`` (the difference
    between two observed matrices) Wedin's bound ``sin(theta_max) <= ||E||_2 / gap`` is given.
    """
    angles = principal_angles(A, B)
    gap = wedin = None
    if X is not None:
        X = check_matrix(X, caller="identifiability")
        r = check_rank(rank if rank is not None else A.shape[-1], X.shape, caller="identifiability")
        s = torch.linalg.svdvals(X.double())
        nxt = s[..., r] if r < s.shape[-1] else torch.zeros_like(s[..., 0])
        gap = s[..., r - 1] - nxt
        if perturbation is not None:
            e = torch.linalg.matrix_norm(perturbation.double(), ord=2)
            wedin = torch.where(gap > 0, e / gap, torch.full_like(e, math.inf))
    return Identifiability(angles, angles[..., -1], gap, wedin)


# ============================================================================ low-rank power
def lowrank_power(lr: LowRank, p: int) -> LowRank:
    """``A^p`` of ``A = U V`` (U m x r, V r x m) as ``U (V U)^{p-1} V``; O(m r^2 + r^3 log p).

    ``p >= 1``. Only square ``A`` has powers. The ``r x r`` core is raised with
    :func:`torch.linalg.matrix_power` (repeated squaring).
    """
    if not isinstance(lr, LowRank):
        raise TypeError(
            f"The 'lr' parameter of lowrank_power must be a LowRank. Got {type(lr).__name__}."
        )
    p = check_positive_int(p, name="p", caller="lowrank_power")
    m, n = lr.shape[-2:]
    if m != n:
        raise ValueError(f"lowrank_power needs a square matrix. Got shape {lr.shape} ({m} x {n}).")
    U, V = lr.factors()
    core = torch.linalg.matrix_power(V @ U, p - 1)
    return LowRank(U @ core, V)
