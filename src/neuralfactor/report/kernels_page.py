"""The kernels-cpu page (docs/results/kernels-cpu.md): a pure function of the records of
:func:`neuralfactor.bench.kernels.run_kernels` (``benchmarks/kernels_cpu.py --from-records``
rewrites it byte for byte).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TARGET_RATIO", "kernels_markdown"]

RECORDS = "docs/results/records/kernels-cpu.jsonl"
#: The accuracy band of the targets: worst ratio to the optimum over the timed frames.
TARGET_RATIO = 1.01


def _us(s: float) -> str:
    return f"{s * 1e6:,.0f}" if s * 1e6 >= 100 else f"{s * 1e6:.1f}"


def _whole(parts: list[dict[str, Any]], rank: int) -> dict[str, Any]:
    return next(p for p in parts if p["rank"] == rank and p["method"].startswith("the whole"))


def _bound(parts: list[dict[str, Any]]) -> str:
    """What bounds a rank's warm step, from its breakdown records ('' without them)."""
    if not parts:
        return ""
    step = _whole(parts, parts[0]["rank"])
    small = next(p for p in parts if p["method"].startswith("svd of"))
    prods = [p for p in parts if p["method"] in ("X P", "X^T Q")]
    prod_s = sum(p["median_s"] for p in prods)
    prod_floor = sum(p["floor_flop_s"] for p in prods)
    calls = sum(p["median_s"] for p in parts if p is not step)
    return (
        f" What bounds it (breakdown below): the step's calls, each timed alone, sum to "
        f"{_us(calls)} us and the whole step takes {_us(step['median_s'])} us "
        f"({step['x_flop_floor']:.2f}x the step's flop floor; the difference is the step's "
        "own dispatch, slicing and result assembly), the rest of the time per frame is the "
        f"stream's per-frame Python and dispatch; the two frame products run at "
        f"{prod_s / prod_floor:.1f}x their floor, while the thin SVD of the "
        f"{small['n']}x{small['width']} X^T Q costs {_us(small['median_s'])} us, "
        f"{small['x_flop_floor']:.0f}x its own flop count at the GEMM rate "
        f"({small['median_s'] / step['median_s']:.0%} of the step): LAPACK's small "
        "factorizations run far below the GEMM rate, which the floor assumes."
    )


def kernels_markdown(records: list[dict[str, Any]]) -> str:
    """The page, from the records alone."""
    rows = [r for r in records if r.get("suite") == "kernels-cpu"]
    ens = [r for r in records if r.get("suite") == "kernels-cpu-ensemble"]
    parts = [r for r in records if r.get("suite") == "kernels-cpu-step"]
    if not rows:
        return "# Classical kernels on one CPU core\n\nNo records yet: run benchmarks/kernels_cpu.py.\n"
    first = rows[0]
    out = [
        "# Classical kernels on one CPU core",
        "",
        f"Generated from `{RECORDS}` by `python benchmarks/kernels_cpu.py --from-records`.",
        f"Measured with `{first['command']}` on {first['date']} ({first['machine']}, torch "
        f"{first['torch']}, scipy {first['scipy']}; threads {first['threads']}; load average "
        f"before {first.get('load_before')}).",
        "",
        f"{first['m']}x{first['n']} float32 strong-Landau frames ({first['frames']} timed, "
        "time-ordered). Time per frame: median (IQR) over interleaved "
        "`Timer.blocked_autorange` blocks. `floor_flop us`: the method's flop count "
        "(`neuralfactor.classical.flops`) at the single-core GEMM rate of the frame-sized "
        "product measured in the same run. A speed-up whose interquartile ranges overlap "
        "scipy's is printed as *within noise*.",
        "",
        "| rank | method | us/frame | IQR | worst ratio | mean ratio | iter/frame | "
        "floor_flop us | x flop floor | vs scipy.linalg.svd |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        overlap = not (r["q3_s"] < r["scipy_q1_s"] or r["q1_s"] > r["scipy_q3_s"])
        is_base = r["method"] == "scipy.linalg.svd"
        speed = "-" if is_base else f"{r['speedup_vs_scipy']:.2f}x"
        if overlap and not is_base:
            speed += " (within noise)"
        it = "-" if r["iterations_mean"] is None else f"{r['iterations_mean']:.2f}"
        out.append(
            f"| {r['rank']} | {r['method']} | {_us(r['median_s'])} | {_us(r['iqr_s'])} | "
            f"{r['worst_ratio']:.4f} | {r['mean_ratio']:.4f} | {it} | "
            f"{_us(r['floor_flop_s'])} | {r['x_flop_floor']:.2f} | {speed} |"
        )
    out += ["", "## Targets", ""]
    for rank in sorted({r["rank"] for r in rows}):
        rr = [r for r in rows if r["rank"] == rank]
        warm = [r for r in rr if r["method"].startswith("warm-subspace")]
        warm = [r for r in warm if r["worst_ratio"] <= TARGET_RATIO]
        if warm:
            best = min(warm, key=lambda r: r["median_s"])
            ok = best["speedup_vs_scipy"] >= 8 and best["x_flop_floor"] <= 3
            out.append(
                f"- rank {rank}: fastest warm-subspace within {TARGET_RATIO} ({best['method']}): "
                f"{best['speedup_vs_scipy']:.2f}x scipy.linalg.svd (target >= 8), "
                f"{best['x_flop_floor']:.2f}x its flop floor (target <= 3): "
                f"{'met' if ok else 'missed'}."
                f"{'' if ok else _bound([p for p in parts if p['rank'] == rank])}"
            )
        else:
            out.append(f"- rank {rank}: no warm-subspace row within {TARGET_RATIO}: missed.")
        cold = [r for r in rr if r["method"].startswith("rsvd")]
        for r in cold:
            ok = r["speedup_vs_scipy"] >= 4 and r["worst_ratio"] <= TARGET_RATIO
            out.append(
                f"- rank {rank}: {r['method']} ({r['params'][:60]}...): "
                f"{r['speedup_vs_scipy']:.2f}x scipy.linalg.svd at worst ratio "
                f"{r['worst_ratio']:.4f} (target >= 4 at <= {TARGET_RATIO}): "
                f"{'met' if ok else 'missed'}."
            )
    if parts:
        out += [
            "",
            "## Where one warm step's time goes",
            "",
            "Each call of one LAPACK warm step (`tol=None`: QR of X P, X^T Q, thin SVD of "
            "X^T Q, U = Q W_r) timed alone, interleaved with the whole step, on the first timed "
            "frame with the basis its stream carries in (`benchmarks/kernels_cpu.py`; "
            "`neuralfactor.bench.kernels.step_breakdown_records`). `floor_flop us`: the call's "
            "own flop count at the GEMM rate of the frame-sized product.",
            "",
            "| rank | call | us | IQR | floor_flop us | x flop floor | share of the step |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in parts:
            step = _whole(parts, r["rank"])
            out.append(
                f"| {r['rank']} | {r['method']} | {_us(r['median_s'])} | {_us(r['iqr_s'])} | "
                f"{_us(r['floor_flop_s'])} | {r['x_flop_floor']:.1f} | "
                f"{r['median_s'] / step['median_s']:.0%} |"
            )
    if ens:
        out += [
            "",
            "## Ensembles: one batched `step` per time step",
            "",
            "| rank | E streams | us/frame | frames/s |",
            "|---:|---:|---:|---:|",
        ]
        for r in ens:
            out.append(
                f"| {r['rank']} | {r['ensemble']} | {_us(r['median_s'])} | "
                f"{r['frames_per_s']:,.0f} |"
            )
    return "\n".join(out) + "\n"
