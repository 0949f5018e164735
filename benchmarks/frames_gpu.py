"""Frames suite: every factorizer on simulator frames, time per matrix vs the memory floor.

One call measures everything for one device, writes its records to
docs/results/records/performance-<device><tag>.json and rewrites the whole page
docs/results/performance.md from every records file there:

    CPU:  OMP_NUM_THREADS=1 python benchmarks/frames_gpu.py --device cpu
    GPU:  python benchmarks/frames_gpu.py --device cuda

``--from-records`` rewrites the page from the committed records, byte for byte, without
measuring. Frames are simulated in memory (neuralfactor.vlasov, strong Landau at each size):
no Zarr, no Dask needed. The learned rows (ConvMF and the sketch encoder SketchMF, each
plain and +refine) are trained briefly on earlier frames and timed at every batch (cuda: 1 and
4096). ``neuralfactor bench --suite frames`` runs the same code (neuralfactor.bench.frames).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from neuralfactor.bench.frames import (
    FRAME_DTYPES,
    FramesConfig,
    frames_markdown,
    run_frames,
    throughput_markdown,
    training_throughput,
)
from neuralfactor.core.validation import parse_ints
from neuralfactor.io import append_jsonl, atomic_write_text, read_json, write_json


def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--sizes", default="64x128,128x256,256x512")
    ap.add_argument("--ranks", default="6,12,30")
    ap.add_argument("--batches", default=None, help="default: cpu 1,256; cuda 1,4096")
    ap.add_argument("--max-batch-256x512", type=int, default=None, help="default: cuda 1024")
    ap.add_argument("--dtypes", default=None, help="default: cpu float32; cuda float32,tf32,bf16")
    ap.add_argument("--methods", default=None, help="default: every classical + peers + learned")
    ap.add_argument("--train-epochs", type=int, default=10)
    ap.add_argument("--train-frames", type=int, default=512)
    ap.add_argument("--models", default=None, help="load trained models from DIR instead")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (CPU peers too)")
    ap.add_argument("--max-call-seconds", type=float, default=None)
    ap.add_argument("--throughput-steps", type=int, default=None, help="0: skip")
    ap.add_argument("--records-dir", type=Path, default=Path("docs/results/records"))
    ap.add_argument("--page", type=Path, default=Path("docs/results/performance.md"))
    ap.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds after which no new case starts (noted in the doc); default cuda 450",
    )
    ap.add_argument("--tag", default="", help="suffix for records/section (split runs)")
    ap.add_argument("--from-records", action="store_true")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    key = f"{args.device}{args.tag}"
    rec_path = args.records_dir / f"performance-{key}.json"
    if args.from_records:
        write_page(args.records_dir, args.page)
        return
    dtypes = tuple((args.dtypes or ("float32,tf32,bf16" if cuda else "float32")).split(","))
    for d in dtypes:
        if d not in FRAME_DTYPES:
            sys.exit(f"--dtypes takes {FRAME_DTYPES}; got {d!r}")
    if args.deadline is None and cuda:
        args.deadline = 450.0  # one 600 s device call: measurement, throughput, the doc
    cap = args.max_batch_256x512 or (1024 if cuda else None)
    config = FramesConfig(
        device=args.device,
        sizes=_pairs(args.sizes),
        ranks=parse_ints(args.ranks, "--ranks"),
        batches=parse_ints(args.batches or ("1,4096" if cuda else "1,256"), "--batches"),
        dtypes=dtypes,
        methods=tuple(args.methods.split(",")) if args.methods else None,
        threads=args.threads or None,
        max_call_seconds=args.max_call_seconds or 0.5,
        min_seconds=0.1 if cuda else 0.05,
        train_frames=args.train_frames,
        train_epochs=args.train_epochs,
        models_dir=args.models,
        max_batch_at={"256x512": cap} if cap else None,
        deadline_seconds=args.deadline,
    )
    t0 = time.time()
    notes: list[str] = []
    partial = args.records_dir / f"performance-{key}.partial.jsonl"  # survives a killed run
    partial.unlink(missing_ok=True)

    def note(s: str) -> None:
        notes.append(s)
        print("note:", s, flush=True)

    def show(r: dict) -> None:
        append_jsonl(partial, [r])
        err = f"  ERROR {r['error'][:80]}" if "error" in r else ""
        print(
            f"{r['m']}x{r['n']} r={r['rank']:>2} b={r['batch']:>4} {r['dtype']:>7} "
            f"{r['method']:>22} {r['seconds_per_matrix'] * 1e6:10.2f} us "
            f"x_floor {r['x_floor']:9.1f} ratio {r['ratio_mean']:.4f}{err}",
            flush=True,
        )

    records = run_frames(config, on_record=show, on_note=note)
    steps = args.throughput_steps if args.throughput_steps is not None else (200 if cuda else 30)
    if steps:
        settings = [(1, "float32"), (2, "float32")] if not cuda else [(1, "float32"), (1, "tf32")]
        for threads, dt in settings:
            r = training_throughput(
                128, 256, 12, steps=steps, threads=threads, device=args.device, dtype=dt
            )
            print(f"train throughput threads={threads} {dt}: {r['frames_per_second']:.0f} frames/s")
            records.append(r)
            append_jsonl(partial, [r])
    elapsed = time.time() - t0
    meta = {
        "command": "python benchmarks/frames_gpu.py " + " ".join(sys.argv[1:]),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "elapsed_seconds": round(elapsed),
        "notes": notes,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    write_json(rec_path, {"meta": meta, "records": records})
    partial.unlink(missing_ok=True)
    write_page(args.records_dir, args.page)


def _section(device: str, records: list[dict], meta: dict) -> str:
    rows = [r for r in records if r.get("suite") == "frames"]
    r0 = rows[0] if rows else records[0]
    loads = [r.get("loadavg_before", r.get("loadavg_1min")) for r in records]
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
        f"- 1-minute load average during the run: {min(loads):.2f} to {max(loads):.2f}",
        "- matmul settings per dtype (dtype, torch.get_float32_matmul_precision(), "
        f"torch.backends.cuda.matmul.allow_tf32): {precisions}",
        f"- measured read bandwidth (float32 `x.sum()` over 256 MiB): {bw / 1e9:.2f} GB/s; "
        "`floor us` = m*n*4 bytes / that bandwidth (one float32 read of the matrix), "
        "`x floor` = time / floor.",
    ]
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
            lines.append(
                f"- learned: ConvMF (original architecture) trained for {lr[0]['train_epochs']} "
                f"epochs on {lr[0]['train_frames']} frames (Adam lr 1e-3, batch 25) of the same "
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


def render_page(records_dir: Path) -> str:
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


def write_page(records_dir: Path, page: Path) -> None:
    atomic_write_text(page, render_page(records_dir))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
