"""The kernels-cpu page's step breakdown and the bound it states, from synthetic records."""

import pytest

from neuralfactor.report.kernels_page import kernels_markdown


def _row(method, median_s, worst=1.005, x_floor=4.5, speedup=8.0):
    return {
        "suite": "kernels-cpu", "method": method, "rank": 12, "m": 128, "n": 256,
        "frames": 256, "command": "cmd", "date": "d", "machine": "x86_64", "torch": "t",
        "scipy": "s", "threads": "{}", "load_before": [1.0], "median_s": median_s,
        "iqr_s": 1e-6, "q1_s": median_s - 5e-7, "q3_s": median_s + 5e-7, "worst_ratio": worst,
        "mean_ratio": 1.001, "iterations_mean": 1.0, "floor_flop_s": median_s / x_floor,
        "x_flop_floor": x_floor, "speedup_vs_scipy": speedup, "scipy_q1_s": 1e-3,
        "scipy_q3_s": 1.1e-3, "params": "{}",
    }  # fmt: skip


def _part(method, median_s, floor_s):
    return {
        "suite": "kernels-cpu-step", "method": method, "rank": 12, "m": 128, "n": 256,
        "width": 17, "median_s": median_s, "iqr_s": 1e-7, "floor_flop_s": floor_s,
        "x_flop_floor": median_s / floor_s,
    }  # fmt: skip


def test_breakdown_table_and_bound_come_from_the_records():
    parts = [
        _part("X P", 20e-6, 25e-6),
        _part("svd of the 256x17 X^T Q", 80e-6, 4e-6),
        _part("X^T Q", 30e-6, 25e-6),
        _part("the whole step (lapack_step)", 200e-6, 60e-6),
    ]
    page = kernels_markdown([_row("warm-subspace lapack tol=None", 300e-6), *parts])
    assert "## Where one warm step's time goes" in page
    assert "| 12 | svd of the 256x17 X^T Q | 80.0 | 0.1 | 4.0 | 20.0 | 40% |" in page
    target = next(line for line in page.splitlines() if line.startswith("- rank 12: fastest"))
    assert target.startswith("- rank 12: fastest warm-subspace within 1.01")
    assert "missed. What bounds it" in target
    # the two products: 50 us over a 50 us floor; the small SVD 20x its own count, 40% of 200 us
    assert "the two frame products run at 1.0x their floor" in target
    assert "256x17 X^T Q costs 80.0 us, 20x its own flop count" in target
    assert (
        "(40% of the step)" in target
        and "sum to 130 us and the whole step takes 200 us (3.33x" in target
    )


@pytest.mark.parametrize("with_parts", [False, True])
def test_a_met_target_or_no_breakdown_states_no_bound(with_parts):
    rows = [_row("warm-subspace lapack tol=None", 300e-6, x_floor=2.5, speedup=9.0)]
    if with_parts:
        rows += [_part("X P", 1e-5, 1e-5), _part("svd of the 256x17 X^T Q", 1e-5, 1e-6),
                 _part("X^T Q", 1e-5, 1e-5), _part("the whole step (lapack_step)", 3e-5, 2e-5)]  # fmt: skip
    target = next(
        line for line in kernels_markdown(rows).splitlines() if line.startswith("- rank 12")
    )
    assert target.endswith("met.") if not with_parts else "met." in target
    assert "What bounds it" not in target
