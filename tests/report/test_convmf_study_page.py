"""docs/results/convmf-study.md is a pure function of its records; the study's run helpers."""

import copy
import json
from pathlib import Path

import pytest

from neuralfactor.amortized.factorizer import train_preset
from neuralfactor.amortized.study_convmf import ConvMFStudyConfig, study_jobs, study_variants
from neuralfactor.amortized.study_recipe import RecipeConfig, recipe_jobs
from neuralfactor.amortized.study_runs import (
    history_health,
    int_list,
    model_health,
    run_name,
    summary_record,
)
from neuralfactor.report.convmf_study import load_study_records, render_convmf_study

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs/results/records"


@pytest.fixture(scope="module")
def recs():
    return load_study_records(RECORDS)


def _find(evals, variant, split, rank, method):
    return next(
        r
        for r in evals
        if (r["variant"], r["split"], r["rank"], r["method"]) == (variant, split, rank, method)
    )


def test_committed_page_is_the_rendering_of_the_records(recs):
    page = (ROOT / "docs/results/convmf-study.md").read_text(encoding="utf-8")
    assert render_convmf_study(*recs) == page


def test_converted_records_are_labelled(recs):
    evals, run, probe = recs
    for r in [*evals, *run]:
        assert r["source"].startswith("converted from the committed page"), r
    for p in probe:  # the probe is either re-measured by its command or converted
        assert p.get("command") == "python benchmarks/convmf_study.py --lr-probe" or p[
            "source"
        ].startswith("converted from the committed page")
    page = render_convmf_study(*recs)
    assert "health); both converted from the committed page, since the run directories" in page


def test_every_model_of_the_command_has_a_health_record(recs):
    _, run, _ = recs
    args = run[0]["args"]
    jobs = study_jobs(ConvMFStudyConfig(**args), "data.zarr")
    assert sorted(j.name for j in jobs) == sorted(h["run"] for h in run if h["kind"] == "health")
    assert len(jobs) == 27


def test_findings_are_computed_from_the_records(recs):
    evals, run, probe = copy.deepcopy(recs)
    _find(evals, "constant", "interpolation", 10, "convmf+refine")["ratio_mean"] = 1.05
    page = render_convmf_study(evals, run, probe)
    assert "**met at rank(s) [4, 6, 8, 10] of [4, 6, 8, 10, 12]**" in page
    plain = _find(evals, "constant", "interpolation", 12, "convmf")
    plain["scaled_loss_mean"] = 2.0e-3  # now below the rank-10 optimum 2.716e-03
    page = render_convmf_study(evals, run, probe)
    assert "r=10: ConvMF@12 2.00e-03 vs SVD@10 2.72e-03 (yes)" in page


def test_seed_variants_compare_with_ratio_times_optimum(recs):
    evals, run, probe = copy.deepcopy(recs)
    seed = _find(evals, "cosine+clip seed 1", "interpolation", 12, "convmf")
    assert seed["scaled_loss_mean"] is None  # the page gave its ratio only
    page = render_convmf_study(evals, run, probe)
    assert "plain ConvMF 64.982/1.391x); 'ConvMF at r+2 <= SVD at r': r=10: yes." in page
    seed["ratio_mean"] = 1.9  # 1.9 x 1.519e-03 = 2.886e-03 > 2.716e-03
    page = render_convmf_study(evals, run, probe)
    assert "plain ConvMF 64.982/1.900x); 'ConvMF at r+2 <= SVD at r': r=10: no." in page


def test_probe_sentence_from_its_records(recs):
    evals, run, probe = copy.deepcopy(recs)
    page = render_convmf_study(evals, run, [])
    assert "The learning-rate probe behind this choice: not recorded." in page
    rows = [
        {
            "kind": "lr-probe",
            "rank": 6,
            "epochs": 6,
            "lr": lr,
            "val_final": v,
            "val_optimum": 0.0086,
        }
        for lr, v in ((1e-3, 0.03), (3e-4, 0.041), (1e-4, 0.097))
    ]
    page = render_convmf_study(evals, run, rows)
    assert (
        "at rank 6 after 6 epochs, validation scaled loss 0.030 with lr 0.001, 0.041 with lr "
        "0.0003, 0.097 with lr 0.0001 (SVD optimum of the validation frames 0.0086), so lr 0.0001 would need far more epochs."
    ) in page
    rows[0]["val_final"] = 0.2  # the largest rate is now the worst: no such conclusion
    page = render_convmf_study(evals, run, rows)
    assert (
        "0.200 with lr 0.001, 0.041 with lr 0.0003, 0.097 with lr 0.0001 (SVD optimum of the validation frames 0.0086)."
        in page
    )


def test_run_conditions_come_from_the_records(recs):
    evals, run, probe = copy.deepcopy(recs)
    del run[0]["conditions"]
    run[0].update(load_start=1.25, load_end=3.5, cpu_count=2)
    for r in evals:
        r.update(loadavg_before=2.0, loadavg_after=4.25)
    page = render_convmf_study(evals, run, probe)
    assert (
        "2 cores; 1-minute load average 1.2 at the start of the run and 3.5 at its end, "
        "2.0-4.2 during the evaluations." in page
    )
    run[0]["args"]["lanes"] = 1
    del run[0]["shared"]
    page = render_convmf_study(evals, run, probe)
    assert "Training time (s; one training at once on the 2 cores): rank 4: 466" in page


def test_health_flags(recs):
    evals, run, probe = copy.deepcopy(recs)
    h = next(h for h in run if h.get("run") == "interpolation-convmf-r4")
    h.update(stuck=True, first_loss=12.345, low_loss=7.0)
    page = render_convmf_study(evals, run, probe)
    assert "| interpolation-convmf-r4 | 1.862e-02 (step 6612) | 1.925e-02 (step 6840) | " in page
    assert "**stuck** (training loss 12.3 -> 7) | step 6612 |" in page


def test_records_are_required(recs):
    evals, run, probe = recs
    with pytest.raises(ValueError, match='no "kind": "run" line'):
        render_convmf_study(evals, run[1:], probe)
    with pytest.raises(ValueError, match="no constant-rate interpolation evaluation"):
        render_convmf_study([r for r in evals if r["variant"] != "constant"], run, probe)


def test_int_list_and_config_refuse_bad_lists():
    assert int_list("4,8,12") == [4, 8, 12]
    assert int_list("") == []
    with pytest.raises(ValueError, match="comma-separated integers such as '4,8,12'. Got '4;8'"):
        int_list("4;8")
    with pytest.raises(ValueError, match="comma-separated integers"):
        ConvMFStudyConfig(cosine_ranks="x")
    with pytest.raises(ValueError, match="at least one rank per split"):
        ConvMFStudyConfig(ranks="")
    with pytest.raises(ValueError, match="'lanes' parameter must be >= 1. Got 0"):
        ConvMFStudyConfig(lanes=0)
    with pytest.raises(ValueError, match=r"TrainSettings needs .* lr > 0. Got .*lr=-1.0"):
        ConvMFStudyConfig(lr=-1.0)
    with pytest.raises(ValueError, match="'objective' parameter must be one of"):
        RecipeConfig(objective="nope")
    with pytest.raises(ValueError, match=r"'warmup_epochs' parameter of TrainSettings must be"):
        RecipeConfig(epochs=1)  # the default 5-epoch warmup does not fit: refused up front


def test_run_names_and_variants():
    st = train_preset("original", epochs=120, lr=1e-3, batch_size=25, device="cpu")
    assert run_name("interpolation", 4, False, st) == "interpolation-convmf-r4"
    assert run_name("extrapolation", 12, True, st) == "extrapolation-nested-r12"
    cfg = ConvMFStudyConfig(
        epochs=120, clip_ranks="4", clip_epochs=240, clip_seeds="1,2", clip_seed_ranks="10"
    )
    labels = [(v.label, v.settings.seed, v.settings.epochs) for v in study_variants(cfg)]
    assert labels == [
        ("cosine", 0, 120),
        ("cosine+clip", 0, 240),
        ("cosine+clip seed 1", 1, 240),
        ("cosine+clip seed 2", 2, 240),
    ]
    names = [j.name for j in study_jobs(cfg, "d.zarr")]
    assert "interpolation-convmf-cosine-clip50-e240-s2-r10" in names
    assert names[:2] == ["interpolation-convmf-r4", "interpolation-convmf-r6"]


def test_recipe_jobs_highest_rank_first():
    cfg = RecipeConfig(ranks="4,8", seeds="0,1", seed_ranks="8")
    assert cfg.seeds_of() == {4: [0], 8: [0, 1]}
    names = [j.name for j in recipe_jobs(cfg, "d.zarr")]
    assert names == [
        "interpolation-convmf-cosine-clip50-e240-w5-proj-r8",
        "interpolation-convmf-cosine-clip50-e240-w5-proj-s1-r8",
        "interpolation-convmf-cosine-clip50-e240-w5-proj-r4",
    ]
    legacy = RecipeConfig(seed_ranks="8,10,12")
    assert len(recipe_jobs(legacy, "d.zarr")) == 11  # the 11 models of convmf-recipe.md


def test_history_and_model_health(tmp_path):
    h = [
        {"step": 10, "loss": 40.0, "metric": 0.5},
        {"step": 20, "loss": 10.0, "metric": 0.1},
        {"step": 30, "loss": 12.0, "metric": 0.3},
    ]
    hh = history_health(h)
    assert (hh["best"]["step"], hh["last"]["step"], hh["low"]) == (20, 30, 10.0)
    assert hh["diverged"] is True and hh["stuck"] is False
    assert history_health(h[:1])["stuck"] is True  # never fell below half its first loss
    with pytest.raises(ValueError, match="history is empty"):
        history_health([])
    run = tmp_path / "interpolation-convmf-r4"
    (run / "model").mkdir(parents=True)
    meta = {"history": h, "factorizer": {"settings": {"restore_best": True}}}
    (run / "model" / "meta.json").write_text(json.dumps(meta))
    rec = model_health(run)
    assert rec == {
        "kind": "health",
        "run": "interpolation-convmf-r4",
        "best": 0.1,
        "best_step": 20,
        "final": 0.3,
        "final_step": 30,
        "diverged": True,
        "stuck": False,
        "first_loss": 40.0,
        "low_loss": 10.0,
        "evaluated_step": 20,
        "reexported": False,
    }
    meta["factorizer"]["settings"]["restore_best"] = False
    (run / "model" / "meta.json").write_text(json.dumps(meta))
    (run / "model-last").mkdir()
    rec = model_health(run)
    assert (rec["evaluated_step"], rec["reexported"]) == (30, True)


def test_summary_record_drops_frames_and_keeps_the_rank_correlation():
    rec = {
        "method": "convmf",
        "seconds_per_matrix": float("nan"),
        "per_frame_loss": [3.0, 1.0, 2.0, 4.0],
        "per_frame_optimum": [30.0, 10.0, 20.0, 40.0],
        "t": [0.0, 1.0, 2.0, 3.0],
    }
    out = summary_record(rec, variant="constant")
    assert out == {
        "method": "convmf",
        "seconds_per_matrix": None,
        "spearman": 1.0,
        "variant": "constant",
    }
    rec["per_frame_optimum"] = [10.0, 30.0, 20.0, 0.0]  # ranks reversed: -1
    assert summary_record(rec)["spearman"] == pytest.approx(-1.0, abs=1e-12)


def test_simulate_preset_refuses_an_unknown_preset(tmp_path):
    from neuralfactor.amortized.study_runs import simulate_preset

    with pytest.raises(ValueError, match=r"Unknown preset 'nope'; expected one of"):
        simulate_preset(tmp_path / "x.zarr", 4, preset="nope")
    assert not (tmp_path / "x.zarr").exists()
    kept = tmp_path / "kept.zarr"
    kept.mkdir()  # an existing store is kept, nothing is run
    assert simulate_preset(kept, 4, preset="nope") == kept
