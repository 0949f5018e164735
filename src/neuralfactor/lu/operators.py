"""Test operators for the learned-LU study, each divided by its largest entry.

Every builder returns a square matrix as ``scipy.sparse.csr_array`` (the PDE stencils) or a
dense ``numpy.ndarray`` (the kernel matrix), float64, divided by ``max |a_ij|`` (so every
operator has largest entry 1). Grids are uniform with Dirichlet boundary conditions
eliminated, ``h = 1 / (s + 1)`` for ``s`` interior points per direction; 2-D operators are
ordered lexicographically (``k = i * s + j``).

Definitions
-----------
* ``laplacian-1d``: ``tridiag(-1, 2, -1)`` (second-order central differences of ``-u''``,
  LeVeque, *Finite Difference Methods for ODEs and PDEs*, SIAM 2007, eq. 2.10).
* ``laplacian-2d``: the 5-point Laplacian ``T (x) I + I (x) T`` on an ``s x s`` grid
  (LeVeque 2007, sec. 3.2).
* ``convdiff-1d``: ``-eps u'' + b u'`` with first-order upwinding of the convection term
  (``b > 0``: backward difference), ``eps = 0.01``, ``b = 1`` (Elman, Silvester & Wathen,
  *Finite Elements and Fast Iterative Solvers*, 2nd ed., OUP 2014, sec. 6.3 on upwinding).
* ``convdiff-2d``: ``-eps Lap u + w . grad u`` with ``w = (1, 1) / sqrt(2)``, upwinded in each
  direction, ``eps = 0.01``.
* ``biharmonic-1d``: the Toeplitz ``pentadiag(1, -4, 6, -4, 1)`` as the study specifies it. It
  differs from ``T^2`` (``T = tridiag(-1, 2, -1)``) in its first and last diagonal entries
  (``T^2`` has 5 there): cond = 1.4e8 at n = 256, where ``T^2`` has 7.2e8 (the 6.9e8 quoted in the study's specification).
* ``biharmonic-2d``: the 2-D 5-point Laplacian squared (13-point stencil).
* ``rbf``: the Gaussian kernel ``K_ij = exp(-(x_i - x_j)^2 / (2 l^2)) + nugget * delta_ij`` on
  ``x = linspace(0, 1, n)``, ``l = 0.2``, ``nugget = 1e-4`` (Rasmussen & Williams, *Gaussian
  Processes for Machine Learning*, MIT Press 2006, eq. 2.16). Dense and SPD.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

__all__ = [
    "OPERATORS",
    "OperatorName",
    "grid_side",
    "make_operator",
]

OperatorName = Literal[
    "laplacian-1d",
    "laplacian-2d",
    "convdiff-1d",
    "convdiff-2d",
    "biharmonic-1d",
    "biharmonic-2d",
    "rbf",
]
#: Every operator name, in table order.
OPERATORS: tuple[str, ...] = get_args(OperatorName)


def grid_side(n: int, *, caller: str = "make_operator") -> int:
    """Side ``s`` of the ``s x s`` grid of a 2-D operator of size ``n = s^2``."""
    s = math.isqrt(int(n))
    if s * s != n:
        lo, hi = s * s, (s + 1) * (s + 1)
        raise ValueError(
            f"The 'n' parameter of {caller} must be a perfect square for a 2-D operator "
            f"(n = s^2 grid points). Got {n}; try {lo} or {hi}."
        )
    return s


def _tridiag(s: int, lo: float, mid: float, hi: float) -> sp.csr_array:
    return sp.diags_array([lo, mid, hi], offsets=[-1, 0, 1], shape=(s, s), format="csr")


def _lap1(s: int) -> sp.csr_array:
    return _tridiag(s, -1.0, 2.0, -1.0)


def _convdiff1(s: int, eps: float, b: float) -> sp.csr_array:
    h = 1.0 / (s + 1)
    diff = _lap1(s) * (eps / h**2)
    conv = _tridiag(s, -1.0, 1.0, 0.0) * (b / h)  # backward difference, upwind for b > 0
    return (diff + conv).tocsr()


def _scaled(A):
    if sp.issparse(A):
        A = sp.csr_array(A, dtype=np.float64)
        A.eliminate_zeros()
        return A / abs(A).max()
    return A / np.abs(A).max()


def make_operator(name: str, n: int = 256) -> sp.csr_array | np.ndarray:
    """Build test operator ``name`` of size ``n x n`` divided by its largest entry.

    Parameters
    ----------
    name : one of :data:`OPERATORS`.
    n : matrix size; a perfect square for the 2-D operators.

    Returns
    -------
    A : ``scipy.sparse.csr_array`` (stencils) or ``numpy.ndarray`` (``rbf``), shape (n, n),
        float64, ``max |A_ij| = 1``.
    """
    if name not in OPERATORS:
        raise ValueError(
            f"The 'operator' parameter must be one of {list(OPERATORS)}. Got {name!r}."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        raise ValueError(f"The 'n' parameter of make_operator must be an int >= 4. Got {n!r}.")
    n = int(n)
    if name == "laplacian-1d":
        A = _lap1(n)
    elif name == "convdiff-1d":
        A = _convdiff1(n, 0.01, 1.0)
    elif name == "biharmonic-1d":
        A = sp.diags_array(
            [1.0, -4.0, 6.0, -4.0, 1.0], offsets=[-2, -1, 0, 1, 2], shape=(n, n), format="csr"
        )
    elif name == "rbf":
        x = np.linspace(0.0, 1.0, n)
        A = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * 0.2**2)) + 1e-4 * np.eye(n)
    else:
        s = grid_side(n)
        eye = sp.identity(s, format="csr")
        if name == "laplacian-2d":
            A = sp.kron(eye, _lap1(s)) + sp.kron(_lap1(s), eye)
        elif name == "biharmonic-2d":
            L2 = (sp.kron(eye, _lap1(s)) + sp.kron(_lap1(s), eye)).tocsr()
            A = L2 @ L2
        else:  # convdiff-2d
            w = 1.0 / math.sqrt(2.0)
            A = sp.kron(eye, _convdiff1(s, 0.01, w)) + sp.kron(_convdiff1(s, 0.01, w), eye)
    return _scaled(A)
