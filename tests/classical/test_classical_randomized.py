import pytest
import torch
from tests.helpers import evolving_frames, planted

from neuralfactor.classical._kernels import gram_orthonormalize
from neuralfactor.classical.randomized import randomized_svd, randomized_svd_gemm
from neuralfactor.classical.streaming import warm_subspace_from
from neuralfactor.core.metrics import orthogonality_defect, ratio_to_optimum, scaled_loss


@pytest.mark.parametrize("fn", [randomized_svd, randomized_svd_gemm])
@pytest.mark.parametrize("decay", [0.9, 0.7])
def test_ratio_within_1_percent_on_decaying_spectra_float64(fn, decay, gen):
    X = planted((8, 128, 256), rank=128, decay=decay, generator=gen)
    for r in (6, 12, 30):
        ratio = ratio_to_optimum(X, fn(X, r, generator=gen))
        assert ratio.max() <= 1.01, (r, ratio.max())


@pytest.mark.parametrize("r", [6, 12, 30])
def test_rsvd_gemm_float32_finite_on_numerically_rank_deficient_input(r, gen):
    # rank 3 << sketch width: Cholesky-QR's Gram matrix is singular in float32
    X = planted((16, 128, 256), rank=3, generator=gen, dtype=torch.float32)
    X[:4] *= 1e-20  # and some frames at tiny scale
    out = randomized_svd_gemm(X, r, generator=gen)
    assert torch.isfinite(out.U).all() and torch.isfinite(out.V).all()
    # relative error of float32 work: loss ~ eps32^2 * modest factor
    assert scaled_loss(X, out).max() < 1e-9


def test_gram_orthonormalize_orthonormal_and_zero_columns_for_deficient(gen):
    Y = torch.randn(200, 12, generator=gen, dtype=torch.float32)
    Q = gram_orthonormalize(Y)
    assert float(orthogonality_defect(Q)) < 1e-5  # float32 round-off, sqrt(k) eps scale
    Yd = torch.randn(200, 3, generator=gen) @ torch.randn(3, 12, generator=gen)  # rank 3
    Qd = gram_orthonormalize(Yd)
    norms = Qd.norm(dim=0)
    assert torch.isfinite(Qd).all()
    assert int((norms > 0.5).sum()) >= 3


def test_warm_subspace_from_given_basis_batched(gen):
    X = evolving_frames(20, 32, 48)
    basis = torch.linalg.svd(X[0]).Vh[:10].mT  # right basis of frame 0, broadcast to all
    lr, new_basis = warm_subspace_from(X[1:4], basis, 6)
    assert new_basis.shape == (3, 48, 10)
    assert ratio_to_optimum(X[1:4], lr).max() <= 1.01
    with pytest.raises(ValueError, match=r"must have shape \(\*, n=48, l\) with l >= rank=6"):
        warm_subspace_from(X[1:4], basis[:, :4], 6)
