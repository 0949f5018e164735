"""Classical baselines table for docs/results/classical-baselines.md (issue: foundation).

Run:  OMP_NUM_THREADS=1 python benchmarks/classical_baselines.py [--device cpu] [--out docs/results]
Every method (neuralfactor's classical factorizers and the library peers) is timed in the same
run, on the same frames, device, dtype and batch, with torch/BLAS pinned to one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from neuralfactor.bench.runner import BenchConfig, run_bench
from neuralfactor.bench.tables import markdown_table
from neuralfactor.io import atomic_write_text, write_json

METHODS = (
    "svd",
    "scipy-gesdd",
    "svds-arpack",
    "svds-propack",
    "sklearn-rsvd",
    "torch-lowrank",
    "rsvd",
    "rsvd-gemm",
    "warm-subspace",
    "pod-basis",
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--name", default="classical-baselines")
    ap.add_argument("--batches", default="1,1024")
    ap.add_argument("--max-call-seconds", type=float, default=2.0)
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    records = []
    for data in ("evolving", "planted"):
        cfg = BenchConfig(
            methods=METHODS,
            sizes=((128, 256), (256, 512)),
            ranks=(6, 12, 30),
            batches=tuple(int(b) for b in args.batches.split(",")),
            data=data,
            dtype=args.dtype,
            device=args.device,
            threads=1,
            repeats=3,
            max_call_seconds=args.max_call_seconds,
        )
        records += run_bench(
            cfg,
            on_record=lambda r: print(
                f"{r['data']:>8} {r['method']:>14} {r['m']}x{r['n']} r={r['rank']:>2} b={r['batch']:>4} "
                f"{r['seconds_per_matrix'] * 1e6:10.1f} us  ratio {r['ratio_mean']:.5f}",
                flush=True,
            ),
        )
    write_json(out / f"{args.name}.json", records)
    loads = [r["loadavg_1min"] for r in records]
    env = records[0]
    lines = [
        "# Classical baselines",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/classical_baselines.py --device {args.device} "
        f"--dtype {args.dtype} --batches {args.batches}` ({time.time() - t0:.0f} s).",
        f"Records: `{args.name}.json` (one flat record per row; the tables are regenerated from it).",
        "",
        f"- device: {env['device']} ({env['cpu']}), dtype {args.dtype}, torch {env['torch_version']}, "
        f"neuralfactor {env['version']}, Python {env['python']}",
        f"- threads: torch {env['torch_threads']}, BLAS/OpenMP pools {env['blas_threads']}",
        f"- 1-minute load average during the run: {min(loads):.2f} to {max(loads):.2f} on 2 cores "
        "(other jobs shared the machine when the load is above 1; absolute times carry that noise, "
        "ratios between methods measured back to back less so).",
        "- `us/matrix`: median of repeats / timed matrices. `timed`: matrices actually timed "
        "(a sub-batch when the full batch would take longer than "
        f"{args.max_call_seconds} s per call; per-matrix methods cost the same at any batch).",
        "- `x baseline`: scipy-gesdd time / method time, same size, rank, batch (> 1 is faster).",
        "- `ratio`: scaled loss / Eckart-Young optimum at that rank (mean and max over the timed "
        "matrices). `fit s`: one-off training time of data-driven methods (pod-basis), not "
        "included in us/matrix.",
        "- `warm-subspace` treats a batch as a time series (each frame warm-started from the "
        "previous one, the first cold): meaningful on `evolving` frames, not on independent "
        "`planted` matrices, where its ratio shows what a wrong warm start costs.",
        "",
    ]
    for data, title in (
        ("evolving", "Smooth evolving frames (time-ordered, phase-space-like)"),
        ("planted", "Independent random matrices with s_i = 0.9^i"),
    ):
        lines += [f"## {title}", ""]
        for m, n in ((128, 256), (256, 512)):
            sel = [r for r in records if r["data"] == data and r["m"] == m]
            lines += [f"### {m}x{n}", "", markdown_table(sel)]
    lines += ["## Notes", "", "GPU: not measured in this run (no CUDA device in this session).", ""]
    atomic_write_text(out / f"{args.name}.md", "\n".join(lines))
    print(f"wrote {out / (args.name + '.md')}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
