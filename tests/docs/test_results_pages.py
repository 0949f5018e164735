"""Every results page is written by its script from committed records, byte for byte.

Each page under docs/results/ must name its generating script with a `--from-records` command
(in backticks); the test runs that command (in this process, from a copy of benchmarks/ and
docs/) and compares the rewritten page with the committed one. Every page is checked; none is
exempt.
"""

import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
#: `[ENV=.. ]python benchmarks/<script>.py ... --from-records ...` inside backticks.
COMMAND = re.compile(
    r"`((?:[A-Z_]+=\S+ )*python3? (benchmarks/[\w.-]+\.py)[^`]*--from-records[^`]*)`"
)


def _pages() -> list[str]:
    return sorted(p.name for p in RESULTS.glob("*.md"))


@pytest.mark.parametrize("name", _pages())
def test_page_is_regenerated_byte_for_byte(name, tmp_path, monkeypatch):
    page = RESULTS / name
    text = page.read_text(encoding="utf-8")
    match = COMMAND.search(text)
    assert match, f"{name} names no `python benchmarks/<script>.py --from-records` command"
    script = ROOT / match.group(2)
    assert script.exists(), f"{name} names {match.group(2)}, which does not exist"
    # run the page's own command in a copy, so a failure cannot touch the working tree; in
    # this process (runpy), which keeps the test fast (torch is imported once)
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    argv = [a for a in shlex.split(match.group(1)) if not re.fullmatch(r"[A-Z_]+=\S+", a)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", argv[1:])
    monkeypatch.syspath_prepend(str(tmp_path / "benchmarks"))
    try:
        runpy.run_path(argv[1], run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (None, 0), f"`{match.group(1)}` exited with {exc.code}"
    new = (tmp_path / "docs" / "results" / name).read_bytes()
    assert new == page.read_bytes(), f"{name}: `{match.group(1)}` does not reproduce the page"


def test_no_literal_measured_numbers_in_benchmarks():
    """No script presents a typed-in number as measured (e.g. 'Measured ... 0.030')."""
    offenders = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"measured", line, re.I) and re.search(r"\d\.\d|\d{2,}", line):
                if not re.search(r"\{[^}]*\}", line):  # f-string fields come from the run
                    offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
