"""The ConvMF study's whole run on a tiny simulation: train, evaluate, records, figures, page."""

import pytest
import torch

from neuralfactor.amortized.study_convmf import ConvMFStudyConfig, study_jobs
from neuralfactor.cli import main
from neuralfactor.report.convmf_study import (
    load_study_records,
    render_convmf_study,
    run_convmf_study,
    write_convmf_study,
)


@pytest.mark.slow
def test_study_run_writes_records_that_regenerate_its_page(tmp_path):
    root = tmp_path / "runs"
    store = root / "landau64.zarr"  # an existing store is used as the study's data
    args = ["-q", "simulate", "--ic", "landau-strong", "--nx", "16", "--nv", "32"]
    args += ["--t-end", "4", "--save-every", "4", "--device", "cpu", "--out", str(store)]
    assert main(args) == 0
    config = ConvMFStudyConfig(
        epochs=1, ranks="2,3", extrap_ranks="2", root=str(root), cosine_ranks="2"
    )
    threads = torch.get_num_threads()
    out = tmp_path / "results"
    page = run_convmf_study(config, out)
    assert torch.get_num_threads() == threads  # the study's 1 thread is not left behind
    evals, run, probe = load_study_records(out / "records")
    assert probe == []
    health = [h for h in run if h["kind"] == "health"]
    assert sorted(h["run"] for h in health) == sorted(j.name for j in study_jobs(config, store))
    assert run[0]["args"] == config.to_dict()
    for r in evals:
        assert not any(k.startswith("per_frame") or k == "t" for k in r), r["method"]
    plain = [r for r in evals if r["method"] == "convmf" and r["variant"] == "constant"]
    assert [(r["split"], r["rank"]) for r in plain] == [
        ("interpolation", 2),
        ("interpolation", 3),
        ("extrapolation", 2),
    ]
    assert all(-1.0 <= r["spearman"] <= 1.0 for r in plain)
    svd = [r for r in evals if r["method"] == "svd"]
    assert svd and all(r["ratio_mean"] == pytest.approx(1.0, abs=1e-4) for r in svd)
    text = page.read_text(encoding="utf-8")
    assert text == render_convmf_study(evals, run, probe)
    assert "1-minute load average" in text and "### Interpolation: constant vs cosine" in text
    assert (out / "figures" / "convmf-extrapolation-loss-vs-time.png").stat().st_size > 1000
    page.unlink()
    assert write_convmf_study(out / "records", page).read_text(encoding="utf-8") == text
    # resumed: every model and evaluation is reused, the records are the same
    again = run_convmf_study(config, out)
    evals2, _, _ = load_study_records(out / "records")
    assert evals2 == evals and again.read_text(encoding="utf-8").count("\n") == text.count("\n")


@pytest.mark.slow
def test_recipe_run_writes_records_that_regenerate_its_page(tmp_path):
    from neuralfactor.amortized.study_recipe import RecipeConfig
    from neuralfactor.report.convmf_recipe import (
        load_jsonl,
        render_convmf_recipe,
        run_convmf_recipe,
    )

    root = tmp_path / "runs"
    args = ["-q", "simulate", "--ic", "landau-strong", "--nx", "16", "--nv", "32", "--t-end", "4"]
    args += ["--save-every", "4", "--device", "cpu", "--out", str(root / "landau64.zarr")]
    assert main(args) == 0
    config = RecipeConfig(
        ranks="2,3", seeds="0,1", seed_ranks="3", epochs=2, warmup_epochs=1, root=str(root)
    )
    out = tmp_path / "results"
    page = run_convmf_recipe(config, out)
    evals = load_jsonl(out / "convmf-recipe.jsonl")
    run = load_jsonl(out / "records" / "convmf-recipe-run.jsonl")
    assert page.read_text(encoding="utf-8") == render_convmf_recipe(evals, run)
    assert [(h["rank"], h["seed"]) for h in run[1:]] == [(2, 0), (3, 0), (3, 1)]
    classical = {(r["rank"], r["seed"]) for r in evals if r["kind"] == "classical"}
    assert classical == {(2, 0), (3, 0)}  # the baselines once per rank, with the first seed
    assert run[0]["records_file"] == "convmf-recipe-run.jsonl"
