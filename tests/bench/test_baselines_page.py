"""The classical-baselines page is a pure function of its records: bands, noise, warm marks."""

import pytest

from neuralfactor.bench.baselines import baselines_page, read_records, summary, write_records


def _row(label, method, median, iqr, ratio, **kw):
    rec = {
        "kind": "row",
        "data": "evolving",
        "m": 8,
        "n": 16,
        "rank": 2,
        "batch": 4,
        "dtype": "float32",
        "device": "cpu",
        "method": method,
        "label": label,
        "seconds_per_matrix": median,
        "seconds_per_matrix_q25": median - iqr / 2,
        "seconds_per_matrix_q75": median + iqr / 2,
        "seconds_per_matrix_min": median - iqr,
        "ratio_mean": ratio,
        "ratio_max": ratio,
        "scaled_loss_mean": 0.1,
        "timed_batch": 4,
        "fit_seconds": 0.0,
        "rounds": 5,
        "warm": False,
    }
    rec.update(kw)
    return rec


ROWS = [
    _row("scipy-gesdd", "scipy-gesdd", 1e-3, 1e-4, 1.0),
    _row("rsvd", "rsvd", 2.5e-4, 2e-5, 1.005),
    # within noise of rsvd: IQRs [2.3e-4, 2.9e-4] and [2.4e-4, 2.6e-4] overlap by 2e-5 >= 1e-5
    _row("torch-lowrank [budget]", "torch-lowrank", 2.6e-4, 6e-5, 1.001),
    # the fastest of all, but at 1.03x the optimum: only in the 1.05 band, and warm
    _row("warm-subspace", "warm-subspace", 1e-4, 1e-5, 1.03, warm=True),
]


def test_summary_compares_speed_only_within_a_band():
    lines = summary(ROWS)
    (b101,) = [ln for ln in lines if "<= 1.01" in ln and ln.startswith("| evolving")]
    (b105,) = [ln for ln in lines if "<= 1.05" in ln and ln.startswith("| evolving")]
    # band 1.01: rsvd fastest; 1e-3 / 2.5e-4 = 4x with quartile range 0.95e-3/2.6e-4 .. 1.05e-3/2.4e-4
    assert "| rsvd | 250 (240-260) | 4x (3.7-4.4) | torch-lowrank [budget] |" in b101
    # band 1.05: the warm method, marked warm in the sentence that ranks it
    assert "| warm-subspace (warm) | 100 (95-105) | 10x (9-11) | - |" in b105


def test_page_round_trips_through_records(tmp_path):
    run = {
        "kind": "run",
        "harness": "interleaved",
        "command": "python benchmarks/classical_baselines.py",
        "elapsed_seconds": 3,
        "loadavg_start": 0.5,
        "loadavg_end": 0.7,
        "max_call_seconds": 0.1,
        "max_case_seconds": 10.0,
    }
    env = {
        "cpu": "x86_64",
        "torch_version": "t",
        "version": "v",
        "python": "p",
        "torch_threads": 1,
        "blas_threads": {},
        "loadavg_before": 0.5,
        "loadavg_after": 0.6,
    }
    recs = [run] + [dict(r, **env) for r in ROWS]
    write_records(tmp_path / "r.jsonl", recs)
    page = baselines_page(read_records(tmp_path / "r.jsonl"))
    assert page == baselines_page(recs)
    assert "Regenerate: `python benchmarks/classical_baselines.py --from-records`" in page
    assert "load average during the run: 0.50 to 0.60 (start 0.50, end 0.70)" in page
    assert "GPU: not run on a GPU" in page
    (tmp_path / "bad.jsonl").write_text('{"kind": "row"}\n')
    with pytest.raises(ValueError, match="first line must be the run line"):
        read_records(tmp_path / "bad.jsonl")
