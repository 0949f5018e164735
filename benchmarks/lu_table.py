"""Learned GFMM LU vs LAPACK and classical preconditioners (docs/results/learned-lu.md).

Run (about 15 minutes of one core; `--optimizer lm --steps 60` for the Levenberg-Marquardt table):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/lu_table.py --out runs/lu_table.json

Every row trains one LUNetwork (float64, init L = I, U = block-upper(A)) and evaluates it in the
same run as the none / Jacobi / ILU(0) / AMG preconditioners
(:func:`neuralfactor.lu.study.table_row`). Records carry thread counts and os.getloadavg() (the
machine is shared). The page is written from the records by
`python benchmarks/lu_report.py --from-records`.
"""

from __future__ import annotations

import argparse
import time
from typing import get_args

from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import write_json
from neuralfactor.lu.gfmm import DiagMode
from neuralfactor.lu.operators import OPERATORS
from neuralfactor.lu.run import LURunConfig
from neuralfactor.lu.study import environment, size_regime, table_row
from neuralfactor.lu.train import LUTrainConfig, parse_precond_stages


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lu_table.json")
    ap.add_argument("--steps", type=int, default=100, help="L-BFGS steps of 20 iterations")
    ap.add_argument(
        "--optimizer",
        default="lbfgs",
        choices=["lbfgs", "lm"],
        help="lbfgs or lm (Levenberg-Marquardt)",
    )
    ap.add_argument("--cg-iters", type=int, default=100, help="lm: CG iterations per step")
    ap.add_argument("--operators", nargs="*", default=list(OPERATORS), choices=list(OPERATORS))
    ap.add_argument(
        "--diag",
        default="triangular",
        choices=list(get_args(DiagMode)),
        help="diagonal blocks of the main rows (unit: unit-diagonal L)",
    )
    ap.add_argument(
        "--symmetric", action="store_true", help="learn L only, U = L^T (SPD operators)"
    )
    ap.add_argument(
        "--precond-weight",
        type=float,
        default=0.0,
        help="lm: weight of the preconditioned residual term (LUTrainConfig.precond_weight)",
    )
    ap.add_argument(
        "--stages",
        type=parse_precond_stages,
        default="",
        help="lm: further stages WEIGHT:STEPS,... after --steps at --precond-weight "
        "(LUTrainConfig.precond_stages)",
    )
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--no-2d", action="store_true")
    ap.add_argument("--no-regime", action="store_true")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    t0 = time.time()
    out = {
        **environment(),
        "rows": [],
        "ablation": [],
        "two_d": [],
        "regime": [],
    }
    with pinned_threads(1) as info:
        out["threads"] = info
        if args.optimizer == "lm":
            cfg = LUTrainConfig(
                optimizer="lm",
                steps=args.steps,
                cg_iters=args.cg_iters,
                lr=1e-3,
                eval_every=5,
                precond_weight=args.precond_weight,
                precond_stages=args.stages,
            )
        else:
            cfg = LUTrainConfig(optimizer="lbfgs", steps=args.steps, inner=20, eval_every=10)
        for op in args.operators:
            c = LURunConfig(op, 256, 32, diag=args.diag, symmetric=args.symmetric, train=cfg)
            r = table_row(c)
            out["rows"].append(r)
            print(
                op,
                f"{r['op_err_fro']:.2e}",
                {k: v["iters"] for k, v in r["gmres"].items()},
                f"{time.time() - t0:.0f}s",
                flush=True,
            )
            write_json(args.out, out)
        if not args.no_ablation:
            for label, diag, c in [
                ("full-diag e2e", "full", cfg),
                (
                    "blockwise+transpose",
                    "triangular",
                    LUTrainConfig(
                        optimizer="lbfgs",
                        blockwise=True,
                        transpose_loss=True,
                        block_steps=args.steps // 8,
                        eval_every=5,
                    ),
                ),
                (
                    "adam e2e",
                    "triangular",
                    LUTrainConfig(optimizer="adam", lr=1e-3, steps=args.steps * 20, eval_every=200),
                ),
            ]:
                r = table_row(LURunConfig("laplacian-1d", 256, 32, diag=diag, train=c), label)
                out["ablation"].append(r)
                print(label, f"{r['op_err_fro']:.2e}", f"{time.time() - t0:.0f}s", flush=True)
                write_json(args.out, out)
        if not args.no_2d:
            for op in ("laplacian-2d", "convdiff-2d", "biharmonic-2d"):
                c = LURunConfig(op, 256, 16, dim=2, train=cfg)
                r = table_row(c, "2-D quad-tree, 4x4 patches")
                out["two_d"].append(r)
                print("2d", op, f"{r['op_err_fro']:.2e}", f"{time.time() - t0:.0f}s", flush=True)
                write_json(args.out, out)
        for n in () if args.no_regime else (256, 1024, 4096):
            out["regime"].append(size_regime(n))
            write_json(args.out, out)
    out["total_seconds"] = time.time() - t0
    write_json(args.out, out)


if __name__ == "__main__":
    main()
