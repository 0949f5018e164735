"""The performance page (docs/results/performance.md): a pure function of the frames suite's
records files (``performance-<device><tag>.json``, each ``{"meta": ..., "records": [...]}``).

``benchmarks/frames_gpu.py`` measures and writes the records; ``--from-records`` calls
:func:`render_performance_page` and rewrites the page byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from neuralfactor.bench.flop_floor import NO_FORMULA
from neuralfactor.bench.frames_render import frames_markdown, throughput_markdown
from neuralfactor.io import read_json

__all__ = ["render_performance_page"]


def _section(device: str, records: list[dict], meta: dict) -> str:
    rows = [r for r in records if r.get("suite") == "frames"]
    r0 = rows[0] if rows else records[0]
    # rows that failed before timing (e.g. nmf on signed frames) carry no load reading
    loads = [
        v for r in records if (v := r.get("loadavg_before", r.get("loadavg_1min"))) is not None
    ]
    loads += [r["loadavg_after"] for r in records if "loadavg_after" in r]
    bw = r0.get("bandwidth_bytes_per_s", float("nan"))
    precisions = sorted({(r["dtype"], r["matmul_precision"], r["allow_tf32"]) for r in rows})
    lines = [
        f"Command: `OMP_NUM_THREADS={meta.get('omp_num_threads')} {meta['command']}` "
        f"({meta['elapsed_seconds']} s). Records: "
        f"`docs/results/records/performance-{device}.json`.",
        "",
        f"- device: {r0['device']} ({r0['device_name']}), {r0['cpu_count']} CPUs visible; "
        f"torch {r0['torch_version']} (CUDA {r0['cuda_version']}), numpy {r0['numpy_version']}, "
        f"scipy {r0['scipy_version']}, scikit-learn {r0['sklearn_version']}, "
        f"neuralfactor {r0['version']}, Python {r0['python']}",
        f"- threads: torch {r0['torch_threads']}, BLAS/OpenMP pools {r0['blas_threads']}",
        "- 1-minute load average during the run: "
        + (f"{min(loads):.2f} to {max(loads):.2f}" if loads else "not recorded"),
        "- matmul settings per dtype (dtype, torch.get_float32_matmul_precision(), "
        f"torch.backends.cuda.matmul.allow_tf32): {precisions}",
        f"- measured read bandwidth (float32 `x.sum()` over 256 MiB): {bw / 1e9:.2f} GB/s; "
        "`floor us` = m*n*4 bytes / that bandwidth (one float32 read of the matrix), "
        "`x floor` = time / floor.",
    ]
    lines += _flop_lines(rows)
    if rows:
        sims = sorted(
            {
                (
                    r["m"],
                    r["n"],
                    r["sim_save_every"],
                    round(r["sim_t_first"], 2),
                    round(r["sim_t_last"], 2),
                    round(r["sim_dt"], 6),
                )
                for r in rows
            }
        )
        lines.append(
            "- frames: strong Landau damping simulated at each size (dt = min(hx, hv)/20), "
            "time-ordered; the first `train_frames` frames train the learned methods and "
            "`pod-basis`, the next `batch` are timed (warm-subspace continues the stream from "
            "the last training frame: one iteration per frame). (m, n, save_every, t_first, "
            f"t_last, dt): {sims}"
        )
        lr = [r for r in rows if r["family"] == "learned" and "train_epochs" in r]
        if lr:
            fits = sorted(
                {
                    (
                        r["m"],
                        r["n"],
                        r["trained_rank"],
                        r["method"].split("+")[0],
                        round(r["fit_seconds"], 1),
                    )
                    for r in lr
                }
            )
            # records without train_lr predate it: the suite then trained every model at 1e-3
            rates = sorted({(r["method"].split("+")[0], r.get("train_lr", 1e-3)) for r in lr})
            lines.append(
                f"- learned: ConvMF (original architecture) trained for {lr[0]['train_epochs']} "
                f"epochs on {lr[0]['train_frames']} frames (Adam, batch 25; lr: "
                + ", ".join(f"{m} {v:g}" for m, v in rates)
                + ") of the same "
                "simulation: a short training, so the plain network's ratios are far from what "
                "a full training gives; `+refine` keeps the network's U and solves V by least "
                "squares; `convmf-nested` is one model trained at the largest rank with the "
                "nested loss and evaluated at each rank. (m, n, trained rank, model, fit s): "
                f"{fits}"
            )
    for n in meta.get("notes", []):
        lines.append(f"- note: {n}")
    lines += ["", frames_markdown(records)]
    tp = [r for r in records if r.get("suite") == "train-throughput"]
    if tp:
        lines += [
            "### ConvMF training throughput",
            "",
            "Forward, unnormalized Frobenius loss, backward and fused Adam per step, batch 25, "
            "128x256, rank 12; median of 3 blocks of steps after a warm-up block.",
            "",
            throughput_markdown(records),
        ]
    return "\n".join(lines) + "\n"


def _flop_lines(rows: list[dict]) -> list[str]:
    """The flop floor's run conditions: the GEMM rates measured, the rows without a count."""
    measured = [r for r in rows if "gemm_rate_flops" in r]
    if not measured:
        return [
            "- flop floor: not recorded (these records predate it; `not recorded` in the "
            "`floor_flop us` and `x flop floor` columns)."
        ]
    rates = sorted(
        {(r["m"], r["n"], r["gemm_k"], r["dtype"], r["gemm_rate_flops"]) for r in measured}
    )
    text = ", ".join(f"{m}x{n} k={k} {d}: {v / 1e9:.2f}" for m, n, k, d, v in rates)
    lines = [
        "- GEMM rate for the flop floor, (m x n)(n x k) with k = min(largest rank + 5, m, n), "
        f"measured once per size and dtype in this run (Gflop/s): {text}"
    ]
    none = sorted({r.get("label", r["method"]) for r in measured if r.get("flops") is None})
    if none:
        lines.append(f"- `-` in the flop columns ({', '.join(none)}): {NO_FORMULA}.")
    return lines


HEADER = """# Performance: factorizing frame streams

Generated by `benchmarks/frames_gpu.py` (the command of each section is given in it).
Regenerate: `python benchmarks/frames_gpu.py --from-records` (rewrites this whole page from
`docs/results/records/performance-*.json`, byte for byte, without measuring).

Every factorizer of the registry, the library peers (at their documented defaults and at our
budget) and the learned factorizers are timed in the same run, on the same simulator frames,
device, precision and batch; since the interleaved harness, every row of a case is timed in
the same rounds. Every row states its time per matrix, its memory floor (the matrix read once
at the bandwidth measured on that device in the same run) and its ratio to that floor, and its
scaled loss ||X - UV||_F^2 / ||X||_F^2 with the ratio to the Eckart-Young optimum of the same
frames (computed in float64).

How to read the tables:

- `us/matrix`: median time of a call / matrices in the call (a sub-batch, `timed`, when the
  whole batch would take longer than the call budget).
- `floor us`: m*n*4 bytes / measured read bandwidth. On the CPU the bandwidth is that of one
  thread (threads are pinned to 1), so the floor is a single-core floor.
- `floor_flop us`: the compute floor, the method's floating-point operations per matrix
  divided by the GEMM rate measured in the same run on the same device, threads and dtype
  (the (m x n)(n x k) product, k = min(largest rank + 5, m, n), timed by
  `neuralfactor.classical.gemm_rate`; bf16 rows: bfloat16 operands). The counts are the
  documented formulas of `neuralfactor.classical.flops` (classical methods; warm-subspace at
  its measured mean iterations), `neuralfactor.amortized.sketch_flops` (the sketch encoder)
  and `neuralfactor.bench.flop_floor.convmf_flops` (ConvMF's forward pass; nested models at
  their trained rank), each `+refine` adding the least-squares refit; counting conventions of
  Golub & Van Loan (2013), *Matrix Computations*. `x flop floor` = time / that floor: how far
  a row is from running all its work at the thin product's rate. It can fall below 1 where a
  row's work runs faster than that one product (a batch through ConvMF's dense layers is a
  wide GEMM). `-`: no operation count is stated for the method (its work depends on the data
  or on a library's internal choices: ARPACK, LOBPCG, PROPACK, scikit-learn, torch, Dask,
  NMF). `not recorded`: the records predate the flop floor.
- `x scipy-gesdd`: `scipy.linalg.svd` (gesdd) time / this row's time, same case, same run
  (> 1: faster); `~1x (within noise)` when the two interquartile ranges overlap by more than
  the medians differ; `spread not recorded` for records that predate the interleaved harness
  (their speed ratios rank nothing).
- `ratio mean` / `ratio max`: scaled loss / optimum over the timed matrices. The summary
  compares a learned method's speed with the fastest classical one only when both are within
  1.05x of the optimum.
- `warm-subspace` continues the time series from the last training frame (marked `warm`):
  one subspace iteration per frame.
- `nmf` fails on these frames by design (the spectral solver's frames have small negative
  entries; NMF needs X >= 0): the row is kept so the omission is visible.
"""

GPU_NOT_RUN = """## GPU: not run on a GPU

No records from a CUDA device exist, so this page has no GPU numbers and no GPU target has
been checked. The suite runs in one device call (it stops starting new cases after 450 s and
says so in the notes):

    PYTHONUNBUFFERED=1 PYTHONPATH=src python3 benchmarks/frames_gpu.py --device cuda \\
      --records-dir $OUT --page $OUT/performance.md

then copy `$OUT/performance-cuda.json` into `docs/results/records/` and run
`python benchmarks/frames_gpu.py --from-records`.
"""

FOOTER = """## What this page does not do yet

- GPU kernel engineering (fused k x k work, rank <= 32 kernels, CUDA graphs, `torch.compile`,
  a cheaper encoder than ConvMF's dense first layer) was not attempted.
- The learned methods are trained briefly (stated in each section: epochs, frames, seconds),
  not to the original study's validation loss. `--models DIR` loads fully trained models
  (`convmf-MxN-rR`, `convmf-nested-MxN-rR`, as written by `LearnedFactorizer.save`) instead.
- Training throughput is the cost of optimizer steps (ConvMF, 128x256, rank 12, batch 25,
  uniform random frames); it is not a convergence measurement.
"""


def render_performance_page(records_dir: Path) -> str:
    """The whole performance page from every ``performance-*.json`` in ``records_dir``."""
    parts = [HEADER]
    files = sorted(records_dir.glob("performance-*.json"), key=lambda p: p.stem)
    keys = []
    for path in files:
        key = path.stem[len("performance-") :]
        keys.append(key)
        data = read_json(path)
        parts.append(f"## {key}\n\n" + _section(key, data["records"], data["meta"]))
    if not any(k.startswith("cuda") for k in keys):
        parts.append(GPU_NOT_RUN)
    parts.append(FOOTER)
    return "\n".join(parts)
