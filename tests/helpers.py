"""Shared test utilities: planted-truth matrices and the frames data-driven factorizers fit on."""

from __future__ import annotations

import torch


def planted(shape, rank, *, decay=None, generator=None, dtype=torch.float64, noise=0.0):
    """Matrices (*, m, n) with known singular values: exact rank ``rank`` (decay None) or a
    geometric spectrum s_i = decay**i over all min(m, n) values."""
    *batch, m, n = shape
    k = min(m, n)
    g = generator or torch.Generator().manual_seed(0)
    U = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=torch.float64)).Q
    if decay is None:
        s = torch.zeros(k, dtype=torch.float64)
        s[:rank] = torch.linspace(10.0, 1.0, rank, dtype=torch.float64)
    else:
        s = decay ** torch.arange(k, dtype=torch.float64)
    X = (U * s) @ V.mT
    if noise:
        X = X + noise * torch.randn(X.shape, generator=g, dtype=torch.float64)
    return X.to(dtype)


def evolving_frames(T, m, n, *, rank=8, generator=None, dtype=torch.float64, speed=0.02):
    """A slowly rotating low-rank-plus-decay field over time: frames (T, m, n)."""
    g = generator or torch.Generator().manual_seed(1)
    x = torch.linspace(0, 2 * torch.pi, m, dtype=torch.float64)
    v = torch.linspace(-3, 3, n, dtype=torch.float64)
    t = torch.arange(T, dtype=torch.float64)[:, None, None]
    amps = torch.rand(rank, generator=g, dtype=torch.float64)
    X = torch.zeros(T, m, n, dtype=torch.float64)
    for j in range(rank):
        X += (
            (0.6**j)
            * amps[j]
            * torch.cos((j + 1) * x[None, :, None] + speed * (j + 1) * t)
            * torch.exp(-((v[None, None, :] - 0.3 * j) ** 2) / (1 + 0.1 * j))
            * torch.cos((j % 3 + 1) * v[None, None, :] + speed * t)
        )
    X += 1e-4 * torch.randn(X.shape, generator=g, dtype=torch.float64)
    return X.to(dtype)


def assert_frames_identical(want, got) -> None:
    """Solver frames (``Frame`` sequences) equal bit for bit: the grid and every diagnostic."""
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        assert torch.equal(b.f, a.f)
        for key in a.diagnostics:
            assert torch.equal(b.diagnostics[key], a.diagnostics[key]), key
