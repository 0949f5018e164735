"""Networks that map a matrix X (m x n) to factors U (m x r), V (r x n) with X ~ U V.

- :class:`ConvMF`: the original study's network: two 2-D convolutions (kernel 5, padding 3,
  then kernel 3, padding 0; one channel; tanh), flatten, a stem of linear layers 500 -> 200
  (tanh), then a fork into a U branch and a V branch (200 -> 300, tanh, then a linear layer
  without activation to m*r and r*n values).
- :class:`Fork`: the same without the convolutions.
- :class:`DANMF`: a deep-NMF-style network: a ReLU stem and, per factor, a chain of
  nonnegative (ReLU) intermediate factors multiplied into U = A_1 A_2 ... A_p and V = B.

All models take ``(*, m, n)`` and return ``(U, V)`` of shapes ``(*, m, r)`` and ``(*, r, n)``,
and store their init arguments in ``self.init_args`` (JSON) for checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import Tensor, nn

from neuralfactor.core.validation import did_you_mean

__all__ = ["MODELS", "ConvMF", "DANMF", "FactorNet", "Fork", "build_model"]


def _mlp(sizes: Sequence[int], act: type[nn.Module], *, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(act())
    return nn.Sequential(*layers)


class FactorNet(nn.Module):
    """Base: an encoder of the flattened frame and two heads giving U and V."""

    def __init__(self, m: int, n: int, rank: int) -> None:
        super().__init__()
        for name, v in (("m", m), ("n", n), ("rank", rank)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(
                    f"The '{name}' parameter of {type(self).__name__} must be an int >= 1. Got {v!r}."
                )
        if rank > min(m, n):
            raise ValueError(
                f"The 'rank' parameter of {type(self).__name__} must be an int in [1, min(m, n)="
                f"{min(m, n)}]. Got {rank}."
            )
        self.m, self.n, self.rank = m, n, rank

    def check_input(self, X: Tensor) -> Tensor:
        if X.ndim < 2 or tuple(X.shape[-2:]) != (self.m, self.n):
            raise ValueError(
                f"{type(self).__name__} was built for {self.m}x{self.n} frames; got input of "
                f"shape {tuple(X.shape)}. Train a model for this frame size."
            )
        return X

    def encode(self, X: Tensor) -> Tensor:  # (B, m, n) -> (B, features)
        raise NotImplementedError

    def kernels(self, device: torch.device) -> AbstractContextManager[None]:
        """The backend settings this network's training steps (forward and backward passes)
        run under on ``device``; default: torch's choice."""
        return nullcontext()

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, X: Tensor) -> tuple[Tensor, Tensor]:
        X = self.check_input(X)
        batch = X.shape[:-2]
        h = self.encode(X.reshape(-1, self.m, self.n))
        U, V = self.heads(h)
        return U.reshape(*batch, self.m, self.rank), V.reshape(*batch, self.rank, self.n)


class Fork(FactorNet):
    """Flatten -> stem (tanh) -> two branches (tanh) -> linear heads for U and V."""

    def __init__(
        self,
        m: int,
        n: int,
        rank: int,
        *,
        stem: Sequence[int] = (500, 200),
        branch: Sequence[int] = (300,),
    ) -> None:
        super().__init__(m, n, rank)
        self.init_args = {"m": m, "n": n, "rank": rank, "stem": list(stem), "branch": list(branch)}
        self.stem = _mlp([m * n, *stem], nn.Tanh, last_act=True)
        self.u_head = nn.Sequential(
            _mlp([stem[-1], *branch], nn.Tanh, last_act=True), nn.Linear(branch[-1], m * rank)
        )
        self.v_head = nn.Sequential(
            _mlp([stem[-1], *branch], nn.Tanh, last_act=True), nn.Linear(branch[-1], rank * n)
        )

    def encode(self, X: Tensor) -> Tensor:
        return self.stem(X.flatten(1))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.u_head(h), self.v_head(h)


class ConvMF(Fork):
    """The original ConvMF: conv(k5, p3) -> tanh -> conv(k3, p0) -> tanh, then :class:`Fork`.

    The two convolutions keep the frame size (m + 6 - 4 - 2 = m), so the stem sees m*n values.
    """

    def __init__(
        self,
        m: int,
        n: int,
        rank: int,
        *,
        stem: Sequence[int] = (500, 200),
        branch: Sequence[int] = (300,),
        channels: int = 1,
    ) -> None:
        super().__init__(m, n, rank, stem=stem, branch=branch)
        self.init_args["channels"] = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=5, padding=3),
            nn.Tanh(),
            nn.Conv2d(channels, 1, kernel_size=3, padding=0),
            nn.Tanh(),
        )

    def encode(self, X: Tensor) -> Tensor:
        return self.stem(self.conv(X.unsqueeze(1)).flatten(1))

    def kernels(self, device: torch.device) -> AbstractContextManager[None]:
        """On a CPU the one-channel network's convolutions run in torch's native kernels
        (im2col + GEMM), not oneDNN's: for a single channel oneDNN's backward pass is several
        times slower, and a training step of the original ConvMF is 1.1-1.3x faster without it
        (``benchmarks/convmf_step.py`` measures both; docs/results/convmf-step.md). With more channels oneDNN
        is faster and stays. Torch picks the backward pass's kernel when that pass runs, so
        the training path enters this context around whole steps. Inference (forward only,
        where the two kernels are within a few percent) keeps torch's choice."""
        if device.type == "cpu" and self.init_args["channels"] == 1:
            return _without_onednn()
        return nullcontext()


@contextmanager
def _without_onednn() -> Iterator[None]:
    """``torch.backends.mkldnn.enabled = False`` for the block, restored after it (only
    that flag: ``torch.backends.mkldnn.flags`` would also reset oneDNN's TF32 setting)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


class DANMF(FactorNet):
    """Deep-NMF-style network: U = A_1 ... A_p (each ReLU, nonnegative), V = B (ReLU).

    ``chain`` gives the inner widths of U's factor chain: ``chain=(2r,)`` makes
    U = A_1 (m x 2r) @ A_2 (2r x r). Suited to nonnegative frames (phase-space densities).
    """

    def __init__(
        self,
        m: int,
        n: int,
        rank: int,
        *,
        stem: Sequence[int] = (500, 200),
        chain: Sequence[int] | None = None,
    ) -> None:
        super().__init__(m, n, rank)
        chain = list(chain) if chain is not None else [2 * rank]
        self.init_args = {"m": m, "n": n, "rank": rank, "stem": list(stem), "chain": chain}
        self.stem = _mlp([m * n, *stem], nn.ReLU, last_act=True)
        dims = [m, *chain, rank]
        self.dims = dims
        self.u_heads = nn.ModuleList(
            nn.Linear(stem[-1], dims[i] * dims[i + 1]) for i in range(len(dims) - 1)
        )
        self.v_head = nn.Linear(stem[-1], rank * n)

    def encode(self, X: Tensor) -> Tensor:
        return self.stem(X.flatten(1))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        U = None
        for i, head in enumerate(self.u_heads):
            A = torch.relu(head(h)).reshape(-1, self.dims[i], self.dims[i + 1])
            U = A if U is None else U @ A
        V = torch.relu(self.v_head(h))
        return U.flatten(1), V


# SketchMF subclasses FactorNet, so its module is imported once FactorNet exists (the package
# __init__ always imports this module first).
from neuralfactor.amortized.sketch import SketchMF  # noqa: E402

MODELS: dict[str, type[FactorNet]] = {
    "convmf": ConvMF,
    "fork": Fork,
    "danmf": DANMF,
    "sketch": SketchMF,
}


def build_model(name: str, m: int, n: int, rank: int, **kwargs) -> FactorNet:
    if name not in MODELS:
        raise ValueError(
            f"Unknown model {name!r}; expected one of {sorted(MODELS)}."
            + did_you_mean(name, MODELS)
        )
    return MODELS[name](m, n, rank, **kwargs)
