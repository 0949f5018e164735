"""docs/results/convmf-recipe.md is a pure function of its records."""

import copy
from pathlib import Path

import pytest

from neuralfactor.report.convmf_recipe import load_jsonl, render_convmf_recipe

ROOT = Path(__file__).resolve().parents[2]
EVALS = ROOT / "docs/results/convmf-recipe.jsonl"
LEGACY = ROOT / "docs/results/records/convmf-recipe-legacy.jsonl"


@pytest.fixture(scope="module")
def recs():
    return load_jsonl(EVALS), load_jsonl(LEGACY)


def test_committed_page_is_the_rendering_of_the_records(recs):
    page = (ROOT / "docs/results/convmf-recipe.md").read_text(encoding="utf-8")
    assert render_convmf_recipe(*recs) == page


def test_legacy_run_record_is_labelled(recs):
    _, run = recs
    assert {r["source"] for r in run} == {"converted from the committed page"}
    assert [r["kind"] for r in run].count("health") == 11


def test_a_miss_is_computed_and_flagged(recs):
    evals, run = copy.deepcopy(recs)
    hit = next(r for r in evals if (r["rank"], r["seed"], r["method"]) == (10, 1, "convmf+refine"))
    hit["ratio_mean"] = 1.25
    page = render_convmf_recipe(evals, run)
    assert "**missed by 1 of 11 models**: rank 10 seed 1 (1.250x)" in page
    assert "| 10 | 1 | 2.716e-03 | 3.099e-03 (1.141x) | **2.844e-03 (1.250x)** |" in page


def test_stuck_flag_and_missing_health(recs):
    evals, run = copy.deepcopy(recs)
    run[1]["stuck"] = True
    page = render_convmf_recipe(evals, run)
    key = f"rank {run[1]['rank']} seed {run[1]['seed']}"
    assert f"- Stuck trainings (training loss never halved): {key}." in page
    page = render_convmf_recipe(evals, run[:1])
    assert "- Stuck trainings (training loss never halved): not recorded." in page
    assert "| not recorded | not recorded |" in page


def test_run_record_is_required(recs):
    evals, run = recs
    with pytest.raises(ValueError, match='no "kind": "run" line'):
        render_convmf_recipe(evals, run[1:])
