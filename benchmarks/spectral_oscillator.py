"""2-D harmonic oscillator, first 3 states: NestedLoRA sequential vs joint vs SpIN-style, same budget.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/spectral_oscillator.py --iters 3000

T = shift - H, H = -Laplacian + |x|^2, shift = 6: eigenvalues 4 (k=0) and 2, 2 (k=1). Each method
is the configuration of the README's command (``neuralfactor spectral --problem oscillator-2d
--modes 3 --iters 3000 --method nestedlora-joint --envelope 0.5 --sampler gaussian --sigma 1.5``)
with ``--method`` changed, run by :func:`neuralfactor.spectral.run.recorded_run` (1 thread,
resumable). Records: ``docs/results/records/spectral_oscillator-<method>.json``; the page is
``python benchmarks/spectral_page.py --from-records``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from neuralfactor.io import write_json
from neuralfactor.spectral.run import recorded_run, spectral_preset

METHODS = ("nestedlora-seq", "nestedlora-joint", "spin")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="runs/spectral_oscillator")
    ap.add_argument("--records", type=Path, default=Path("docs/results/records"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    for method in args.methods.split(","):
        cfg = spectral_preset(
            "best",
            problem="oscillator-2d",
            modes=3,
            iters=args.iters,
            method=method,
            envelope=0.5,
            sampler="gaussian",
            sigma=1.5,
        )
        rec = recorded_run(cfg, Path(args.out) / method, threads=1)
        write_json(args.records / f"spectral_oscillator-{method}.json", rec)
        ev = rec["evaluation"]
        print(json.dumps({"method": method, "eigenvalues": ev["eigenvalues"]}), flush=True)


if __name__ == "__main__":
    main()
