"""run_training reports a diverged or stalled training against the method's own metric, in one
line with the caller's remedy; the learned LU, ConvMF-style and matvec trainings use it."""

from __future__ import annotations

import pytest
import torch

from neuralfactor.train.loop import (
    LoopConfig,
    TrainingDivergedError,
    TrainingStalledError,
    run_training,
)


class _Vec(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))


def _quadratic(lr, steps=5, **cfg):
    """min ||w - 1||^2 from w = 0 by SGD: the error shrinks by |1 - 2 lr| per step, so lr 0.1
    converges and lr 10 (100x) multiplies it by 19 per step; the initial metric is exactly 4."""
    m = _Vec()
    loss = lambda _step: ((m.w - 1.0) ** 2).sum()  # noqa: E731
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    config = LoopConfig(steps, eval_every=1, **cfg)
    res = run_training(
        m, opt, loss, config, eval_fn=lambda: float(loss(0)), progress=False, remedy="Fix it."
    )
    return m, res


def test_converging_run_passes_with_its_initial_metric():
    _, res = _quadratic(0.1, diverge_factor=10.0, require_progress=True)
    assert res.initial_metric == 4.0
    assert res.best_metric == pytest.approx(4.0 * 0.8 ** (2 * 5), rel=1e-12)


def test_lr_100x_too_large_is_reported_as_diverged():
    with pytest.raises(
        TrainingDivergedError,
        match=r"Training diverged: the evaluation rose from 4\.000e\+00 before training to "
        r"1\.444e\+03 at step 1 \(more than 10x\)\. Fix it\.",
    ):
        _quadratic(10.0, diverge_factor=10.0)
    # without the option the same run is not judged
    _, res = _quadratic(10.0, steps=2)
    assert res.initial_metric is None and res.history[-1]["metric"] == 4.0 * 19**4


def test_no_progress_is_reported_as_stalled():
    with pytest.raises(
        TrainingStalledError,
        match=r"did not converge: the best evaluation 4\.000e\+00 \(step 1\) is no better "
        r"than 4\.000e\+00 before training after 5 steps; the result is unusable\. Fix it\.",
    ):
        _quadratic(1e-300, require_progress=True)


def test_initial_metric_survives_a_resume(tmp_path):
    def run(steps, resume):
        m = _Vec()
        loss = lambda _step: ((m.w - 1.0) ** 2).sum()  # noqa: E731
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        return run_training(
            m,
            opt,
            loss,
            LoopConfig(steps, eval_every=1, require_progress=True),
            eval_fn=lambda: float(loss(0)),
            checkpoint_dir=tmp_path,
            init_args={},
            resume=resume,
            progress=False,
        )

    run(2, False)
    assert run(4, True).initial_metric == 4.0


def test_bad_diverge_factor():
    with pytest.raises(ValueError, match=r"diverge_factor must be > 1 or None\. Got 0\.5"):
        LoopConfig(3, diverge_factor=0.5)


def test_lu_training_reports_divergence_and_stall():
    from neuralfactor.lu.model import LUNetwork
    from neuralfactor.lu.operators import make_operator
    from neuralfactor.lu.train import LUTrainConfig, train_lu

    A = make_operator("laplacian-1d", 32)
    # Adam at lr 10: the relative error goes from 0.40 to ~1e9 within 5 steps
    m = LUNetwork(32, 8)
    cfg = LUTrainConfig(optimizer="adam", lr=10.0, steps=10, eval_every=5)
    with pytest.raises(TrainingDivergedError, match=r"diverged.*Levenberg-Marquardt"):
        train_lu(A, m, cfg)
    assert all(bool(torch.isfinite(p).all()) for p in m.parameters())
    cfg = LUTrainConfig(optimizer="adam", lr=1e-12, steps=4, eval_every=2)
    with pytest.raises(TrainingStalledError, match="no better than 4.039e-01 before training"):
        train_lu(A, LUNetwork(32, 8), cfg)


def test_amortized_training_reports_divergence():
    from neuralfactor.amortized import LearnedFactorizer, train_preset

    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 16, 3, generator=g) @ torch.randn(20, 3, 24, generator=g)
    # lr 0.3, 100x the 3e-3 these tiny networks train well with: the validation loss rises
    # from 1.8 to ~77 within the first epoch
    s = train_preset("best", epochs=4, lr=0.3, batch_size=10, device="cpu")
    f = LearnedFactorizer(
        3, model="fork", settings=s, model_kwargs={"stem": (64, 32), "branch": (32,)}
    )
    with pytest.raises(TrainingDivergedError, match=r"diverged.*Lower --lr"):
        f.fit(X)


def test_matvec_fit_reports_a_stall():
    from neuralfactor.matvec.fit import fit_matvec

    A = torch.randn(40, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(TrainingStalledError, match=r"did not converge.*optimizer='lbfgs'"):
        fit_matvec(A, 3, optimizer="adam", lr=1e-300, steps=100, seed=0)


def test_a_run_at_its_floor_is_not_stalled():
    # no step moves w (lr 1e-300), but the metric already sits at the known floor: nothing
    # was left to learn, so the run is usable
    _, res = _quadratic(1e-300, require_progress=True, progress_floor=4.0)
    assert res.best_metric == 4.0
    # a floor the run is far above does not excuse the stall
    with pytest.raises(TrainingStalledError):
        _quadratic(1e-300, require_progress=True, progress_floor=1.0)


def test_sketch_encoder_starting_at_the_optimum_trains_without_a_stall_error():
    from neuralfactor.amortized import LearnedFactorizer, train_preset

    # exactly rank-3 frames: span(X Omega) is the range for any generic Omega, so the untrained
    # encoder is already optimal (loss at round-off) and no step can improve it by 0.1%
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 16, 3, generator=g) @ torch.randn(40, 3, 24, generator=g)
    f = LearnedFactorizer(
        3, model="sketch", settings=train_preset("best", epochs=2, lr=1e-12, device="cpu")
    )
    f.fit(X[:30], X[30:])
    assert f._objective_floor(X[30:]) == pytest.approx(2 * (24 * 2.0**-23) ** 2, rel=1e-2)
    err = (X[30:] - f.factorize(X[30:]).reconstruct()).norm() / X[30:].norm()
    assert float(err) < 1e-5
