"""NestedLoRA objective: stationarity at the truncated SVD, nesting orders the modes, the
two-half minibatch estimator is unbiased, and exact training matches eigh/svd."""

from __future__ import annotations

import pytest
import torch

from neuralfactor.core.metrics import principal_angles
from neuralfactor.spectral.evaluate import learned_spectrum
from neuralfactor.spectral.models import FunctionPair, TabularFunctions
from neuralfactor.spectral.objectives import (
    gram,
    nestedlora_loss,
    nestedlora_loss_evd,
    prefix_losses,
)
from neuralfactor.spectral.operators import Batch, KernelOperator, MatrixOperator, evd_moments
from neuralfactor.spectral.trainer import tabular_model, train_operator


def planted(m: int, n: int, gen: torch.Generator, decay: float = 0.8):
    """A matrix with known singular triplets and a clear gap between all values."""
    U, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = 2.0 * decay ** torch.arange(k, dtype=torch.float64)
    return (U[:, :k] * s) @ V[:, :k].mT, U[:, :k], s, V[:, :k]


def pair(F: torch.Tensor, G: torch.Tensor | None) -> FunctionPair:
    f = TabularFunctions(F.shape[0], F.shape[1])
    f.table = torch.nn.Parameter(F.clone())
    g = None
    if G is not None:
        g = TabularFunctions(G.shape[0], G.shape[1])
        g.table = torch.nn.Parameter(G.clone())
    return FunctionPair(f, g)


def grad_norm(op: MatrixOperator, net: FunctionPair, nesting: str) -> float:
    cross, P, Q = op.svd_moments(net, Batch(None), sequential=nesting == "seq", split=False)
    loss = nestedlora_loss(cross, P, Q, nesting=nesting)
    params = [p for p in net.parameters()]
    grads = torch.autograd.grad(loss, params)
    return float(torch.sqrt(sum((g * g).sum() for g in grads)))


def loss_value(op: MatrixOperator, net: FunctionPair) -> float:
    cross, P, Q = op.svd_moments(net, Batch(None), sequential=False, split=False)
    return float(nestedlora_loss(cross, P, Q, nesting="joint").detach())


@pytest.mark.parametrize("nesting", ["joint", "seq"])
def test_truncated_svd_is_stationary_and_others_are_not(nesting, gen):
    A, U, s, V = planted(12, 9, gen)
    op = MatrixOperator(A)
    L = 4
    F0, G0 = V[:, :L] * s[:L].sqrt(), U[:, :L] * s[:L].sqrt()
    # float64 round-off on O(1) entries: gradient at the optimum is ~1e-15
    assert grad_norm(op, pair(F0, G0), nesting) < 1e-12
    # a rotation inside the top-L subspace is optimal for the un-nested loss, not for nesting
    R, _ = torch.linalg.qr(torch.randn(L, L, generator=gen, dtype=torch.float64))
    assert grad_norm(op, pair(F0 @ R, G0 @ R), nesting) > 1e-2
    # a perturbed point (and wrong modes) are not stationary either
    Fp = F0 + 1e-2 * torch.randn(F0.shape, generator=gen, dtype=torch.float64)
    assert grad_norm(op, pair(Fp, G0), nesting) > 1e-4
    # other singular triplets are stationary too (saddles, Ryu et al. 2024) but cost more
    Fw, Gw = V[:, 1 : L + 1] * s[1 : L + 1].sqrt(), U[:, 1 : L + 1] * s[1 : L + 1].sqrt()
    assert grad_norm(op, pair(Fw, Gw), nesting) < 1e-12
    assert loss_value(op, pair(Fw, Gw)) > loss_value(op, pair(F0, G0)) + 0.1


def test_unnested_loss_is_rotation_invariant_at_optimum(gen):
    """Control for the test above: with weights only on L_L, rotations are also stationary."""
    A, U, s, V = planted(10, 8, gen)
    L = 3
    F0, G0 = V[:, :L] * s[:L].sqrt(), U[:, :L] * s[:L].sqrt()
    R, _ = torch.linalg.qr(torch.randn(L, L, generator=gen, dtype=torch.float64))
    net = pair(F0 @ R, G0 @ R)
    cross, P, Q = MatrixOperator(A).svd_moments(net, Batch(None), sequential=False, split=False)
    loss = nestedlora_loss(cross, P, Q, weights=torch.tensor([0.0, 0.0, 1.0]))
    grads = torch.autograd.grad(loss, list(net.parameters()))
    assert max(float(g.abs().max()) for g in grads) < 1e-12
    # and its value is the Eckart-Young optimum -sum s_l^2
    assert torch.isclose(loss, -(s[:L] ** 2).sum(), rtol=1e-12)


def test_prefix_losses_are_eckart_young(gen):
    A, U, s, V = planted(10, 7, gen)
    L = 5
    F0, G0 = V[:, :L] * s[:L].sqrt(), U[:, :L] * s[:L].sqrt()
    cross = (G0 * (A @ F0)).sum(0)
    pl = prefix_losses(cross, F0.mT @ F0, G0.mT @ G0)
    torch.testing.assert_close(pl, -torch.cumsum(s[:L] ** 2, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nesting", ["joint", "seq"])
def test_training_orders_modes_svd(nesting, seed):
    """From a random start, exact NestedLoRA recovers the ordered singular values/vectors."""
    gen = torch.Generator().manual_seed(seed)
    A, U, s, V = planted(30, 20, gen)
    op = MatrixOperator(A)
    L = 5
    model = tabular_model(op, L, torch.Generator().manual_seed(seed + 7))
    train_operator(
        op,
        model,
        f"nestedlora-{nesting}",
        steps=2500,
        batch=None,
        lr=1e-2,
        ema_decay=None,
        generator=torch.Generator().manual_seed(seed),
    )
    F, G = model.net.f(None).detach(), model.net.g(None).detach()
    vals, Fn, Gn = learned_spectrum(F, G, (G * (A @ F)).sum(0))
    # Adam on a well-conditioned quadratic-quartic objective: 1e-6 relative is reached
    torch.testing.assert_close(vals, s[:L], rtol=1e-6, atol=0)
    for l in range(L):  # each mode individually (sign-invariant): the ordering
        assert abs(float(Fn[:, l] @ V[:, l])) > 1 - 1e-6
        assert abs(float(Gn[:, l] @ U[:, l])) > 1 - 1e-6


def test_two_half_estimator_is_unbiased_and_single_batch_is_not(gen):
    """Mean over many minibatches matches the exact loss (SVD and EVD forms); in the EVD form
    the naive estimate (one Gram from the whole batch, squared) is biased by its variance."""
    A, U, s, V = planted(16, 12, gen)
    S = A.mT @ A
    svd_op, evd_op = MatrixOperator(A), MatrixOperator(S, form="evd")
    L = 3
    F = torch.randn(12, L, generator=gen, dtype=torch.float64)
    G = torch.randn(16, L, generator=gen, dtype=torch.float64)
    svd_net, evd_net = pair(F, G), pair(F, None)
    reps, B = 3000, 8
    sampler = torch.Generator().manual_seed(123)
    with torch.no_grad():
        c, P, Q = svd_op.svd_moments(svd_net, Batch(None), sequential=False, split=False)
        exact_svd = float(nestedlora_loss(c, P, Q))
        d, P = evd_moments(*evd_op.features(evd_net, Batch(None)), sequential=False, split=False)
        exact_evd = float(nestedlora_loss_evd(d, P))
        svd, evd, naive = [], [], []
        for _ in range(reps):
            c, P2, Q2 = svd_op.svd_moments(
                svd_net, svd_op.sample(B, sampler), sequential=False, split=True
            )
            svd.append(float(nestedlora_loss(c, P2, Q2)))
            feats = evd_op.features(evd_net, evd_op.sample(B, sampler))
            d, P2 = evd_moments(*feats, sequential=False, split=True)
            evd.append(float(nestedlora_loss_evd(d, P2)))
            d, P1 = evd_moments(*feats, sequential=False, split=False)
            naive.append(float(nestedlora_loss_evd(d, P1)))

    def z(vals: list[float], exact: float) -> float:
        t = torch.tensor(vals, dtype=torch.float64)
        return abs(float(t.mean()) - exact) / float(t.std() / len(vals) ** 0.5)

    # 4 standard errors: a false failure has probability ~6e-5 per check
    assert z(svd, exact_svd) < 4
    assert z(evd, exact_evd) < 4
    assert z(naive, exact_evd) > 4  # the bias the two-half split removes


def test_sequential_gram_has_same_value_and_masked_gradient(gen):
    F = torch.randn(20, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    Pj, Ps = gram(F), gram(F, sequential=True)
    torch.testing.assert_close(Pj, Ps)
    # gradient of an entry (0, 2) reaches only the later mode 2
    (g,) = torch.autograd.grad(Ps[0, 2], F)
    assert float(g[:, 0].abs().max()) == 0.0 and float(g[:, 2].abs().max()) > 0


def test_evd_form_and_kernel_match_eigh(gen):
    """RBF kernel operator on samples, EVD form: top-10 eigenvalues within 1e-3 relative."""
    X = torch.randn(120, 2, generator=gen, dtype=torch.float64)
    op = KernelOperator(X, bandwidth=1.0)
    L = 10
    lam, phi = op.reference(L)
    f = TabularFunctions(120, L, generator=torch.Generator().manual_seed(1))
    from neuralfactor.spectral.models import SpectralModel

    model = SpectralModel(FunctionPair(f), L)
    train_operator(op, model, "nestedlora-seq", steps=3000, batch=None, lr=2e-2, ema_decay=None)
    F, TF, w = op.features(model.net, op.sample(None))
    diag, P = evd_moments(F.detach(), TF.detach(), w, sequential=False, split=False)
    vals = diag / P.diagonal()
    rel = (vals - lam).abs() / lam
    assert float(rel.max()) < 1e-3, rel
    # subspaces: the top-10 span within 1e-2 rad of eigh's; each well-separated mode (relative
    # gap to both neighbours > 10%; near-degenerate pairs converge slowly, 1/gap) within 1e-2
    lam_all = torch.linalg.eigvalsh(op.K / op.N).flip(0)
    assert float(principal_angles(F.detach(), phi)[-1]) < 1e-2
    for l in range(L):
        gap = min(abs(lam_all[l] - lam_all[l + 1]), abs(lam_all[l] - lam_all[l - 1]) if l else 1.0)
        if gap / lam_all[l] > 0.1:
            assert float(principal_angles(F[:, l : l + 1].detach(), phi[:, l : l + 1])[0]) < 1e-2
    # and the EVD loss at eigh's solution equals -sum lambda^2 (its optimum)
    Fo = phi * lam.sqrt()
    d, Po = evd_moments(Fo, (op.K @ Fo) / op.N, w, sequential=False, split=False)
    torch.testing.assert_close(
        nestedlora_loss_evd(d, Po, weights=torch.eye(L)[-1]), -(lam**2).sum(), rtol=1e-10, atol=0
    )


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_sequential_overlap_bias_from_an_earlier_modes_error(shift):
    """The fixed point behind docs/results/neuralsvd.md's shift stage. With mode 0 held at
    sqrt(lambda_0') (e_0 + eps e_1) on T' = diag(lambda) + shift I, mode 1's sequential
    minimizer has normalized overlap (1 - lambda_0' / lambda_1') eps with it: -24 eps for
    hydrogen-like levels 1 and 0.04 at shift 0, -0.92 eps at shift 1."""
    lam = torch.tensor([1.0, 0.04, 0.02, 0.01], dtype=torch.float64) + shift
    T = torch.diag(lam)
    eps = 1e-4
    f0 = lam[0].sqrt() * torch.tensor([1.0, eps, 0.0, 0.0], dtype=torch.float64)
    f1 = (lam[1].sqrt() * torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)).requires_grad_()
    opt = torch.optim.LBFGS([f1], lr=1, max_iter=500, tolerance_grad=1e-15, tolerance_change=0)

    def closure():
        opt.zero_grad()
        F = torch.stack([f0, f1], 1)
        diag = (F * (T @ F)).sum(0)
        loss = nestedlora_loss_evd(
            diag, gram(F, torch.ones(4, dtype=F.dtype), sequential=True), nesting="seq"
        )
        loss.backward()
        return loss

    opt.step(closure)
    f1 = f1.detach()
    overlap = float(f0 @ f1 / (f0.norm() * f1.norm()))
    predicted = (1 - float(lam[0] / lam[1])) * eps
    assert overlap == pytest.approx(predicted, rel=1e-3)
    assert abs(overlap) > 20 * eps if shift == 0.0 else abs(overlap) < eps
