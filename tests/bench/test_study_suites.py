"""The study suites moved from benchmarks/ into the library run, on tiny problems, and record
what their pages read (the pages themselves are checked byte for byte by tests/docs)."""

import math

import pytest

from neuralfactor.bench.kernels import KernelsConfig, run_kernels
from neuralfactor.bench.low_rank_solvers import key, worker
from neuralfactor.bench.matvec_study import measure
from neuralfactor.data.gallery import get_matrix
from neuralfactor.report.kernels_page import kernels_markdown


@pytest.mark.slow  # ~25-60 s on a loaded 2-core machine: the GEMM-rate and SVD timings settle
def test_kernels_suite_times_every_method_through_the_harness():
    cfg = KernelsConfig(
        size=(16, 32),
        ranks=(2,),
        frames=6,
        lead_in=4,
        repeats=3,
        min_run_time=0.0,
        max_case_seconds=0.2,
        ensembles=(2,),
    )
    logged = []
    recs = run_kernels(cfg, command="test", log=logged.append)
    rows = [r for r in recs if r["suite"] == "kernels-cpu"]
    assert [r["method"] for r in rows] == [
        "warm-subspace lapack",
        "warm-subspace lapack tol=None",
        "warm-subspace gemm",
        "warm-subspace gemm tol=None",
        "rsvd (cold, cheapest <= 1.01)",
        "scipy.linalg.svd",
    ]
    base = rows[-1]
    for r in rows:
        assert r["runs"] >= 3 and r["q1_s"] <= r["median_s"] <= r["q3_s"]
        assert r["iqr_s"] == pytest.approx(r["q3_s"] - r["q1_s"])
        assert r["scipy_median_s"] == base["median_s"]
        assert r["speedup_vs_scipy"] == pytest.approx(base["median_s"] / r["median_s"])
        # nothing beats Eckart-Young (float32 frames, float64 optimum: round-off only)
        assert r["worst_ratio"] >= 1 - 1e-4 and math.isfinite(r["worst_ratio"])
    assert base["worst_ratio"] == 1.0 and base["speedup_vs_scipy"] == 1.0
    (ens,) = [r for r in recs if r["suite"] == "kernels-cpu-ensemble"]
    assert ens["ensemble"] == 2 and ens["frames_per_s"] == pytest.approx(1 / ens["median_s"])
    parts = [r for r in recs if r["suite"] == "kernels-cpu-step"]
    assert [r["method"] for r in parts] == [
        "X P", "qr(X P) with Q", "X^T Q", "svd of the 32x7 X^T Q", "U = Q W_r",
        "the whole step (lapack_step)",
    ]  # fmt: skip
    # the whole step's count is its calls' counts; 2mnl per frame product (l = rank + 5)
    assert parts[-1]["flops"] == pytest.approx(sum(r["flops"] for r in parts[:-1]))
    assert parts[0]["flops"] == parts[2]["flops"] == 2 * 16 * 32 * 7
    page = kernels_markdown(recs)
    assert "## Targets" in page and "## Where one warm step's time goes" in page
    assert len(logged) == 1 + len(rows) + len(parts) + 1


@pytest.mark.slow  # ~30 s: the SVD baseline is timed until its spread settles (30 s cap)
def test_matvec_study_measure_records_the_network_against_the_svd():
    A = get_matrix("gaussian", n=6, seed=0)
    rec = measure("gaussian 6x6", A, 2, seed=0, threads={}, steps=100)
    assert rec["m"] == rec["n"] == 6 and rec["rank"] == 2
    # the truncated SVD is the optimum: the network's scaled loss is no smaller
    assert rec["ratio_to_optimum"] >= 1 - 1e-9
    assert rec["d_rel_fro"] == pytest.approx(rec["net_rel_fro"] - rec["svd_rel_fro"])
    assert rec["svd_seconds"] > 0 and rec["operator"] == "Tensor"


def test_low_rank_solver_worker_measures_one_run():
    def refuse(*args, **kwargs):
        raise AssertionError("the svd truncation is built in, not resolved by name")

    spec = dict(case="weak-landau", nx=16, nv=32, t_end=1.0, solver="fd5", truncation="svd",
                tol=1e-5, tol_per="time")  # fmt: skip
    rec = worker(spec, refuse)
    assert rec["status"] == "ok", rec.get("message")
    # the key ends with mass_correction (fd5 + T is mass-corrected by default) and the rule
    assert key(rec) == ("weak-landau", 16, 32, "fd5", "svd", 1e-5, 1.0, True, "time")
    # a truncated fd5 run conserves mass to the truncation tolerance
    assert rec["mass_drift"] < 1e-3 and rec["trunc_calls"] > 0 and rec["trunc_s"] > 0
