"""docs/results/matvec-and-toolkit.md is a pure function of its records."""

import copy
import shutil
from pathlib import Path

import pytest

from neuralfactor.report.matvec_page import (
    load_matvec_records,
    render_matvec_page,
    summarize,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs/results"


@pytest.fixture(scope="module")
def records():
    return load_matvec_records(RESULTS)


def test_committed_page_is_the_rendering_of_the_records(records):
    page = (RESULTS / "matvec-and-toolkit.md").read_text(encoding="utf-8")
    assert render_matvec_page(records) == page


def test_study_table_row_aggregates_its_seeds_exactly():
    recs = [
        {
            "matrix": "m",
            "rank": 2,
            "net_rel_2": a,
            "svd_rel_2": 0.5,
            "d_rel_2": a - 0.5,
            "net_rel_fro": 0.25,
            "svd_rel_fro": 0.25,
            "d_rel_fro": 0.0,
            "ratio_to_optimum": 1.0 + a,
            "rank_ok": True,
            "effective_rank": 2,
            "optimal": ok,
            "n_matvecs": 10,
            "train_seconds": t,
            "svd_seconds": 1e-5,
        }
        for a, ok, t in [(0.5, True, 1.0), (0.75, False, 3.0), (0.5, True, 2.0)]
    ]
    row = summarize(recs).splitlines()[2]
    assert row == (
        "| m | 2 | 3 | 0.5833 | 0.5000 | 2.5e-01 | 0.2500 | 0.2500 | 0.0e+00 | 1.750000 "
        "| 3/3 | 2/3 | 10 | 2 | 1e-05 |"
    )


def test_headline_and_prose_follow_the_records(records):
    recs = copy.deepcopy(records)
    lb = [r for r in recs["study"] if r["optimizer"] == "lbfgs"]
    lb[0]["within_target"] = False
    lb[0]["d_rel_2"] = 0.25
    lb[1]["optimal"] = False
    page = render_matvec_page(recs)
    assert "to within **2.5e-01 (2-norm)" in page
    assert f"in **{len(lb) - 1}/{len(lb)}** of its L-BFGS fits" in page
    assert "did not pass everywhere (see the table)" in page
    assert "passed everywhere" not in page


def test_missing_run_conditions_read_not_recorded(records):
    recs = copy.deepcopy(records)
    for key in ("scipy", "sklearn", "torch"):
        recs["meta"].pop(key, None)
    page = render_matvec_page(recs)
    assert "Versions: torch not recorded, numpy 2.4.6, scipy not recorded" in page


def test_missing_records_file_is_named(tmp_path):
    for name in ("matvec-study.jsonl", "matvec-study.meta.json", "matvec-toolkit.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"missing in .*: matvec-ablation\.jsonl; run"):
        load_matvec_records(tmp_path)


def test_bad_jsonl_line_is_named(tmp_path):
    for name in ("matvec-ablation.jsonl", "matvec-study.meta.json", "matvec-toolkit.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    (tmp_path / "matvec-study.jsonl").write_text("{}\n[oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"matvec-study\.jsonl, line 2: expected one JSON"):
        load_matvec_records(tmp_path)
