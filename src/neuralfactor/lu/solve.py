"""Solving with learned GFMM factors: structured substitution, refinement, conditioning.

:class:`LUSolver` solves ``A x = b`` with ``A ~ L U`` by block forward substitution through
``L`` and block back substitution through ``U`` *on the graph itself*: leaves are visited in
order; before a leaf is solved, its far-field input is assembled from the encoder sums of the
nodes already solved (bridges see only earlier nodes, so these sums are complete), and after it
is solved its value is pushed up the encoder to its ancestors. No dense inverse and no dense
factor is formed; each diagonal block is LU-factored once (``torch.linalg.lu_factor_ex``).

Cost: ``O(N (#levels * band + 3) P^2)`` per right-hand side plus ``O(N P^3)`` once for the
diagonal blocks, i.e. ``O(n P log(n/P))``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from neuralfactor.lu.gfmm import GFMMBlock
from neuralfactor.lu.model import LUNetwork

__all__ = [
    "IllConditionedFactorsWarning",
    "LUSolver",
    "SingularBlockError",
    "factor_conditioning",
]


class SingularBlockError(ValueError):
    """A diagonal block of a learned factor is singular; the message names the block."""


class IllConditionedFactorsWarning(UserWarning):
    """The learned factors are so ill-conditioned that a solve with them is meaningless."""


class _Substitution:
    """Pre-processed triangular GFMM-block ready for structured substitution."""

    def __init__(self, block: GFMMBlock, name: str) -> None:
        if block.triangle not in ("lower", "upper"):
            raise ValueError(
                f"Substitution needs a triangular GFMM-block. Got triangle={block.triangle!r}."
            )
        st = block.structure
        self.st, self.name, self.P, self.N = st, name, block.leaf, st.num_leaves
        self.lower = block.triangle == "lower"
        with torch.no_grad():
            W = block.near_weight().detach().clone()
            t, s = block.near_t.numpy(), block.near_s.numpy()
            diag_idx = np.empty(self.N, dtype=np.int64)
            self.near_in: list[list[tuple[int, int]]] = [[] for _ in range(self.N)]
            for k, (ti, si) in enumerate(zip(t, s, strict=True)):
                if ti == si:
                    diag_idx[ti] = k
                else:
                    self.near_in[ti].append((k, int(si)))
            self.W = W
            D = W[torch.as_tensor(diag_idx)]
            lu, piv, info = torch.linalg.lu_factor_ex(D)
            pivots = torch.diagonal(lu, dim1=-2, dim2=-1).abs()
            scale = D.abs().amax(dim=(-1, -2)).clamp_min(torch.finfo(D.dtype).tiny)
            tol = self.P * torch.finfo(D.dtype).eps * scale
            bad = (info > 0) | (pivots.amin(dim=-1) <= tol)
            if bool(bad.any()):
                i = int(torch.nonzero(bad)[0])
                raise SingularBlockError(
                    f"Diagonal block {i} (rows {i * self.P}:{(i + 1) * self.P}) of {name} is "
                    f"singular: smallest LU pivot {float(pivots[i].min()):.3e} <= P*eps*max|block| "
                    f"= {float(tol[i]):.3e}. The learned factor cannot be used for solves; "
                    f"retrain (e.g. initialize near L = I, U = block-upper(A))."
                )
            self.lu, self.piv = lu, piv
            self.levels = st.sweep_levels
            self.bridges: dict[int, tuple[Tensor, list[list[tuple[int, int]]]]] = {}
            for level, (bt, bs) in st.bridges.items():
                lists: list[list[tuple[int, int]]] = [[] for _ in range(st.arity**level)]
                for k, (ti, si) in enumerate(zip(bt, bs, strict=True)):
                    lists[int(ti)].append((k, int(si)))
                self.bridges[level] = (block.bridge[str(level)].detach().clone(), lists)
            self.enc = {int(k): v.detach().clone() for k, v in block.enc.items()}
            self.dec = {int(k): v.detach().clone() for k, v in block.dec.items()}

    def solve(self, b: Tensor) -> Tensor:
        """Solve ``M x = b`` for ``b`` of shape (B, n) in the block's dtype."""
        st, P, N, a = self.st, self.P, self.N, self.st.arity
        B = b.shape[0]
        X = b.reshape(B, N, P)
        out = torch.zeros_like(X)
        Lv = st.levels
        far_levels = range(self.levels[0] - 1, Lv) if self.levels else range(0)
        h = {lv: torch.zeros(B, a**lv, P, dtype=b.dtype) for lv in far_levels}
        d = {lv: torch.zeros(B, a**lv, P, dtype=b.dtype) for lv in far_levels}
        seen = {lv: np.zeros(a**lv, dtype=bool) for lv in far_levels}
        order = range(N) if self.lower else range(N - 1, -1, -1)
        for i in order:
            rhs = X[:, i]
            if self.levels:
                for lv in far_levels:
                    node = i // a ** (Lv - lv)
                    if not seen[lv][node]:
                        seen[lv][node] = True
                        g = torch.zeros(B, P, dtype=b.dtype)
                        if lv in self.bridges:
                            Wb, lists = self.bridges[lv]
                            for k, src in lists[node]:
                                g = g + h[lv][:, src] @ Wb[k].T
                        if lv > far_levels[0]:
                            g = g + d[lv - 1][:, node // a] @ self.dec[lv][node].T
                        d[lv][:, node] = g
                rhs = rhs - d[Lv - 1][:, i // a] @ self.dec[Lv][i].T
            for k, src in self.near_in[i]:
                rhs = rhs - out[:, src] @ self.W[k].T
            xi = torch.linalg.lu_solve(self.lu[i], self.piv[i], rhs.T).T
            out[:, i] = xi
            if self.levels:
                v, node = xi, i
                for lv in range(Lv, far_levels[0], -1):
                    v = v @ self.enc[lv][node].T
                    node //= a
                    h[lv - 1][:, node] += v
        return out.reshape(B, N * P)


def _as_batch(b: Any, n: int, dtype: torch.dtype) -> tuple[Tensor, bool, bool]:
    is_np = not isinstance(b, Tensor)
    t = torch.as_tensor(np.asarray(b) if is_np else b)
    if t.ndim not in (1, 2) or t.shape[-1] != n:
        raise ValueError(
            f"The 'b' parameter of LUSolver.solve must have shape (n,) or (k, n) with n={n}. "
            f"Got shape {tuple(t.shape)}."
        )
    if not torch.isfinite(t).all():
        raise ValueError("The 'b' parameter of LUSolver.solve contains NaN or Inf.")
    single = t.ndim == 1
    return t.reshape(-1, n).to(dtype), single, is_np


class LUSolver:
    """Solve ``A x = b`` with learned factors ``A ~ L U`` (``A[perm][:, perm] ~ L U`` in 2-D).

    Parameters
    ----------
    model : a trained :class:`~neuralfactor.lu.model.LUNetwork`.
    dtype : solve precision; defaults to the model's.

    Raises
    ------
    SingularBlockError (a ``ValueError``) at construction when a diagonal block of ``L`` or
    ``U`` is singular, naming the block.

    Notes
    -----
    A small operator error ``||A - LU|| / ||A||`` does not make the solve accurate: the
    solution error is bounded by roughly ``kappa(LU) * ||A - LU|| / ||A||``. Call
    :meth:`diagnose` (or :func:`factor_conditioning`) before trusting a solve; use
    :meth:`refine` (iterative refinement with the true ``A``) or use the factors as a
    preconditioner (:mod:`neuralfactor.lu.precond`) rather than as a direct solver.
    """

    def __init__(self, model: LUNetwork, *, dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.n = model.n
        self.dtype = dtype or model.dtype
        self.perm = model.perm
        self._L = _Substitution(model.L, "L")
        self._U = _Substitution(model.U, "U")
        if self.dtype != model.dtype:
            for sub in (self._L, self._U):
                sub.W, sub.lu = sub.W.to(self.dtype), sub.lu.to(self.dtype)
                sub.enc = {k: v.to(self.dtype) for k, v in sub.enc.items()}
                sub.dec = {k: v.to(self.dtype) for k, v in sub.dec.items()}
                sub.bridges = {k: (w.to(self.dtype), ls) for k, (w, ls) in sub.bridges.items()}

    def solve(self, b: Any) -> Any:
        """``x = U^{-1} L^{-1} b`` by structured substitution; ``b`` (n,) or (k, n).

        Returns the same kind (numpy/torch) and shape as ``b``.
        """
        t, single, is_np = _as_batch(b, self.n, self.dtype)
        if self.perm is not None:
            t = t[:, torch.as_tensor(self.perm)]
        with torch.no_grad():
            x = self._U.solve(self._L.solve(t))
        if self.perm is not None:
            out = torch.empty_like(x)
            out[:, torch.as_tensor(self.perm)] = x
            x = out
        x = x[0] if single else x
        return x.numpy() if is_np else x

    def refine(self, A: Any, b: Any, x0: Any | None = None, *, steps: int = 1) -> np.ndarray:
        """Iterative refinement ``x <- x + solve(b - A x)`` with the true ``A`` (float64 residual).

        ``A`` may be dense or scipy.sparse; ``b`` (n,) or (k, n). Returns float64 numpy.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(
                f"The 'steps' parameter of LUSolver.refine must be an int >= 0. Got {steps!r}."
            )
        bb = np.asarray(b, dtype=np.float64)
        x = np.asarray(self.solve(bb) if x0 is None else x0, dtype=np.float64)
        for _ in range(steps):
            r = bb - np.asarray((A @ x.T).T)
            x = x + np.asarray(self.solve(r), dtype=np.float64)
        return x

    def diagnose(self, *, rel_error: float | None = None, warn: bool = True) -> dict[str, float]:
        """Condition numbers of the learned factors; warn when solves cannot be trusted.

        See :func:`factor_conditioning`.
        """
        return factor_conditioning(self.model, rel_error=rel_error, warn=warn)


def factor_conditioning(
    model: LUNetwork, *, rel_error: float | None = None, warn: bool = True
) -> dict[str, float]:
    """2-norm condition numbers of ``L``, ``U`` and ``L U`` in float64 (dense SVDs, ``O(n^3)``).

    Warns (:class:`IllConditionedFactorsWarning`) when ``kappa(LU) * eps(model dtype) > 1e-2``
    (fewer than two correct digits even for exact data) or, given the relative operator error
    ``rel_error``, when ``kappa(LU) * rel_error > 1`` (the first-order bound on the solution
    error exceeds 100%): a small operator error then says nothing about the solve.
    """
    with torch.no_grad():
        Ld, Ud = (m.double().numpy() for m in model.dense_factors())
    sv = {k: np.linalg.svd(M, compute_uv=False) for k, M in (("L", Ld), ("U", Ud), ("LU", Ld @ Ud))}
    cond = {f"cond_{k}": float(s[0] / s[-1]) if s[-1] > 0 else math.inf for k, s in sv.items()}
    eps = float(torch.finfo(model.dtype).eps)
    bound = cond["cond_LU"] * (rel_error if rel_error is not None else 0.0)
    cond["solution_error_bound"] = bound if rel_error is not None else math.nan
    meaningless = cond["cond_LU"] * eps > 1e-2 or (rel_error is not None and bound > 1.0)
    cond["meaningless"] = float(meaningless)
    if warn and meaningless:
        warnings.warn(
            f"The learned factors have cond(LU) = {cond['cond_LU']:.3e} (float64); with "
            f"{str(model.dtype).removeprefix('torch.')} eps = {eps:.1e}"
            + (
                f" and operator error {rel_error:.1e} the solution error bound is {bound:.1e}"
                if rel_error is not None
                else ""
            )
            + ". A solve with these factors is meaningless even though the operator error may be "
            "small; use them as a preconditioner or refine with the true operator.",
            IllConditionedFactorsWarning,
            stacklevel=2,
        )
    return cond
