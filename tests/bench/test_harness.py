"""The one harness: interleaved adaptive timing, the noise verdict, measure_many records."""

import itertools

import pytest
import torch

from neuralfactor.bench.peers import PEER_SETTINGS, expand_peers
from neuralfactor.core.factorizer import make_factorizer
from neuralfactor.core.metrics import optimal_scaled_loss
from neuralfactor.core.timing import (
    CASE_TIMING,
    Spread,
    SuiteTiming,
    TimingConfig,
    measure_many,
    speed_ratio,
    time_call,
    time_interleaved,
    within_noise,
)


class FakeClock:
    """A stopwatch that advances only when a timed callable says so (deterministic timings)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rounds_are_interleaved_and_rotate():
    clock = FakeClock()
    order = []

    def make(label, cost):
        def fn():
            order.append(label)
            clock.now += cost

        return fn

    res = time_interleaved(
        {"A": make("A", 1.0), "B": make("B", 2.0), "C": make("C", 3.0)},
        warmup=0,
        min_rounds=3,
        max_rounds=3,
        min_run_time=0,
        block_seconds=0,
        clock=clock,
    )
    # constant costs: zero spread, exact medians; 3 rounds of one call each, rotated order
    assert res.rounds == 3 and res.converged
    assert res.order == ("A", "B", "C", "B", "C", "A", "C", "A", "B")
    assert [res.stats[k].median for k in "ABC"] == [1.0, 2.0, 3.0]
    assert res.stats["B"].iqr == 0.0 and res.stats["B"].number == 1


def test_blocks_repeat_short_calls_and_stop_when_spread_settles():
    clock = FakeClock()
    costs = itertools.cycle([1e-3, 1e-3, 1e-3, 5e-3])  # one slow call in four

    def fn():
        clock.now += next(costs)

    res = time_interleaved(
        {"f": fn},
        warmup=0,
        min_rounds=3,
        max_rounds=50,
        min_run_time=0.02,
        block_seconds=0.004,
        clock=clock,
    )
    st = res.stats["f"]
    # calibration call costs 1 ms -> 4 calls per block, so every block holds one slow call
    assert st.number == 4
    assert st.times == pytest.approx([2e-3] * len(st.times))
    # 8 ms per block: the 0.02 s minimum run time needs 3 rounds; the spread is then zero
    assert res.converged and res.rounds == 3


def test_unsettled_spread_stops_at_the_round_cap():
    clock = FakeClock()
    costs = itertools.cycle([1.0, 3.0])

    def fn():
        clock.now += next(costs)

    res = time_interleaved(
        {"f": fn},
        warmup=0,
        min_rounds=3,
        max_rounds=7,
        min_run_time=0,
        block_seconds=0,
        max_seconds=1e9,
        clock=clock,
    )
    assert res.rounds == 7 and not res.converged
    st = res.stats["f"]
    assert st.min == 1.0 and st.median == 3.0 and st.iqr == 2.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"min_rounds": 1}, r"3 <= min_rounds <= max_rounds .* Got min_rounds=1"),
        ({"min_rounds": 5, "max_rounds": 4}, "Got min_rounds=5, max_rounds=4"),
        ({"target_rel_iqr": 0}, "target_rel_iqr > 0"),
    ],
)
def test_time_interleaved_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_interleaved({"f": lambda: None}, **kwargs)
    with pytest.raises(ValueError, match="at least one callable"):
        time_interleaved({})


def test_time_call_never_takes_a_single_sample():
    t = time_call(lambda: 7, warmup=0, repeats=1)
    assert len(t.times) >= 3 and t.result == 7
    with pytest.raises(ValueError, match="repeats >= 1 and warmup >= 0"):
        time_call(lambda: None, repeats=0)


@pytest.mark.parametrize(
    "base,method,verdict,text",
    [
        # identical spreads: within noise
        (Spread(1.0, 0.9, 1.1), Spread(1.0, 0.9, 1.1), "within noise", "~1x (within noise)"),
        # medians differ by 0.1, IQRs overlap by 0.3: within noise although the ratio is 1.11
        (Spread(1.0, 0.8, 1.2), Spread(0.9, 0.7, 1.1), "within noise", "~1x (within noise)"),
        # medians differ by 0.5, overlap 0.1: a real 2x with the quartile range 1.5x-4x
        (Spread(1.0, 0.9, 1.2), Spread(0.5, 0.3, 0.6), "faster", "2x (1.5-4)"),
        # disjoint spreads, slower
        (Spread(1.0, 0.95, 1.05), Spread(4.0, 3.5, 4.2), "slower", "0.25x (0.23-0.3)"),
        # medians 3.3x apart, but the method's IQR is so wide its ratio range 0.475-3.75 holds 1
        (
            Spread(1.0, 0.95, 1.05),
            Spread(0.3, 0.28, 2.0),
            "within noise",
            "within noise (0.47-3.8x)",
        ),
        # a spread that was not recorded (old single-sample records)
        (Spread(2.0, float("nan"), float("nan")), Spread(1.0, 0.9, 1.1), "unknown", "2x (spread"),
    ],
)
def test_speed_ratio_verdicts(base, method, verdict, text):
    r = speed_ratio(base, method)
    assert r.verdict == verdict
    assert str(r).startswith(text)
    assert r.ratio == pytest.approx(base.median / method.median)
    assert within_noise(base, method) == (verdict == "within noise")


def test_speed_ratio_is_symmetric_in_its_noise_verdict():
    a, b = Spread(1.0, 0.8, 1.3), Spread(1.2, 1.0, 1.5)
    assert speed_ratio(a, b).verdict == speed_ratio(b, a).verdict == "within noise"


def _case(batch=3, m=20, n=30, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, m, n, generator=g, dtype=torch.float64)
    return X, optimal_scaled_loss(X, rank)


def test_measure_many_records_every_method_interleaved():
    X, opt = _case()
    fs = {
        "svd": make_factorizer("svd", rank=3),
        "rsvd": make_factorizer("rsvd", rank=3, n_iter=0, oversample=0),
        "warm-subspace": make_factorizer("warm-subspace", rank=3),
    }
    results = {}
    recs = measure_many(
        fs, X, optimum=opt, min_rounds=3, min_run_time=0, max_seconds=0.5, results=results
    )
    by = {r["label"]: r for r in recs}
    assert list(by) == ["svd", "rsvd", "warm-subspace"]
    for r in recs:
        assert r["interleaved"] == ["svd", "rsvd", "warm-subspace"]
        assert r["rounds"] >= 3 and r["timed_batch"] == 3
        assert r["seconds_per_matrix_q25"] <= r["seconds_per_matrix"]
        assert r["seconds_per_matrix"] <= r["seconds_per_matrix_q75"]
        assert r["seconds_per_matrix_min"] <= r["seconds_per_matrix_q25"]
        # one interleaved run: one load reading before and after, shared by every row
        assert r["loadavg_before"] == recs[0]["loadavg_before"]
        assert r["loadavg_after"] == recs[0]["loadavg_after"]
        assert r["torch_threads"] == torch.get_num_threads()
    # the exact SVD meets the Eckart-Young optimum (float64: to round-off)
    assert by["svd"]["ratio_max"] == pytest.approx(1.0, abs=1e-10)
    # a sketch without oversampling or power iterations on Gaussian noise is far from it
    assert by["rsvd"]["ratio_mean"] > 1.01
    assert by["svd"]["start"] == "cold" and not by["svd"]["warm"]
    # a stream restarted on every call: the batch's later frames are warm-started
    assert by["warm-subspace"]["start"] == "stream" and by["warm-subspace"]["warm"]
    assert results["svd"].U.shape == (3, 20, 3)


def test_measure_many_times_a_sub_batch_within_the_call_budget():
    X, opt = _case(batch=40)
    (rec,) = measure_many(
        {"scipy-gesdd": make_factorizer("scipy-gesdd", rank=3)},
        X,
        optimum=opt,
        max_call_seconds=1e-9,
        min_rounds=3,
        min_run_time=0,
        max_seconds=0.2,
    )
    assert rec["timed_batch"] == 4  # the probe size: the floor of a sub-batch


def test_measure_many_records_refusals_and_bad_input():
    X, opt = _case()

    class Refuses:
        name = "refuses"

        def factorize(self, X):
            raise ValueError("no")

    (rec,) = measure_many({"r": Refuses()}, X, optimum=opt, min_rounds=3)
    assert rec["error"] == "ValueError: no" and rec["label"] == "r"
    with pytest.raises(ValueError, match=r"shape \(batch, m, n\). Got \(20, 30\)"):
        measure_many({}, X[0], optimum=opt)
    with pytest.raises(ValueError, match=r"one optimum per matrix, shape \(3,\). Got \(2,\)"):
        measure_many({}, X, optimum=opt[:2])
    with pytest.raises(ValueError, match="must be trained first; pass 'train'"):
        measure_many({"pod": make_factorizer("pod-basis", rank=3)}, X, optimum=opt, errors=())


def test_peers_run_at_defaults_and_at_our_budget():
    rows = expand_peers(["svd", "sklearn-rsvd", "torch-lowrank"], rank=12)
    assert [r[0] for r in rows] == [
        "svd",
        "sklearn-rsvd [defaults]",
        "sklearn-rsvd [budget]",
        "torch-lowrank [defaults]",
        "torch-lowrank [budget]",
    ]
    params = {label: p for label, _, p in rows}
    assert params["sklearn-rsvd [defaults]"] == {"oversample": 10, "n_iter": "auto"}
    # our budget with our normalization (QR after every product): scikit-learn's 'auto'
    # normalizer is 'none' at n_iter=2, a weaker algorithm than the one it is compared with
    assert params["sklearn-rsvd [budget]"] == {
        "oversample": 10,
        "n_iter": 2,
        "power_iteration_normalizer": "QR",
    }
    assert params["torch-lowrank [defaults]"] == {"oversample": 0, "n_iter": 2}
    assert params["torch-lowrank [budget]"] == {"oversample": 10, "n_iter": 2}
    # at rank 4 torch's documented q = 6 leaves 2 columns of oversampling
    assert PEER_SETTINGS["torch-lowrank"].defaults(4) == {"oversample": 2, "n_iter": 2}
    for _label, name, p in rows:  # every row builds
        assert make_factorizer(name, rank=12, **p).rank == 12


def test_sklearn_budget_peer_normalizes_like_rsvd():
    """At our budget (n_iter=2) scikit-learn's 'auto' normalizer is 'none', which loses the
    trailing directions of a decaying float32 spectrum; the budget row uses 'QR' (as rsvd
    does) and is then as accurate as rsvd on the same matrix."""
    import torch

    from neuralfactor.core.metrics import ratio_to_optimum

    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(256, 30, dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(512, 30, dtype=torch.float64, generator=g))
    X = ((u * torch.logspace(0, -5, 30, dtype=torch.float64)) @ v.T).float()
    X = X + 1e-7 * torch.randn(256, 512, generator=g)
    budget = PEER_SETTINGS["sklearn-rsvd"].budget
    peer = float(
        ratio_to_optimum(X, make_factorizer("sklearn-rsvd", rank=30, **budget).factorize(X))
    )
    ours = float(ratio_to_optimum(X, make_factorizer("rsvd", rank=30).factorize(X)))
    unnormalized = make_factorizer("sklearn-rsvd", rank=30, oversample=10, n_iter=2)
    weak = float(ratio_to_optimum(X, unnormalized.factorize(X)))
    assert peer <= 1.01 * ours, (peer, ours)
    assert weak > 1.5 * peer, (weak, peer)  # the reason the budget row sets the normalizer


def test_one_timing_config_drives_time_interleaved_and_measure_many():
    """The options live in TimingConfig only: a config and the same single overrides time
    alike, an unknown option is refused by name, and a bad value by the config itself."""
    clock = FakeClock()

    def tick():
        clock.now += 1.0

    cfg = TimingConfig(warmup=0, min_rounds=4, max_rounds=4, block_seconds=0)
    by_config = time_interleaved({"a": tick}, timing=cfg, clock=clock)
    by_override = time_interleaved(
        {"a": tick}, clock=clock, warmup=0, min_rounds=4, max_rounds=4, block_seconds=0
    )
    assert by_config.rounds == by_override.rounds == 4
    assert by_config.stats["a"].times == by_override.stats["a"].times == (1.0,) * 4
    assert CASE_TIMING == TimingConfig(max_seconds=20.0)
    with pytest.raises(TypeError, match=r"Unknown timing option\(s\) \['repeats'\]"):
        time_interleaved({"a": tick}, repeats=3)
    with pytest.raises(ValueError, match="measure_many needs max_call_seconds > 0. Got 0"):
        TimingConfig(max_call_seconds=0)
    X, opt = _case()
    (rec,) = measure_many(
        {"svd": make_factorizer("svd", rank=3)},
        X,
        optimum=opt,
        timing=TimingConfig(min_rounds=3, max_rounds=3, min_run_time=0),
    )
    assert rec["rounds"] == 3


def test_suite_timing_maps_the_suite_flags_onto_one_timing_config():
    suite = SuiteTiming(
        repeats=7, warmup=2, max_call_seconds=0.5, min_run_time=0.3, max_case_seconds=9.0
    )
    assert suite.timing == TimingConfig(
        warmup=2, min_rounds=7, min_run_time=0.3, max_seconds=9.0, max_call_seconds=0.5
    )
    with pytest.raises(ValueError, match=r"3 <= min_rounds .* Got min_rounds=2"):
        _ = SuiteTiming(repeats=2).timing


def test_evaluate_refuses_fewer_than_three_repeats(tmp_path, capsys):
    """``--repeats 1`` once ran 3 rounds silently; it is refused, before any work."""
    from neuralfactor.amortized.study import evaluate_run
    from neuralfactor.cli import main

    with pytest.raises(ValueError, match="'repeats' parameter of evaluate must be >= 3.*Got 1"):
        evaluate_run(tmp_path / "no-run", repeats=1)
    assert main(["-q", "evaluate", str(tmp_path / "no-run"), "--repeats", "2"]) == 2  # bad usage
    assert "must be >= 3" in capsys.readouterr().err
