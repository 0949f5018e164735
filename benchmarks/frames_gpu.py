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
4096), each at its model's documented learning rate (``neuralfactor.amortized.default_lr``;
``--lr`` sets one for all). Every row also gets a flop floor: its operation count over the GEMM
rate measured in the same run. ``neuralfactor bench --suite frames`` runs the same code
(neuralfactor.bench.frames).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from neuralfactor.amortized import LEARNING_RATES
from neuralfactor.bench.frames import FRAME_DTYPES, FramesConfig, run_frames, training_throughput
from neuralfactor.core.validation import parse_ints
from neuralfactor.io import append_jsonl, atomic_write_text, write_json
from neuralfactor.report.performance import render_performance_page


def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s)


def _parser() -> argparse.ArgumentParser:
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
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam lr of every learned model; default per model: {LEARNING_RATES}",
    )
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
    return ap


def main() -> None:
    args = _parser().parse_args()
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
        min_run_time=0.1 if cuda else 0.05,
        train_frames=args.train_frames,
        train_epochs=args.train_epochs,
        train_lr=args.lr,
        models_dir=args.models,
        max_batch_at={"256x512": cap} if cap else None,
        deadline_seconds=args.deadline,
    )
    t0 = time.perf_counter()  # the whole run's wall time, recorded in the meta
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
    elapsed = time.perf_counter() - t0
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


def write_page(records_dir: Path, page: Path) -> None:
    atomic_write_text(page, render_performance_page(records_dir))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
