import math

import numpy as np
import pytest
import torch
from tests.helpers import planted

from neuralfactor.classical.svd import truncated_svd
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.metrics import (
    calculated_sigma,
    calculated_U,
    calculated_V,
    effective_rank,
    optimal_scaled_loss,
    orthogonality_defect,
    principal_angles,
    ratio_to_optimum,
    relative_spectral_error,
    scaled_loss,
    singular_value_gap,
    subspace_distance,
)


def test_truncated_svd_meets_eckart_young_exactly(gen):
    X = torch.randn(5, 30, 40, generator=gen, dtype=torch.float64)
    s = torch.linalg.svdvals(X)
    for r in (1, 7, 30):
        lr = truncated_svd(X, r)
        expected = s[..., r:].square().sum(-1) / s.square().sum(-1)
        torch.testing.assert_close(scaled_loss(X, lr), expected, rtol=1e-12, atol=1e-15)
        if r < 30:  # at full rank the optimum is 0 and the loss is round-off: no ratio
            torch.testing.assert_close(
                ratio_to_optimum(X, lr), torch.ones(5, dtype=torch.float64), rtol=1e-12, atol=0
            )
        # spectral error of the truncation is s_{r+1}/s_1 (0 at full rank)
        nxt = s[..., r] if r < 30 else torch.zeros(5, dtype=torch.float64)
        torch.testing.assert_close(
            relative_spectral_error(X, lr), nxt / s[..., 0], rtol=1e-10, atol=1e-13
        )


def test_random_rank_r_never_beats_optimum(gen):
    X = torch.randn(4, 20, 25, generator=gen, dtype=torch.float64)
    A = torch.randn(4, 20, 3, generator=gen, dtype=torch.float64)
    B = torch.randn(4, 3, 25, generator=gen, dtype=torch.float64)
    assert (ratio_to_optimum(X, LowRank(A, B)) > 1).all()
    # even the best V for a random U cannot: it is the projection onto span(A), whose scaled
    # loss is exactly 1 - ||Q^T X||^2 / ||X||^2 (Q an orthonormal basis of span(A))
    Q = torch.linalg.qr(A).Q
    s = torch.linalg.svdvals(X)
    total = (s**2).sum(-1)
    expected = (1 - (Q.mT @ X).square().sum((-2, -1)) / total) / ((s[..., 3:] ** 2).sum(-1) / total)
    ratio = ratio_to_optimum(X, calculated_V(X, A))
    torch.testing.assert_close(ratio, expected, rtol=1e-10, atol=0)
    assert (ratio > 1).all()


def test_ratio_on_exact_low_rank_is_one_when_recovered():
    X = planted((10, 12), rank=3)
    lr = truncated_svd(X, 3)
    assert float(optimal_scaled_loss(X, 3)) < 1e-28
    # optimum at round-off level: the ratio is noise, the scaled loss is what to report
    assert float(scaled_loss(X, lr)) < 1e-28


def test_scaled_loss_zero_matrix_conventions():
    Z = torch.zeros(3, 4, dtype=torch.float64)
    assert float(scaled_loss(Z, Z)) == 0.0
    assert math.isinf(float(scaled_loss(Z, torch.ones(3, 4, dtype=torch.float64))))


def test_scaled_loss_rejects_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"approximation has shape \(3, 5\) but X has shape \(3, 4\)"
    ):
        scaled_loss(torch.ones(3, 4), torch.ones(3, 5))


def test_effective_rank_catches_collapsed_factors(gen):
    U = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    V = torch.randn(6, 30, generator=gen, dtype=torch.float64)
    assert int(effective_rank(LowRank(U, V))) == 6
    collapsed = LowRank(U[:, :1].repeat(1, 6), V)  # six copies of one column: rank 1
    assert int(effective_rank(collapsed)) == 1
    assert int(effective_rank(collapsed.reconstruct())) == 1  # dense path agrees


def test_principal_angles_known_angles():
    # span{e1, e2} vs span{cos t e1 + sin t e3, e2}: angles (0, t)
    for t in (1e-9, 1e-4, 0.3, 1.2):
        A = torch.zeros(4, 2, dtype=torch.float64)
        A[0, 0] = A[1, 1] = 1
        B = torch.zeros(4, 2, dtype=torch.float64)
        B[0, 0], B[2, 0], B[1, 1] = math.cos(t), math.sin(t), 1
        ang = principal_angles(A, B)
        torch.testing.assert_close(
            ang, torch.tensor([0.0, t], dtype=torch.float64), rtol=1e-8, atol=1e-15
        )  # small angles exact: sine branch
        torch.testing.assert_close(
            subspace_distance(A, B), torch.tensor(math.sin(t), dtype=torch.float64)
        )


def test_principal_angles_sign_and_rotation_invariant(gen):
    A = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    R = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64)).Q
    assert float(principal_angles(A, -A @ R * 3.0).max()) < 1e-7


def test_orthogonality_defect():
    Q = torch.linalg.qr(torch.randn(10, 3, dtype=torch.float64)).Q
    assert float(orthogonality_defect(Q)) < 1e-14
    assert float(orthogonality_defect(Q.mT, rows=True)) < 1e-14
    assert float(orthogonality_defect(2 * Q)) == pytest.approx(3 * math.sqrt(3), rel=1e-12)


def test_calculated_factors_match_lstsq(gen):
    X = torch.randn(15, 20, generator=gen, dtype=torch.float64)
    U = torch.randn(15, 4, generator=gen, dtype=torch.float64)
    V = torch.randn(4, 20, generator=gen, dtype=torch.float64)
    ref_V = np.linalg.lstsq(U.numpy(), X.numpy(), rcond=None)[0]
    torch.testing.assert_close(calculated_V(X, U).V, torch.from_numpy(ref_V))
    ref_U = np.linalg.lstsq(V.numpy().T, X.numpy().T, rcond=None)[0].T
    torch.testing.assert_close(calculated_U(X, V).U, torch.from_numpy(ref_U))
    # the core refit is at least as good as either one-sided refit restricted to both spans
    cs = calculated_sigma(X, U, V)
    P = U @ torch.linalg.pinv(U)
    Qv = torch.linalg.pinv(V) @ V
    torch.testing.assert_close(cs.reconstruct(), P @ X @ Qv)


def test_calculated_V_of_true_U_is_optimal(gen):
    X = torch.randn(25, 30, generator=gen, dtype=torch.float64)
    lr = truncated_svd(X, 5)
    torch.testing.assert_close(
        ratio_to_optimum(X, calculated_V(X, lr.U)), torch.tensor(1.0, dtype=torch.float64)
    )


def test_singular_value_gap():
    X = torch.diag(torch.tensor([5.0, 3.0, 2.5, 1.0], dtype=torch.float64))
    assert float(singular_value_gap(X, 2)) == pytest.approx(0.5)
    assert float(singular_value_gap(X, 4)) == pytest.approx(1.0)
