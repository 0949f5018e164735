"""2-D harmonic oscillator, first 3 states: NestedLoRA sequential vs joint vs SpIN-style, same budget.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/spectral_oscillator.py --iters 3000 --out runs/spectral_oscillator

T = shift - H, H = -Laplacian + |x|^2, shift = 6: eigenvalues 4 (k=0) and 2, 2 (k=1).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import write_json
from neuralfactor.spectral.trainer import SpectralConfig, run_spectral


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--out", default="runs/spectral_oscillator")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    records = []
    for method in ("nestedlora-seq", "nestedlora-joint", "spin"):
        cfg = SpectralConfig(
            problem="oscillator-2d",
            modes=3,
            method=method,
            iters=args.iters,
            batch=256,
            lr=3e-3,
            hidden=32,
            sampler="gaussian",
            sigma=1.5,
            envelope=0.5,
            eval_every=1000,
            eval_scale=0.7,
        )
        load0 = os.getloadavg()
        with pinned_threads(1) as threads:
            ev = run_spectral(cfg, Path(args.out) / method, resume=True)
        rec = {
            "method": method,
            "eigenvalues": ev["eigenvalues"],
            "rel_error": ev["rel_error"],
            "orthogonality": ev["orthogonality"],
            "subspace_distance": [g["subspace_distance"] for g in ev["groups"]],
            "train_seconds": ev["train_seconds"],
            "loadavg": [load0, os.getloadavg()],
            "threads": threads,
        }
        records.append(rec)
        print(json.dumps(rec), flush=True)
    write_json(Path(args.out) / "records.json", records)


if __name__ == "__main__":
    main()
