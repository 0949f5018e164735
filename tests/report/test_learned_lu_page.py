"""docs/results/learned-lu.md is a pure function of the committed lu_*.json records."""

import copy
import shutil
from pathlib import Path

import pytest

from neuralfactor.report.learned_lu import (
    PAGE_COMMAND,
    RECORDS,
    load_records,
    render_learned_lu,
    write_learned_lu,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDS_DIR = ROOT / "docs" / "results" / "records"


@pytest.fixture(scope="module")
def records():
    return load_records(RECORDS_DIR)


def test_page_is_the_rendering_of_the_records(records, tmp_path):
    page = (ROOT / "docs" / "results" / "learned-lu.md").read_text(encoding="utf-8")
    assert render_learned_lu(records) == page
    assert f"`{PAGE_COMMAND}`" in page
    assert "bash configs/lu-table.sh" in page and (ROOT / "configs" / "lu-table.sh").is_file()
    out = write_learned_lu(RECORDS_DIR, tmp_path / "page.md")
    assert out.read_text(encoding="utf-8") == page


def test_numbers_follow_the_records(records):
    """A planted change of one record value moves the table, the prose and the verdict."""
    rec = copy.deepcopy(records)
    sym = rec["lu_sym_rbf_b"]["rows"][0]
    assert "operator error 8.8e-05 (≤ 1.0e-04)" in render_learned_lu(records)
    sym["op_err_fro"] = 3.25e-4  # above the 1e-4 target
    page = render_learned_lu(rec)
    assert "operator error 3.2e-04 (≤ 1.0e-04)" in page
    assert "| 3.2e-04 | 1.0e-04 | **no** |" in page
    lap = rec["lu_lm_a"]["rows"][0]
    assert lap["operator"] == "laplacian-1d"
    lap["gmres"]["learned"]["iters"] = 7  # misses the 6-iteration target
    page = render_learned_lu(rec)
    assert "laplacian-1d at 60 LM steps" not in page
    assert "misses a target on: laplacian-1d, rbf" in page


def test_missing_record_is_named(tmp_path):
    for name in RECORDS[1:]:
        shutil.copy(RECORDS_DIR / f"{name}.json", tmp_path / f"{name}.json")
    with pytest.raises(FileNotFoundError, match=r"needs the records \['lu_table'\] in"):
        load_records(tmp_path)
