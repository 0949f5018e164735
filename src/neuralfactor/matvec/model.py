"""The choke-point network: a linear autoencoder-shaped map ``n -> ... -> k -> ... -> m``.

The network is a product of weight matrices ``W_L ... W_2 W_1`` (no biases, linear activations)
whose narrowest layer has width ``k`` (the *bottleneck*). Its end-to-end map therefore has rank
at most ``k``. Weights carry optional leading batch dimensions so that ``B`` independent
networks (one per matrix of a batch) train as one module without Python loops.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_option

__all__ = ["INIT_OPTIONS", "ChokePointNet", "Init"]

Init = Literal["orthogonal", "normal", "small"]
#: Initializations accepted by :class:`ChokePointNet` (one place; tests walk every value).
INIT_OPTIONS: tuple[str, ...] = ("orthogonal", "normal", "small")


class ChokePointNet(nn.Module):
    """Linear network ``x -> W_L ... W_1 x`` with a rank-``k`` choke point.

    Parameters
    ----------
    n_in : int
        Input width ``n`` (columns of the approximated ``m x n`` matrix).
    n_out : int
        Output width ``m``.
    rank : int
        Bottleneck width ``k``.
    encoder_widths : tuple of int, default ``(n_in,)``
        Hidden widths between input and bottleneck. The study's network is
        ``n -> hidden n -> k -> n``: ``encoder_widths=(n,)``, ``decoder_widths=()``.
    decoder_widths : tuple of int, default ``()``
        Hidden widths between bottleneck and output.
    batch_shape : tuple of int, default ``()``
        Leading dimensions: one independent network per matrix of a batch.
    init : {"orthogonal", "normal", "small"}
        ``orthogonal``: every layer a random (semi-)orthogonal matrix times a common scale
        ``scale ** (1 / depth)``, so the end-to-end map starts with all ``k`` singular values
        equal to ``scale`` (well away from the rank-deficient saddles of deep linear nets);
        ``normal``: i.i.d. Gaussian entries with variance ``1 / fan_in`` times the same
        per-layer scale; ``small``: ``normal`` times 1e-3 (the classic "small init" regime, slow
        to leave the saddle at the origin; kept for experiments).
    scale : float, default 1.0
        Target size of the end-to-end singular values at initialization. The trainer passes an
        estimate of the rms singular value of ``A``.
    generator : torch.Generator, optional
        Source of the initial weights (never the global RNG).
    dtype : torch.dtype, default float64

    Notes
    -----
    Forward cost for a block of ``s`` probes is ``O(s * sum_l d_l d_{l-1})``.
    :meth:`lowrank` returns the map as ``U @ V`` with ``U = W_L ... W_b`` (``m x k``) and
    ``V = W_{b-1} ... W_1`` (``k x n``) where ``b`` is the bottleneck layer: the product of the
    weights on either side of the choke point.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        rank: int,
        *,
        encoder_widths: tuple[int, ...] | None = None,
        decoder_widths: tuple[int, ...] = (),
        batch_shape: tuple[int, ...] = (),
        init: Init = "orthogonal",
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        check_option(init, INIT_OPTIONS, name="init", caller="ChokePointNet")
        enc = (n_in,) if encoder_widths is None else tuple(int(w) for w in encoder_widths)
        dec = tuple(int(w) for w in decoder_widths)
        for w in (*enc, *dec):
            if w < rank:
                raise ValueError(
                    f"The hidden widths of ChokePointNet must be >= the bottleneck rank={rank} "
                    f"(the bottleneck must be the narrowest layer). Got widths {enc + dec}."
                )
        self.n_in, self.n_out, self.rank = int(n_in), int(n_out), int(rank)
        self.encoder_widths, self.decoder_widths = enc, dec
        self.batch_shape = tuple(batch_shape)
        widths = (n_in, *enc, rank, *dec, n_out)
        self.bottleneck_index = len(enc) + 1  # number of layers before the choke point
        depth = len(widths) - 1
        per_layer = float(scale) ** (1.0 / depth)
        self.weights = nn.ParameterList()
        for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
            shape = (*self.batch_shape, d_out, d_in)
            W = torch.randn(shape, generator=generator, dtype=dtype, device=device)
            if init == "orthogonal":
                # QR of a Gaussian matrix: Haar-distributed (semi-)orthogonal factor.
                tall = d_out >= d_in
                Q, R = torch.linalg.qr(W if tall else W.mT)
                Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
                W = (Q if tall else Q.mT) * per_layer
            else:
                W = W * (per_layer / math.sqrt(d_in))
                if init == "small":
                    W = W * 1e-3
            self.weights.append(nn.Parameter(W.contiguous()))

    def forward(self, X: Tensor) -> Tensor:
        """Apply the network to probes ``X`` (*batch, n, s); returns (*batch, m, s).

        The product is evaluated from the narrow end: ``U @ (V @ X)``, where ``V`` is formed
        first (``O(k * sum d_l d_{l-1})``), so a block of ``s`` probes costs ``O((m + n) k s)``
        beyond forming the factors.
        """
        U, V = self.factors()
        return U @ (V @ X)

    def factors(self) -> tuple[Tensor, Tensor]:
        """``(U, V)``: products of the weights after and before the choke point."""
        b = self.bottleneck_index
        V = self.weights[0]
        for W in list(self.weights)[1:b]:
            V = W @ V
        Ws = list(self.weights)[b:]
        U = Ws[-1]
        for W in reversed(Ws[:-1]):
            U = U @ W
        return U, V

    def lowrank(self) -> LowRank:
        """The end-to-end map as a detached :class:`LowRank` ``U @ V`` of rank ``k``."""
        U, V = self.factors()
        return LowRank(U.detach().clone(), V.detach().clone())

    @property
    def init_args(self) -> dict:
        """JSON-serializable constructor arguments (for checkpoints), an attribute as on every
        network of the package."""
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "rank": self.rank,
            "encoder_widths": list(self.encoder_widths),
            "decoder_widths": list(self.decoder_widths),
            "batch_shape": list(self.batch_shape),
        }
