"""Function models for NeuralSVD: one MLP per mode (batched), tables, and the training wrapper.

``ParallelMLP`` holds ``L`` independent MLPs ``R^d -> R`` as stacked weights, evaluated with
one batched matmul per layer (no Python loop over modes). Its input may be shared ``(B, d)``
or per mode ``(L, B, d)``; the latter is how per-mode derivatives are taken with autograd
(``d f_l / d x`` only sees mode ``l``'s copy of ``x``).

``SpectralModel`` bundles the trained functions with an exponential moving average (EMA) of
their weights and, for the SpIN-style baseline, the moving-average covariance, all as
parameters/buffers, so that one checkpoint through :mod:`neuralfactor.train` resumes exactly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from neuralfactor.core.validation import check_positive_int

__all__ = ["ParallelMLP", "TabularFunctions", "FunctionPair", "SpectralModel"]


class ParallelMLP(nn.Module):
    """``L`` independent softplus MLPs ``R^d -> R`` evaluated together.

    Parameters
    ----------
    modes : int
        Number of functions ``L``.
    dim : int
        Input dimension ``d``.
    hidden : int, depth : int
        Width and number of hidden layers of each MLP.
    fourier : int
        If > 0, inputs are first mapped to ``[cos(2 pi B x), sin(2 pi B x)]`` with a fixed
        Gaussian ``B`` of shape (d, fourier) and scale ``fourier_scale`` (Tancik et al. 2020);
        the raw ``x`` is kept beside them.
    radius_feature : bool
        If True, ``|x|`` (as ``sqrt(|x|^2 + 1e-12)``, NaN-free at the origin) is appended to the
        inputs. A smooth MLP of ``x`` alone fits a cusp like hydrogen's ``exp(-|x|)`` only
        slowly; with ``|x|`` as an input it is a smooth function. In 2-D and 3-D ``|x|`` has an
        integrable Laplacian (``(d - 1)/|x|``) and no singular part at the origin, so the
        pointwise Laplacian stays the operator's.
    envelope : float, optional
        If given, the output is multiplied by ``exp(-envelope * sqrt(1 + |x|^2))``, a smooth
        decaying envelope (use a rate below the slowest true decay rate).
    out_scale : float
        Multiplies the initial output layer: start the functions small (norms comparable
        to the wanted eigenvalues) rather than let the quadratic term crush them first.
    generator : torch.Generator, optional
        Initialization randomness (default: a fresh seed).

    Shapes: ``x`` (B, d) or (L, B, d) -> (B, L).
    Cost: O(B L (d h + (depth - 1) h^2)) per call.
    """

    def __init__(
        self,
        modes: int,
        dim: int,
        hidden: int = 64,
        depth: int = 3,
        *,
        fourier: int = 0,
        fourier_scale: float = 1.0,
        radius_feature: bool = False,
        envelope: float | None = None,
        beta: float = 1.0,
        out_scale: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.modes = check_positive_int(modes, name="modes", caller="ParallelMLP")
        self.dim = check_positive_int(dim, name="dim", caller="ParallelMLP")
        hidden = check_positive_int(hidden, name="hidden", caller="ParallelMLP")
        depth = check_positive_int(depth, name="depth", caller="ParallelMLP")
        if fourier < 0:
            raise ValueError(f"The 'fourier' parameter of ParallelMLP must be >= 0. Got {fourier}.")
        self.envelope = envelope
        self.radius_feature = bool(radius_feature)
        self.beta = beta
        g = (
            generator
            if generator is not None
            else torch.Generator().manual_seed(
                int(torch.empty((), dtype=torch.int64).random_().item())
            )
        )
        if fourier:
            self.register_buffer(
                "fourier_B", fourier_scale * torch.randn(dim, fourier, generator=g, dtype=dtype)
            )
        else:
            self.register_buffer("fourier_B", torch.zeros(dim, 0, dtype=dtype))
        d_in = dim + 2 * fourier + int(self.radius_feature)
        sizes = [d_in] + [hidden] * depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = 1.0 / math.sqrt(fan_in) * (out_scale if i == len(sizes) - 2 else 1.0)
            W = (torch.rand(modes, fan_in, fan_out, generator=g, dtype=dtype) * 2 - 1) * bound
            b = (torch.rand(modes, 1, fan_out, generator=g, dtype=dtype) * 2 - 1) * bound
            self.weights.append(nn.Parameter(W))
            self.biases.append(nn.Parameter(b))

    def features(self, x: Tensor) -> Tensor:
        parts = [x]
        if self.fourier_B.shape[1]:
            z = 2 * math.pi * x @ self.fourier_B
            parts += [torch.cos(z), torch.sin(z)]
        if self.radius_feature:
            parts.append(torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-12))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.modes, -1, -1)
        if x.ndim != 3 or x.shape[0] != self.modes or x.shape[-1] != self.dim:
            raise ValueError(
                f"ParallelMLP expects x of shape (B, {self.dim}) or ({self.modes}, B, {self.dim}). "
                f"Got {tuple(x.shape)}."
            )
        h = self.features(x)
        n = len(self.weights)
        for i, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, W)
            if i < n - 1:
                h = nn.functional.softplus(h, beta=self.beta)
        out = h.squeeze(-1)  # (L, B)
        if self.envelope is not None:  # per-mode copy of x, so autograd sees each mode's own
            out = out * torch.exp(-self.envelope * torch.sqrt(1.0 + (x * x).sum(-1)))
        return out.mT  # (B, L)


class TabularFunctions(nn.Module):
    """Functions on a finite set ``{0, ..., n-1}`` stored as a table of shape (n, L).

    ``forward(idx)`` returns rows ``idx`` (B,) -> (B, L); ``forward(None)`` the whole table.
    Initialized i.i.d. normal with standard deviation ``scale``.
    """

    def __init__(
        self,
        n: int,
        modes: int,
        *,
        scale: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.n = check_positive_int(n, name="n", caller="TabularFunctions")
        self.modes = check_positive_int(modes, name="modes", caller="TabularFunctions")
        self.table = nn.Parameter(scale * torch.randn(n, modes, generator=generator, dtype=dtype))

    def forward(self, idx: Tensor | None = None) -> Tensor:
        return self.table if idx is None else self.table[idx]


class FunctionPair(nn.Module):
    """Left and right functions ``(f, g)`` of the SVD form (``g`` is ``None`` for EVD)."""

    def __init__(self, f: nn.Module, g: nn.Module | None = None) -> None:
        super().__init__()
        self.f = f
        self.g = g


class SpectralModel(nn.Module):
    """Trained functions + EMA copy (+ SpIN moving covariance), checkpointed together.

    ``net`` is trained; ``ema`` is an exponential moving average of ``net``'s parameters
    (Polyak averaging, used for evaluation); ``sigma_avg`` (L, L) is the SpIN moving-average
    covariance (zeros and unused for NestedLoRA).
    """

    def __init__(self, net: nn.Module, modes: int) -> None:
        super().__init__()
        self.net = net
        self.ema = copy.deepcopy(net)
        for p in self.ema.parameters():
            p.requires_grad_(False)
        dtype = next(net.parameters()).dtype
        self.register_buffer("sigma_avg", torch.zeros(modes, modes, dtype=dtype))
        self.register_buffer("sigma_count", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema <- decay * ema + (1 - decay) * net`` for every parameter (buffers are fixed)."""
        for pe, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - decay)
