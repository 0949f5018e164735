"""The classical-baselines page is a pure function of its records: bands, noise, warm marks."""

import json
import math
import re
import runpy
import sys
from pathlib import Path

import pytest

from neuralfactor.bench.baselines import (
    BANDS,
    BASELINE,
    baselines_page,
    read_records,
    reproducibility,
    summary,
    write_records,
)
from neuralfactor.core.timing import Spread, speed_ratio

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "results" / "records" / "classical-baselines.jsonl"


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


def _committed_rows():
    return [r for r in read_records(COMMITTED)[1:] if r.get("kind") == "row"]


def test_reproducibility_of_the_committed_records_against_themselves():
    rows = _committed_rows()
    lines = reproducibility(rows, rows)
    n = sum(1 for r in rows if "error" not in r and r["method"] != BASELINE)
    assert f"**{n} of {n} speed ratios agree between the two runs**." in lines
    table = [ln for ln in lines if ln.startswith("| evolving") or ln.startswith("| planted")]
    assert len(table) == n and all(ln.endswith("| yes |") for ln in table)


def test_reproducibility_flags_a_row_whose_speed_changed():
    rows = _committed_rows()
    slow = next(r for r in rows if r["label"] == "rsvd" and r["batch"] == 256)
    # the second run: rsvd 3x slower in one case (quartiles scaled alike), the rest unchanged
    scale = {k: slow[k] * 3 for k in slow if k.startswith("seconds_per_matrix")}
    rerun = [dict(r, **scale) if r is slow else r for r in rows]
    # and one row measured in the first run only
    dropped = next(r for r in rows if r["label"] == "svd" and r["batch"] == 1)
    rerun = [r for r in rerun if r is not dropped]
    lines = reproducibility(rows, rerun)
    n = sum(1 for r in rows if "error" not in r and r["method"] != BASELINE) - 1
    assert f"**{n - 1} of {n} speed ratios agree between the two runs**; 1 rows" in lines[4]
    key = f"| {slow['data']} | {slow['m']}x{slow['n']} | {slow['rank']} | 256 | rsvd |"
    (line,) = [ln for ln in lines if ln.startswith(key)]
    assert "| **no** |" in line  # within the quartile ranges
    # rsvd 3x slower: its speed ratio falls to a third, 2/3 apart, in one case
    assert "lie in 1 cases; their two medians differ by 66.7% (median) and at most 66.7%" in (
        "\n".join(lines)
    )


def test_no_summary_prints_a_speed_up_beyond_the_ratio_of_medians():
    """Every speed in the committed page's summary is the ratio of the two medians of that
    case (rounded as printed), never a quartile bound or a single sample."""
    rows = _committed_rows()
    checked = 0
    for line in summary(rows):
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 9 or cells[0] not in ("evolving", "planted") or cells[5] == "none":
            continue
        data, size, rank, batch = cells[0], cells[1], int(cells[2]), int(cells[3])
        band = float(cells[4].removeprefix("<= "))
        m, n = (int(v) for v in size.split("x"))
        case = [
            r
            for r in rows
            if (r["data"], r["m"], r["n"], r["rank"], r["batch"]) == (data, m, n, rank, batch)
            and "error" not in r
        ]
        best = min(
            (r for r in case if r["ratio_max"] <= band), key=lambda r: r["seconds_per_matrix"]
        )
        base = next(r for r in case if r["method"] == BASELINE)
        median_ratio = base["seconds_per_matrix"] / best["seconds_per_matrix"]
        printed = re.match(r"~?([0-9.]+)x", cells[7])
        if cells[7] == "1":
            assert best is base
        elif cells[7].startswith("~1x") or cells[7].startswith("within noise"):
            # no speed-up claimed: the two spreads cannot tell the rows apart
            verdict = speed_ratio(Spread.from_record(base), Spread.from_record(best)).verdict
            assert verdict == "within noise", (cells, verdict)
        else:
            assert printed, cells[7]
            value = float(printed.group(1))
            digits = f"{median_ratio:.2g}" if median_ratio < 10 else f"{median_ratio:.0f}"
            assert value == float(digits), (cells, median_ratio)
        checked += 1
    assert checked == 2 * len({(r["data"], r["m"], r["rank"], r["batch"]) for r in rows})
    assert len(BANDS) == 2


def test_rerun_option_adds_the_reproducibility_section(tmp_path, monkeypatch):
    """The script's --rerun copies a second run's records beside the first; --from-records
    then regenerates the page with the section, byte for byte."""
    rec_dir = tmp_path / "docs" / "results" / "records"
    rec_dir.mkdir(parents=True)
    (rec_dir / "classical-baselines.jsonl").write_bytes(COMMITTED.read_bytes())
    lines = COMMITTED.read_text().splitlines()
    run2 = [json.dumps(dict(json.loads(lines[0]), command="second run"))] + lines[1:]
    (tmp_path / "run2.jsonl").write_text("\n".join(run2) + "\n")
    monkeypatch.chdir(tmp_path)
    script = str(ROOT / "benchmarks" / "classical_baselines.py")
    monkeypatch.setattr(sys, "argv", [script, "--from-records", "--rerun", "run2.jsonl"])
    runpy.run_path(script, run_name="__main__")
    page = (tmp_path / "docs" / "results" / "classical-baselines.md").read_text()
    assert "## Reproducibility (computed from the records of two runs)" in page
    assert "(`second run`)" in page and " speed ratios agree between the two runs**" in page
    assert (rec_dir / "classical-baselines-rerun.jsonl").exists()
    monkeypatch.setattr(sys, "argv", [script, "--from-records"])
    runpy.run_path(script, run_name="__main__")
    assert (tmp_path / "docs" / "results" / "classical-baselines.md").read_text() == page
    (tmp_path / "bad.jsonl").write_text('{"kind": "row"}\n')
    monkeypatch.setattr(sys, "argv", [script, "--from-records", "--rerun", "bad.jsonl"])
    with pytest.raises(ValueError, match="first line must be the run line"):
        runpy.run_path(script, run_name="__main__")


def test_run_to_run_term_is_the_smallest_widening_that_makes_two_runs_agree():
    from neuralfactor.bench.baselines import (
        RERUN_RECORDS,
        _agree_within,
        _ratios,
        run_to_run_term,
        widened,
    )

    one = _ratios(_committed_rows())
    two = _ratios([r for r in read_records(ROOT / RERUN_RECORDS)[1:] if r.get("kind") == "row"])
    term, needed = run_to_run_term(one, two)
    common = set(one) & set(two)
    assert all(_agree_within(one[k], two[k], needed * (1 + 1e-9)) for k in common)
    assert not all(_agree_within(one[k], two[k], needed * 0.99) for k in common)
    assert term == math.ceil(needed * 100) / 100 and term >= needed
    # identical runs need no term; a widened range that then contains 1 is within noise
    assert run_to_run_term(one, one) == (0.0, 0.0)
    r = next(v for v in one.values() if v.verdict == "faster" and v.low < 1.05)
    assert widened(r, 0.05).verdict == "within noise" and widened(r, 0.0) is r


def test_a_further_run_tests_the_term_out_of_sample():
    from neuralfactor.bench.baselines import RERUN_RECORDS

    rows = _committed_rows()
    rerun = [r for r in read_records(ROOT / RERUN_RECORDS)[1:] if r.get("kind") == "row"]
    slow = next(r for r in rows if r["label"] == "rsvd" and r["batch"] == 256)
    scale = {k: slow[k] * 3 for k in slow if k.startswith("seconds_per_matrix")}
    third = [dict(r, **scale) if r is slow else r for r in rows]
    text = "\n".join(reproducibility(rows, rerun, more=[third]))
    n = sum(1 for r in rows if "error" not in r and r["method"] != BASELINE)
    assert f"against run 1: **{n - 1} of {n} agree within ±" in text
    assert "untested out of sample" not in text
    assert "untested out of sample" in "\n".join(reproducibility(rows, rerun))
