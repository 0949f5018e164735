"""Factored-state solver (scheme 'lowrank') and factorizer truncation of the fd5 stepper."""

from __future__ import annotations

import warnings

import pytest
import torch
from tests.helpers import assert_frames_identical

from neuralfactor import make_factorizer
from neuralfactor.vlasov import (
    SimulationConfig,
    SolverState,
    VlasovSolver,
    dispersion_root,
    fit_rate,
    numerical_rank,
    simulate,
)
from neuralfactor.vlasov.lowrank import (
    DLRVlasovSolver,
    LowRankVlasovSolver,
    column_major,
    recompress,
)
from neuralfactor.vlasov.truncation import (
    ExactSVD,
    Truncation,
    TruncationError,
    orthonormal_core,
)

LANDAU = [(1.0, 0.0, 1.0)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def cfg(scheme="lowrank", **kw):
    base = dict(ic="landau-strong", nx=16, nv=32, t_end=1.0, save_every=5, scheme=scheme)
    base.update(kw)
    return SimulationConfig(**base)


def rel(a, b):
    return float(torch.linalg.matrix_norm(a - b).max() / torch.linalg.matrix_norm(b).max())


def factory(name):
    return lambda r: make_factorizer(name, rank=r)


# -- factored-state solver -------------------------------------------------------------------
def test_full_rank_lowrank_equals_full_grid_fd5():
    full = simulate(cfg("fd5"))
    # tol far below round-off keeps every direction: rank min(m, n) = 16
    low = simulate(cfg(truncate_tol=1e-15, mass_correction=False))
    assert isinstance(VlasovSolver(cfg()), LowRankVlasovSolver)
    assert int(low.diagnostics["truncation_rank"][0, -1]) == 16
    # same stencils and integrator; factored arithmetic reorders sums: 1e-12 of max|f|
    torch.testing.assert_close(low.frames, full.frames, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mass_correction", [False, True])
def test_lowrank_equals_fd5_with_svd_truncation_at_the_same_tol(mass_correction):
    ref = simulate(cfg("fd5", truncate_tol=1e-5, mass_correction=mass_correction))
    low = simulate(cfg(truncate_tol=1e-5, mass_correction=mass_correction))
    # both truncate the same stages with the same rule (and the same mass correction): same
    # ranks, f to round-off
    assert torch.equal(ref.diagnostics["truncation_rank"], low.diagnostics["truncation_rank"])
    assert rel(low.frames, ref.frames) < 1e-11


def test_fixed_rank_keeps_that_rank():
    res = simulate(cfg(truncate_rank=3, mass_correction=False, t_end=0.5))
    assert (res.diagnostics["truncation_rank"][0, 1:] == 3).all()
    assert (numerical_rank(res.frames[0, 1:], rtol=1e-12) == 3).all()


def test_mass_correction_conserves_mass_to_round_off():
    on = simulate(cfg(truncate_tol=1e-4))
    off = simulate(cfg(truncate_tol=1e-4, mass_correction=False))
    m_on, m_off = on.diagnostics["mass"][0], off.diagnostics["mass"][0]
    drift_on = float((m_on - m_on[0]).abs().max() / m_on[0])
    drift_off = float((m_off - m_off[0]).abs().max() / m_off[0])
    assert drift_on < 1e-13  # float64 round-off of sums of 512 terms
    # without the correction the truncation moves mass by up to ~tol
    assert 1e-9 < drift_off < 1e-4
    # the correction is one rank-one term: f stays within the tolerance of the uncorrected run
    assert rel(on.frames, off.frames) < 1e-3


@pytest.mark.parametrize("truncate", [{"truncate_tol": 1e-4}, {"truncate_rank": 3}])
def test_fd5_truncation_mass_correction_by_default(truncate):
    on = simulate(cfg("fd5", **truncate))
    off = simulate(cfg("fd5", **truncate, mass_correction=False))
    assert on.config.mass_correction is True and off.config.mass_correction is False
    m_on, m_off = on.diagnostics["mass"][0], off.diagnostics["mass"][0]
    drift_on = float((m_on - m_on[0]).abs().max() / m_on[0])
    drift_off = float((m_off - m_off[0]).abs().max() / m_off[0])
    assert drift_on < 1e-13
    assert drift_off > 1e-9  # the plain truncation moves mass
    # the correction is a rank-one term of the size of the truncation error
    assert rel(on.frames, off.frames) < (1e-3 if "truncate_tol" in truncate else 0.1)
    # the ranks reported are the truncation's, without the correction term
    torch.testing.assert_close(
        on.diagnostics["truncation_rank"][:, 1:], off.diagnostics["truncation_rank"][:, 1:]
    )


def test_ensemble_members_truncated_independently(seed):
    c = cfg(ic="random-smooth", ensemble=3, seed=seed, t_end=0.5)
    res = simulate(c)
    f0 = VlasovSolver(c).initial_condition()
    for b in range(3):
        single = simulate(c.replace(ensemble=1), f0=f0[b : b + 1])
        assert torch.equal(
            res.diagnostics["truncation_rank"][b], single.diagnostics["truncation_rank"][0]
        )
        torch.testing.assert_close(res.frames[b], single.frames[0], rtol=0, atol=1e-12)


def test_resume_from_dense_frames_agrees_to_round_off():
    c = cfg(truncate_tol=1e-6, t_end=1.5, save_every=5)
    full = [fr.f for fr in VlasovSolver(c).run()]
    frames = VlasovSolver(c).run()
    st = [next(frames) for _ in range(2)][-1].state
    dense = SolverState(st.step, st.f.clone(), tuple(h.clone() for h in st.history))
    rest = [fr.f for fr in VlasovSolver(c).run(state=dense)]
    assert len(rest) == len(full) - 2
    for a, b in zip(full[2:], rest, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)  # re-factored: round-off


@pytest.mark.parametrize(
    "scheme,kw,name",
    [
        ("lowrank", {"truncate_tol": 1e-6}, None),
        ("dlr", {"truncate_tol": 1e-6}, None),
        ("fd5", {"truncate_tol": 1e-5}, "warm-subspace"),
        ("fd5", {"truncate_rank": 6}, "warm-subspace"),
    ],
)
def test_state_through_exact_tensors_resumes_bit_identically_in_a_fresh_solver(scheme, kw, name):
    c = cfg(scheme, t_end=1.5, save_every=5, truncate_with=name, **kw)

    def solver():  # a fresh truncation each time: nothing carried but through the state
        tr = (
            None
            if name is None
            else Truncation(factory(name), tol=c.stage_tol, rank=c.truncate_rank)
        )
        return VlasovSolver(c, truncation=tr)

    full = list(solver().run())
    frames = solver().run()
    st = [next(frames) for _ in range(3)][-1].state
    assert solver().carries_state
    saved = {k: t.clone() for k, t in st.exact_tensors().items()}  # what a store keeps
    assert all(t.is_contiguous() for t in saved.values())
    assert any(k.startswith("truncation.stream.basis") for k in saved) == (name is not None)
    back = SolverState.from_tensors(
        st.step, st.f.clone(), tuple(h.clone() for h in st.history), saved
    )
    assert_frames_identical(full[3:], list(solver().run(state=back)))


def test_from_tensors_refuses_unknown_or_misshapen_entries():
    f = torch.zeros(1, 4, 3)
    U, S, V = torch.zeros(1, 4, 2), torch.zeros(1, 2), torch.zeros(1, 3, 2)
    ok = SolverState.from_tensors(5, f, (), {"factors.0.U": U, "factors.0.S": S, "factors.0.V": V})
    assert ok.step == 5 and len(ok.factors) == 1 and ok.truncation is None
    with pytest.raises(ValueError, match="Unknown solver-state tensor 'weights'"):
        SolverState.from_tensors(5, f, (), {"weights": U})
    with pytest.raises(ValueError, match="factor 0 is incomplete"):
        SolverState.from_tensors(5, f, (), {"factors.0.U": U, "factors.0.S": S})
    with pytest.raises(ValueError, match=r"factor 0 has shapes U \(1, 3, 2\)"):
        SolverState.from_tensors(5, f, (), {"factors.0.U": V, "factors.0.S": S, "factors.0.V": V})


def test_recompress_equals_svd_of_the_product(gen):
    U = torch.randn(2, 30, 12, generator=gen, dtype=torch.float64)
    V = torch.randn(2, 20, 12, generator=gen, dtype=torch.float64)
    S = torch.rand(2, 12, generator=gen, dtype=torch.float64)
    X = (U * S[..., None, :]) @ V.mT
    (Ur, Sr, Vr), ranks = recompress(U, S, V, rank=5)
    s = torch.linalg.svdvals(X)
    torch.testing.assert_close(Sr, s[..., :5], rtol=1e-12, atol=0)
    err = torch.linalg.matrix_norm(X - (Ur * Sr[..., None, :]) @ Vr.mT)
    torch.testing.assert_close(err, s[..., 5:].norm(dim=-1), rtol=1e-10, atol=0)  # Eckart-Young
    assert ranks.tolist() == [5, 5]
    (_, St, _), rt = recompress(U, S, V, tol=1e-2)
    for b in range(2):  # the smallest rank whose tail is below 1e-2 ||X||
        tail = [float(s[b, r:].norm()) for r in range(13)]
        want = next(r for r in range(1, 13) if tail[r] <= 1e-2 * float(s[b].norm()))
        assert int(rt[b]) == want


# stacks as tall as wide (the in-place R must be a copy, not the storage Q overwrites), wide
# (falls back to torch.linalg.qr), tall; a batch of two
@pytest.mark.parametrize("m,n,K", [(16, 32, 16), (16, 32, 40), (64, 128, 40), (32, 32, 32)])
def test_recompress_in_place_is_bit_identical(gen, m, n, K):
    U = torch.randn(2, m, K, generator=gen, dtype=torch.float64)
    V = torch.randn(2, n, K, generator=gen, dtype=torch.float64)
    S = torch.rand(2, K, generator=gen, dtype=torch.float64)
    Uc, Vc = column_major(2, m, K, U).copy_(U), column_major(2, n, K, V).copy_(V)
    ref, r_ref = recompress(U, S, V, tol=1e-3)
    out, r_out = recompress(Uc, S, Vc, tol=1e-3, overwrite=True)
    assert torch.equal(r_ref, r_out)
    for a, b in zip(ref, out, strict=True):
        assert torch.equal(a, b)
    if K <= min(m, n):  # the QR worked in the stacks' storage
        assert not torch.equal(Uc, U) and not torch.equal(Vc, V)


@pytest.mark.parametrize("positive", [True, False])
def test_factored_upwind_in_place_is_the_full_grid_stencil_bit_for_bit(gen, positive):
    solver = LowRankVlasovSolver(cfg())
    X = torch.randn(2, 32, 5, generator=gen, dtype=torch.float64)
    flag = torch.tensor([[positive]])
    assert torch.equal(solver._diff(X, 0.3, positive), solver._upwind(X, -2, 0.3, flag))


@pytest.mark.slow
def test_lowrank_weak_landau_rate_matches_dispersion_root_slow():
    c = SimulationConfig(
        ic="landau-weak", nx=64, nv=128, t_end=30.0, scheme="lowrank", truncate_tol=1e-5
    )
    res = simulate(c, keep_frames=False)
    fit = fit_rate(res.t, res.diagnostics["e_norm"][0], window=(2.0, 25.0), method="peaks")
    w = dispersion_root(0.5, LANDAU, 1.4 - 0.15j)
    assert fit.rate == pytest.approx(w.imag, rel=0.02)
    assert fit.frequency == pytest.approx(w.real, rel=0.01)


def test_lowrank_weak_landau_rate_coarse():
    c = SimulationConfig(
        ic="landau-weak", nx=32, nv=64, t_end=22.0, dt=0.05, scheme="lowrank", truncate_tol=1e-5
    )
    res = simulate(c, keep_frames=False)
    fit = fit_rate(res.t, res.diagnostics["e_norm"][0], window=(2.0, 20.0), method="peaks")
    w = dispersion_root(0.5, LANDAU, 1.4 - 0.15j)
    assert fit.rate == pytest.approx(w.imag, rel=0.02)
    assert int(res.diagnostics["truncation_rank"][0].max()) < 32  # it did truncate


# -- dynamical low rank (rank-adaptive BUG) ------------------------------------------------------
def dense_ssp_rk3(c, n_frames):
    """Reference: the fd5 semi-discretization stepped densely by SSP-RK3."""
    s = VlasovSolver(c.replace(scheme="fd5", truncate_rank=None, mass_correction=None))
    f, dt, out = s.initial_condition(), s.dt, []
    out.append(f)
    for n in range(c.n_steps):
        y1 = f + dt * s._rhs(f, n + 1)
        y2 = 0.75 * f + 0.25 * (y1 + dt * s._rhs(y1, n + 1))
        f = f / 3 + 2 / 3 * (y2 + dt * s._rhs(y2, n + 1))
        if (n + 1) % c.save_every == 0:
            out.append(f)
    assert len(out) == n_frames
    return torch.stack(out, 1)


def test_dlr_with_full_bases_equals_a_dense_ssp_rk3_step():
    c = cfg("dlr", truncate_rank=16, mass_correction=False)
    assert isinstance(VlasovSolver(c), DLRVlasovSolver)
    res = simulate(c)
    # the augmented bases span the whole space: the Galerkin S-step is the dense step rotated
    torch.testing.assert_close(
        res.frames, dense_ssp_rk3(c, res.frames.shape[1]), rtol=0, atol=1e-12
    )


def test_dlr_conserves_mass_and_stays_near_fd5():
    c = cfg("dlr", t_end=1.0, save_every=10)
    res = simulate(c)
    m = res.diagnostics["mass"][0]
    assert float((m - m[0]).abs().max() / m[0]) < 1e-13
    # from the separable rank-1 initial condition the rank must grow (see min_initial_rank)
    off = simulate(c.replace(mass_correction=False))
    assert int(off.diagnostics["truncation_rank"][0, -1]) > 4
    ref = simulate(c.replace(scheme="fd5", truncate_tol=None, mass_correction=None))
    # first-order integrator and tol 1e-5 per step: within 1e-3 of fd5 at t = 1 (measured 1e-4)
    assert rel(res.frames[:, -1], ref.frames[:, -1]) < 1e-3


def test_dlr_resume_from_a_dense_frame_agrees_to_the_tolerance():
    c = cfg("dlr", truncate_tol=1e-6, t_end=1.5, save_every=5)
    full = [fr.f for fr in VlasovSolver(c).run()]
    frames = VlasovSolver(c).run()
    st = [next(frames) for _ in range(2)][-1].state
    rest = [fr.f for fr in VlasovSolver(c).run(state=SolverState(st.step, st.f.clone(), ()))]
    assert len(rest) == len(full) - 2
    # a fresh basis replaces the zero-singular-value directions: tol-level, not round-off
    for a, b in zip(full[2:], rest, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-8)


@pytest.mark.slow
def test_dlr_weak_landau_rate_matches_dispersion_root_slow():
    c = SimulationConfig(ic="landau-weak", nx=32, nv=64, t_end=22.0, dt=0.05, scheme="dlr")
    res = simulate(c, keep_frames=False)
    fit = fit_rate(res.t, res.diagnostics["e_norm"][0], window=(2.0, 20.0), method="peaks")
    w = dispersion_root(0.5, LANDAU, 1.4 - 0.15j)
    assert fit.rate == pytest.approx(w.imag, rel=0.02)


# -- factorizer truncation of the full-grid fd5 stepper ---------------------------------------
@pytest.mark.parametrize("name", ["rsvd", "warm-subspace"])
def test_factorizer_truncation_agrees_with_svd_truncation(name):
    c = cfg("fd5", nx=32, nv=64, t_end=1.5, save_every=10, truncate_tol=1e-5)
    ref = simulate(c)
    tr = Truncation(factory(name), tol=c.stage_tol)
    res = simulate(c.replace(truncate_with=name), truncation=tr)
    # each stage is within tol of the untruncated one for both: the runs stay within a few tol
    assert rel(res.frames, ref.frames) < 1e-5
    dr = (res.diagnostics["truncation_rank"] - ref.diagnostics["truncation_rank"]).abs()
    assert int(dr.max()) <= 1
    assert tr.calls > c.n_steps  # really called (and the run made every stage with it)


def test_svd_factory_reproduces_exact_truncation_ranks():
    c = cfg("fd5", nx=32, nv=64, t_end=1.0, save_every=10, truncate_tol=1e-5)
    ref = simulate(c)
    res = simulate(
        c.replace(truncate_with="svd"), truncation=Truncation(factory("svd"), tol=c.stage_tol)
    )
    assert torch.equal(res.diagnostics["truncation_rank"], ref.diagnostics["truncation_rank"])
    assert rel(res.frames, ref.frames) < 1e-10


def test_truncation_meets_tolerance_and_grows_the_working_rank(gen):
    # planted spectrum 2^-k: tol 1e-6 needs rank 20, above the first working rank 4
    m, n, k = 40, 60, 30
    Q1 = torch.linalg.qr(torch.randn(m, k, generator=gen, dtype=torch.float64)).Q
    Q2 = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64)).Q
    s = 2.0 ** -torch.arange(k, dtype=torch.float64)
    X = ((Q1 * s) @ Q2.T)[None]
    tr = Truncation(factory("rsvd"), tol=1e-6, working_rank=4)
    fr, ranks = tr(X)
    assert float(torch.linalg.matrix_norm(X - fr)[0] / torch.linalg.matrix_norm(X)[0]) <= 1e-6
    tail = [float(s[r:].norm() / s.norm()) for r in range(k + 1)]
    exact = next(r for r in range(k + 1) if tail[r] <= 1e-6)
    assert exact <= int(ranks[0]) <= exact + 1  # the triangle bound costs at most one rank
    assert tr.calls > 1  # it had to grow from 4


def test_fixed_rank_truncation_with_a_factorizer(gen):
    X = torch.randn(2, 20, 30, generator=gen, dtype=torch.float64)
    fr, ranks = Truncation(factory("svd"), rank=4)(X)
    ref, _ = Truncation(ExactSVD(4), rank=4)(X)
    torch.testing.assert_close(fr, ref, rtol=0, atol=1e-12)
    assert ranks.tolist() == [4, 4]
    U, S, V = orthonormal_core(torch.randn(20, 3, generator=gen, dtype=torch.float64), X[0, :3])
    torch.testing.assert_close(U.mT @ U, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-13)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,match",
    [
        ({"tol": 1.5}, r"'tol' parameter of Truncation must be a float in \(0, 1\)"),
        ({"tol": 0.0}, r"'tol' parameter of Truncation must be a float in \(0, 1\)"),
        ({}, "exactly one of 'tol'"),
        ({"tol": 1e-3, "rank": 2}, "exactly one of 'tol'"),
        ({"rank": 0}, r"'rank' parameter of Truncation must be an int >= 1"),
        ({"tol": 1e-3, "working_rank": 0}, "'working_rank' parameter of Truncation"),
    ],
)
def test_truncation_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        Truncation(**kw)


def test_truncation_rejects_bad_factorizer_and_rank_above_frame():
    with pytest.raises(TypeError, match="must be None, an object with factorize"):
        Truncation(42, tol=1e-3)
    with pytest.raises(ValueError, match=r"rank must be at most min\(m, n\)=16 for 16x32"):
        Truncation(rank=20)(torch.zeros(1, 16, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="has rank 3; pass rank=3"):
        Truncation(ExactSVD(3), rank=2)


def test_fixed_rank_factorizer_that_cannot_reach_tol_says_so(gen):
    X = torch.randn(1, 20, 30, generator=gen, dtype=torch.float64)  # full rank
    with pytest.raises(TruncationError, match=r"at rank 3 leaves a relative error .* > tol=1e-06"):
        Truncation(ExactSVD(3), tol=1e-6)(X)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"truncate_rank": 17}, r"'truncate_rank' .* at most min\(nx, nv\)=16. Got 17"),
        ({"truncate_rank": 2, "truncate_tol": 1e-3}, "either 'truncate_tol' or 'truncate_rank'"),
        ({"truncate_tol": 1.0}, r"'truncate_tol' .* must be in \(0, 1\)"),
        ({"truncate_with": "rsvd"}, "'truncate_with' parameter .* applies only to scheme 'fd5'"),
        ({"scheme": "dlr", "truncate_rank": 0}, "'truncate_rank' parameter .* must be an int >= 1"),
        ({"scheme": "fd5", "truncate_with": "rsvd"}, "'truncate_with' .* needs 'truncate_tol'"),
        ({"scheme": "fd5", "mass_correction": True}, "'mass_correction' .* only to scheme"),
        (
            {"scheme": "spectral", "truncate_rank": 2},
            "'truncate_rank' .* scheme 'fd5', 'lowrank' or 'dlr'",
        ),
    ],
)
def test_config_rejects_bad_truncation_options(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_lowrank_defaults_to_tol_1e5_and_round_trips():
    c = cfg()
    assert c.truncate_tol == 1e-5 and c.mass_correction is True
    assert SimulationConfig.from_json(c.to_json()) == c
    # fields added later are left out at their defaults: older stores' configs still match
    assert "truncate_rank" not in cfg("fd5").to_dict()


def test_tolerance_is_per_unit_time_by_default_and_stores_without_it_mean_per_stage():
    c = cfg(dt=0.01)
    assert c.truncate_per == "time" and c.stage_tol == pytest.approx(1e-7, rel=1e-15)
    assert cfg(dt=0.01, truncate_per="stage").stage_tol == 1e-5
    assert cfg(truncate_rank=3).truncate_per is None and cfg(truncate_rank=3).stage_tol is None
    # a store written before truncate_per existed has no such key: it truncated per stage
    old = {k: v for k, v in c.to_dict().items() if k != "truncate_per"}
    assert SimulationConfig.from_dict(old).truncate_per == "stage"
    for each in (c, cfg(truncate_per="stage"), cfg(truncate_rank=3), cfg("fd5"), cfg("spectral")):
        assert SimulationConfig.from_dict(each.to_dict()) == each
    # an explicit False round-trips (it used to come back as the truncating default True)
    plain = cfg(mass_correction=False)
    assert SimulationConfig.from_json(plain.to_json()).mass_correction is False
    assert c.replace(scheme="fd5", truncate_tol=None, mass_correction=None).truncate_per is None


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"scheme": "fd5", "truncate_per": "time"}, "'truncate_per' .* only with 'truncate_tol'"),
        ({"truncate_rank": 2, "truncate_per": "stage"}, "only with 'truncate_tol'"),
        ({"truncate_per": "step"}, "must be one of"),
        ({"truncate_tol": 0.5, "dt": 4.0, "t_end": 4.0}, r"tol \* dt = 2, must be below 1"),
    ],
)
def test_config_rejects_bad_truncate_per(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_per_time_tolerance_carries_a_perturbation_a_per_stage_one_drops():
    # weak Landau (alpha k = 5e-3) at dt = 1e-3: a step adds the perturbation's new direction at
    # a relative size ~ alpha k dt = 5e-6, below a per-stage 1e-5 (dropped, the frames drift
    # away from the untruncated run) and far above 1e-5 * dt per unit time (carried)
    kw = dict(ic="landau-weak", nx=16, nv=32, dt=1e-3, t_end=2.0, save_every=250)
    ref = simulate(cfg("fd5", **kw))
    per_time = simulate(cfg(**kw))
    per_stage = simulate(cfg(truncate_per="stage", **kw))
    # measured: 1.7e-6 per unit time, 5.5e-3 per stage (||E|| 24% off at t = 2)
    assert rel(per_time.frames[:, -1], ref.frames[:, -1]) < 1e-5
    assert rel(per_stage.frames[:, -1], ref.frames[:, -1]) > 1e-3
    e, e_ref = (r.diagnostics["e_norm"][0, -1] for r in (per_stage, ref))
    assert float(abs(e / e_ref - 1)) > 0.1
    assert (
        per_time.diagnostics["truncation_rank"].max()
        > per_stage.diagnostics["truncation_rank"].max()
    )


def test_solver_refuses_a_name_it_cannot_resolve_and_mismatched_truncations():
    c = cfg("fd5", truncate_tol=1e-4, truncate_with="rsvd")
    with pytest.raises(ValueError, match="pass truncation=Truncation"):
        VlasovSolver(c)
    with pytest.raises(ValueError, match="does not match the config"):
        VlasovSolver(c, truncation=Truncation(factory("rsvd"), tol=1e-3))
    with pytest.raises(ValueError, match="takes no truncation factorizer"):
        VlasovSolver(cfg(), truncation=Truncation(tol=1e-5))
    with pytest.raises(ValueError, match="does not truncate with it"):
        VlasovSolver(cfg("fd5"), truncation=Truncation(tol=1e-5))
