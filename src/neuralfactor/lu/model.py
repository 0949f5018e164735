"""The LU network: a block-lower GFMM-block ``L`` after a block-upper GFMM-block ``U``.

``LUNetwork(x) = L(U(x))``; with identity columns as inputs its outputs are the columns of
``L U``, which training fits to ``A`` without ever inverting ``A``. ``rmatvec`` runs the
transposed graph ``U^T (L^T x)`` (the transpose loss). With ``symmetric=True`` only ``L`` is
learned and ``U = L^T`` is its transposed graph: a learned Cholesky factorization ``L L^T`` for
symmetric positive-definite operators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from neuralfactor.lu.gfmm import DiagMode, GFMMBlock

__all__ = ["LUNetwork", "as_dense_operator"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def as_dense_operator(A: Any, *, name: str = "A", caller: str = "LUNetwork") -> np.ndarray:
    """Dense float64 copy of a square numpy / torch / scipy.sparse matrix, validated."""
    import scipy.sparse as sp

    if sp.issparse(A):
        A = A.toarray()
    elif isinstance(A, Tensor):
        A = A.detach().cpu().numpy()
    if not isinstance(A, np.ndarray):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be a numpy array, torch tensor or "
            f"scipy.sparse matrix. Got {type(A).__name__}."
        )
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be a square matrix (n, n). Got shape "
            f"{A.shape}."
        )
    if not np.issubdtype(A.dtype, np.floating) and not np.issubdtype(A.dtype, np.integer):
        raise TypeError(f"The '{name}' parameter of {caller} must be real. Got dtype {A.dtype}.")
    A = np.asarray(A, dtype=np.float64)
    if not np.isfinite(A).all():
        raise ValueError(f"The '{name}' parameter of {caller} contains NaN or Inf.")
    return A


class LUNetwork(nn.Module):
    """Learned factors ``A ~ L U`` with GFMM-structured ``L`` (block-lower) and ``U``.

    Parameters
    ----------
    n : operator size.
    leaf : leaf block size (1-D) or patch size ``p^2`` (2-D).
    dim : 1 or 2 (quad-tree over Morton-ordered patches; see :mod:`neuralfactor.lu.gfmm`).
    band : bridge reach at interior levels.
    diag : ``'triangular'`` (entry-wise LU, the default: the best-known setting),
        ``'full'`` (block LU, the original method) or ``'unit'`` (entry-wise LU with a
        unit-diagonal ``L``, Doolittle's normalization: ``L U`` cannot see a diagonal rescaling
        ``L D, D^{-1} U``, which otherwise lets ``L`` drift to ill-conditioned scalings).
    dtype : ``'float32'`` or ``'float64'``.
    symmetric : learn only ``L`` and use ``U = L^T`` (its transposed graph), i.e. ``A ~ L L^T``
        for a symmetric positive-definite ``A``. Halves the weights and removes the gauge
        ``L D, D^{-1} U`` (only column signs of ``L`` remain free), which on the RBF kernel is
        what lets ``L U`` drift to singular scalings (``docs/results/learned-lu.md``). Needs
        ``diag='triangular'`` or ``'full'``.
    seed : seed of the generator for the random initial encoder/decoder maps.

    Notes
    -----
    In 2-D the factors approximate the permuted operator ``A[perm][:, perm]`` (patch-Morton
    order); :class:`neuralfactor.lu.solve.LUSolver` applies the permutation for you.
    """

    def __init__(
        self,
        n: int,
        leaf: int,
        *,
        dim: int = 1,
        band: int = 2,
        diag: DiagMode = "triangular",
        dtype: str = "float64",
        seed: int = 0,
        symmetric: bool = False,
    ) -> None:
        super().__init__()
        if dtype not in _DTYPES:
            raise ValueError(
                f"The 'dtype' parameter of LUNetwork must be one of {list(_DTYPES)}. Got {dtype!r}."
            )
        if symmetric and diag == "unit":
            raise ValueError(
                "LUNetwork: symmetric=True (A ~ L L^T) cannot have a unit-diagonal L, whose "
                "L L^T has a fixed diagonal scale; use diag='triangular' (a Cholesky factor) or "
                "'full'."
            )
        self.init_args = {
            "n": n,
            "leaf": leaf,
            "dim": dim,
            "band": band,
            "diag": diag,
            "dtype": dtype,
            "seed": seed,
        }
        if symmetric:  # only then, so that older checkpoints' init_args stay equal
            self.init_args["symmetric"] = True
        self.symmetric = bool(symmetric)
        g = torch.Generator().manual_seed(int(seed))
        kw = {"dim": dim, "band": band, "dtype": _DTYPES[dtype], "generator": g}
        self.L = GFMMBlock(n, leaf, triangle="lower", diag=diag, **kw)
        if not symmetric:
            self.U = GFMMBlock(
                n, leaf, triangle="upper", diag="triangular" if diag == "unit" else diag, **kw
            )
        self.n, self.leaf, self.dim = n, leaf, dim
        self.dtype = _DTYPES[dtype]

    @property
    def U(self) -> GFMMBlock:  # noqa: N802 - the factor's name
        """The upper factor: the trained block, or ``L``'s transposed graph when ``symmetric``
        (a fresh copy on each access, not a parameter)."""
        if self.symmetric:
            return self.L.transposed()
        return self._modules["U"]  # type: ignore[return-value]

    @property
    def perm(self) -> np.ndarray | None:
        """Patch-Morton order of the unknowns (2-D), ``None`` in 1-D."""
        return self.L.structure.perm

    def permute(self, A: np.ndarray) -> np.ndarray:
        """The operator in this network's ordering: ``A[perm][:, perm]`` (identity in 1-D)."""
        p = self.perm
        return A if p is None else A[np.ix_(p, p)]

    def forward(self, x: Tensor) -> Tensor:
        """``L (U x)`` for ``x`` of shape ``(*, n)``."""
        if self.symmetric:
            return self.L(self.L.rmatvec(x))
        return self.L(self.U(x))

    def rmatvec(self, x: Tensor) -> Tensor:
        """``U^T (L^T x)`` by the transposed graphs."""
        if self.symmetric:
            return self.forward(x)
        return self.U.rmatvec(self.L.rmatvec(x))

    def num_parameters(self) -> int:
        """Effective weights of ``L`` and ``U`` together (compare with ``n**2``); with
        ``symmetric`` only ``L``'s."""
        if self.symmetric:
            return self.L.num_parameters()
        return self.L.num_parameters() + self.U.num_parameters()

    @torch.no_grad()
    def init_from_operator(self, A: Any) -> None:
        """Start near ``L = I``, ``U = block-upper(A)`` (near field of ``A``; bridges zero).

        With ``diag='triangular'`` or ``'unit'`` the diagonal blocks of ``U`` take the upper triangle of
        ``A``'s diagonal blocks. Keeps ``L U`` non-singular at the start, which the study found
        to be what lets L-BFGS reach small errors without a singular product. With
        ``symmetric`` only ``L = I`` is set (the first Gauss-Newton step then moves ``L`` to
        about the lower near field of ``A``).
        """
        Ad = torch.as_tensor(self.permute(as_dense_operator(A, caller="init_from_operator")))
        self.L.set_near_from(torch.eye(self.n, dtype=torch.float64))
        if not self.symmetric:
            self.U.set_near_from(Ad)

    @torch.no_grad()
    def dense_factors(self) -> tuple[Tensor, Tensor]:
        """Dense ``(L, U)``, each ``(n, n)`` in the parameter dtype (no autograd graph)."""
        L = self.L.dense()
        return (L, L.T.clone()) if self.symmetric else (L, self.U.dense())
