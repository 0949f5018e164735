"""How well each hydrogen training sampler estimates the Gram matrix of the true states.

    OMP_NUM_THREADS=1 python benchmarks/spectral_samplers.py

For the radial Monte Carlo sampler (sigma 8, the default) and the randomly shifted polar
lattice (16 angles per rule), at the batches of the hydrogen stages, the r.m.s. and largest
error of one half-batch's normalized Gram matrix of the first 9 closed-form states
(:func:`neuralfactor.spectral.evaluate.sampler_gram_error`), over 200 draws. Record:
``docs/results/records/spectral_samplers.json``; the page is
``python benchmarks/spectral_page.py --from-records``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import write_json
from neuralfactor.spectral.evaluate import sampler_gram_error
from neuralfactor.spectral.operators import SchrodingerOperator


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--batches", default="512,1024")
    ap.add_argument("--out", type=Path, default=Path("docs/results/records/spectral_samplers.json"))
    return ap


def main() -> None:
    args = build_parser().parse_args()
    rows = []
    with pinned_threads(1) as threads:
        for sampler in ("radial", "lattice"):
            op = SchrodingerOperator("coulomb", sampler=sampler, sigma=8.0, lattice_theta=16)
            for batch in map(int, args.batches.split(",")):
                gen = torch.Generator().manual_seed(0)
                err = sampler_gram_error(op, batch=batch, draws=args.draws, generator=gen)
                rows.append({"sampler": sampler, "batch": batch, "draws": args.draws, **err})
                print(rows[-1], flush=True)
    write_json(args.out, {"rows": rows, "threads": threads, "loadavg": os.getloadavg()})


if __name__ == "__main__":
    main()
