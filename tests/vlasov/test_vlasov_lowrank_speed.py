"""Short-window speed/memory harness of the low-rank solvers and its page sections."""

from __future__ import annotations

import itertools

import pytest
import torch

from neuralfactor.bench.solver_speed import (
    SpeedWindowConfig,
    build_solver,
    fd5_step,
    mass_drift,
    measure_memory,
    state_bytes,
    time_window,
    warm_start,
)
from neuralfactor.report.low_rank_speed import render_speed_section

# per stage: at 16x32 a tolerance of 1e-5 per unit time keeps nearly every rank
TINY = dict(nx=16, nv=32, warmup=0.5, window=0.02, block_steps=2, memory_steps=2, tol_per="stage")


def test_config_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty subset of"):
        SpeedWindowConfig(solvers=("fd5+svd", "nope"))
    with pytest.raises(ValueError, match="window must be > 0"):
        SpeedWindowConfig(window=0.0)
    with pytest.raises(ValueError, match="warmup must be a float >= 0"):
        SpeedWindowConfig(warmup=-1.0)
    with pytest.raises(ValueError, match="block_steps must be an int >= 1"):
        SpeedWindowConfig(block_steps=0)


def test_step_follows_the_cfl_rule():
    cfg = SpeedWindowConfig(nx=512, nv=1024)
    dt = fd5_step(cfg)
    sim = cfg.base(t_end=1.0, dt=dt, scheme="fd5")
    assert sim.cfl(1.5) <= 0.8 * 0.4 + 1e-12
    assert dt == 0.0005  # the largest round step below the limit at this grid
    assert fd5_step(SpeedWindowConfig(dt=0.003)) == 0.003


def test_interleaved_window_times_every_solver_on_the_same_state():
    ticks = itertools.count()
    cfg = SpeedWindowConfig(**TINY)
    f0 = warm_start(cfg)
    out = time_window(cfg, f0, clock=lambda: float(next(ticks)))
    dt = fd5_step(cfg)
    n_blocks = max(3, -(-cfg.window // (cfg.block_steps * dt)))
    assert set(out) == set(cfg.solvers)
    for label, rec in out.items():
        assert rec["blocks"] == n_blocks
        sp = rec["s_per_time"]
        # fake clock: one tick per clock() call; a block reads it once before and once per step
        assert sp["median"] == pytest.approx(cfg.block_steps / (cfg.block_steps * dt))
        assert sp["q25"] <= sp["median"] <= sp["q75"]
        assert (rec["trunc_s"] is not None) == label.startswith("fd5+")
        assert rec["state_bytes"] > 0
    # same tolerance, same start: the exact truncations keep the same ranks
    assert out["fd5+svd"]["ranks"] == out["lowrank"]["ranks"]
    dense = 3 * cfg.nx * cfg.nv * 8
    assert out["fd5+svd"]["state_bytes"] == dense
    assert out["lowrank"]["state_bytes"] < dense


def test_build_solver_truncations():
    cfg = SpeedWindowConfig(**TINY)
    solver, trunc = build_solver("fd5+rsvd", cfg, t_end=0.1, save_every=1)
    assert trunc.name == "rsvd" and solver.config.truncate_with == "rsvd"
    assert trunc.tol == cfg.tol and solver.config.truncate_per == "stage"
    per_time = SpeedWindowConfig(**{**TINY, "tol_per": "time"})
    s2, t2 = build_solver("fd5+svd", per_time, t_end=0.1, save_every=1)
    assert t2.tol == per_time.tol * s2.config.dt == s2.config.stage_tol
    with pytest.raises(ValueError, match="tol_per must be 'time' or 'stage'"):
        SpeedWindowConfig(tol_per="step")
    frames = list(solver.run())
    assert trunc.stages >= len(frames) - 1 and trunc.seconds > 0
    solver, trunc = build_solver("dlr", cfg, t_end=0.1, save_every=1)
    assert trunc is None and solver.config.scheme == "dlr"
    assert state_bytes(list(solver.run())[-1].state) > 0


def test_mass_drift_with_and_without_the_correction():
    kw = dict(nx=16, nv=32, t_end=0.5, tol=1e-3)
    on = mass_drift("strong-landau", "svd", **kw)
    off = mass_drift("strong-landau", "svd", mass_correction=False, **kw)
    assert on["mass_correction"] is True and off["mass_correction"] is False
    assert on["mass_drift"] < 1e-13
    assert off["mass_drift"] > 1e-9


def test_memory_of_a_fresh_process(tmp_path):
    cfg = SpeedWindowConfig(**TINY, solvers=("fd5+svd",))
    path = tmp_path / "f0.pt"
    torch.save(warm_start(cfg), path)
    rec = measure_memory("fd5+svd", cfg, path, steps=2)
    assert rec.get("memory_error") is None
    assert rec["memory_warm_steps"] == 3 and rec["reset"]
    assert rec["step_rss_mb"] is not None and rec["step_rss_mb"] >= 0
    old = measure_memory("fd5+svd", cfg, path, steps=2, warm_steps=0)  # the older records' rule
    assert old["rss_increase_mb"] is not None and "step_rss_mb" not in old


def test_memory_rule_excludes_the_final_frame(tmp_path):
    # 256x512 from the initial condition (rank 2): a lowrank step holds stacks of
    # 768 x 18 doubles (0.1 MB); the frame saved after the last step forms three dense grids
    # (1 MB each) and the diagnostics. Read before that frame, the step's peak stays far below
    # one grid; read after it (or counting the first steps' one-time costs), it would not.
    cfg = SpeedWindowConfig(nx=256, nv=512, warmup=0.0, window=0.02, solvers=("lowrank",))
    path = tmp_path / "f0.pt"
    torch.save(warm_start(cfg), path)
    rec = measure_memory("lowrank", cfg, path, steps=2)
    assert rec.get("memory_error") is None
    assert rec["step_rss_mb"] is not None and 0 <= rec["step_rss_mb"] < 0.5, rec


def _speed(solver, med, q25, q75, sb, rss, trunc=None, ranks=(3, 5)):
    return {
        "kind": "speed-window",
        "solver": solver,
        "nx": 512,
        "nv": 1024,
        "dt": 0.0025,
        "warmup": 5.0,
        "window": 0.1,
        "block_steps": 5,
        "blocks": 8,
        "date": "2026-12-02 21:00 UTC",
        "platform": "x86_64",
        "torch": "2",
        "threads": 1,
        "loadavg_before": 3.0,
        "loadavg_after": 4.0,
        "s_per_time": {"median": med, "q25": q25, "q75": q75},
        "trunc_s": trunc,
        "state_bytes": sb,
        "rss_increase_mb": rss,
        "rank_summary": list(ranks),
    }


def test_page_memory_of_runs_measured_after_warm_up_steps():
    recs = [
        _speed("fd5+svd", 10.0, 9.0, 11.0, 12 * 2**20, None),
        _speed("lowrank", 0.5, 0.45, 0.55, 2**20, None),
        _speed("dlr", 2.0, 1.9, 2.1, 2**19, None),
    ]
    for r, step in zip(recs, (20.0, 2.2, 3.5), strict=True):
        del r["rss_increase_mb"]
        r.update(step_rss_mb=step, memory_warm_steps=3)
    text = render_speed_section(recs)
    assert "| state MB | step MB | peak MB (state + step) | ranks (min-max) |" in text
    assert "| 12 | 20 | 32 | 3-5 |" in text  # fd5: 12 MB state + 20 MB step
    # lowrank: (1 + 2.2) / 32 = 0.1; dlr: (0.5 + 3.5) / 32 = 0.125
    assert "peak working memory (state + step) 0.1 of it (met)." in text
    assert "peak working memory (state + step) 0.125 of it (MISSED)." in text
    assert "RSS increase" not in text.split("For lowrank the")[1]  # no old-rule column or verdict
    # the stacked factors of a stage bound the step memory from below: 1536 x 273 x 8 bytes
    recs[1]["recompress_s"] = {"columns": 273, "median": 0.01, "q25": 0.01, "q75": 0.01}
    text = render_speed_section(recs)
    assert (
        "Those stacked factors alone take (m + n) x 273 x 8 bytes = 3.2 MB, 0.100 of fd5 + "
        "svd's peak: a floor under the step memory of a stack-and-QR recompression at this rank."
    ) in text


def test_page_sections_verdicts():
    svd_tr = {"median": 0.02, "q25": 0.019, "q75": 0.021}
    rsvd_tr = {"median": 0.002, "q25": 0.0019, "q75": 0.0021}
    low = _speed("lowrank", 0.5, 0.45, 0.55, 2**20, 2.0)
    low["recompress_s"] = {"columns": 36, "median": 0.0005, "q25": 0.0004, "q75": 0.0006}
    recs = [
        _speed("fd5+svd", 10.0, 9.0, 11.0, 12 * 2**20, 40.0, svd_tr),
        _speed("fd5+rsvd", 4.0, 3.8, 4.2, 12 * 2**20, 30.0, rsvd_tr),
        low,
        _speed("dlr", 2.0, 1.9, 2.1, 2**19, 8.0),
    ]
    mass = [
        {"kind": "mass-drift", "case": "weak-landau", "solver": "fd5+svd", "nx": 64, "nv": 128,
         "t_end": 5.0, "tol": 1e-5, "mass_correction": c, "mass_drift": d}
        for c, d in ((True, 3e-15), (False, 2e-6))
    ]  # fmt: skip
    text = render_speed_section(recs + mass)
    assert text == render_speed_section(list(recs + mass))  # pure
    # lowrank: 10 / 0.5 = 20x, quartile range 9/0.55 = 16 to 11/0.45 = 24; memory 1/12, 1/20
    assert (
        "lowrank vs fd5 + svd per simulated time 20x (16-24) (target >= 10x: met); memory "
        "(target <= 1/10): state 0.083 of fd5 + svd's (met), peak working memory (RSS "
        "increase) 0.05 of it (met)." in text
    )
    # 0.0005 s of a 0.5 x 0.0025 s step
    assert "(m + n) x 36 factors + SVD of the core, O((m + n) R^2)), timed alone, is " in text
    assert "0.0005 s = 40% of its step." in text
    # dlr: 5x < 10x; RSS 8 / 40 = 0.2 > 1/10
    assert "dlr vs fd5 + svd per simulated time 5x (4.3-5.8) (target >= 10x: MISSED)" in text
    assert "state 0.042 of fd5 + svd's (met), peak working memory (RSS increase) 0.2" in text
    assert "of it (MISSED)." in text
    assert "fastest truncation fd5+rsvd vs the svd truncation per stage 10x (9-11)" in text
    assert "(target >= 5x: met); ranks the same" in text
    # 0.02 s per stage, one stage per step of 10 x 0.0025 = 0.025 s: 80%, rest 0.005 s
    assert "the svd truncation is 80% of an fd5 + svd step; the rest, 0.005 s per step" in text
    assert "no truncation can make fd5 + T more than 5x faster than fd5 + svd" in text
    assert "| fd5+svd | 10 (9-11) | 1 (baseline) |" in text
    assert "| weak-landau | fd5+svd | on | 3.0e-15 |" in text
    assert "| weak-landau | fd5+svd | off | 2.0e-06 |" in text
    assert "Mass conserved to 1e-10 relative by fd5 + T with the correction: met" in text
    assert render_speed_section([]) == ""


def test_grids_under_both_tolerance_rules_are_compared():
    stage = [
        dict(_speed("fd5+svd", 10.0, 9.0, 11.0, 12 * 2**20, 40.0, ranks=(27, 27)), tol=1e-5),
        dict(_speed("lowrank", 1.0, 0.9, 1.1, 2**20, 2.0, ranks=(27, 27)), tol=1e-5),
    ]
    later = {"tol": 1e-5, "tol_per": "time", "date": "2026-12-03 12:00 UTC"}
    per_time = [
        dict(_speed("fd5+svd", 10.0, 9.0, 11.0, 12 * 2**20, 40.0, ranks=(45, 45)), **later),
        dict(_speed("lowrank", 2.5, 2.4, 2.6, 2**20, 2.0, ranks=(45, 45)), **later),
    ]
    text = render_speed_section(stage + per_time)
    assert "Tolerance 1e-05 per unit of simulated time; dt 0.0025" in text
    assert "Tolerance 1e-05 per stage; dt 0.0025" in text
    # 1e-5 x dt 0.0025 = 2.5e-8 per stage; 10 / 2.5 = 4x and 10 / 1 = 10x
    assert (
        "- 512x1024, the two tolerance rules (latest run of each): per unit of time (the "
        "default): stage tolerance 2.5e-08, ranks [45, 45], lowrank 4x against fd5 + svd; per "
        "stage: stage tolerance 1e-05, ranks [27, 27], lowrank 10x against fd5 + svd." in text
    )
    assert "the two tolerance rules" not in render_speed_section(stage)


def test_median_only_verdict():
    recs = [
        _speed("fd5+svd", 10.0, 9.0, 11.0, 12 * 2**20, 40.0),
        _speed("lowrank", 0.9, 0.8, 1.0, 2**20, 2.0),
    ]
    text = render_speed_section(recs)
    # 10 / 0.9 = 11x, but 9 / 1.0 = 9x at the low end
    assert "(target >= 10x: met by the median, not by the quartile range (its low end 9x))" in text


def test_recompress_cost_sizes():
    from neuralfactor.bench.solver_speed import recompress_cost

    rc = recompress_cost(16, 32, 2, 1e-5)
    assert rc["columns"] == 18  # six terms of r + 1 columns
    assert 0 < rc["q25"] <= rc["median"] <= rc["q75"]


def test_learned_section_beside_svd():
    from neuralfactor.report.low_rank_speed import learned_lines

    common = {"case": "strong-landau", "nx": 32, "nv": 64, "t_end": 10.0, "solver": "fd5",
              "loadavg_1min": 3.0}  # fmt: skip
    svd = {
        **common,
        "truncation": "svd",
        "tol": 1e-3,
        "status": "ok",
        "dist_10": 0.05,
        "trunc_s": 0.001,
        "s_per_time": 0.4,
        "rank_summary": [1, 9, 9, 9],
    }
    ok = {
        **common,
        "truncation": "m+refine",
        "tol": 1e-3,
        "status": "ok",
        "fit_seconds": 127.1,
        "dist_10": 0.06,
        "trunc_s": 0.004,
        "s_per_time": 1.2,
        "rank_summary": [1, 9, 12, 12],
    }
    bad = {
        **common,
        "truncation": "m+refine",
        "tol": 1e-5,
        "status": "failed",
        "fit_seconds": 127.1,
        "message": "TruncationError: rank 16 leaves 0.00104",
    }
    lines = learned_lines([svd, ok, bad])
    assert lines[0] == "## Learned truncation"
    assert "### strong-landau 32x64 to t = 10, mass correction not recorded" in lines[4]
    assert (
        "| fd5 + m+refine | 0.001 /stage | ok | 6.000e-02 | - | 0.004 | 1.2 (nan) | 1/9/12 (12) | "
        "127 | 3.0 |" in lines
    )
    assert (
        "- fd5 + m+refine, tol 1e-05 /stage: training 127 s of CPU wall time; the run FAILED: "
        "TruncationError: rank 16 leaves 0.00104" in lines
    )
    assert any(
        line.startswith(
            "- fd5 + m+refine, tol 0.001 /stage: training 127 s of CPU wall time; per stage 4.00x "
            "the "
            "time of the fastest classical truncation, fd5 + svd (it loses by 4.00x: "
        )
        and line.endswith("; distance to spectral at t = 10 1.2000x fd5 + svd's.")
        for line in lines
    ), lines
    assert learned_lines([svd]) == []


def test_main_targets_gamma2_and_only_the_target_tolerance():
    from neuralfactor.report.low_rank_solvers import derive, targets

    def rec(solver, truncation=None, tol=1e-5, **kw):
        return {"case": "strong-landau", "ic": "landau-strong", "nx": 128, "nv": 256,
                "t_end": 40.0, "dt": 0.0025, "solver": solver, "truncation": truncation,
                "tol": tol, "status": "ok", **kw}  # fmt: skip

    recs = [
        rec("spectral", tol=None, gamma1=-0.29, gamma2=0.10),
        rec("lowrank", gamma1=-0.2901, gamma2=0.102),
        rec("fd5", "svd", tol=1e-3, gamma1=-0.20, gamma2=0.2),  # not the target tolerance
    ]
    lines = "\n".join(targets(derive(recs)))
    assert "gamma_2 within 3% of the full-rank run: met (worst +2.00%: lowrank" in lines
    assert "strong-landau 128x256, tol 1e-05 /stage, window" in lines
    assert "gamma_1 within 3% of the full-rank run: met (worst +0.03%: lowrank" in lines
    assert "gamma_2: not measured" not in lines
