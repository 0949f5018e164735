"""docs/results/neuralsvd.md is a pure function of the spectral records: what the page says
follows the records (planted changes), a missing record is reported, and cells are escaped."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from neuralfactor.report.neuralsvd import (
    HYDROGEN_STAGES,
    PAGE_COMMAND,
    _table,
    render_neuralsvd_page,
    write_neuralsvd_page,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs" / "results" / "records"


@pytest.fixture
def records(tmp_path):
    out = tmp_path / "records"
    out.mkdir()
    for p in RECORDS.glob("spectral_*.json"):
        shutil.copy(p, out / p.name)
    return out


def _edit(path: Path, fn) -> None:
    rec = json.loads(path.read_text())
    fn(rec)
    path.write_text(json.dumps(rec))


def test_committed_page_is_the_render_of_the_committed_records():
    page = (ROOT / "docs" / "results" / "neuralsvd.md").read_text(encoding="utf-8")
    assert render_neuralsvd_page(RECORDS) == page
    assert f"`{PAGE_COMMAND}`" in page and "`bash configs/neuralsvd-hydrogen.sh`" in page


def test_summary_follows_the_last_stage_record(records):
    last = records / f"{HYDROGEN_STAGES[-1].nestedlora}.json"
    assert "**both targets met**" in render_neuralsvd_page(records)

    def worse(rec):  # one off-diagonal Gram entry above the target, one mode off by 2e-2
        ev = rec["evaluation"]
        ev["orthogonality"] = 2e-3
        ev["gram"][0][5] = ev["gram"][5][0] = 2e-3
        ev["rel_error"][7] = ev["max_rel_error"] = 2e-2

    _edit(last, worse)
    page = render_neuralsvd_page(records)
    assert "**targets missed**" in page
    assert "8 of 9 states within 0.01 (largest error 2.0e-02), orthogonality 2.0e-03" in page
    # the stage table's row of the last stage: "orth., modes 1-8" is unchanged by (0, 5)
    assert "| 9 | 221,000 |" in page and "| 8 of 9 | 2.0e-03 | 6.1e-05 |" in page


def test_cumulative_steps_are_summed_from_the_stage_configs(records):
    _edit(records / f"{HYDROGEN_STAGES[0].nestedlora}.json", lambda r: r["config"].update(iters=1))
    page = render_neuralsvd_page(records)
    assert "after 151,001 CPU steps in 9 chained stages" in page
    assert "| 1 | 1 |" in page and "| 9 | 151,001 |" in page


def test_missing_records(records):
    for p in records.glob("spectral_oscillator-*.json"):
        p.unlink()
    (records / "spectral_finite.json").unlink()
    page = render_neuralsvd_page(records)
    assert "Not recorded (`spectral_oscillator-*.json` are missing)." in page
    assert "Not recorded (`docs/results/records/spectral_finite.json` is missing)." in page
    (records / f"{HYDROGEN_STAGES[-1].spin}.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks the last hydrogen stage's records"):
        render_neuralsvd_page(records)


def test_table_escapes_pipes_in_cells():
    assert _table(("a", "b"), [("|x|", "1")]) == ["| a | b |", "|---|---|", "| \\|x\\| | 1 |"]


def test_write_and_script(records, tmp_path, monkeypatch):
    out = write_neuralsvd_page(records, tmp_path / "page.md")
    assert out.read_text(encoding="utf-8") == render_neuralsvd_page(records)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import spectral_page

    monkeypatch.setattr(sys, "argv", ["spectral_page.py"])
    with pytest.raises(SystemExit) as exc:  # the runs have their own scripts
        spectral_page.main([])
    assert exc.value.code == 2
    assert spectral_page.main(["--from-records", "--records", str(records), "--out", str(out)]) == 0


def test_readme_quotes_only_numbers_of_the_page():
    """Every result the README's NeuralSVD section quotes (e-notation, three decimals, step
    counts, seconds, hours) stands on the results page it links."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### NeuralSVD", 1)[1].split("\n### ", 1)[0]
    page = (ROOT / "docs" / "results" / "neuralsvd.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```|`[^`]*`", "", section, flags=re.S)  # commands are settings
    quoted = re.findall(
        r"-?\d\.\d+e[-+]\d+|\d\.\d{3}\b|\d+(?:,\d{3})+|\d+(?:\.\d)? (?:s|h)\b", prose
    )
    assert len(quoted) >= 8, quoted
    # seconds stand in the page's tables as a cell, hours in its summary as "N h"
    missing = [q for q in quoted if (f"| {q[:-2]} |" if q.endswith(" s") else q) not in page]
    assert not missing, missing
    assert "(docs/results/neuralsvd.md" in section
