"""The kill/resume matrix (``neuralfactor.kill_resume``, ``benchmarks/resume_matrix.py``).

The fast test kills and resumes the representative case that was broken: a spectral run on
the 64x128 grid with two threads (a resumed run differed from the uninterrupted one from the
first resumed frame on). The full matrix is the benchmark script; its records are checked
for their keys here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from neuralfactor.data import MatrixStoreWriter
from neuralfactor.data.store import StoreError
from neuralfactor.kill_resume import (
    ROW_KEYS,
    KillResumeCase,
    draw_kill_fractions,
    factorize_cases,
    output_checksum,
    run_case,
    simulate_cases,
    summarize,
    train_cases,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_simulate_matrix_covers_every_combination():
    cases = simulate_cases()
    assert len(cases) == 3 * 6 * 2 * 2 and len({c.case for c in cases}) == len(cases)
    labels = " | ".join(c.case for c in cases)
    for part in ("16x32", "64x128", "128x256", "spectral", "fd5 ", "fd5-trunc", "fd5-warm",
                 "lowrank", "dlr", "save_every=1", "save_every=5", "chunk=4", "chunk=16",
                 "threads=2"):  # fmt: skip
        assert part in labels, part
    trunc = [c for c in cases if "fd5-trunc" in c.case]
    assert all(c.args[-2:] == ("--truncate-tol", "1e-5") for c in trunc)
    warm = [c for c in cases if "fd5-warm" in c.case]
    assert all(c.args[-2:] == ("--truncate-with", "warm-subspace") for c in warm)
    for label in ("lowrank", "dlr"):
        assert all(("--scheme", label) == c.args[-4:-2] for c in cases if f" {label} " in c.case)
    # every case is a run of whole saved blocks: t_end / dt is a multiple of save_every
    for c in cases:
        a = dict(zip(c.args[1::2], c.args[2::2], strict=False))
        steps = float(a["--t-end"]) / float(a["--dt"])
        assert round(steps) % int(a["--save-every"]) == 0 and round(steps) >= 400
        assert f"steps={round(steps)} " in c.case


def test_train_and_factorize_cases_and_bad_input():
    assert [c.case for c in train_cases("d.zarr")] == [
        "convmf rank=4 epochs=6 threads=1",
        "convmf rank=12 epochs=6 threads=1",
    ]
    assert [c.args[3] for c in factorize_cases("d.zarr")] == ["svds-arpack", "rsvd"]
    with pytest.raises(ValueError, match=r"Unknown kind 'approx'; expected one of"):
        KillResumeCase("approx", "x", ())
    with pytest.raises(ValueError, match=r"'threads' parameter must be an int >= 1. Got 0"):
        KillResumeCase("train", "x", (), threads=0)
    with pytest.raises(ValueError, match=r"Unknown scheme label 'weno'"):
        simulate_cases(schemes=["weno"])


def test_kill_points_spread_over_the_run(seed):
    fr = draw_kill_fractions(4, random.Random(seed))
    assert len(fr) == 4 and fr == sorted(fr)
    for i, f in enumerate(fr):  # one in each quarter of [0.15, 0.85]
        assert 0.15 + 0.175 * i <= f <= 0.15 + 0.175 * (i + 1)


def test_checksum_is_none_for_nothing_and_refuses_a_partial_store(tmp_path):
    assert output_checksum("simulate", tmp_path / "none.zarr") is None
    assert output_checksum("train", tmp_path / "none") is None
    assert output_checksum("factorize", tmp_path / "none.zarr") is None
    w = MatrixStoreWriter.create(tmp_path / "p.zarr", n_runs=1, n_frames=3, matrix_shape=(4, 4))
    w.flush()
    (tmp_path / "p.zarr").mkdir()  # something at the final path that is not a complete store
    with pytest.raises((StoreError, ValueError, FileNotFoundError)):
        output_checksum("simulate", tmp_path / "p.zarr")
    with pytest.raises(ValueError, match=r"Unknown kind 'x'"):
        output_checksum("x", tmp_path)


def test_summary_counts_and_rejects_other_keys():
    row = dict.fromkeys(ROW_KEYS, "c")
    rows = [{**row, "kind": "simulate", "identical": True},
            {**row, "kind": "simulate", "identical": False, "kill_at": 1.5}]  # fmt: skip
    text = summarize(rows)
    assert "simulate: 1 of 2 kill/resume cases identical" in text
    assert "differs: simulate c kill_at=1.5" in text
    with pytest.raises(ValueError, match=r"expected exactly \['kind', 'case', 'kill_at'"):
        summarize([{**row, "extra": 1}])


def test_a_late_kill_is_retried_with_the_whole_delay_halved(tmp_path, monkeypatch):
    # the reference ran on a loaded machine (start-up 8 s, end 10 s); now a run takes 3 s:
    # halving only the working part (9, 8.5, 8.25, 8.1 s) never interrupts it
    import neuralfactor.kill_resume as kr

    (case,) = simulate_cases(
        grids=[(16, 32)], schemes=["spectral"], save_every=[5], chunk_frames=[4], steps=20
    )
    delays = []
    monkeypatch.setattr(kr, "_run_timed", lambda case, out: (8.0, 10.0))
    monkeypatch.setattr(kr, "_kill_after", lambda case, out, d: delays.append(d) or d < 3.0)
    monkeypatch.setattr(kr, "_finished", lambda case, out: False)
    monkeypatch.setattr(kr, "_run", lambda case, out, extra=(): None)
    rows = run_case(case, tmp_path, kill_fractions=[0.5])
    assert delays == [9.0, 4.5, 2.25]
    assert len(rows) == 1 and rows[0]["kill_at"] == 2.25


def test_kill_and_resume_spectral_64x128_two_threads(tmp_path, tally):
    (case,) = simulate_cases(
        grids=[(64, 128)], schemes=["spectral"], save_every=[5], chunk_frames=[4], steps=300
    )
    assert case.threads == 2
    rows = run_case(case, tmp_path, kill_fractions=draw_kill_fractions(1, random.Random(0)))
    tally["faults_injected.simulate"] += len(rows)
    assert len(rows) == 1, "the run was never interrupted"
    (row,) = rows
    assert tuple(row) == ROW_KEYS
    assert row["checksum_resumed"] == row["checksum_uninterrupted"] and row["identical"] is True
    assert row["kill_at"] > 0 and row["seconds"] > 0


def test_committed_records_have_exactly_the_keys():
    path = ROOT / "docs" / "results" / "records" / "resume-matrix.jsonl"
    if not path.exists():
        pytest.skip("no records committed yet (benchmarks/resume_matrix.py writes them)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert rows and all(tuple(r) == ROW_KEYS for r in rows)
    assert {r["kind"] for r in rows} <= {"simulate", "train", "factorize"}
    for r in rows:
        assert r["identical"] == (r["checksum_resumed"] == r["checksum_uninterrupted"])
        assert isinstance(r["kill_at"], (int, float)) and isinstance(r["seconds"], float)


def test_script_summary_from_records(tmp_path, capsys):
    import runpy

    rec = tmp_path / "r.jsonl"
    row = {"kind": "train", "case": "c", "kill_at": 1.0, "identical": True,
           "checksum_uninterrupted": "a", "checksum_resumed": "a", "seconds": 2.0}  # fmt: skip
    rec.write_text(json.dumps(row) + "\n")
    script = runpy.run_path(str(ROOT / "benchmarks" / "resume_matrix.py"))
    assert script["main"](["--from-records", "--out", str(rec)]) == 0
    assert "train: 1 of 1 kill/resume cases identical" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script["main"](["--kills", "0", "--out", str(rec)])
