"""docs/results/demo.md: the verdicts on the run-time and accuracy targets come from the records."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "demo_timing.py"


@pytest.fixture(scope="module")
def timing():
    spec = importlib.util.spec_from_file_location("demo_timing", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(demo, stage, wall, ratios=None):
    return {
        "kind": "row",
        "demo": demo,
        "stage": stage,
        "run": 0,
        "device": "cpu",
        "threads": 1,
        "cpu": "x86_64",
        "cpu_count": 2,
        "torch_version": "2",
        "version": "0",
        "python": "3",
        "omp_num_threads": "1",
        "wall_seconds": wall,
        "user_seconds": wall * 0.9,
        "max_rss_mib": 500.0,
        "loadavg_before": 0.1,
        "loadavg_after": 1.2,
        "stages_seconds": {"simulate": 10.0, "train": wall - 30.0, "evaluate": 15.0},
        "ratios": ratios or {},
    }


def test_page_states_each_target_met_or_missed(timing):
    run = {"kind": "run", "started": "a", "finished": "b"}
    ratios = {
        "convmf r4": 1.02,
        "convmf+refine r4": 1.004,
        "convmf r8": 1.30,
        "convmf+refine r8": 1.155,
        "convmf+subspace r8": 1.05,
    }
    rows = [
        _row("--quick", "fresh directory", 42.0),
        _row("--quick", "second run, all reused", 3.0),
        _row("default", "fresh directory", 330.0, ratios),
        _row("default", "second run, all reused", 4.0),
    ]
    text = timing.page([run, *rows])
    assert "`neuralfactor demo --quick`: 42.0 s from a fresh directory (target 1 min 0 s: met)" in (
        text
    )
    assert (
        "`neuralfactor demo`: 5 min 30 s from a fresh directory (target 5 min 0 s: missed by 30.0 s)"
        in (text)
    )
    # 1.155 / 1.10 - 1 = 5.0 %; the worst rank decides
    assert (
        "convmf+refine r4 1.004x, convmf+refine r8 1.155x (target: every one within 1.1x: "
        "missed by 5.0%)" in text
    )
    assert "missed by 5.0%" in text and "convmf r4 1.020x, convmf r8 1.300x" in text
    assert (
        "| default | fresh directory | 1 | 5 min 30 s | 10.0 s / 5 min 0 s / 15.0 s / - |" in text
    )
    # every fresh run started at load 0.1: no shared-machine note
    assert "The machine was shared" not in text
    rows[2]["loadavg_before"] = 5.61
    assert (
        "The machine was shared during the default run 1 (1-minute load average above 1 on 2 "
        "cores before it started: 5.61), so these wall times are upper bounds; the user CPU "
        "time of each run is 297 s." in timing.page([run, *rows])
    )
    rows[2]["ratios"]["convmf+refine r8"] = 1.09
    assert "within 1.1x: met)" in timing.page([run, *rows])


def test_page_without_runs_states_no_time(timing):
    text = timing.page([{"kind": "run", "note": "no run recorded yet"}])
    assert "states no time" in text and " s from a fresh directory" not in text


def test_readme_quotes_the_recorded_demo_run(timing):
    # the README's demo times and ratios are those of the committed records, not typed in
    import json
    import re

    root = SCRIPT.parents[1]
    recs = [json.loads(line) for line in (root / "docs/results/records/demo-timing.jsonl").open()]
    fresh = {r["demo"]: r for r in recs if r.get("stage") == "fresh directory" and r["run"] == 0}
    readme = (root / "README.md").read_text()
    for demo, cmd in (("default", "neuralfactor demo "), ("--quick", "neuralfactor demo --quick")):
        r = fresh[demo]
        want = f"{timing._mmss(r['wall_seconds'])} wall, {r['user_seconds']:.0f} s of CPU time"
        line = next(ln for ln in readme.splitlines() if ln.startswith(cmd) and "wall" in ln)
        assert want in line, (line, want)
    for key, value in fresh["default"]["ratios"].items():
        if key.startswith("convmf+refine") or (key.startswith("sketch") and "+" not in key):
            assert re.search(rf"{value:.3f}x", readme), key
