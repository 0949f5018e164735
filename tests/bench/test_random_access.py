"""The random-access benchmark: its library, its page and its script (``--quick``)."""

import json
import runpy
import sys

import pytest
import torch
from tests.helpers import planted

from neuralfactor.bench.random_access import (
    RandomAccessConfig,
    cheapest_rsvd,
    convmf_flops,
    method_flops,
    split_frames,
)
from neuralfactor.classical import flops
from neuralfactor.io import read_jsonl
from neuralfactor.report.random_access import band_verdicts, random_access_markdown


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``benchmarks/random_access.py --quick`` once: its records and page."""
    tmp = tmp_path_factory.mktemp("random-access")
    rec, page = tmp / "r.jsonl", tmp / "p.md"
    argv = sys.argv
    sys.argv = ["random_access.py", "--quick", "--records", str(rec), "--page", str(page)]
    try:
        runpy.run_path("benchmarks/random_access.py", run_name="__main__")
    finally:
        sys.argv = argv
    return rec, page


@pytest.fixture(scope="module")
def records(quick_run):
    return read_jsonl(quick_run[0])


def test_records_cover_every_row_with_flops_and_training(records):
    methods = {r["method"] for r in records}
    assert {"rsvd", "pod-basis", "svds-arpack", "scipy-gesdd"} <= methods
    assert {"sketch", "sketch+refine", "convmf+refine"} <= methods
    assert {r["split"] for r in records} == {"interpolation", "extrapolation"}
    for r in records:
        assert "error" not in r, r
        assert r["suite"] == "random-access" and (r["m"], r["n"], r["rank"]) == (16, 32, 3)
        assert r["test_frames"] == 10 and r["warm"] is False  # cold, one batched call
        assert r["ratio_max"] >= 1 - 1e-6  # nothing beats Eckart-Young (float32 rounding)
        if r["method"] != "svds-arpack":
            assert r["flops"] > 0 and r["x_flop_floor"] > 0
    learned = [r for r in records if r["method"] in ("sketch", "sketch+refine", "convmf+refine")]
    for r in learned:
        assert r["fit_seconds"] > 0 and r["train_frames"] == 70
        assert r["train_frames_per_s"] == pytest.approx(r["train_epochs"] * 70 / r["fit_seconds"])
    # scipy's exact SVD is the optimum to float32 round-off
    exact = [r for r in records if r["method"] == "scipy-gesdd"]
    assert all(r["ratio_max"] <= 1 + 1e-3 for r in exact)


def test_page_is_a_pure_function_of_the_records(records):
    page = random_access_markdown(records)
    assert page == random_access_markdown(json.loads(json.dumps(records)))
    assert "`python benchmarks/random_access.py --from-records`" in page
    assert "## Verdicts" in page and "## 16x32" in page
    assert page.count("| 16x32 | 3 |") == 4  # two splits x two bands
    assert "No records yet" in random_access_markdown([])


def _row(method, us, worst, **kw):
    s = us * 1e-6
    return {
        "suite": "random-access",
        "method": method,
        "label": method,
        "m": 64,
        "n": 128,
        "rank": 6,
        "split": "interpolation",
        "seconds_per_matrix": s,
        "seconds_per_matrix_q25": 0.99 * s,
        "seconds_per_matrix_q75": 1.01 * s,
        "ratio_max": worst,
        "flops": kw.pop("flops", 1e6),
        "x_flop_floor": kw.pop("x_flop_floor", 2.0),
        **kw,
    }


def test_band_verdicts_win_gap_and_outside():
    rows = [_row("rsvd", 100, 1.004), _row("scipy-gesdd", 900, 1.0), _row("sketch", 50, 1.03)]
    (v,) = band_verdicts(rows, 1.05)
    assert v["classical"]["method"] == "rsvd" and v["learned"]["method"] == "sketch"
    assert v["verdict"].startswith("win for learning: sketch 2x (")
    (v,) = band_verdicts(rows, 1.01)  # the sketch is outside the tighter band
    assert (
        v["learned"] is None
        and "no learned row within 1.01 (best worst ratio 1.0300)" in (v["verdict"])
    )
    slow = [
        _row("rsvd", 100, 1.004, flops=1e6),
        _row("convmf+refine", 400, 1.02, flops=4e7, weight_bytes=2e7),
    ]
    (v,) = band_verdicts(slow, 1.05)
    assert v["verdict"].startswith("gap: 4.00x slower; operation count (40.00 vs 1.00 Mflop")
    assert "memory traffic: 20.0 MB of weights" in v["verdict"]
    cheap = [_row("rsvd", 100, 1.004, flops=2e6), _row("sketch", 300, 1.004, x_flop_floor=9.0)]
    (v,) = band_verdicts(cheap, 1.05)
    assert (
        "overhead, not operations (1.00 vs 2.00 Mflop; 9.0x vs 2.0x the flop floor)"
        in (v["verdict"])
    )


def test_a_learned_row_outside_the_band_states_its_accuracy_cause():
    interp = [_row("rsvd", 100, 1.004), _row("pod-basis", 50, 1.5), _row("sketch", 50, 1.02)]
    extra = [
        _row("rsvd", 100, 1.004, split="extrapolation"),
        _row("pod-basis", 50, 3.2, split="extrapolation"),
        _row("sketch", 50, 1.17, split="extrapolation"),
    ]
    by_split = {v["case"][3]: v["verdict"] for v in band_verdicts(interp + extra, 1.01)}
    # extrapolation: the same row on the interpolation split, and the shift pod-basis measures
    assert by_split["extrapolation"] == (
        "no learned row within 1.01 (best worst ratio 1.1700); cause: accuracy, not speed: "
        "sketch reaches 1.0200 on the interpolation split, and these frames lie outside the "
        "span of the training frames it learned from (pod-basis, fit on the training frames: "
        "3.2000 here against 1.5000 on the interpolation split)"
    )
    assert by_split["interpolation"].endswith("one pass of sketch (no power iteration) leaves "
                                               "more of the tail than the band allows")  # fmt: skip


def test_cheapest_rsvd_takes_the_fewest_flops_within_the_band(gen):
    X64 = planted((4, 40, 60), rank=40, decay=0.8, generator=gen)
    X = X64.float()
    loose, tight = cheapest_rsvd(X, X64, 4, 1.5), cheapest_rsvd(X, X64, 4, 1.001)
    cost = lambda p: flops("rsvd", 40, 60, 4, n_iter=p["n_iter"], oversample=p["oversample"])  # noqa: E731
    assert not loose["missed"] and not tight["missed"] and cost(loose) <= cost(tight)
    # every cheaper setting tried first missed the band
    assert all(t["worst_ratio"] > 1.001 for t in tight["tried"][:-1])
    assert tight["tried"][-1]["worst_ratio"] <= 1.001
    assert cheapest_rsvd(X, X64, 4, 1.0 - 1e-3)["missed"]  # nothing beats the optimum


def test_splits_shuffle_the_test_frames():
    frames = torch.arange(100.0)[:, None, None].expand(100, 2, 3)
    train, val, test, idx = split_frames(frames, "extrapolation")
    assert (
        train.shape[0] == 70 and val.shape[0] == 20 and sorted(idx.tolist()) == list(range(90, 100))
    )
    assert idx.tolist() != sorted(idx.tolist())  # random order
    torch.testing.assert_close(test[:, 0, 0], idx.float())
    _, _, _, idx_i = split_frames(frames, "interpolation")
    assert max(idx_i.tolist()) - min(idx_i.tolist()) > 10  # spread over the run
    with pytest.raises(ValueError, match=r"'split' parameter takes"):
        split_frames(frames, "random")


def test_config_refuses_bad_input():
    with pytest.raises(ValueError, match=r"'splits' parameter of the random-access benchmark"):
        RandomAccessConfig(splits=("time",))
    with pytest.raises(ValueError, match=r"'ranks' parameter .* must lie in \[1, 64\]"):
        RandomAccessConfig(ranks=(65,))
    with pytest.raises(ValueError, match=r"needs frames >= 100"):
        RandomAccessConfig(frames=50)


def test_flop_counts_of_the_learned_rows():
    from neuralfactor.amortized import sketch_flops

    assert method_flops("sketch", 64, 128, 6, {}) == sketch_flops(64, 128, 6)
    assert method_flops("sketch+refine", 64, 128, 6, {"oversample": 2}) == sketch_flops(
        64, 128, 6, oversample=2, refine=True
    )
    assert method_flops("rsvd", 64, 128, 6, {"n_iter": 1, "oversample": 5}) == flops(
        "rsvd", 64, 128, 6, n_iter=1, oversample=5
    )
    assert method_flops("svds-arpack", 64, 128, 6, {}) is None
    # ConvMF reads every weight of its first dense layer: 2 * mn * 500 dominates
    assert convmf_flops(64, 128, 6) > 2 * 64 * 128 * 500


def test_script_from_records_rewrites_the_quick_page(quick_run, monkeypatch):
    rec, page = quick_run
    first = page.read_text()
    assert "--quick" in first and not rec.with_suffix(".partial.jsonl").exists()
    args = ["random_access.py", "--from-records", "--records", str(rec), "--page", str(page)]
    monkeypatch.setattr(sys, "argv", args)
    runpy.run_path("benchmarks/random_access.py", run_name="__main__")
    assert page.read_text() == first


def test_frames_suite_trains_and_times_the_sketch_rows():
    """benchmarks/frames_gpu.py times the sketch encoder through the frames suite: one model
    per rank, plain and +refine (equal accuracy: both return the least-squares V)."""
    from neuralfactor.bench.frames import LEARNED, FramesConfig, run_frames

    assert {"sketch", "sketch+refine"} <= set(LEARNED)
    cfg = FramesConfig(
        device="cpu",
        sizes=((16, 32),),
        ranks=(2,),
        batches=(1, 6),
        methods=("sketch", "sketch+refine"),
        repeats=3,
        warmup=0,
        max_call_seconds=0.05,
        min_run_time=0.0,
        max_case_seconds=0.1,
        train_frames=30,
        train_epochs=3,
        t_end=10.0,
    )
    recs = run_frames(cfg)
    assert [r["method"] for r in recs] == ["sketch", "sketch+refine"] * 2
    assert all("error" not in r and r["family"] == "learned" for r in recs)
    assert len({r["fit_seconds"] for r in recs}) == 1  # one training serves both rows
    for plain, refined in (recs[:2], recs[2:]):
        assert refined["ratio_mean"] == pytest.approx(plain["ratio_mean"], rel=1e-4)


def test_page_states_the_target_at_128x256_rank_12():
    def at_target(method, us, worst):
        r = _row(method, us, worst, m=128, n=256, rank=12, loadavg_before=0.5)
        r.update(loadavg_after=0.7, command="c", date="d", machine="x86_64", threads=1)
        r.update(torch_version="t", scipy_version="s", ratio_mean=1.0, label=method)
        r.update(config={"frames": 300, "sketch_epochs": 1, "sketch_lr": 0.01})
        r["config"].update(sketch_oversample=[5], convmf_epochs=1, bands=[1.05, 1.01])
        return r

    page = random_access_markdown([at_target("rsvd", 300, 1.004), at_target("sketch", 200, 1.03)])
    assert "- interpolation: met (win for learning: sketch 1.5x (" in page
    assert "measured under load" not in page
    page = random_access_markdown([at_target("rsvd", 300, 1.004), at_target("sketch", 600, 1.03)])
    assert "- interpolation: missed (gap: 2.00x slower; overhead, not operations" in page
