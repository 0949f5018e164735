"""GFMM-block structure: exact triangularity, matvec == dense, transposed graph == transpose."""

import numpy as np
import pytest
import torch

from neuralfactor.lu.gfmm import GFMMBlock, GFMMStructure, check_leaf_layout

LAYOUTS = [(1, 256, 32), (1, 128, 8), (1, 64, 32), (2, 256, 16), (2, 256, 4)]


def _randomized(block: GFMMBlock, gen: torch.Generator) -> GFMMBlock:
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return block


def _block_norms(M: torch.Tensor, P: int) -> torch.Tensor:
    N = M.shape[0] // P
    return M.reshape(N, P, N, P).permute(0, 2, 1, 3).abs().sum((-1, -2))


@pytest.mark.parametrize("dim,n,leaf", LAYOUTS)
@pytest.mark.parametrize("triangle", ["lower", "upper"])
def test_triangular_structure_exact(dim, n, leaf, triangle, gen):
    blk = _randomized(GFMMBlock(n, leaf, dim=dim, triangle=triangle), gen)
    M = blk.dense()
    B = _block_norms(M, leaf)
    wrong = torch.triu(B, 1) if triangle == "lower" else torch.tril(B, -1)
    right = torch.tril(B, -1) if triangle == "lower" else torch.triu(B, 1)
    # exact zeros: no path exists, so no floating-point contribution at all
    assert float(wrong.max()) == 0.0
    # and every block on the allowed side is reached (the graph covers block-triangular fill)
    N = n // leaf
    assert int((right > 0).sum()) == N * (N - 1) // 2


@pytest.mark.parametrize("dim,n,leaf", [(1, 128, 8), (2, 256, 16)])
@pytest.mark.parametrize("triangle", ["lower", "upper"])
@pytest.mark.parametrize("diag", ["triangular", "unit"])
def test_triangular_diag_mode_is_entrywise_triangular(dim, n, leaf, triangle, diag, gen):
    blk = _randomized(GFMMBlock(n, leaf, dim=dim, triangle=triangle, diag=diag), gen)
    M = blk.dense()
    wrong = torch.triu(M, 1) if triangle == "lower" else torch.tril(M, -1)
    assert float(wrong.abs().max()) == 0.0
    if diag == "unit":  # the diagonal is fixed, whatever the (random) weights
        assert torch.equal(torch.diagonal(M), torch.ones(n, dtype=M.dtype))
    else:
        assert float(torch.diagonal(M).abs().min()) > 0


def test_unit_diag_is_not_trained_and_needs_a_triangle(gen):
    blk = _randomized(GFMMBlock(64, 8, triangle="lower", diag="unit"), gen)
    full = GFMMBlock(64, 8, triangle="lower", diag="triangular")
    assert blk.num_parameters() == full.num_parameters() - 64  # the 64 diagonal entries
    loss = blk(torch.randn(2, 64, generator=gen, dtype=torch.float64)).square().sum()
    loss.backward()
    d = (blk.near_t == blk.near_s).nonzero().flatten()
    assert float(blk.near.grad[d].diagonal(dim1=-2, dim2=-1).abs().max()) == 0.0
    with pytest.raises(ValueError, match="diag='unit' needs triangle"):
        GFMMBlock(64, 8, triangle="none", diag="unit")


@pytest.mark.parametrize("dim,n,leaf", LAYOUTS)
@pytest.mark.parametrize("triangle", ["lower", "upper", "none"])
def test_matvec_and_transpose_graph_match_dense(dim, n, leaf, triangle, gen):
    blk = _randomized(GFMMBlock(n, leaf, dim=dim, triangle=triangle), gen)
    M = blk.dense()
    x = torch.randn(3, n, generator=gen, dtype=torch.float64)
    scale = float(M.abs().max()) * n
    # float64 round-off of sums of ~n products of O(scale) terms
    tol = 1e-13 * scale
    assert torch.allclose(blk(x), x @ M.T, atol=tol, rtol=0)
    assert torch.allclose(blk.rmatvec(x), x @ M, atol=tol, rtol=0)
    # a batch of leading dimensions is kept
    assert blk(x.reshape(3, 1, n)).shape == (3, 1, n)


def test_parameter_count_and_regime():
    # n = 256, P = 32: both factors hold more weights than the dense matrix (issue 7) ...
    small = GFMMBlock(256, 32).num_parameters() * 2
    assert small > 256**2
    # ... but from n = 1024 on the structured factors are smaller, and the ratio keeps falling
    r1 = 2 * GFMMBlock(1024, 32).num_parameters() / 1024**2
    r4 = 2 * GFMMBlock(4096, 32).num_parameters() / 4096**2
    assert r1 < 1 and r4 < r1


def test_no_unused_parameters(gen):
    blk = _randomized(GFMMBlock(128, 8, triangle="lower"), gen)
    blk(torch.randn(2, 128, generator=gen, dtype=torch.float64)).pow(2).sum().backward()
    for name, p in blk.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(
    "n,leaf,dim,match",
    [
        (250, 32, 1, r"multiple of the leaf size 32.*n=224 or n=256"),
        (96, 32, 1, r"power of two.*n=64 or n=128"),
        (250, 16, 2, r"n = s\^2"),
        (144, 16, 2, r"power-of-two multiple"),
        (256, 0, 1, r"'leaf' parameter .* >= 1"),
        (256, 32, 3, r"'dim' parameter"),
    ],
)
def test_bad_layout(n, leaf, dim, match):
    with pytest.raises(ValueError, match=match):
        check_leaf_layout(n, leaf, dim)


def test_bad_options():
    with pytest.raises(ValueError, match="'triangle' parameter"):
        GFMMStructure(256, 32, triangle="diag")
    with pytest.raises(ValueError, match="'band' parameter"):
        GFMMStructure(256, 32, band=0)
    with pytest.raises(ValueError, match="'diag' parameter"):
        GFMMBlock(256, 32, diag="banded")
    with pytest.raises(TypeError, match="float32 or float64"):
        GFMMBlock(256, 32, dtype=torch.float16)
    with pytest.raises(ValueError, match="vectors of length n=256"):
        GFMMBlock(256, 32)(torch.zeros(3, 255, dtype=torch.float64))


def test_two_d_permutation_is_patch_morton():
    st = GFMMStructure(16, 4, dim=2)  # 4x4 grid, 2x2 patches
    # patch 0 = top-left 2x2, patch 1 = top-right (Morton: (0,0),(0,1),(1,0),(1,1))
    np.testing.assert_array_equal(st.perm[:8], [0, 1, 4, 5, 2, 3, 6, 7])
    assert sorted(st.perm.tolist()) == list(range(16))


@pytest.mark.parametrize("dim,n,leaf", LAYOUTS)
@pytest.mark.parametrize("triangle", ["lower", "upper", "none"])
@pytest.mark.parametrize("diag", ["full", "triangular"])
def test_transposed_block_is_the_transpose(dim, n, leaf, triangle, diag, gen):
    blk = _randomized(GFMMBlock(n, leaf, dim=dim, triangle=triangle, diag=diag), gen)
    mirror = blk.transposed()
    M = blk.dense()
    expected = {"lower": "upper", "upper": "lower", "none": "none"}[triangle]
    assert mirror.triangle == expected
    # float64 round-off of sums of ~n products of O(max|M|) terms
    assert torch.allclose(mirror.dense(), M.T, atol=1e-13 * n * float(M.abs().max()), rtol=0)
    # an independent copy: changing it leaves the original alone
    with torch.no_grad():
        mirror.near.add_(1.0)
    assert torch.equal(blk.dense(), M)


def test_transposed_refuses_unit_diagonal():
    with pytest.raises(ValueError, match="unit-diagonal block has no unit-diagonal mirror"):
        GFMMBlock(64, 8, triangle="lower", diag="unit").transposed()
