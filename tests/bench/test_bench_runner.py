import json

import pytest
import torch

from neuralfactor.bench.runner import BenchConfig, make_frames, run_bench
from neuralfactor.bench.tables import markdown_table
from neuralfactor.cli import main


def test_run_bench_records_peers_in_same_run():
    cfg = BenchConfig(
        methods=("svd", "scipy-gesdd", "rsvd-gemm", "pod-basis"),
        sizes=((24, 40),),
        ranks=(3,),
        batches=(1, 5),
        repeats=3,
        warmup=0,
        max_case_seconds=0.1,
    )
    recs = run_bench(cfg)
    assert len(recs) == 8
    for r in recs:
        assert r["seconds_per_matrix_q25"] <= r["seconds_per_matrix"]
        assert r["seconds_per_matrix"] <= r["seconds_per_matrix_q75"]
        assert r["rounds"] >= 3 and r["torch_threads"] == 1
        assert r["interleaved"] == ["svd", "scipy-gesdd", "rsvd-gemm", "pod-basis"]
        assert r["ratio_mean"] >= 1 - 1e-6 and r["ratio_max"] < 1.05
        assert r["version"] and r["device"] == "cpu"
    pod = next(r for r in recs if r["method"] == "pod-basis")
    assert pod["fit_seconds"] > 0 and pod["trained"]
    table = markdown_table(recs)
    assert table.count("\n") == 2 + len(recs) and "| scipy-gesdd | 24x40 | 3 | 5 |" in table


def test_sub_batch_timing_when_over_budget():
    cfg = BenchConfig(
        methods=("scipy-gesdd",),
        sizes=((64, 64),),
        ranks=(2,),
        batches=(200,),
        repeats=3,
        warmup=0,
        max_call_seconds=1e-3,
        max_case_seconds=0.1,
    )
    (rec,) = run_bench(cfg)
    assert 4 <= rec["timed_batch"] < 200


@pytest.mark.parametrize("kind", ["planted", "evolving"])
def test_make_frames_deterministic(kind):
    a = make_frames(kind, 3, 8, 10, seed=4)
    torch.testing.assert_close(a, make_frames(kind, 3, 8, 10, seed=4))
    assert a.shape == (3, 8, 10) and a.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"methods": ("nope",)}, "Unknown factorizer 'nope'"),
        ({"methods": ("svd",), "data": "x"}, "'data' parameter of bench must be one of"),
        (
            {"methods": ("svd",), "ranks": (99,)},
            r"'ranks' parameter of bench must lie in \[1, 16\]",
        ),
        (
            {"methods": ("svd",), "ranks": (2,), "batches": (0,)},
            "'batches' parameter of bench must be >= 1",
        ),
        (
            {"methods": ("svd",), "ranks": (2,), "repeats": 1},
            "'repeats' parameter of bench must be >= 3 .* Got 1",
        ),
    ],
)
def test_bench_config_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        BenchConfig(sizes=((16, 20),), **kwargs)


def test_cli_bench_writes_jsonl(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    rc = main(
        [
            "-q",
            "bench",
            "--methods",
            "svd,rsvd",
            "--size",
            "16x20",
            "--ranks",
            "2",
            "--batches",
            "2",
            "--repeats",
            "3",
            "--max-case-seconds",
            "0.1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["method"] for r in rows] == ["svd", "rsvd"]


@pytest.mark.parametrize(
    "args,msg",
    [
        (["bench", "--size", "16by20"], "takes MxN"),
        (["bench", "--ranks", "a,b"], "comma-separated integers"),
        (["bench", "--methods", "zzz"], "Unknown factorizer 'zzz'"),
        (["bench", "--data-file", "/nonexistent.npy"], "does not exist"),
    ],
)
def test_cli_bench_bad_usage_one_line_exit_2(args, msg, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
