"""LAPACK rows and float32 trainings that complete benchmarks/lu_table.py's records.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/lu_extra.py --out runs/lu_extra.json

* ``lapack``: ``scipy.linalg.lu_factor`` in float32 and float64 for every operator (n = 256):
  operator error, per-sample solution / backward errors on the same 100 random ``x`` (same seed
  as the learned rows), cond(P L U).
* ``float32``: the 2-D operators (whose target is stated in float32) trained in float32, with the
  same settings as the float64 table.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import write_json
from neuralfactor.lu.evaluate import evaluate_lapack, evaluate_learned
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import OPERATORS, make_operator
from neuralfactor.lu.solve import IllConditionedFactorsWarning
from neuralfactor.lu.train import LUTrainConfig, train_lu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lu_extra.json")
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    out: dict = {"lapack": [], "float32": []}
    t0 = time.time()
    with pinned_threads(1) as info:
        out["threads"] = info
        for op in OPERATORS:
            A = make_operator(op, 256)
            for dt in ("float32", "float64"):
                r = evaluate_lapack(A, dt, samples=100)
                r["operator"] = op
                out["lapack"].append(r)
        write_json(args.out, out)
        for op in ("laplacian-2d", "convdiff-2d"):
            A = make_operator(op, 256)
            m = LUNetwork(256, 32, diag="triangular", dtype="float32")
            load0 = os.getloadavg()
            res = train_lu(
                A, m, LUTrainConfig(optimizer="lbfgs", steps=args.steps, inner=20, eval_every=10)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IllConditionedFactorsWarning)
                r = evaluate_learned(A, m, samples=100)
            r.update(
                {
                    "operator": op,
                    "train_seconds": res.seconds,
                    "loadavg_train": load0,
                    "loadavg_end": os.getloadavg(),
                }
            )
            out["float32"].append(r)
            print(op, "float32", f"{r['op_err_fro']:.2e}", f"{time.time() - t0:.0f}s", flush=True)
            write_json(args.out, out)
    out["total_seconds"] = time.time() - t0
    write_json(args.out, out)


if __name__ == "__main__":
    main()
