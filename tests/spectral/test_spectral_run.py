"""The library run of `neuralfactor spectral`: run_spectral's run options, evaluate_run and the
recorded run of the benchmark scripts, on a tiny hydrogen configuration."""

import torch

from neuralfactor.io import read_json
from neuralfactor.spectral.run import SpectralConfig, evaluate_run, recorded_run, run_spectral

TINY = dict(modes=2, iters=4, batch=16, hidden=8, depth=2, eval_every=2)


def test_run_options_threads_restored_and_figure(tmp_path):
    before = torch.get_num_threads()
    ev = run_spectral(SpectralConfig(**TINY), tmp_path / "r", threads=1, figure=True)
    assert torch.get_num_threads() == before
    assert (tmp_path / "r" / "figure.png").stat().st_size > 0
    assert ev["steps_done"] == 4
    assert read_json(tmp_path / "r" / "evaluation.json")["eigenvalues"] == ev["eigenvalues"]


def test_evaluate_run_reproduces_the_evaluation_and_keeps_the_training_record(tmp_path):
    ev = run_spectral(SpectralConfig(**TINY), tmp_path / "r")
    again = evaluate_run(tmp_path / "r", figure=False)
    assert again["eigenvalues"] == ev["eigenvalues"]  # the same weights, the same quadrature
    assert (again["train_seconds"], again["steps_done"]) == (ev["train_seconds"], 4)
    assert not (tmp_path / "r" / "figure.png").exists()


def test_recorded_run_record(tmp_path):
    cfg = SpectralConfig(**TINY, method="nestedlora-joint")
    rec = recorded_run(cfg, tmp_path / "r", threads=1, figure=False)
    assert rec == read_json(tmp_path / "r" / "record.json")
    assert SpectralConfig.from_dict(rec["config"]) == cfg
    assert rec["method"] == "nestedlora-joint" and rec["threads"]["torch_threads"] == 1
    assert rec["evaluation"] == read_json(tmp_path / "r" / "evaluation.json")
    assert len(rec["loadavg_before"]) == 3 and rec["wall_seconds"] > 0
    # a rerun resumes the finished run: the same weights, no new steps
    again = recorded_run(cfg, tmp_path / "r", threads=1, figure=False)["evaluation"]
    assert again["eigenvalues"] == rec["evaluation"]["eigenvalues"]
    assert again["steps_done"] == 4
