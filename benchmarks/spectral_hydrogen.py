"""2-D hydrogen: NestedLoRA-seq vs the SpIN-style baseline on the same budget (CPU, 1 thread).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/spectral_hydrogen.py --iters 12000 --out runs/spectral_hydrogen

Each method is one ``neuralfactor.spectral.trainer.run_spectral`` run (the same code as
``neuralfactor spectral --problem hydrogen-2d ...``); this script adds the machine record
(load average, threads, versions) and prints the table of docs/results/neuralsvd.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from neuralfactor.core.timing import pinned_threads
from neuralfactor.core.validation import parse_ints
from neuralfactor.io import write_json
from neuralfactor.spectral.evaluate import plot_run
from neuralfactor.spectral.trainer import SpectralConfig, load_run, run_spectral


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=12000)
    ap.add_argument("--methods", default="nestedlora-seq,spin")
    ap.add_argument("--out", default="runs/spectral_hydrogen")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--envelope", type=float, default=0.1)
    ap.add_argument(
        "--radius-feature", action="store_true", help="append |x| to the MLP inputs (the cusp)"
    )
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument(
        "--init-from",
        default=None,
        help="warm start: a directory holding <method>/ runs of the same architecture",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reset-modes",
        default="",
        help="with --init-from: comma-separated modes re-initialized from --seed",
    )
    ap.add_argument(
        "--sampler",
        default="radial",
        help="radial (Monte Carlo, sigma 8) | lattice (randomly shifted polar lattice)",
    )
    ap.add_argument("--lattice-theta", type=int, default=16)
    ap.add_argument(
        "--shift", type=float, default=None, help="train on T = shift - H (evaluation on -H)"
    )
    args = ap.parse_args()
    reset = parse_ints(args.reset_modes, "--reset-modes")
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    records = []
    for method in args.methods.split(","):
        cfg = SpectralConfig(
            problem="hydrogen-2d",
            modes=9,
            method=method,
            iters=args.iters,
            batch=args.batch,
            lr=args.lr,
            hidden=32,
            depth=3,
            laplacian="fd",
            sampler=args.sampler,
            sigma=8.0,
            lattice_theta=args.lattice_theta,
            shift=args.shift,
            dtype="float64",
            envelope=args.envelope,
            radius_feature=args.radius_feature,
            seed=args.seed,
            eval_every=args.eval_every,
            init_from=None if args.init_from is None else str(Path(args.init_from) / method),
            reset_modes=reset,
        )
        out = Path(args.out) / method
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        with pinned_threads(1) as threads:
            ev = run_spectral(cfg, out, resume=True)
            config, model, _ = load_run(out)
            plot_run(config, model, ev, out / "figure.png")
        rec = {
            "method": method,
            "config": asdict(cfg),
            "wall_seconds": time.perf_counter() - t0,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "evaluation": ev,
        }
        records.append(rec)
        write_json(out / "record.json", rec)
        print(
            json.dumps(
                {
                    "method": method,
                    "train_s": ev["train_seconds"],
                    "rel_error": ev["rel_error"],
                    "ortho": ev["orthogonality"],
                    "groups": ev["groups"],
                    "load": [load0, os.getloadavg()],
                }
            ),
            flush=True,
        )
    write_json(Path(args.out) / "records.json", records)


if __name__ == "__main__":
    main()
