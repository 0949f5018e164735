"""docs/results/vlasov-validation.md is a pure function of its records."""

import copy
import json
from pathlib import Path

import pytest

from neuralfactor.report.vlasov_validation import (
    load_records,
    records_from_page,
    render_vlasov_validation,
)

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "docs/results/records/vlasov-validation-legacy.jsonl"
PAGE = ROOT / "docs/results/vlasov-validation.md"


@pytest.fixture(scope="module")
def records():
    return load_records(LEGACY)


def test_legacy_records_are_labelled_and_hold_the_page_values(records):
    assert all(r["source"] == "converted from the committed page" for r in records)
    landau = [r for r in records if r["section"] == "landau"]
    assert [r["scheme"] for r in landau] == ["spectral", "fd5", "fd5 + SVD 1e-05"]
    assert landau[0]["rate"] == -0.154 and landau[0]["rate_rel_err"] == 0.0046
    assert render_vlasov_validation(records) == PAGE.read_text(encoding="utf-8")


def test_converting_the_rendered_page_gives_the_same_records(records):
    """The page holds every value of its records: converting it back loses nothing."""
    again = records_from_page(render_vlasov_validation(records))
    run, run2 = records[0], again[0]
    assert {k: v for k, v in run2.items() if v is not None} == {
        k: v for k, v in run.items() if k not in ("records_file", "args")
    }
    assert again[1:] == records[1:]


def _row(page: str, start: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(start))


def test_targets_and_prose_are_computed_from_the_records(records):
    recs = copy.deepcopy(records)
    landau = next(r for r in recs if r["section"] == "landau")
    landau["rate_rel_err"] = 0.05  # outside the 2% target
    for r in recs:
        if r["section"] == "strong":
            r["alt_rate"] = -0.5
        if r["section"] == "performance" and r["B"] == 16 and r["grid"] == "64x128":
            r["run_steps_per_s"] = 2 * r["run_steps_per_s"]
    page = render_vlasov_validation(recs)
    assert _row(page, "| spectral | 0.00491 |").endswith("| **no** | 5.4 |")
    assert "With all maxima in [0, 15] the early rate is -0.5000 to -0.5000" in page
    assert "64x128:\n  spectral 2.66x" in page or "64x128: spectral 2.66x" in page


def test_missing_run_conditions_read_not_recorded(records):
    run = {"section": "run"}
    page = render_vlasov_validation([run, *records[1:]])
    assert "Load average (1/5/15 min) at start: not recorded. GPU: **not recorded**." in page
    assert "total wall time not recorded." in page


def test_records_without_run_record_are_refused(records):
    with pytest.raises(ValueError, match="no 'run' record"):
        render_vlasov_validation(records[1:])


def test_bad_records_line_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"section": "run"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.jsonl, line 2: expected one JSON object"):
        load_records(path)
