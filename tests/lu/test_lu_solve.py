"""Structured solves, refinement, conditioning diagnostic, preconditioning, evaluation."""

import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import torch

from neuralfactor.lu.evaluate import evaluate_lapack, evaluate_learned
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import OPERATORS, make_operator
from neuralfactor.lu.precond import PRECONDITIONERS, iteration_counts
from neuralfactor.lu.solve import (
    IllConditionedFactorsWarning,
    LUSolver,
    SingularBlockError,
    factor_conditioning,
)


def _random_factors(n, leaf, dim, diag, gen):
    """Random, well-conditioned L and U: small random maps plus a dominant identity diagonal."""
    m = LUNetwork(n, leaf, dim=dim, diag=diag)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for blk in (m.L, m.U):
            d = blk.near_t == blk.near_s
            blk.near[d] += 3 * torch.eye(leaf, dtype=torch.float64)
    return m


def _dense_A(m):
    Ld, Ud = m.dense_factors()
    A = (Ld @ Ud).numpy()
    if m.perm is not None:
        inv = np.argsort(m.perm)
        A = A[np.ix_(inv, inv)]
    return A


def _exact_cholesky_model(A, n, leaf):
    """Banded SPD A: its Cholesky factors are block-bidiagonal, i.e. exactly representable in
    the near field (bridges zero), which gives a closed-form 'perfectly learned' model."""
    C = np.linalg.cholesky(A)
    m = LUNetwork(n, leaf, diag="full")
    m.L.set_near_from(torch.as_tensor(C))
    m.U.set_near_from(torch.as_tensor(C.T))
    return m


@pytest.mark.parametrize("dim,n,leaf", [(1, 256, 32), (1, 128, 8), (2, 256, 16), (2, 256, 4)])
@pytest.mark.parametrize("diag", ["full", "triangular", "unit"])
def test_structured_solve_matches_truth(dim, n, leaf, diag, gen):
    m = _random_factors(n, leaf, dim, diag, gen)
    A = _dense_A(m)
    X = torch.randn(4, n, generator=gen, dtype=torch.float64).numpy()
    Xh = LUSolver(m).solve(X @ A.T)
    # well-conditioned factors (cond(A) ~ 10): float64 round-off level
    assert np.abs(Xh - X).max() <= 1e-10 * np.abs(X).max()
    # single vector and torch input keep their kind and shape
    x1 = LUSolver(m).solve(torch.as_tensor(A @ X[0]))
    assert isinstance(x1, torch.Tensor) and x1.shape == (n,)


def test_zero_diagonal_block_named(gen):
    m = _random_factors(128, 8, 1, "full", gen)
    with torch.no_grad():
        m.U.near[(m.U.near_t == 5) & (m.U.near_s == 5)] = 0.0
    with pytest.raises(
        SingularBlockError,
        match=r"Diagonal block 5 \(rows 40:48\) of U is singular",
    ):
        LUSolver(m)


def test_bad_rhs(gen):
    s = LUSolver(_random_factors(64, 8, 1, "full", gen))
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(k, n\) with n=64"):
        s.solve(np.zeros(63))
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.solve(np.full(64, np.nan))
    with pytest.raises(ValueError, match="'steps' parameter"):
        s.refine(np.eye(64), np.ones(64), steps=-1)


def test_refinement_and_preconditioning_with_perturbed_factors(gen):
    A = make_operator("laplacian-1d", 256).toarray()
    m = _exact_cholesky_model(A, 256, 32)
    b = A @ torch.randn(256, generator=gen, dtype=torch.float64).numpy()
    its = iteration_counts(A, b, solver=LUSolver(m))
    assert set(its) == set(PRECONDITIONERS)
    assert its["learned"]["iters"] == 1 and its["learned"]["rel_residual"] < 1e-8
    # the unpreconditioned 1-D Laplacian needs ~n GMRES iterations: the count is real
    assert its["none"]["iters"] > 100
    # perturb the factors by 1e-6 relative: refinement must gain about log10(1/(cond*1e-6))
    with torch.no_grad():
        m.U.near.mul_(1 + 1e-6 * torch.randn(m.U.near.shape, generator=gen, dtype=torch.float64))
    s = LUSolver(m)
    X = torch.randn(3, 256, generator=gen, dtype=torch.float64).numpy()
    B = X @ A.T
    e0 = np.linalg.norm(s.solve(B) - X) / np.linalg.norm(X)
    e1 = np.linalg.norm(s.refine(A, B, steps=1) - X) / np.linalg.norm(X)
    assert e1 < 0.1 * e0


def test_conditioning_warning(gen):
    m = _random_factors(64, 8, 1, "full", gen)
    assert not factor_conditioning(m, warn=False)["meaningless"]
    with torch.no_grad():  # one nearly singular diagonal block (pivot ~1e-15 relative)
        d = (m.L.near_t == 2) & (m.L.near_s == 2)
        blk = m.L.near[d][0]
        u, s, vt = torch.linalg.svd(blk)
        s[-1] = s[0] * 1e-15
        m.L.near[d] = (u * s) @ vt
    with pytest.warns(IllConditionedFactorsWarning, match="meaningless"):
        c = factor_conditioning(m, rel_error=1e-8)
    assert c["cond_LU"] > 1e13


def test_evaluate_exact_factors_against_lapack(gen):
    A = make_operator("biharmonic-1d", 256).toarray()
    m = _exact_cholesky_model(A, 256, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedFactorsWarning)
        r = evaluate_learned(A, m, samples=10)
    lap = evaluate_lapack(A, "float64", samples=10)
    # exact factors: operator error at round-off, solution error of the same order as LAPACK's
    # (cond(A) ~ 7e8 for the 1-D biharmonic, so both lose ~9 digits)
    assert r["op_err_fro"] < 1e-14 and lap["op_err_fro"] < 1e-14
    assert r["sol_err_median"] < 100 * lap["sol_err_median"] + 1e-12
    assert 1e8 < r["cond_A"] < 1e10
    lap32 = evaluate_lapack(A, "float32", samples=10)
    assert lap32["sol_err_median"] > 1e3 * lap["sol_err_median"]


@pytest.mark.parametrize("name", OPERATORS)
def test_operators_scaled_and_nonsingular(name):
    A = make_operator(name, 64)
    Ad = A.toarray() if hasattr(A, "toarray") else A
    assert np.abs(Ad).max() == pytest.approx(1.0)
    assert np.linalg.cond(Ad) < 1e12
    # LAPACK LU exists (no zero pivot)
    assert np.abs(np.diag(sla.lu_factor(Ad)[0])).min() > 0


def test_operator_bad_input():
    with pytest.raises(ValueError, match="'operator' parameter must be one of"):
        make_operator("poisson", 64)
    with pytest.raises(ValueError, match="perfect square.*try 49 or 64"):
        make_operator("laplacian-2d", 50)


def test_right_preconditioned_gmres_monitors_the_true_residual(gen):
    """method='gmres-right' runs GMRES on A M: exact factors take 1 iteration, no
    preconditioner takes as many as left GMRES, and every converged count has a true residual
    at the tolerance (left GMRES stops on ||M r||, which an ill-conditioned M can fool)."""
    A = make_operator("laplacian-1d", 256).toarray()
    m = _exact_cholesky_model(A, 256, 32)
    b = A @ torch.randn(256, generator=gen, dtype=torch.float64).numpy()
    right = iteration_counts(A, b, solver=LUSolver(m), method="gmres-right")
    left = iteration_counts(A, b, solver=LUSolver(m), method="gmres")
    assert right["learned"]["iters"] == 1 and right["learned"]["rel_residual"] < 1e-8
    assert right["none"]["iters"] == left["none"]["iters"]
    for name, r in right.items():
        if r["converged"]:
            assert r["rel_residual"] <= 1e-8 * (1 + 1e-6), name
    with pytest.raises(ValueError, match="'gmres', 'gmres-right' or 'cg'"):
        iteration_counts(A, b, preconditioners=("none",), method="bicg")
