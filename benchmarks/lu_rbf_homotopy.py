"""Continuation in the nugget for the learned LU of the RBF kernel (an experiment).

    python benchmarks/lu_rbf_homotopy.py [--steps 25] [--deltas 0.1,0.03] [--out runs/lu_rbf_homotopy.json]

The learned LU of ``K + 1e-4 I`` goes singular because the operator error cannot see the nugget
(`docs/results/learned-lu.md`). Here the GFMM LU is trained (Levenberg-Marquardt, float64,
``diag='triangular'``) on ``(K + d I) / (1 + d)`` for a decreasing sequence of nuggets ``d``,
each stage warm-started from the previous one (the first from ``L = I``, ``U = block-upper``).
After each stage it records the stage's own relative Frobenius error, the error against the
issue's operator (``d = 1e-4``), cond(LU) and GMRES iterations to 1e-8 on the issue's operator
with the learned factors as preconditioner (true residual checked). One thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neuralfactor.io import write_json
from neuralfactor.lu.model import LUNetwork, as_dense_operator
from neuralfactor.lu.operators import make_operator
from neuralfactor.lu.precond import iteration_counts
from neuralfactor.lu.solve import LUSolver
from neuralfactor.lu.train import LUTrainConfig, train_lu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=25, help="LM steps per stage.")
    ap.add_argument("--deltas", default="0.1,0.03", help="Nuggets of the stages, in order.")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--leaf", type=int, default=32)
    ap.add_argument("--out", default="runs/lu_rbf_homotopy.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.n
    x = np.linspace(0.0, 1.0, n)
    K0 = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * 0.2**2))
    A = as_dense_operator(make_operator("rbf", n))
    b = np.random.default_rng(0).standard_normal(n)
    model = LUNetwork(n, args.leaf, diag="triangular", dtype="float64")
    cfg = LUTrainConfig(optimizer="lm", steps=args.steps, cg_iters=100)
    stages, t0 = [], time.perf_counter()
    for i, d in enumerate(float(v) for v in args.deltas.split(",")):
        res = train_lu((K0 + d * np.eye(n)) / (1 + d), model, cfg, init=i == 0)
        L, U = model.dense_factors()
        LU = (L @ U).numpy()
        it = iteration_counts(
            A, b, solver=LUSolver(model), preconditioners=("learned",), maxiter=300
        )["learned"]
        stages.append(
            {
                "delta": d,
                "lm_steps": args.steps,
                "rel_fro_stage": res.rel_fro,
                "rel_fro_target": float(np.linalg.norm(A - LU) / np.linalg.norm(A)),
                "cond_LU": float(np.linalg.cond(LU)),
                "gmres_iters": it["iters"],
                "gmres_converged": bool(it["converged"]),
                "gmres_true_rel_residual": it["rel_residual"],
                "seconds": time.perf_counter() - t0,
            }
        )
        print(stages[-1], flush=True)
    write_json(args.out, {"command": vars(args), "threads": 1, "stages": stages})


if __name__ == "__main__":
    main()
