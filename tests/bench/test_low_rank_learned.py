"""A trained sketch encoder as the fd5 truncation of the low-rank solvers campaign: the model
directory a `neuralfactor train --model sketch` run writes is accepted, every stage meets the
tolerance, and the campaign's record names the model, its training frames and its cost."""

from __future__ import annotations

import pytest
import torch

from neuralfactor.bench.low_rank_solvers import key, worker
from neuralfactor.cli import main
from neuralfactor.report.low_rank_learned import learned_lines
from neuralfactor.report.low_rank_solvers import _label
from neuralfactor.vlasov import SimulationConfig, VlasovSolver, make_truncation

NX, NV, RANK, TOL = 16, 32, 6, 1e-3


@pytest.fixture(scope="module")
def sketch_run(tmp_path_factory):
    """A sketch model (rank 6, width 11 < 16) trained on a separate, shorter fd5 run."""
    d = tmp_path_factory.mktemp("sketch")
    store, out = d / "train.zarr", d / "run"
    sim = ["--ic", "landau-strong", "--nx", str(NX), "--nv", str(NV), "--t-end", "0.5",
           "--scheme", "fd5", "--device", "cpu"]  # fmt: skip
    assert main(["--quiet", "simulate", "-o", str(store), *sim]) == 0
    train = ["--data", str(store), "--out", str(out), "--model", "sketch", "--rank", str(RANK),
             "--epochs", "3", "--batch-size", "8", "--device", "cpu"]  # fmt: skip
    assert main(["--quiet", "train", *train]) == 0
    return out / "model"


def test_sketch_model_dir_truncates_every_stage_to_the_tolerance(sketch_run):
    tr = make_truncation(str(sketch_run), tol=TOL, rank=None, frame_shape=(NX, NV))
    assert tr.name.startswith("sketch") and not tr.growable
    seen = []

    class Checked:  # the truncation, each call's relative error and rank recorded
        def __call__(self, f):
            out, ranks = tr(f)
            err = torch.linalg.matrix_norm(f - out) / torch.linalg.matrix_norm(f)
            seen.append((float(err.max()), int(ranks.max())))
            return out, ranks

        def __getattr__(self, name):
            return getattr(tr, name)

    cfg = SimulationConfig(ic="landau-strong", nx=NX, nv=NV, t_end=1.0, dt=0.01,
                           scheme="fd5", truncate_tol=TOL, truncate_per="stage")  # fmt: skip
    solver = VlasovSolver(cfg, truncation=tr)
    solver.truncation = Checked()
    last = None
    for fr in solver.run():
        last = fr
    assert last is not None and abs(last.t - 1.0) < 1e-9
    assert len(seen) >= 100  # every stage of 100 steps went through the sketch
    assert max(e for e, _ in seen) <= TOL * (1 + 1e-9)
    assert all(1 <= r <= RANK for _, r in seen)
    assert max(r for _, r in seen) > 1  # the frames need more than rank 1 at this tolerance


def test_campaign_record_names_the_model_its_frames_and_cost(sketch_run):
    spec = dict(case="strong-landau", nx=NX, nv=NV, t_end=1.0, solver="fd5",
                truncation=str(sketch_run), tol=TOL, mass_correction=True)  # fmt: skip
    rec = worker(spec, make_truncation)
    assert rec["status"] == "ok", rec.get("message")
    assert rec["model"] == "sketch" and rec["model_rank"] == RANK and rec["fit_seconds"] > 0
    assert rec["mass_correction"] is True and rec["mass_drift"] < 1e-12
    assert rec["train"]["sim"]["scheme"] == "fd5" and rec["train"]["sim"]["t_end"] == 0.5
    assert rec["train"]["epochs"] == 3 and rec["rank_summary"][2] <= RANK
    assert _label(rec) == f"fd5 + sketch r{RANK} (3 ep, lr 0.01) (mass-corr.)"
    old = {**spec}
    old.pop("mass_correction")  # a record from before the key: kept apart, not skipped
    assert key(old) != key(rec)
    svd = {**rec, "truncation": "svd", "trunc_s": rec["trunc_s"] * 2}
    for k in ("model", "model_rank", "fit_seconds", "train"):
        svd.pop(k)
    lines = learned_lines([svd, rec])
    text = "\n".join(lines)
    assert f"--model sketch --rank {RANK} --epochs 3 --lr 0.01`" in text
    assert "on 26 frames of a separate fd5 run (untruncated) of landau-strong" in text
    assert "0.50x the time of the fastest classical truncation, fd5 + svd (it wins)" in text
