"""The choke-point network reaches the Eckart-Young optimum from products only."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import neuralfactor as nf
from neuralfactor.core.lowrank import svd_flip
from neuralfactor.core.metrics import ratio_to_optimum, relative_spectral_error
from neuralfactor.core.operators import FunctionOperator, SparseOperator
from neuralfactor.data.gallery import get_matrix
from neuralfactor.matvec import (
    ChokePointNet,
    RankCollapseError,
    RankCollapseWarning,
    SuboptimalFitError,
    SuboptimalFitWarning,
    fit_matvec,
)
from neuralfactor.matvec.fit import OPTIMIZER_OPTIONS, PROBE_OPTIONS
from neuralfactor.matvec.model import INIT_OPTIONS


def _svd_errors(A, k):
    U, S, Vh = torch.linalg.svd(A)
    W = (U[:, :k] * S[:k]) @ Vh[:k]
    return _errors(A, W)


def _errors(A, W):
    two = float(torch.linalg.matrix_norm(A - W, ord=2) / torch.linalg.matrix_norm(A, ord=2))
    fro = float(torch.linalg.matrix_norm(A - W) / torch.linalg.matrix_norm(A))
    return two, fro


# float64 + L-BFGS on the exact loss converge to ~1e-10; 1e-6 leaves room for the stopping
# rule and is still 1000x tighter than the 1e-3 target.
TOL = 1e-6


def test_random_10x10_every_rank_matches_svd(seed):
    A = torch.as_tensor(get_matrix("gaussian", n=10, seed=seed))
    for k in range(1, 10):
        fit = fit_matvec(A, k, seed=seed)
        two, fro = _errors(A, fit.lowrank.reconstruct())
        two_s, fro_s = _svd_errors(A, k)
        assert abs(two - two_s) < TOL and abs(fro - fro_s) < TOL, (k, two - two_s, fro - fro_s)
        assert fit.rank_ok and int(fit.effective_rank) == k
        assert fit.optimal and float(fit.residual_ratio) <= 1 + 1e-6
        assert fit.n_matvecs == 10


@pytest.mark.parametrize("name", ["identity", "diag"])
def test_degenerate_and_gapped_spectra_rank_20(name):
    # I_50: fully degenerate (any rank-20 projection is optimal); diag(1..50): gaps of 1.
    A = torch.as_tensor(get_matrix(name, n=50))
    fit = fit_matvec(A, 20, seed=0)
    two, fro = _errors(A, fit.lowrank.reconstruct())
    two_s, fro_s = _svd_errors(A, 20)
    assert abs(two - two_s) < TOL and abs(fro - fro_s) < TOL
    assert fit.rank_ok


def test_orthogonal_probes_and_sparse_operator(gen):
    L = get_matrix("convection-diffusion-1d", n=16, eps=0.1)
    op = SparseOperator(L)
    fit = fit_matvec(op, 3, probes="orthogonal", seed=gen)
    A = torch.as_tensor(L.toarray())
    assert float(ratio_to_optimum(A, fit.lowrank)) < 1 + 1e-8
    assert op.n_matvecs == 16 and op.n_rmatvecs == 0


def test_function_operator_only_products_are_used(gen):
    A = torch.randn(12, 9, generator=gen, dtype=torch.float64)
    calls = []

    def apply(X):
        calls.append(X.shape[1])
        return A @ X

    op = FunctionOperator(apply, (12, 9))  # no rfn: an rmatvec call would raise
    fit = fit_matvec(op, 3, seed=gen)
    assert sum(calls) == fit.n_matvecs == 9
    assert float(ratio_to_optimum(A, fit.lowrank)) < 1 + 1e-8
    assert fit.lowrank.shape == (12, 9)


def test_gaussian_probes_with_adam_are_approximate(gen):
    # Fresh Gaussian probes: unbiased but noisy gradients; accuracy is limited by the

    A = torch.as_tensor(get_matrix("diag", n=10))
    # learning rate, so only closeness (not round-off) is expected: ~1.005 after 600 steps.
    fit = fit_matvec(
        A, 3, probes="gaussian", optimizer="adam", lr=1e-2, steps=600, n_probes=20, seed=gen
    )
    assert float(ratio_to_optimum(A, fit.lowrank)) < 1.03
    assert fit.n_matvecs == 20 * (1 + fit.loop.steps_done)  # held block + one per step


def test_float32_reaches_single_precision_accuracy(gen):
    A = torch.randn(20, 20, generator=gen, dtype=torch.float32)
    fit = fit_matvec(A, 5, dtype=torch.float32, seed=gen)
    assert fit.lowrank.dtype == torch.float32
    # float32 loss resolution ~1e-7 relative -> errors agree to ~1e-4
    two, fro = _errors(A.double(), fit.lowrank.reconstruct().double())
    two_s, fro_s = _svd_errors(A.double(), 5)
    assert abs(fro - fro_s) < 1e-4 and abs(two - two_s) < 1e-3


def test_rank_deficient_operator_is_not_a_collapse(gen):
    A = torch.as_tensor(get_matrix("lowrank", n=15, rank=3, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankCollapseWarning)
        fit = fit_matvec(A, 5, seed=gen)
    # the surplus directions decay sublinearly; training stops at the exactness tolerance
    # (relative squared loss 1e-8) and no collapse is reported
    assert fit.rank_ok and float(fit.train_loss) <= 1e-8
    assert fit.loop.stopped == "early-stopped"


def test_rank_check_warns_or_raises():
    # A rank check with an absurd threshold must fire: it is the mechanism that caught the
    # original study's rank-1 networks.
    A = torch.as_tensor(get_matrix("diag", n=20))
    with pytest.warns(RankCollapseWarning, match="rank check failed.*numerical rank"):
        fit = fit_matvec(A, 5, rank_rtol=0.9)
    assert not fit.rank_ok
    with pytest.raises(RankCollapseError, match="collapsed"):
        fit_matvec(A, 5, rank_rtol=0.9, on_collapse="raise")
    fit = fit_matvec(A, 5, rank_rtol=0.9, on_collapse="ignore")
    assert not fit.rank_ok


def test_optimality_check_catches_a_saddle_the_rank_check_misses():
    # "small" init starts next to the saddle at W = 0; on this matrix L-BFGS stalls there.
    # All k learned directions are tiny *and equal*, so the relative rank check passes; the
    # residual (still ~A) is far stronger than the weakest learned direction.
    A = torch.as_tensor(get_matrix("gaussian", n=10, seed=0))
    with pytest.warns(SuboptimalFitWarning, match="optimality check failed.*stronger"):
        fit = fit_matvec(A, 5, init="small", seed=0)
    assert fit.rank_ok and not fit.optimal and float(fit.residual_ratio) > 10
    with pytest.raises(SuboptimalFitError, match="saddle point"):
        fit_matvec(A, 5, init="small", seed=0, on_collapse="raise")
    # gaussian probes: no exact residual, no verdict
    fit = fit_matvec(A, 2, probes="gaussian", optimizer="adam", steps=50, seed=0)
    assert fit.optimal is None and fit.residual_ratio is None


def test_bad_input():
    A = torch.eye(6, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"'rank' parameter of fit_matvec must be an int in \[1, "
        r"min\(m, n\) - 1=5\].*no choke point.*Got 6",
    ):
        fit_matvec(A, 6)
    with pytest.raises(TypeError, match="'rank' parameter of fit_matvec must be an int"):
        fit_matvec(A, 2.5)
    for key, val in [
        ("probes", "sobol"),
        ("optimizer", "sgd"),
        ("init", "zeros"),
        ("on_collapse", "panic"),
    ]:
        with pytest.raises(ValueError, match=f"'{key}' parameter of fit_matvec must be one of"):
            fit_matvec(A, 2, **{key: val})
    bad_shape = FunctionOperator(lambda X: X[:-1], (6, 6))
    with pytest.raises(ValueError, match=r"returned shape \(5, 6\) .* expected \(6, 6\)"):
        fit_matvec(bad_shape, 2)
    nan_op = FunctionOperator(lambda X: X * float("nan"), (6, 6))
    with pytest.raises(ValueError, match="returned NaN"):
        fit_matvec(nan_op, 2)
    with pytest.raises(TypeError, match="as_operator accepts"):
        fit_matvec("matrix.npy", 2)
    with pytest.raises(ValueError, match="contains NaN"):
        fit_matvec(torch.full((2, 4, 4), float("nan"), dtype=torch.float64), 2)


def test_options_are_documented_sets():
    assert PROBE_OPTIONS == ("identity", "orthogonal", "gaussian")
    assert OPTIMIZER_OPTIONS == ("lbfgs", "adam")


# ------------------------------------------------------------------ the factorizer
def test_factorizer_fit_then_factorize_dense_and_operator(gen):
    A = torch.randn(15, 12, generator=gen, dtype=torch.float64)
    f = nf.make_factorizer("matvec-ae", rank=4, seed=0)
    lr = f.fit(A).factorize(A)
    # factorize(A) after fit(A) returns the trained factors (under the one sign convention)
    trained = svd_flip(f.result_.lowrank)
    assert torch.equal(lr.U, trained.U) and torch.equal(lr.V, trained.V)
    assert float(ratio_to_optimum(A, lr)) < 1 + 1e-8
    op = SparseOperator(sp.csr_array(A.numpy()))
    lr_op = f.fit(op).factorize(op)
    assert float(ratio_to_optimum(A, lr_op)) < 1 + 1e-8


def test_factorizer_batched_matches_svd(gen):
    X = torch.randn(3, 10, 8, generator=gen, dtype=torch.float64)
    f = nf.make_factorizer("matvec-ae", rank=3)
    lr = f.factorize(X)
    assert lr.U.shape == (3, 10, 3) and lr.V.shape == (3, 3, 8)
    assert (ratio_to_optimum(X, lr) < 1 + 1e-8).all()
    assert (relative_spectral_error(X, lr) > 0).all()
    with pytest.raises(ValueError, match="one operator or one"):
        f.fit(X)


def test_factorizer_rejects_bad_matrices():
    f = nf.make_factorizer("matvec-ae", rank=2)
    with pytest.raises(ValueError, match="contains NaN"):
        f.factorize(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="floating dtype"):
        f.factorize(torch.ones(4, 4, dtype=torch.int64))


# ------------------------------------------------------------------ the network
@pytest.mark.parametrize("init", INIT_OPTIONS)
def test_network_shapes_factors_and_backward(init, gen):
    net = ChokePointNet(
        8,
        6,
        3,
        encoder_widths=(8, 5),
        decoder_widths=(4,),
        init=init,
        batch_shape=(2,),
        generator=gen,
    )
    X = torch.randn(2, 8, 7, generator=gen, dtype=torch.float64)
    out = net(X)
    assert out.shape == (2, 6, 7)
    W = net.weights[0]
    for layer in list(net.weights)[1:]:
        W = layer @ W
    torch.testing.assert_close(net.lowrank().reconstruct(), W.detach())
    assert net.lowrank().rank == 3
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_orthogonal_init_has_unit_end_to_end_singular_values(gen):
    net = ChokePointNet(10, 10, 4, init="orthogonal", scale=2.0, generator=gen)
    s = torch.linalg.svdvals(net.lowrank().reconstruct())
    torch.testing.assert_close(s[:4], torch.full((4,), 2.0, dtype=torch.float64))


def test_network_rejects_bottleneck_wider_than_hidden():
    with pytest.raises(ValueError, match="must be >= the bottleneck rank=5"):
        ChokePointNet(8, 8, 5, encoder_widths=(4,))
    with pytest.raises(ValueError, match="'init' parameter of ChokePointNet must be one of"):
        ChokePointNet(8, 8, 2, init="xavier")


def test_checkpoint_resume_completes(tmp_path, gen):
    A = torch.as_tensor(get_matrix("diag", n=12))
    # Adam: the loop's checkpoint restores Adam's state (L-BFGS's list-valued history is
    # checkpointed too: tests/train/test_train_checkpoint.py). 20 Adam steps are deliberately
    # too few to converge, so the optimality check is silenced.
    kw = {"optimizer": "adam", "steps": 20, "on_collapse": "ignore"}
    first = fit_matvec(A, 4, checkpoint_dir=tmp_path / "ck", **kw)
    assert first.optimal is False
    assert first.loop.steps_done == 20 and (tmp_path / "ck" / "last").exists()
    again = fit_matvec(A, 4, checkpoint_dir=tmp_path / "ck", resume=True, **kw)
    assert again.loop.stopped == "resumed-complete"
    np.testing.assert_allclose(again.lowrank.reconstruct(), first.lowrank.reconstruct())
