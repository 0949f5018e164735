"""svds never refuses valid input (retries, then the documented dense fallback), and the one
sign convention (``svd_flip``) makes singular factors identical across seeds and methods."""

import pytest
import torch
from tests.helpers import planted

import neuralfactor as nf
from neuralfactor.classical.svd import svds
from neuralfactor.core.factorizer import FactorizationError
from neuralfactor.core.lowrank import LowRank, svd_flip


def _random_rank_r(m, n, r, g):
    """Exactly rank-r m x n matrix, singular values linspace(1/(k+1), 1, k) products (the
    reproducer of the PROPACK breakdown: s_r ~ 1e-2, s_{r+1} = round-off)."""

    def rm(a, b):
        u, _, vh = torch.linalg.svd(
            torch.randn(a, b, dtype=torch.float64, generator=g), full_matrices=False
        )
        k = min(a, b)
        return (u * torch.linspace(1 / (k + 1), 1, k, dtype=torch.float64)) @ vh

    return rm(m, r) @ rm(r, n)


def _assert_matches_svd(X, lr, rank, tol, orth_tol=None):
    """S equal to the dense reference's to ``tol`` (relative to s_1); U, V orthonormal to
    ``orth_tol`` (PROPACK's partial reorthogonalization keeps ~1e-10 in float64, not eps)."""
    ref = torch.linalg.svdvals(X)[:rank]
    torch.testing.assert_close(lr.S, ref, rtol=0, atol=tol * float(ref[0]))
    eye = torch.eye(rank, dtype=X.dtype)
    orth_tol = tol if orth_tol is None else orth_tol
    torch.testing.assert_close(lr.U.mT @ lr.U, eye, rtol=0, atol=orth_tol)
    torch.testing.assert_close(lr.V @ lr.V.mT, eye, rtol=0, atol=orth_tol)


@pytest.mark.parametrize("rank", [2, 10, 20])
def test_propack_recovers_exactly_rank_r_matrices_without_dense_fallback(rank):
    # Before: 1-4 of 20 draws per shape at ranks 10 and 20 raised FactorizationError (scipy's
    # PROPACK returned non-orthonormal vectors). Retrying with fresh starting vectors alone
    # (fallback="raise" forbids the dense path) must now succeed on every draw.
    g = torch.Generator().manual_seed(8)
    for m, n in [(50, 100), (100, 50), (64, 64), (40, 90)]:
        for _ in range(20):
            X = _random_rank_r(m, n, rank, g)
            lr = svds(X, rank, solver="propack", fallback="raise")
            _assert_matches_svd(X, lr, rank, 1e-10, 1e-8)  # float64: round-off


def test_propack_issue_reproducer_is_accepted():
    g = torch.Generator().manual_seed(8)

    def rm(r, c):
        u, _, vh = torch.linalg.svd(
            torch.randn(r, c, dtype=torch.float64, generator=g), full_matrices=False
        )
        k = min(r, c)
        return (u * torch.linspace(1 / (k + 1), 1, k, dtype=torch.float64)) @ vh

    a = rm(50, 10) @ rm(10, 100)
    lr = nf.make_factorizer("svds-propack", rank=10).factorize(a)
    _assert_matches_svd(a, lr, 10, 1e-10, 1e-8)


@pytest.mark.parametrize("solver", ["arpack", "propack", "lobpcg"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_svds_accepts_every_rank_up_to_min_m_n(solver, dtype):
    # rank = min(m, n) was refused for ARPACK/LOBPCG (scipy needs k < min(m, n)); it is now
    # computed by the documented dense fallback, other ranks by the Krylov solver.
    g = torch.Generator().manual_seed(1)
    X = planted((9, 7), rank=7, generator=g, dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4  # float32: ~1e3 eps on S and orthogonality
    for rank in range(1, 8):
        lr = nf.make_factorizer(f"svds-{solver}", rank=rank).factorize(X)
        _assert_matches_svd(X.double(), lr.to(torch.float64), rank, tol, 100 * tol)


@pytest.mark.parametrize("solver", ["arpack", "propack", "lobpcg"])
def test_svds_degenerate_inputs_are_exact(solver):
    # zero, constant (rank 1 < rank), one-hot and rank-deficient matrices: Krylov breakdowns
    X = torch.zeros(6, 8, dtype=torch.float64)
    lr = svds(X, 3, solver=solver)
    assert lr.S.tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(lr.U.mT @ lr.U, torch.eye(3, dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    cases = [
        torch.ones(6, 8, dtype=torch.float64),
        torch.zeros(6, 8, dtype=torch.float64).index_put_(
            (torch.tensor([2]), torch.tensor([5])), torch.tensor([1.0], dtype=torch.float64)
        ),
        planted((10, 12), rank=2, generator=g),
        torch.eye(7, dtype=torch.float64),
    ]
    for X in cases:
        lr = svds(X, 4, solver=solver)
        ref = torch.linalg.svdvals(X)
        # optimal: the scaled loss equals the Eckart-Young optimum to round-off
        err = ((X - lr.reconstruct()) ** 2).sum() / (ref**2).sum()
        opt = (ref[4:] ** 2).sum() / (ref**2).sum()
        assert abs(float(err - opt)) <= 1e-12, (X, err, opt)


def test_svds_fallback_raise_names_the_alternative():
    X = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    msg = r"could not compute 4 singular triplets of a 5x4 matrix \(scipy's svds needs rank <"
    with pytest.raises(FactorizationError, match=msg + r".* or the 'svd' factorizer"):
        svds(X, 4, solver="arpack", fallback="raise")
    # PROPACK stops on a rank-1 matrix at rank 3 (an invariant subspace): scipy's reason and
    # the number of starting vectors tried are named
    ones = torch.ones(6, 8, dtype=torch.float64)
    msg = r"\(An invariant subspace of dimension 2 was found.; 3 starting vectors tried\)"
    with pytest.raises(FactorizationError, match=msg):
        svds(ones, 3, solver="propack", retries=2, fallback="raise")


@pytest.mark.parametrize(
    ("kw", "exc", "msg"),
    [
        (
            {"fallback": "qr"},
            ValueError,
            r"'fallback' parameter of svds-arpack must be one of \['dense', 'raise'\]. Got 'qr'",
        ),
        ({"retries": -1}, ValueError, r"'retries' parameter .* must be an int >= 0. Got -1"),
        ({"tol": 1.5}, ValueError, r"'tol' parameter of svds-arpack must be a float in \[0, 1\)"),
        ({"tol": float("nan")}, ValueError, r"'tol' parameter .* Got nan"),
    ],
)
def test_svds_bad_parameters(kw, exc, msg):
    X = torch.randn(5, 4, dtype=torch.float64)
    with pytest.raises(exc, match=msg):
        svds(X, 2, solver="arpack", **kw)
    with pytest.raises(exc, match=msg):  # the registered factorizer checks them up front
        nf.make_factorizer("svds-arpack", rank=2, **kw)


def test_svd_flip_convention_is_exact():
    U = torch.tensor([[0.6, -0.8, 0.0], [-0.8, 0.6, 0.0]], dtype=torch.float64)
    V = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    S = torch.tensor([3.0, 2.0, 0.0], dtype=torch.float64)
    out = svd_flip(LowRank(U, V, S))
    # column 0: largest |.| is -0.8 -> flipped; column 1: -0.8 -> flipped; zero column kept
    assert out.U.tolist() == [[-0.6, 0.8, 0.0], [0.8, -0.6, 0.0]]
    assert out.V.tolist() == [[-1.0, -2.0], [-3.0, -4.0], [5.0, 6.0]]
    assert out.S is S
    # ties (equal magnitudes up to round-off): the first row decides, whatever the rounding
    t = torch.tensor([[-0.5], [0.5 + 1e-17], [0.5]], dtype=torch.float64)
    assert svd_flip(LowRank(t, torch.ones(1, 2, dtype=torch.float64))).U[0, 0] > 0
    t2 = torch.tensor([[-0.5], [0.5 + 1e-12], [0.5]], dtype=torch.float64)  # below sqrt(eps)
    assert svd_flip(LowRank(t2, torch.ones(1, 2, dtype=torch.float64))).U[0, 0] > 0
    # batched, and the product is unchanged bit for bit
    g = torch.Generator().manual_seed(0)
    lr = LowRank(torch.randn(3, 5, 2, generator=g), torch.randn(3, 2, 4, generator=g))
    out = svd_flip(lr)
    assert torch.equal(out.reconstruct(), lr.reconstruct())
    idx = out.U.abs().argmax(dim=-2, keepdim=True)
    assert bool((out.U.gather(-2, idx) > 0).all())


@pytest.mark.parametrize(
    "name", ["svd", "scipy-gesdd", "rsvd", "rsvd-gemm", "warm-subspace", "svds-propack"]
)
def test_singular_factors_identical_across_seeds_and_methods(name):
    # A matrix with a gap (s = 10, 8, 6, 4 then 1e-3 noise): the rank-4 singular vectors are
    # unique up to sign, so after the sign convention every method and seed gives the same
    # U and V (not up to sign) to round-off.
    g = torch.Generator().manual_seed(3)
    m, n, r = 40, 30, 4
    U0 = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64)).Q
    V0 = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64)).Q
    S0 = torch.tensor([10.0, 8.0, 6.0, 4.0], dtype=torch.float64)
    X = (U0 * S0) @ V0.T + 1e-3 * torch.randn(m, n, generator=g, dtype=torch.float64)
    ref = nf.make_factorizer("svd", rank=r).factorize(X)
    seeds = [0, 1, 2] if name not in ("svd", "scipy-gesdd") else [None]
    for seed in seeds:
        f = nf.make_factorizer(name, rank=r, **({} if seed is None else {"seed": seed}))
        lr = f.factorize(X)
        V = lr.V if lr.S is not None else lr.V / lr.V.norm(dim=-1, keepdim=True)
        # the largest |.| of each column of U is positive
        idx = lr.U.abs().argmax(dim=0)
        assert bool((lr.U[idx, torch.arange(r)] > 0).all())
        # 1e-8: the randomized methods converge to ~(1e-3 / 4)^(2 n_iter + 1) of the gap
        assert float((lr.U - ref.U).abs().max()) <= 1e-8, (name, seed)
        assert float((V - ref.V).abs().max()) <= 1e-8, (name, seed)


def test_warm_subspace_state_is_independent_of_the_output_flip():
    # The carried basis is internal: a stream factorized frame by frame (each output flipped)
    # equals the same stream in one call, and its basis is the raw iteration's basis.
    g = torch.Generator().manual_seed(4)
    X = planted((5, 20, 16), rank=16, decay=0.6, generator=g)
    one = nf.make_factorizer("warm-subspace", rank=3)
    lr = one.factorize(X)
    loop = nf.make_factorizer("warm-subspace", rank=3)
    parts = [loop.factorize(X[t]) for t in range(5)]
    torch.testing.assert_close(torch.stack([p.U for p in parts]), lr.U, rtol=0, atol=1e-12)
    torch.testing.assert_close(loop.basis, one.basis, rtol=0, atol=1e-12)
