"""Compress a ``torch.nn.Linear`` layer to two rank-r linear maps (truncated SVD of W).

Lives in ``matvec`` (a package allowed to build ``torch.nn`` modules), not in ``classical``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from neuralfactor.core.validation import check_rank

__all__ = ["LinearCompression", "compress_linear"]


@dataclass(frozen=True)
class LinearCompression:
    """Report of :func:`compress_linear`.

    params_before / params_after / params_saved : weight + bias parameter counts
    weight_rel_fro / weight_rel_spectral : relative error of the rank-r weight
    output_rel_error : ``||f(x) - g(x)||_F / ||f(x)||_F`` on the given (or Gaussian) inputs
    """

    rank: int
    params_before: int
    params_after: int
    params_saved: int
    weight_rel_fro: float
    weight_rel_spectral: float
    output_rel_error: float


def compress_linear(
    layer: Any, rank: int, *, inputs: Tensor | None = None, seed: int = 0
) -> tuple[Any, LinearCompression]:
    """Replace ``torch.nn.Linear`` (``y = W x + b``) by two linear maps of rank ``rank``.

    The weight is replaced by its truncated SVD ``W ~ (U_r S_r^{1/2})(S_r^{1/2} V_r^T)``,
    the Frobenius- and spectral-optimal rank-``r`` weight (Eckart-Young). The result is
    ``nn.Sequential(Linear(in, r, bias=False), Linear(r, out, bias=layer.bias is not None))``.

    Parameters
    ----------
    layer : torch.nn.Linear
    rank : int in [1, min(in, out)]; parameters drop from ``out*in`` to ``r*(in + out)``, a
        saving only when ``r < in*out / (in + out)``
    inputs : Tensor (batch, in), optional; inputs for the output-error report (default 256
        standard Gaussian vectors drawn from ``seed``)

    Returns
    -------
    (module, LinearCompression)

    Notes
    -----
    Minimizing the weight error is optimal for isotropic inputs; for correlated inputs a
    data-aware factorization (whitened by the input covariance) gives lower output error.
    """
    if not isinstance(layer, nn.Linear):
        raise TypeError(
            f"The 'layer' parameter of compress_linear must be a torch.nn.Linear. Got "
            f"{type(layer).__name__}."
        )
    W = layer.weight.detach()
    rank = check_rank(rank, W.shape, caller="compress_linear")
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    root = S[:rank].sqrt()
    first = nn.Linear(W.shape[1], rank, bias=False, dtype=W.dtype, device=W.device)
    second = nn.Linear(
        rank, W.shape[0], bias=layer.bias is not None, dtype=W.dtype, device=W.device
    )
    with torch.no_grad():
        first.weight.copy_((root[:, None] * Vh[:rank]).to(W.dtype))
        second.weight.copy_((U[:, :rank] * root).to(W.dtype))
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    module = nn.Sequential(first, second)
    Wr = (U[:, :rank] * S[:rank]) @ Vh[:rank]
    Wd = W.double()
    rel_fro = float(torch.linalg.matrix_norm(Wd - Wr) / torch.linalg.matrix_norm(Wd))
    rel_spec = float(torch.linalg.matrix_norm(Wd - Wr, ord=2) / torch.linalg.matrix_norm(Wd, ord=2))
    if inputs is None:
        g = torch.Generator().manual_seed(seed)
        inputs = torch.randn(256, W.shape[1], generator=g, dtype=W.dtype).to(W.device)
    with torch.no_grad():
        y, z = layer(inputs), module(inputs)
    out_err = float(torch.linalg.norm((y - z).double()) / torch.linalg.norm(y.double()))
    before = W.numel() + (0 if layer.bias is None else layer.bias.numel())
    after = sum(p.numel() for p in module.parameters())
    report = LinearCompression(rank, before, after, before - after, rel_fro, rel_spec, out_err)
    return module, report
