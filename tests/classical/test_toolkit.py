"""Toolkit functions against references: scikit-learn, dense linear algebra, closed forms."""

import math

import numpy as np
import pytest
import torch

import neuralfactor as nf
from neuralfactor.classical.toolkit import (
    GAP_CRITERIA,
    RANK_METHODS,
    aic_rank,
    factored_nuclear_gd,
    gap_rank,
    gavish_donoho_lambda,
    gavish_donoho_omega,
    gavish_donoho_rank,
    gavish_donoho_threshold,
    identifiability,
    lowrank_power,
    marchenko_pastur_median,
    nmf,
    nuclear_norm,
    select_rank,
    sparse_nmf,
    svt,
)
from neuralfactor.core.metrics import effective_rank


def _orth(m, r, g):
    return torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64)).Q


def _spiked(m, n, spikes, sigma, g):
    U, V = _orth(m, len(spikes), g), _orth(n, len(spikes), g)
    S = torch.tensor(spikes, dtype=torch.float64)
    return (U * S) @ V.T + sigma * torch.randn(m, n, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------ NMF
def test_nmf_matches_scikit_learn_and_is_nonnegative(gen):
    from sklearn.decomposition import NMF

    X = torch.rand(20, 15, generator=gen, dtype=torch.float64)
    lr = nmf(X, 4, seed=3)
    ref = NMF(n_components=4, init="nndsvda", max_iter=1000, tol=1e-6, random_state=3)
    W = ref.fit_transform(X.numpy())
    np.testing.assert_allclose(lr.U.numpy(), W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lr.V.numpy(), ref.components_, rtol=1e-10, atol=1e-12)
    assert (lr.U >= 0).all() and (lr.V >= 0).all()


def test_nmf_recovers_planted_nonnegative_rank(gen):
    W = torch.rand(30, 3, generator=gen, dtype=torch.float64)
    H = torch.rand(3, 25, generator=gen, dtype=torch.float64)
    X = W @ H
    lr = nmf(X, 3, max_iter=5000, tol=1e-12)
    # an exactly nonnegative-rank-3 matrix; CD converges linearly, 1e-6 relative is reached
    rel = torch.linalg.norm(X - lr.reconstruct()) / torch.linalg.norm(X)
    assert rel < 1e-4, rel


def test_nmf_batched_equals_looped_and_keeps_dtype(gen):
    X = torch.rand(3, 12, 10, generator=gen, dtype=torch.float32)
    lr = nmf(X, 2)
    assert lr.U.shape == (3, 12, 2) and lr.V.shape == (3, 2, 10) and lr.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(lr[i].reconstruct(), nmf(X[i], 2).reconstruct())


def test_sparse_nmf_gives_parts_based_sparser_factors(gen):
    # Planted parts: 4 disjoint column blocks (the "parts"), nonnegative mixtures of them.
    parts = torch.zeros(4, 40, dtype=torch.float64)
    for j in range(4):
        parts[j, 10 * j : 10 * j + 10] = 1.0
    coeff = torch.rand(60, 4, generator=gen, dtype=torch.float64)
    X = coeff @ parts
    dense = nmf(X, 4)
    sparse = sparse_nmf(X, 4, alpha=1e-3)
    zeros = lambda t: float((t.abs() < 1e-10).double().mean())  # noqa: E731
    assert zeros(sparse.V) >= zeros(dense.V)
    assert zeros(sparse.V) == pytest.approx(0.75), "exactly the planted support (10 of 40)"
    # each learned part is (up to scale) one planted block: cosine similarity ~ 1
    H = sparse.V / sparse.V.norm(dim=1, keepdim=True)
    P = parts / parts.norm(dim=1, keepdim=True)
    best = (H @ P.T).max(dim=1).values
    assert (best > 0.9999).all(), best
    # the penalty costs a little accuracy, bounded by the shrinkage (alpha-sized)
    assert torch.linalg.norm(X - sparse.reconstruct()) / torch.linalg.norm(X) < 1e-2
    with pytest.raises(ValueError, match="'sparse' parameter of sparse_nmf must be one of"):
        sparse_nmf(X, 4, sparse="V")
    assert sorted((H @ P.T).argmax(dim=1).tolist()) == [0, 1, 2, 3]


def test_nmf_rejects_negative_entries():
    X = torch.ones(4, 4, dtype=torch.float64)
    X[1, 2] = -0.5
    with pytest.raises(ValueError, match=r"must be nonnegative: found 1 negative entry .*\(1, 2\)"):
        nmf(X, 2)
    with pytest.raises(ValueError, match="must be nonnegative"):
        nf.make_factorizer("nmf", rank=2).factorize(X)


def test_nmf_factorizer_registered(gen):
    X = torch.rand(10, 8, generator=gen, dtype=torch.float64)
    f = nf.make_factorizer("nmf", rank=3, max_iter=200)
    assert "nmf" in nf.available_factorizers()
    lr = f.factorize(X)
    assert lr.rank == 3 and (lr.U >= 0).all()


# ----------------------------------------------------------------------- nuclear norm
def test_svt_closed_form_and_prox_optimality(gen):
    X = torch.randn(12, 8, generator=gen, dtype=torch.float64)
    s = torch.linalg.svdvals(X)
    tau = float(s[3])
    Y = svt(X, tau)
    # singular values are soft-thresholded
    torch.testing.assert_close(torch.linalg.svdvals(Y.reconstruct())[:3], s[:3] - tau)
    assert int(effective_rank(Y.reconstruct(), rtol=1e-10)) == 3

    def objective(Z):
        return 0.5 * (Z - X).square().sum() + tau * nuclear_norm(Z)

    best = objective(Y.reconstruct())
    for _ in range(20):  # the prox is the global minimizer of a strongly convex function
        Z = Y.reconstruct() + 1e-2 * torch.randn(12, 8, generator=gen, dtype=torch.float64)
        assert objective(Z) > best
    torch.testing.assert_close(svt(X, 0.0).reconstruct(), X)
    # 1x1: soft thresholding of |x|
    torch.testing.assert_close(
        svt(torch.tensor([[-3.0]], dtype=torch.float64), 1.0).reconstruct(),
        torch.tensor([[-2.0]], dtype=torch.float64),
    )


def test_svt_batched_tau_and_bad_tau(gen):
    X = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    tau = torch.tensor([0.5, 1.0], dtype=torch.float64)
    out = svt(X, tau).reconstruct()
    torch.testing.assert_close(out[1], svt(X[1], 1.0).reconstruct())
    with pytest.raises(ValueError, match="'tau' parameter of svt must be >= 0"):
        svt(X, -1.0)
    with pytest.raises(ValueError, match=r"'tau' parameter of svt must be >= 0 with shape \(2,\)"):
        svt(X, torch.ones(3, dtype=torch.float64))


def test_factored_gd_with_weight_decay_reaches_nuclear_norm_solution(gen):
    # a clear spectrum so plain GD converges in a few thousand steps
    M = _spiked(20, 15, [10.0, 8.0, 6.0], 0.05, gen)
    lam = 2.0
    res = factored_nuclear_gd(M, lam, rank=6, max_iter=20000, tol=1e-11)
    assert res.converged
    ref = svt(M, lam).reconstruct()
    rel = torch.linalg.norm(res.lowrank.reconstruct() - ref) / torch.linalg.norm(ref)
    assert rel < 1e-8, rel
    # same optimal value: 1/2||X - M||^2 + lam ||X||_*
    X = res.lowrank.reconstruct()
    obj = 0.5 * (X - M).square().sum() + lam * nuclear_norm(X)
    obj_ref = 0.5 * (ref - M).square().sum() + lam * nuclear_norm(ref)
    assert abs(float(obj - obj_ref)) < 1e-9 * float(obj_ref)
    # GD with step <= 1/L decreases the objective (up to float64 round-off once converged)
    obj_hist = res.objective
    assert all(b <= a * (1 + 1e-12) for a, b in zip(obj_hist, obj_hist[1:], strict=False))


def test_factored_gd_bad_input():
    with pytest.raises(ValueError, match="'lam' parameter of factored_nuclear_gd must be > 0"):
        factored_nuclear_gd(torch.eye(3, dtype=torch.float64), 0.0, 2)
    with pytest.raises(ValueError, match=r"'rank' parameter of factored_nuclear_gd must be an int"):
        factored_nuclear_gd(torch.eye(3, dtype=torch.float64), 1.0, 4)


# ----------------------------------------------------------------------- rank selection
def test_gavish_donoho_lambda_matches_published_closed_form():
    # lambda*(1) = 4/sqrt(3) (the paper's title)
    assert gavish_donoho_lambda(1.0) == pytest.approx(4 / math.sqrt(3), rel=1e-14)
    for beta in np.linspace(0.05, 1.0, 20):
        b = float(beta)
        closed = math.sqrt(2 * (b + 1) + 8 * b / (b + 1 + math.sqrt(b**2 + 14 * b + 1)))
        assert gavish_donoho_lambda(b) == pytest.approx(closed, rel=1e-14)
    with pytest.raises(ValueError, match=r"'beta' parameter .* must be in \(0, 1\]"):
        gavish_donoho_lambda(1.5)


def test_marchenko_pastur_median_against_random_matrix(gen):
    # eigenvalues of W W^T / n (W: p x n Gaussian) follow MP(beta = p/n); at p = 400 the
    # sample median fluctuates by ~0.6% (std over seeds), so 3% is a 5-sigma bound
    p, n = 400, 800
    W = torch.randn(p, n, generator=gen, dtype=torch.float64)
    ev = torch.linalg.eigvalsh(W @ W.T / n)
    assert marchenko_pastur_median(p / n) == pytest.approx(float(ev.median()), rel=0.03)


@pytest.mark.parametrize("beta", [0.1, 0.25, 0.5, 0.75, 1.0])
def test_omega_polynomial_close_to_exact(beta):
    # The paper's cubic fit of omega(beta) = lambda*(beta)/sqrt(mu_beta) is accurate to ~0.01.
    approx = 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
    assert gavish_donoho_omega(beta) == pytest.approx(approx, rel=1e-14)
    assert gavish_donoho_omega(beta, exact=True) == pytest.approx(approx, abs=0.01)


def test_gavish_donoho_known_noise_uses_larger_dimension(gen):
    # the 200 x 1000 rank-5 case where sqrt(min(m, n)) scaling returned rank 159
    X = _spiked(200, 1000, [200.0, 150.0, 120.0, 100.0, 80.0], 1.0, gen)
    tau = gavish_donoho_threshold(X, sigma=1.0)
    assert tau == pytest.approx(gavish_donoho_lambda(0.2) * math.sqrt(1000), rel=1e-14)
    assert gavish_donoho_rank(X, sigma=1.0) == 5
    assert gavish_donoho_rank(X.T, sigma=1.0) == 5
    assert gavish_donoho_rank(X) == 5  # unknown noise
    # the wrong scaling would keep many noise directions
    s = torch.linalg.svdvals(X)
    assert int((s > gavish_donoho_lambda(0.2) * math.sqrt(200)).sum()) > 100


def test_aic_formula_against_dense_residuals(gen):
    X = _spiked(30, 20, [20.0, 15.0, 10.0], 0.1, gen)
    r, aic = aic_rank(X, sigma=0.1)
    U, S, Vh = torch.linalg.svd(X)
    for k in range(0, 21):
        Xk = (U[:, :k] * S[:k]) @ Vh[:k]
        expected = float((X - Xk).square().sum()) / 0.01 + 2 * k * (30 + 20 - k)
        assert float(aic[k]) == pytest.approx(expected, rel=1e-9)
    assert r == int(torch.argmin(aic))


def test_aic_selects_planted_rank_on_rectangular_matrix(gen):
    # AIC keeps s_r > sigma sqrt(2 (m + n - 2r + 1)); for 200 x 40 that is 5% above the noise
    # edge sigma (sqrt(m) + sqrt(n)), so pure-noise directions are dropped. (For near-square
    # matrices the threshold falls below the edge and AIC over-selects: see aic_rank's notes.)
    X = _spiked(200, 40, [20.0, 15.0, 10.0], 0.1, gen)
    assert aic_rank(X, sigma=0.1)[0] == 3
    assert aic_rank(X)[0] == 3  # sigma estimated from the median singular value


def test_gap_rank(gen):
    X = _spiked(40, 30, [10.0, 9.0, 8.0, 7.0], 1e-3, gen)
    assert gap_rank(X)[0] == 4
    assert gap_rank(X, criterion="difference")[0] == 4
    Z = torch.diag(torch.tensor([3.0, 2.0, 0.0, 0.0], dtype=torch.float64))
    assert gap_rank(Z)[0] == 2  # an exact zero is an infinite ratio gap
    with pytest.raises(ValueError, match="'criterion' parameter of gap_rank must be one of"):
        gap_rank(X, criterion="log")
    assert GAP_CRITERIA == ("ratio", "difference")


@pytest.mark.parametrize("method", RANK_METHODS)
def test_select_rank_every_method(method, gen):
    X = _spiked(120, 30, [30.0, 25.0, 20.0], 0.1, gen)
    assert select_rank(X, method) == 3
    with pytest.raises(ValueError, match="works on one matrix"):
        select_rank(X[None], method)


# ----------------------------------------------------------------------- identifiability
def test_identifiability_angles_gap_and_wedin(gen):
    Q = _orth(10, 3, gen)
    R = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64)).Q
    res = identifiability(Q, -2.0 * Q @ R)  # same subspace, rotated, scaled, sign-flipped
    assert float(res.max_angle) < 1e-7
    t = 0.3
    a = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(t)], [math.sin(t)], [0.0]], dtype=torch.float64)
    assert float(identifiability(a, b).max_angle) == pytest.approx(t, rel=1e-12)
    X = _spiked(30, 20, [10.0, 5.0, 1.0], 0.0, gen)
    E = 0.05 * torch.randn(30, 20, generator=gen, dtype=torch.float64)
    U1 = torch.linalg.svd(X).U[:, :2]
    U2 = torch.linalg.svd(X + E).U[:, :2]
    res = identifiability(U1, U2, X=X, rank=2, perturbation=E)
    assert float(res.gap) == pytest.approx(4.0, rel=1e-10)
    # Wedin: sin(theta_max) <= ||E||_2 / gap (a theorem; holds with margin here)
    assert math.sin(float(res.max_angle)) <= float(res.wedin_bound)


# ----------------------------------------------------------------------- low-rank power
@pytest.mark.parametrize("p", [1, 2, 5])
def test_lowrank_power_matches_dense(p, gen):
    U = torch.randn(12, 3, generator=gen, dtype=torch.float64) / 3
    V = torch.randn(3, 12, generator=gen, dtype=torch.float64) / 3
    lr = nf.LowRank(U, V)
    dense = torch.linalg.matrix_power(lr.reconstruct(), p)
    out = lowrank_power(lr, p)
    assert out.rank == 3
    torch.testing.assert_close(out.reconstruct(), dense, rtol=1e-10, atol=1e-12)
    # SVD form works too
    Us, S, Vh = torch.linalg.svd(lr.reconstruct())
    svd_form = nf.LowRank(Us[:, :3], Vh[:3], S[:3])
    torch.testing.assert_close(
        lowrank_power(svd_form, p).reconstruct(), dense, rtol=1e-10, atol=1e-12
    )


def test_lowrank_power_bad_input():
    lr = nf.LowRank(torch.ones(4, 2, dtype=torch.float64), torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs a square matrix"):
        lowrank_power(lr, 2)
    sq = nf.LowRank(torch.ones(4, 2, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="'p' parameter of lowrank_power must be an int >= 1"):
        lowrank_power(sq, 0)
    with pytest.raises(TypeError, match="must be a LowRank"):
        lowrank_power(torch.eye(3), 2)
