"""A learned encoder that costs no more than the frame: it reads a sketch ``Y = X Omega``.

:class:`SketchMF` maps an m x n frame X to rank-r factors with two frame-sized products and
small dense work, whatever the frame size:

1. ``Y = X Omega`` (m x k, ``k = rank + oversample``): ``Omega`` (n x k) is a learned linear
   layer (a fixed Gaussian with ``learn_sketch=False``), trained so that ``span(Y)`` holds the
   dominant left singular subspace of frames like the training frames;
2. a basis of span(Y) is reduced to r columns by one of two heads:

   - ``head='ritz'`` (default): Rayleigh-Ritz in span(Y): ``Q = qr(Y)``, ``B = Q^T X``
     (the second product, k x n), the top-r eigenvectors W of the k x k matrix ``B B^T``
     (in float64), ``U = Q W`` and ``V = W^T B``. This is the randomized range finder without
     power iterations (Halko, Martinsson & Tropp 2011, "Finding structure with randomness",
     Alg. 4.1 + 5.1) with a *learned* test matrix, as in Indyk, Vakilian & Yuan (2019),
     "Learning-based low-rank approximations" (NeurIPS), which learn the sketch of a sketch-
     and-solve SVD on samples of the input distribution.
   - ``head='mlp'``: a small MLP reads the normalized k x k Gram matrix ``Y^T Y / tr`` (its
     upper triangle) and predicts a k x r mixing ``W`` (a learned base plus the MLP's
     correction); ``U = qr(Y W)``, ``V = U^T X`` (the second product, r x n).

Both heads return orthonormal U and the least-squares ``V = U^T X`` for span(U), so
``+refine`` (the least-squares refit every learned factorizer offers) changes nothing but its
cost. On an exactly rank-r frame, span(Y) is the frame's range for any Omega of generic
position (k >= r), and both heads recover it to round-off before any training.

Cost per frame (flops, Golub & Van Loan conventions as in
:mod:`neuralfactor.classical.flopcount`): ``ritz``: ``4mnk`` (two products) plus
``4mk^2 - 4k^3/3`` (QR) plus ``2nk^2 + 9k^3 + 2mkr + 2nkr`` (B B^T, eigh, U, V); ``mlp``:
``2mnk + 2mnr`` plus ``2mk^2`` (Gram), the MLP, ``2mkr`` and ``4mr^2 - 4r^3/3`` (QR):
see :func:`sketch_flops`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from neuralfactor.amortized.models import FactorNet

__all__ = ["SKETCH_HEADS", "SketchMF", "refine_flops", "sketch_flops"]

SketchHead = Literal["ritz", "mlp"]
#: The heads of :class:`SketchMF`.
SKETCH_HEADS: tuple[str, ...] = get_args(SketchHead)


def _amax(A: Tensor) -> Tensor:
    """Largest |entry| of each matrix (*, 1, 1), at least the smallest normal number."""
    return A.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)


def _width(m: int, n: int, rank: int, oversample: int) -> int:
    return min(rank + oversample, m, n)


class SketchMF(FactorNet):
    """Sketch encoder: ``Y = X Omega`` (learned Omega, width ``rank + oversample``), then a
    Rayleigh-Ritz (``head='ritz'``) or a learned mixing (``head='mlp'``) to rank r.

    Parameters
    ----------
    m, n, rank : frame size and rank (``1 <= rank <= min(m, n)``).
    oversample : extra sketch columns, ``k = min(rank + oversample, m, n)`` (default 5).
    head : ``'ritz'`` (default) or ``'mlp'``; see the module docstring.
    hidden : hidden widths of the ``mlp`` head's MLP (tanh).
    learn_sketch : train Omega (default) or keep it a fixed Gaussian (a buffer).

    Notes
    -----
    Inference costs two frame-sized products (:func:`sketch_flops`); no weight grows with
    m * n except Omega (n x k). Do not use it on frames unlike its training frames with a
    slowly decaying spectrum: Omega is tuned to the training distribution, and a sketch
    without power iterations loses accuracy where the spectrum is flat (use ``rsvd`` with
    ``n_iter >= 1`` there).
    """

    def __init__(
        self,
        m: int,
        n: int,
        rank: int,
        *,
        oversample: int = 5,
        head: str = "ritz",
        hidden: Sequence[int] = (64,),
        learn_sketch: bool = True,
    ) -> None:
        super().__init__(m, n, rank)
        if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 0:
            raise ValueError(
                f"The 'oversample' parameter of SketchMF must be an int >= 0. Got {oversample!r}."
            )
        if head not in SKETCH_HEADS:
            raise ValueError(
                f"The 'head' parameter of SketchMF must be one of {list(SKETCH_HEADS)}. "
                f"Got {head!r}."
            )
        k = _width(m, n, rank, oversample)
        self.k, self.head = k, head
        self.init_args = {
            "m": m,
            "n": n,
            "rank": rank,
            "oversample": oversample,
            "head": head,
            "hidden": list(hidden),
            "learn_sketch": bool(learn_sketch),
        }
        # Gaussian test matrix, columns of unit expected norm; drawn from the RNG that seeds
        # every parameter initialization (LearnedFactorizer.fit seeds it from the settings)
        omega = torch.randn(n, k) / math.sqrt(n)
        if learn_sketch:
            self.omega = nn.Parameter(omega)
        else:
            self.register_buffer("omega", omega)
        if head == "mlp":
            iu = torch.triu_indices(k, k)
            self.register_buffer("triu", iu, persistent=False)
            sizes = [iu.shape[1], *hidden, k * rank]
            layers: list[nn.Module] = []
            for i in range(len(sizes) - 1):
                layers.append(nn.Linear(sizes[i], sizes[i + 1]))
                if i < len(sizes) - 2:
                    layers.append(nn.Tanh())
            self.mix = nn.Sequential(*layers)
            self.mix_base = nn.Parameter(torch.eye(k, rank))

    def init_parameters(self, generator: torch.Generator) -> None:
        """Draw the sketch (and the mixing head's layers) from ``generator``: the hook of
        :func:`neuralfactor.train.init.init_parameters`, since a Gaussian test matrix is not a
        layer PyTorch knows how to initialize. ``mix_base`` stays the identity."""
        from neuralfactor.train.init import init_parameters

        n, k = self.omega.shape
        with torch.no_grad():
            draw = torch.randn(n, k, generator=generator, dtype=self.omega.dtype)
            self.omega.copy_(draw.to(self.omega.device) / math.sqrt(n))
        if self.head == "mlp":
            init_parameters(self.mix, generator)

    def forward(self, X: Tensor) -> tuple[Tensor, Tensor]:
        X = self.check_input(X)
        r = self.rank
        # the two products run in X's dtype; QR has no half/bfloat16 kernel, so the small
        # work of such inputs runs in float32
        work = torch.float32 if X.dtype in (torch.bfloat16, torch.float16) else X.dtype
        Y = (X @ self.omega).to(work)  # the first frame-sized product, (*, m, k)
        if self.head == "ritz":
            Q = torch.linalg.qr(Y).Q
            B = (Q.to(X.dtype).mT @ X).to(work)  # the second, (*, k, n)
            Bs = B / _amax(B)  # the Gram of a huge frame would overflow; W does not change
            G = (Bs @ Bs.mT).double()
            _, W = torch.linalg.eigh(G)  # ascending: the top r are the last r columns
            W = W[..., -r:].flip(-1).to(work)
            return (Q @ W).to(X.dtype), (W.mT @ B).to(X.dtype)
        Ys = Y / _amax(Y)
        G = Ys.mT @ Ys
        G = G / G.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None].clamp_min(
            torch.finfo(G.dtype).tiny
        )
        feats = G[..., self.triu[0], self.triu[1]].to(self.mix_base.dtype)
        W = self.mix_base + self.mix(feats).reshape(*feats.shape[:-1], self.k, r)
        U = torch.linalg.qr(Y @ W.to(work)).Q.to(X.dtype)
        return U, U.mT @ X  # the second product, (*, r, n)


def sketch_flops(
    m: int,
    n: int,
    rank: int,
    *,
    oversample: int = 5,
    head: str = "ritz",
    hidden: Sequence[int] = (64,),
    refine: bool = False,
) -> float:
    """Floating-point operations of one :class:`SketchMF` forward pass on an m x n frame.

    Counted as in :mod:`neuralfactor.classical.flopcount` (Golub & Van Loan 2013): a product
    of (a x b) and (b x c) is ``2abc``; Householder QR of a x k with Q formed
    ``4ak^2 - 4k^3/3``; a k x k symmetric eigendecomposition ``9k^3``. ``refine`` adds the
    least-squares refit of ``+refine`` (Gram orthonormalization of U, two passes of
    ``4mr^2 + 9r^3``, and ``V = Q^T X``, ``2mnr``). O(mn) and O(k^2) work is not counted.

    Examples
    --------
    >>> round(sketch_flops(64, 128, 6))  # k = 11: 4mnk = 360448, QR, B B^T, eigh, U, V
    457948
    """
    k = _width(m, n, rank, oversample)
    if head == "ritz":
        count = 4 * m * n * k + (4 * m * k * k - 4 * k**3 / 3) + 2 * n * k * k + 9 * k**3
        count += 2 * m * k * rank + 2 * n * k * rank
    elif head == "mlp":
        sizes = [k * (k + 1) // 2, *hidden, k * rank]
        mlp = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        count = 2 * m * n * k + 2 * m * n * rank + 2 * m * k * k + mlp
        count += 2 * m * k * rank + (4 * m * rank * rank - 4 * rank**3 / 3)
    else:
        raise ValueError(f"sketch_flops() knows the heads {list(SKETCH_HEADS)}; got {head!r}.")
    if refine:
        count += refine_flops(m, n, rank)
    return float(count)


def refine_flops(m: int, n: int, rank: int) -> float:
    """Flops of the ``+refine`` least-squares refit of a learned U (any learned factorizer):
    Gram orthonormalization of U (two passes of ``4mr^2 + 9r^3``) and ``V = Q^T X``
    (``2mnr``)."""
    return float(2 * (4 * m * rank * rank + 9 * rank**3) + 2 * m * n * rank)
