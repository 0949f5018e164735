"""A gallery of test matrices: random, structured, images and PDE / kernel operators.

Every name is listed once, in :data:`GALLERY`; :func:`get_matrix` builds one by name::

    A = get_matrix("camera", size=400)                  # 400 x 400 float64 in [0, 1]
    L = get_matrix("laplacian-2d", n=32)                # scipy.sparse CSR, 1024 x 1024

Dense matrices are ``numpy.ndarray`` (float64); PDE operators are ``scipy.sparse`` CSR arrays
(call ``.toarray()`` for dense); kernels are dense. Randomness comes only from ``seed``.

Scaling conventions (grid spacing ``h = 1 / (n + 1)`` on the unit interval, interior nodes
``x_i = i h``; 2-D grids are ``n x n`` interior nodes ordered row-major, i.e. Kronecker form):

* ``laplacian-1d``: ``-u''`` with homogeneous Dirichlet conditions, ``tridiag(-1, 2, -1) / h^2``;
  eigenvalues ``(4 / h^2) sin^2(j pi h / 2)``, ``j = 1..n``. ``laplacian-2d``:
  ``-Delta = L1 (x) I + I (x) L1``.
* ``convection-diffusion-1d``: ``-eps u'' + b u'`` with first-order upwinding of ``u'``
  (backward difference for ``b > 0``, forward for ``b < 0``): an M-matrix for every ``eps > 0``.
  ``-2d``: ``-eps Delta u + b . grad u`` with ``b = (bx, by)``, upwinded per direction.
* ``biharmonic-1d`` / ``-2d``: the square of the Dirichlet Laplacian, i.e. ``Delta^2`` with
  ``u = Delta u = 0`` on the boundary (simply supported / Navier conditions); scale ``1 / h^4``.
* ``rbf-kernel``: ``K_ij = exp(-(x_i - x_j)^2 / (2 l^2)) + nugget * delta_ij`` on ``n``
  equispaced points of ``[0, 1]`` (endpoints included); ``exponential-kernel``:
  ``exp(-|x_i - x_j| / l) + nugget * delta_ij``. The nugget bounds the smallest eigenvalue
  below by ``nugget`` (the kernel part is positive semi-definite).
* Images (scikit-image's bundled data, no download): grayscale in ``[0, 1]`` resized with
  anti-aliasing by :func:`skimage.transform.resize`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuralfactor.core.validation import check_positive_int

__all__ = ["GALLERY", "GalleryEntry", "available_matrices", "get_matrix"]


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"The 'seed' parameter must be an int. Got {seed!r}.")
    return np.random.default_rng(int(seed))


def _pos_int(value: Any, name: str, caller: str, minimum: int = 1) -> int:
    return check_positive_int(value, name=name, caller=caller, minimum=minimum)


def _pos_float(value: Any, name: str, caller: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"The '{name}' parameter of {caller} must be a finite number {bound}. Got {value!r}."
        )
    return float(value)


# ---------------------------------------------------------------------- random / structured
def gaussian(n: int = 10, m: int | None = None, seed: int = 0) -> np.ndarray:
    """``m x n`` (default square) matrix of i.i.d. standard normal entries."""
    n = _pos_int(n, "n", "gaussian")
    m = n if m is None else _pos_int(m, "m", "gaussian")
    return _rng(seed).standard_normal((m, n))


def symmetric(n: int = 10, seed: int = 0) -> np.ndarray:
    """``(G + G^T) / sqrt(2)`` for a Gaussian ``G``: a GOE-type symmetric matrix."""
    n = _pos_int(n, "n", "symmetric")
    G = _rng(seed).standard_normal((n, n))
    return (G + G.T) / np.sqrt(2.0)


def identity(n: int = 50) -> np.ndarray:
    """``I_n``: every rank-k projection is an optimal rank-k approximation (degenerate)."""
    return np.eye(_pos_int(n, "n", "identity"))


def diagonal(n: int = 50) -> np.ndarray:
    """``diag(1, 2, ..., n)``: singular values with gaps of exactly 1."""
    return np.diag(np.arange(1.0, _pos_int(n, "n", "diag") + 1.0))


def planted_lowrank(
    n: int = 50, rank: int = 5, m: int | None = None, noise: float = 0.0, seed: int = 0
) -> np.ndarray:
    """``U diag(s) V^T + noise * G``, singular values ``s = rank, ..., 1``, orthonormal U, V."""
    n = _pos_int(n, "n", "lowrank")
    m = n if m is None else _pos_int(m, "m", "lowrank")
    rank = _pos_int(rank, "rank", "lowrank")
    if rank > min(m, n):
        raise ValueError(
            f"The 'rank' parameter of lowrank must be <= min(m, n)={min(m, n)}. Got {rank}."
        )
    noise = _pos_float(noise, "noise", "lowrank", allow_zero=True)
    rng = _rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    s = np.arange(rank, 0, -1, dtype=float)
    return (U * s) @ V.T + noise * rng.standard_normal((m, n))


# ---------------------------------------------------------------------- images
def _resize_gray(img: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img.astype(np.float64), (size, size), anti_aliasing=True)


def camera(size: int = 400) -> np.ndarray:
    """scikit-image's ``camera`` (512 x 512 grayscale) resized to ``size x size``, in [0, 1]."""
    from skimage import data

    size = _pos_int(size, "size", "camera", minimum=2)
    return _resize_gray(data.camera() / 255.0, size)


def astronaut(size: int = 10, channel: str = "red") -> np.ndarray:
    """One channel of scikit-image's ``astronaut`` (color) resized to ``size x size``, in [0, 1].

    ``channel`` is ``"red"``, ``"green"``, ``"blue"`` or ``"gray"`` (luminance,
    :func:`skimage.color.rgb2gray`).
    """
    from skimage import color, data

    size = _pos_int(size, "size", "astronaut", minimum=2)
    channels = {"red": 0, "green": 1, "blue": 2}
    img = data.astronaut() / 255.0
    if channel == "gray":
        return _resize_gray(color.rgb2gray(img), size)
    if channel not in channels:
        raise ValueError(
            f"The 'channel' parameter of astronaut must be one of {[*channels, 'gray']}. "
            f"Got {channel!r}."
        )
    return _resize_gray(img[..., channels[channel]], size)


# ---------------------------------------------------------------------- PDE operators
def laplacian_1d(n: int = 64) -> sp.csr_array:
    """Dirichlet ``-d^2/dx^2`` on ``n`` interior nodes of [0, 1]: ``tridiag(-1, 2, -1) / h^2``."""
    n = _pos_int(n, "n", "laplacian-1d")
    h = 1.0 / (n + 1)
    main = np.full(n, 2.0)
    off = np.full(n - 1, -1.0)
    return sp.csr_array(sp.diags_array([off, main, off], offsets=[-1, 0, 1]) / h**2)


def laplacian_2d(n: int = 16) -> sp.csr_array:
    """Dirichlet ``-Delta`` on an ``n x n`` interior grid of the unit square (``n^2`` unknowns)."""
    n = _pos_int(n, "n", "laplacian-2d")
    L = laplacian_1d(n)
    eye = sp.identity(n, format="csr")
    return sp.csr_array(sp.kron(L, eye) + sp.kron(eye, L))


def _upwind_first_derivative(n: int, b: float) -> sp.csr_array:
    """``b d/dx`` by first-order upwinding on ``n`` interior nodes (Dirichlet zero outside)."""
    h = 1.0 / (n + 1)
    if b >= 0:  # backward difference (u_i - u_{i-1}) / h
        D = sp.diags_array([np.full(n - 1, -1.0), np.ones(n)], offsets=[-1, 0])
    else:  # forward difference (u_{i+1} - u_i) / h
        D = sp.diags_array([-np.ones(n), np.full(n - 1, 1.0)], offsets=[0, 1])
    return sp.csr_array(D * (b / h))


def convection_diffusion_1d(n: int = 64, eps: float = 0.01, b: float = 1.0) -> sp.csr_array:
    """``-eps u'' + b u'`` on [0, 1], Dirichlet, upwinded convection (non-symmetric M-matrix).

    The cell Peclet number is ``|b| h / (2 eps)``; upwinding keeps the matrix an M-matrix for
    any value of it (at first-order accuracy).
    """
    n = _pos_int(n, "n", "convection-diffusion-1d")
    eps = _pos_float(eps, "eps", "convection-diffusion-1d")
    if not np.isfinite(b):
        raise ValueError(f"The 'b' parameter of convection-diffusion-1d must be finite. Got {b!r}.")
    return sp.csr_array(eps * laplacian_1d(n) + _upwind_first_derivative(n, float(b)))


def convection_diffusion_2d(
    n: int = 16, eps: float = 0.01, bx: float = 1.0, by: float = 0.5
) -> sp.csr_array:
    """``-eps Delta u + (bx, by) . grad u`` on the unit square, Dirichlet, upwinded per direction.

    Unknowns ordered row-major (``x`` fastest): the x-derivative acts as ``I (x) Dx``.
    """
    n = _pos_int(n, "n", "convection-diffusion-2d")
    eps = _pos_float(eps, "eps", "convection-diffusion-2d")
    eye = sp.identity(n, format="csr")
    conv = sp.kron(eye, _upwind_first_derivative(n, float(bx))) + sp.kron(
        _upwind_first_derivative(n, float(by)), eye
    )
    return sp.csr_array(eps * laplacian_2d(n) + conv)


def biharmonic_1d(n: int = 64) -> sp.csr_array:
    """``d^4/dx^4`` with ``u = u'' = 0`` at both ends: the square of :func:`laplacian_1d`."""
    L = laplacian_1d(_pos_int(n, "n", "biharmonic-1d"))
    return sp.csr_array(L @ L)


def biharmonic_2d(n: int = 16) -> sp.csr_array:
    """``Delta^2`` with ``u = Delta u = 0`` on the boundary: the square of :func:`laplacian_2d`."""
    L = laplacian_2d(_pos_int(n, "n", "biharmonic-2d"))
    return sp.csr_array(L @ L)


# ---------------------------------------------------------------------- kernels
def _grid(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


def rbf_kernel(n: int = 100, length_scale: float = 0.1, nugget: float = 1e-8) -> np.ndarray:
    """Gaussian kernel ``exp(-(x_i - x_j)^2 / (2 l^2)) + nugget I`` on ``n`` points of [0, 1].

    Its eigenvalues decay super-exponentially: numerically low rank for large ``l``.
    """
    n = _pos_int(n, "n", "rbf-kernel")
    ls = _pos_float(length_scale, "length_scale", "rbf-kernel")
    nug = _pos_float(nugget, "nugget", "rbf-kernel", allow_zero=True)
    x = _grid(n)
    d2 = (x[:, None] - x[None, :]) ** 2
    return np.exp(-d2 / (2 * ls**2)) + nug * np.eye(n)


def exponential_kernel(n: int = 100, length_scale: float = 0.1, nugget: float = 0.0) -> np.ndarray:
    """Exponential (Matern-1/2) kernel ``exp(-|x_i - x_j| / l) + nugget I`` on [0, 1]."""
    n = _pos_int(n, "n", "exponential-kernel")
    ls = _pos_float(length_scale, "length_scale", "exponential-kernel")
    nug = _pos_float(nugget, "nugget", "exponential-kernel", allow_zero=True)
    x = _grid(n)
    return np.exp(-np.abs(x[:, None] - x[None, :]) / ls) + nug * np.eye(n)


# ---------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class GalleryEntry:
    """A gallery matrix: its builder, kind ("dense" | "sparse") and a one-line description."""

    builder: Callable[..., Any]
    kind: str
    description: str


#: Every gallery name, in one place.
GALLERY: dict[str, GalleryEntry] = {
    "gaussian": GalleryEntry(gaussian, "dense", "i.i.d. N(0, 1) entries, n x n (or m x n)"),
    "symmetric": GalleryEntry(symmetric, "dense", "(G + G^T)/sqrt(2), n x n"),
    "identity": GalleryEntry(identity, "dense", "I_n (default n = 50)"),
    "diag": GalleryEntry(diagonal, "dense", "diag(1..n) (default n = 50)"),
    "lowrank": GalleryEntry(planted_lowrank, "dense", "planted rank + optional Gaussian noise"),
    "camera": GalleryEntry(camera, "dense", "skimage camera, grayscale, size x size (400)"),
    "astronaut": GalleryEntry(
        astronaut, "dense", "skimage astronaut, one channel, size x size (10)"
    ),
    "laplacian-1d": GalleryEntry(laplacian_1d, "sparse", "Dirichlet -u'', tridiag/h^2"),
    "laplacian-2d": GalleryEntry(laplacian_2d, "sparse", "Dirichlet -Laplace, n^2 x n^2"),
    "convection-diffusion-1d": GalleryEntry(
        convection_diffusion_1d, "sparse", "-eps u'' + b u', upwind"
    ),
    "convection-diffusion-2d": GalleryEntry(
        convection_diffusion_2d, "sparse", "-eps Laplace u + b.grad u, upwind"
    ),
    "biharmonic-1d": GalleryEntry(biharmonic_1d, "sparse", "(Dirichlet Laplacian)^2"),
    "biharmonic-2d": GalleryEntry(biharmonic_2d, "sparse", "(2-D Dirichlet Laplacian)^2"),
    "rbf-kernel": GalleryEntry(rbf_kernel, "dense", "Gaussian kernel on [0,1] + nugget"),
    "exponential-kernel": GalleryEntry(
        exponential_kernel, "dense", "exponential kernel on [0,1] + nugget"
    ),
}


def available_matrices() -> list[str]:
    """Sorted gallery names."""
    return sorted(GALLERY)


def get_matrix(name: str, **params: Any) -> np.ndarray | sp.csr_array:
    """Build the gallery matrix ``name`` with keyword ``params`` (see each builder).

    Raises ``ValueError`` for an unknown name (listing the known ones) and ``TypeError`` for an
    unknown parameter (listing the accepted ones).
    """
    import inspect

    if name not in GALLERY:
        raise ValueError(
            f"Unknown gallery matrix {name!r}; expected one of {available_matrices()}."
        )
    builder = GALLERY[name].builder
    accepted = list(inspect.signature(builder).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"Gallery matrix {name!r} got unknown parameter(s) {unknown}; it accepts {accepted}."
        )
    return builder(**params)
