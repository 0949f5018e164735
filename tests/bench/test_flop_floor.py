"""The flop floor of the suites: counts per row, record fields, the frames tables' columns."""

import pytest

from neuralfactor.amortized import LEARNING_RATES, default_lr, sketch_flops
from neuralfactor.bench.flop_floor import (
    convmf_flops,
    flop_fields,
    method_flops,
    refine_flops,
)
from neuralfactor.bench.frames_render import FRAME_COLUMNS, flop_cells, frames_markdown
from neuralfactor.classical import flops
from neuralfactor.report.performance import render_performance_page


def test_counts_of_learned_and_classical_rows():
    m, n = 64, 128
    assert method_flops("convmf", m, n, 6, {}) == convmf_flops(m, n, 6, refine=False)
    assert method_flops("convmf+refine", m, n, 6, {}) == convmf_flops(m, n, 6)
    # a nested network computes every column of its trained rank; the refit uses the rank served
    nested = method_flops("convmf-nested+refine", m, n, 6, {}, trained_rank=30)
    assert nested == convmf_flops(m, n, 30, refine=False) + refine_flops(m, n, 6)
    assert method_flops("convmf-nested", m, n, 6, {}, trained_rank=30) > method_flops(
        "convmf", m, n, 6, {}
    )
    assert method_flops("sketch", m, n, 6, {"oversample": 2}) == sketch_flops(m, n, 6, oversample=2)
    # kernel='auto' is counted as the factorizers run it: LAPACK on the CPU, GEMM elsewhere
    auto = {"n_iter": 1, "oversample": 5, "kernel": "auto"}
    cpu = method_flops("rsvd", m, n, 6, auto, device="cpu")
    gpu = method_flops("rsvd", m, n, 6, auto, device="cuda")
    assert cpu == flops("rsvd", m, n, 6, n_iter=1, oversample=5, kernel="lapack")
    assert gpu == flops("rsvd", m, n, 6, n_iter=1, oversample=5, kernel="gemm") != cpu
    assert method_flops("rsvd-gemm", m, n, 6, auto, device="cpu") == flops(
        "rsvd-gemm", m, n, 6, n_iter=1, oversample=5
    )
    # warm-subspace at its measured mean iterations
    warm = method_flops("warm-subspace", m, n, 6, {"n_iter": 1.5, "tol": 0.01}, device="cpu")
    assert warm == flops("warm-subspace", m, n, 6, n_iter=1.5, tol=0.01)
    assert method_flops("svd", m, n, 6, {"rank": 6}) == flops("svd", m, n, 6)
    for name in ("svds-arpack", "sklearn-rsvd", "torch-lowrank", "nmf"):
        assert method_flops(name, m, n, 6, {}) is None


def test_flop_fields():
    f = flop_fields(2e6, 1e9, 4e-3)
    assert f == {"flops": 2e6, "gemm_rate_flops": 1e9, "floor_flop_s": 2e-3, "x_flop_floor": 2.0}
    assert flop_fields(None, 1e9, 4e-3)["floor_flop_s"] is None


def test_default_lr_is_one_table():
    assert default_lr("sketch") == LEARNING_RATES["sketch"] == 1e-2
    assert default_lr("convmf") == 1e-3
    with pytest.raises(ValueError, match="default_lr"):
        default_lr("resnet")


def _row(method, **extra):
    """A synthetic frames record: 64x128, rank 6, batch 1, float32."""
    base = {
        "suite": "frames",
        "method": method,
        "label": method,
        "family": "peer" if method in ("scipy-gesdd", "svds-arpack") else "classical",
        "dtype": "float32",
        "m": 64,
        "n": 128,
        "rank": 6,
        "batch": 1,
        "timed_batch": 1,
        "seconds_per_matrix": 4e-4,
        "floor_seconds_per_matrix": 1e-6,
        "x_floor": 400.0,
        "scaled_loss_mean": 0.01,
        "ratio_mean": 1.0,
        "ratio_max": 1.0,
        "fit_seconds": 0.0,
        "device": "cpu",
        "device_name": "x86_64",
        "cpu_count": 2,
        "torch_version": "t",
        "cuda_version": None,
        "numpy_version": "np",
        "scipy_version": "sp",
        "sklearn_version": "sk",
        "version": "v",
        "python": "py",
        "torch_threads": 1,
        "blas_threads": {},
        "loadavg_before": 0.5,
        "matmul_precision": "highest",
        "allow_tf32": False,
        "bandwidth_bytes_per_s": 3e10,
        "sim_save_every": 5,
        "sim_t_first": 20.0,
        "sim_t_last": 40.0,
        "sim_dt": 0.005,
    }
    return {**base, **extra}


def test_columns_new_old_and_unknown(tmp_path):
    from neuralfactor.io import write_json

    new = {"gemm_rate_flops": 2e10, "gemm_k": 11}
    rows = [
        _row("scipy-gesdd", flops=8e6, floor_flop_s=4e-4, x_flop_floor=1.0, **new),
        _row("rsvd", flops=2e6, floor_flop_s=1e-4, x_flop_floor=4.0, **new),
        _row("svds-arpack", flops=None, floor_flop_s=None, x_flop_floor=None, **new),
    ]
    assert flop_cells(rows[1]) == ["100", "4"] and flop_cells(rows[2]) == ["-", "-"]
    assert flop_cells(_row("rsvd")) == ["not recorded", "not recorded"]
    text = frames_markdown(rows)
    i, j = FRAME_COLUMNS.index("floor_flop us"), FRAME_COLUMNS.index("x flop floor")
    assert j == i + 1
    table = [line.split(" | ") for line in text.splitlines() if line.startswith("| rsvd |")]
    assert table[0][i : j + 1] == ["100", "4"]
    assert "| svds-arpack | peer | float32 | 1 | 400 | 1 | 400 | - | - |" in text
    # a records file from before the flop floor, one after: each section says which it is
    meta = {"command": "python benchmarks/frames_gpu.py", "elapsed_seconds": 1, "notes": []}
    write_json(tmp_path / "performance-cpu.json", {"meta": meta, "records": rows})
    old = [{k: v for k, v in r.items() if k not in ("flops", *new)} for r in rows]
    write_json(tmp_path / "performance-cpu-old.json", {"meta": meta, "records": old})
    page = render_performance_page(tmp_path)
    new_part, old_part = page.split("## cpu-old")  # sections in file-name order
    assert "flop floor: not recorded" in old_part and "not recorded | not recorded" in old_part
    assert "flop floor: not recorded" not in new_part
    assert "64x128 k=11 float32: 20.00" in new_part and "k=11" not in old_part
    assert "`-` in the flop columns (svds-arpack): no operation count" in new_part
    assert "`floor_flop us`: the compute floor" in page  # the How to read entry
