"""Training: a tiny operator is learned, transpose loss, block-wise freezing, bad input, NaN."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import make_operator
from neuralfactor.lu.train import LUTrainConfig, _block_dependencies, _Objective, train_lu
from neuralfactor.train.checkpoint import load_model
from neuralfactor.train.loop import TrainingDivergedError


@pytest.mark.parametrize("op", ["laplacian-1d", "convdiff-1d"])
def test_tiny_operator_learned(op, seed):
    A = make_operator(op, 32)
    m = LUNetwork(32, 8, diag="triangular", seed=seed)
    m.init_from_operator(A)
    start = _Objective(m, torch.as_tensor(A.toarray()), False).rel_fro()
    res = train_lu(A, m, LUTrainConfig(optimizer="lbfgs", steps=10, inner=20))
    # starts at ~0.4-0.6 (L = I); 200 L-BFGS iterations in float64 reach ~1e-5 on these
    # operators for every seed we tried: 1e-4 is a 4000x reduction with a 10x safety margin
    assert start > 0.3
    assert res.rel_fro < 1e-4
    Ld, Ud = m.dense_factors()
    err = np.linalg.norm((Ld @ Ud).numpy() - A.toarray()) / np.linalg.norm(A.toarray())
    assert err == pytest.approx(res.rel_fro, rel=1e-6)
    # the factors are still exactly triangular after training
    assert float(torch.triu(Ld, 1).abs().max()) == 0.0
    assert float(torch.tril(Ud, -1).abs().max()) == 0.0


def test_transpose_loss_doubles_full_batch_loss(gen):
    # with identity inputs the transposed graph sees the same matrix: loss_T == loss exactly
    A = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    m = LUNetwork(64, 8, diag="full", seed=1)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    with torch.no_grad():
        plain = float(_Objective(m, A, False)())
        both = float(_Objective(m, A, True)())
    assert both == pytest.approx(2 * plain, rel=1e-12)
    # but on one block the transposed graph adds block-column information
    blk = slice(8, 16)
    with torch.no_grad():
        one, two = float(_Objective(m, A, False)(blk)), float(_Objective(m, A, True)(blk))
    assert two != pytest.approx(2 * one)


def test_block_dependencies_planted():
    m = LUNetwork(64, 8, diag="full")
    deps = _block_dependencies(m, transpose_loss=False)
    # block-row 0 of LU = L_00 U_0. : of L only the diagonal near block 0 feeds it
    near0 = (m.L.near_t == 0) & (m.L.near_s == 0)
    assert torch.equal(deps[0]["L.near"], near0)
    for name, mask in deps[0].items():
        if name.startswith("L.") and name != "L.near":
            assert not mask.any(), name
    # the last block-row depends on every parameter of L that reaches leaf N-1
    assert deps[-1]["L.near"].sum() == 2 and deps[-1]["L.dec.3"].sum() == 1


def test_blockwise_freezes_finished_rows(tmp_path):
    A = make_operator("convdiff-1d", 32)
    m = LUNetwork(32, 8, diag="triangular")
    res = train_lu(
        A,
        m,
        LUTrainConfig(
            optimizer="lbfgs", blockwise=True, transpose_loss=True, block_steps=2, eval_every=1
        ),
        checkpoint_dir=tmp_path,
    )
    assert [s["stage"] for s in res.stages] == ["block0", "block1", "block2", "block3"]
    after0, _ = load_model(tmp_path / "block0" / "last", expected_class=LUNetwork)
    Ad = torch.as_tensor(A.toarray())

    def row0(model):
        Ld, Ud = model.dense_factors()
        return (Ld @ Ud - Ad)[:8]

    # every parameter feeding block-row 0 was frozen after stage 0: row 0 is bit-identical
    assert torch.equal(row0(after0), row0(m))
    assert res.rel_fro < 0.05


def test_resume_continues(tmp_path):
    A = make_operator("laplacian-1d", 32)
    cfg = LUTrainConfig(optimizer="lbfgs", steps=4, inner=5, eval_every=2)
    ref = LUNetwork(32, 8, diag="full")
    train_lu(A, ref, cfg)
    m = LUNetwork(32, 8, diag="full")
    part = LUTrainConfig(optimizer="lbfgs", steps=2, inner=5, eval_every=2)
    train_lu(A, m, part, checkpoint_dir=tmp_path)
    m2 = LUNetwork(32, 8, diag="full")
    train_lu(A, m2, cfg, checkpoint_dir=tmp_path, resume=True)
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_bad_operators():
    m = LUNetwork(32, 8)
    with pytest.raises(ValueError, match=r"must be a square matrix \(n, n\). Got shape \(32, 16\)"):
        train_lu(np.ones((32, 16)), m)
    with pytest.raises(ValueError, match="singular to working precision"):
        A = make_operator("laplacian-1d", 32).toarray()
        A[5] = 0.0
        train_lu(A, m)
    with pytest.raises(ValueError, match="has size 64 but the model was built for n=32"):
        train_lu(sp.identity(64), m)
    with pytest.raises(TypeError, match="numpy array, torch tensor or scipy.sparse"):
        train_lu([[1.0]], m)
    with pytest.raises(ValueError, match="contains NaN"):
        train_lu(np.full((32, 32), np.nan), m)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"optimizer": "sgd"}, "'optimizer' parameter"),
        ({"steps": -1}, "'steps' parameter"),
        ({"lr": 0.0}, "'lr' parameter"),
        ({"inner": 0}, "'inner' parameter"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        LUTrainConfig(**kw)


def test_bad_model_options():
    with pytest.raises(ValueError, match="'dtype' parameter of LUNetwork"):
        LUNetwork(32, 8, dtype="float16")
    with pytest.raises(ValueError, match="power of two"):
        LUNetwork(48, 8)


def test_nan_stops_and_keeps_last_good_state():
    A = make_operator("laplacian-1d", 32)
    m = LUNetwork(32, 8)
    with pytest.raises(TrainingDivergedError, match="at step"):
        train_lu(A, m, LUTrainConfig(optimizer="adam", lr=1e200, steps=50, eval_every=1))
    assert all(bool(torch.isfinite(p).all()) for p in m.parameters())


@pytest.mark.parametrize("seed", [0, 1])
def test_lm_learns_tiny_operator(seed):
    """Levenberg-Marquardt on the 1-D Laplacian (n=32, P=8), whose exact LU the model holds:
    15 steps of <= 40 CG iterations reach ~3e-7 for both seeds (1e-6: a 3x margin; L-BFGS
    from the same start reaches ~6e-6 in 600 iterations)."""
    A = make_operator("laplacian-1d", 32)
    m = LUNetwork(32, 8, diag="triangular", seed=seed)
    res = train_lu(A, m, LUTrainConfig(optimizer="lm", steps=15, cg_iters=40, lr=1e-3))
    assert res.rel_fro < 1e-6, res.rel_fro
    Ld, Ud = m.dense_factors()
    assert float(torch.triu(Ld, 1).abs().max()) == 0.0  # still exactly triangular
    assert float(torch.tril(Ud, -1).abs().max()) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_lm_learns_tiny_operator_with_unit_lower_factor(seed):
    """diag='unit' (Doolittle): the same 15 LM steps reach ~2e-5 for both seeds (slower than
    the free diagonal's ~3e-7: 1e-4 is a 5x margin), and L keeps its exact unit diagonal."""
    A = make_operator("laplacian-1d", 32)
    m = LUNetwork(32, 8, diag="unit", seed=seed)
    res = train_lu(A, m, LUTrainConfig(optimizer="lm", steps=15, cg_iters=40, lr=1e-3))
    assert res.rel_fro < 1e-4, res.rel_fro
    Ld, Ud = m.dense_factors()
    assert torch.equal(torch.diagonal(Ld), torch.ones(32, dtype=Ld.dtype))
    assert float(torch.triu(Ld, 1).abs().max()) == 0.0
    assert float(torch.tril(Ud, -1).abs().max()) == 0.0


def test_lm_optimizer_planted_least_squares():
    """A zero-residual nonlinear problem (rank-1 factorization u v^T = M) is solved to
    round-off; the damping adapts and is part of the (JSON) optimizer state."""
    from neuralfactor.train.lm import LevenbergMarquardt

    g = torch.Generator().manual_seed(0)
    u0, v0 = (
        torch.randn(7, generator=g, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64),
    )
    M = torch.outer(u0, v0)
    u = (u0 + 0.3 * torch.randn(7, generator=g, dtype=torch.float64)).requires_grad_()
    v = (v0 + 0.3 * torch.randn(5, generator=g, dtype=torch.float64)).requires_grad_()
    opt = LevenbergMarquardt([u, v], lambda ps: (torch.outer(ps[0], ps[1]) - M).reshape(-1))
    losses = [float(opt.step()) for _ in range(30)]
    assert losses[-1] < 1e-24
    # monotone: only descent steps are taken
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert "damping" in opt.state_dict()["param_groups"][0]  # saved with the checkpoint
    with pytest.raises(ValueError, match="damping > 0"):
        LevenbergMarquardt([u], lambda ps: ps[0], damping=0.0)


def test_lm_resume_continues(tmp_path):
    A = make_operator("laplacian-1d", 32)
    cfg = LUTrainConfig(optimizer="lm", steps=4, cg_iters=10, lr=1e-3, eval_every=2)
    ref = LUNetwork(32, 8)
    train_lu(A, ref, cfg)
    m = LUNetwork(32, 8)
    part = LUTrainConfig(optimizer="lm", steps=2, cg_iters=10, lr=1e-3, eval_every=2)
    train_lu(A, m, part, checkpoint_dir=tmp_path)
    m2 = LUNetwork(32, 8)
    train_lu(A, m2, cfg, checkpoint_dir=tmp_path, resume=True)
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_lm_refuses_blockwise_and_transpose_loss():
    with pytest.raises(ValueError, match="optimizer='lm' trains end to end"):
        LUTrainConfig(optimizer="lm", blockwise=True)
    with pytest.raises(ValueError, match="optimizer='lm' trains end to end"):
        LUTrainConfig(optimizer="lm", transpose_loss=True)
    with pytest.raises(ValueError, match="'cg_iters' parameter"):
        LUTrainConfig(optimizer="lm", cg_iters=0)


def _spd(n, seed=0):
    g = np.random.default_rng(seed)
    Q = g.standard_normal((n, n))
    return Q @ Q.T / n + np.eye(n)


def test_symmetric_model_is_l_lt(gen):
    """symmetric=True: U is L's transposed graph, the product is L L^T, only L is a parameter,
    and the structured solver works with the mirrored factor."""
    from neuralfactor.lu.solve import LUSolver

    m = LUNetwork(64, 8, diag="triangular", symmetric=True)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        d = m.L.near_t == m.L.near_s
        m.L.near[d] += 3 * torch.eye(8, dtype=torch.float64)
    L, U = m.dense_factors()
    assert torch.equal(U, L.T)
    assert float(torch.triu(L, 1).abs().max()) == 0.0
    eye = torch.eye(64, dtype=torch.float64)
    M = L @ L.T
    assert torch.allclose(m(eye), M.T, atol=1e-12, rtol=0)
    assert torch.allclose(m.rmatvec(eye), M, atol=1e-12, rtol=0)
    assert all(k.startswith("L.") for k in m.state_dict())
    assert m.num_parameters() == m.L.num_parameters()
    assert m.init_args["symmetric"] is True
    x = torch.randn(3, 64, generator=gen, dtype=torch.float64).numpy()
    xh = LUSolver(m).solve(x @ M.numpy())  # M symmetric
    assert np.abs(xh - x).max() <= 1e-10 * np.abs(x).max()
    # a non-symmetric model keeps its old init_args (old checkpoints load unchanged)
    assert "symmetric" not in LUNetwork(64, 8).init_args


def test_symmetric_model_refuses_bad_input():
    with pytest.raises(ValueError, match="cannot have a unit-diagonal L"):
        LUNetwork(32, 8, diag="unit", symmetric=True)
    m = LUNetwork(32, 8, diag="triangular", symmetric=True)
    with pytest.raises(ValueError, match="non-symmetric operator"):
        train_lu(make_operator("convdiff-1d", 32), m)
    with pytest.raises(ValueError, match="not positive definite"):
        train_lu(-make_operator("laplacian-1d", 32).toarray(), m)


def test_symmetric_lm_learns_tiny_operator():
    """L L^T on the 1-D Laplacian (n=32, P=8), whose Cholesky factor is block-bidiagonal (held
    exactly by the model). 15 LM steps of <= 40 CG iterations: 6.3e-6 with the plain loss
    (1e-4: 15x margin), 7.7e-16 with the preconditioned term at weight 0.1 (1e-10: it is the
    better-conditioned Gauss-Newton problem, not a lucky draw; 30 plain steps give 3.8e-10)."""
    A = make_operator("laplacian-1d", 32)
    for mu, tol in ((0.0, 1e-4), (0.1, 1e-10)):
        m = LUNetwork(32, 8, diag="triangular", symmetric=True)
        cfg = LUTrainConfig(optimizer="lm", steps=15, cg_iters=40, precond_weight=mu)
        res = train_lu(A, m, cfg)
        assert res.rel_fro < tol, (mu, res.rel_fro)
        L, U = m.dense_factors()
        assert torch.equal(U, L.T)


@pytest.mark.parametrize("diag", ["triangular", "full"])
def test_precond_term_is_the_weighted_residual(diag, gen):
    """The residual with precond_weight = [vec((LU - A)^T)/||A||_F ; mu vec(L0^-1 (LU - A) U0^-1)/sqrt(n)]
    with (L0, U0) frozen by ``refresh``; it vanishes at an exact factorization and the optimum is
    unchanged."""
    n = 32
    m = LUNetwork(n, 8, diag=diag)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for blk in (m.L, m.U):
            blk.near[blk.near_t == blk.near_s] += 3 * torch.eye(8, dtype=torch.float64)
    A = torch.as_tensor(_spd(n))
    obj = _Objective(m, A, False, precond_weight=0.5)
    params = [p.detach() for p in m.parameters()]
    plain = obj.residual(params)
    assert plain.shape == (n * n,)  # nothing frozen yet: the plain residual
    obj.refresh()
    r = obj.residual(params)
    L, U = m.dense_factors()
    R = (L @ U - A).numpy()
    W = np.linalg.solve(L.numpy(), R) @ np.linalg.inv(U.numpy())
    ref = np.concatenate([R.T.ravel() / np.linalg.norm(A.numpy()), 0.5 * W.ravel() / np.sqrt(n)])
    np.testing.assert_allclose(r.numpy(), ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    exact = _Objective(m, (L @ U), False, precond_weight=0.5)
    exact.refresh()
    assert float(exact.residual(params).abs().max()) < 1e-12


def test_precond_weight_config_and_resume(tmp_path):
    with pytest.raises(ValueError, match="needs optimizer='lm'"):
        LUTrainConfig(optimizer="lbfgs", precond_weight=0.1)
    with pytest.raises(ValueError, match="'precond_weight' parameter"):
        LUTrainConfig(optimizer="lm", precond_weight=-1.0)
    with pytest.raises(ValueError, match="'precond_weight' parameter"):
        LUTrainConfig(optimizer="lm", precond_weight=float("nan"))
    # the frozen factors are recomputed from the weights at every step: a resumed run is
    # identical to a straight one
    A = _spd(32)
    cfg = LUTrainConfig(optimizer="lm", steps=4, cg_iters=10, eval_every=2, precond_weight=0.1)
    ref = LUNetwork(32, 8, diag="triangular", symmetric=True)
    train_lu(A, ref, cfg)
    part = LUTrainConfig(optimizer="lm", steps=2, cg_iters=10, eval_every=2, precond_weight=0.1)
    m = LUNetwork(32, 8, diag="triangular", symmetric=True)
    train_lu(A, m, part, checkpoint_dir=tmp_path)
    m2 = LUNetwork(32, 8, diag="triangular", symmetric=True)
    train_lu(A, m2, cfg, checkpoint_dir=tmp_path, resume=True)
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_precond_stages_schedule_and_resume(tmp_path):
    """precond_stages runs further LM stages with other weights, each checkpointed, and a run
    interrupted inside a later stage resumes to the same weights as a straight run."""
    with pytest.raises(ValueError, match="'precond_stages' parameter"):
        LUTrainConfig(optimizer="lm", precond_stages=((0.1, 0),))
    with pytest.raises(ValueError, match="'precond_stages' parameter"):
        LUTrainConfig(optimizer="lm", precond_stages=((-1.0, 3),))
    with pytest.raises(ValueError, match="precond_stages needs optimizer='lm'"):
        LUTrainConfig(optimizer="lbfgs", precond_stages=((0.1, 3),))
    A = _spd(32)
    kw = dict(optimizer="lm", steps=2, cg_iters=10, eval_every=1, precond_weight=0.1)
    cfg = LUTrainConfig(**kw, precond_stages=((0.01, 2), (0.0, 2)))
    ref = LUNetwork(32, 8, diag="triangular", symmetric=True)
    res = train_lu(A, ref, cfg, checkpoint_dir=tmp_path / "ref")
    assert [s["stage"] for s in res.stages] == ["e2e", "precond1", "precond2"]
    assert [s["steps"] for s in res.stages] == [2, 2, 2]
    assert res.rel_fro <= res.stages[0]["rel_fro"]
    # interrupted after the first stage (same checkpoint layout), then resumed
    part = LUTrainConfig(**kw)
    m = LUNetwork(32, 8, diag="triangular", symmetric=True)
    train_lu(A, m, part, checkpoint_dir=tmp_path / "cut")
    m2 = LUNetwork(32, 8, diag="triangular", symmetric=True)
    train_lu(A, m2, cfg, checkpoint_dir=tmp_path / "cut", resume=True)
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
