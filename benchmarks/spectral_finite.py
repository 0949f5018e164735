"""Finite matrix (SVD form) and RBF kernel (EVD form): NestedLoRA vs torch.linalg.svd/eigh/Nyström.

    OMP_NUM_THREADS=1 python benchmarks/spectral_finite.py --out runs/spectral_finite.json

Accuracy: per-mode relative error of the top-10 values and the principal angle between each
learned function and the exact singular/eigenvector (sign-invariant), plus the angle of the
whole top-10 span. Times: training (NestedLoRA) and the dense reference, same run, 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch

from neuralfactor.core.metrics import principal_angles
from neuralfactor.core.timing import pinned_threads, time_call, time_interleaved
from neuralfactor.io import write_json
from neuralfactor.spectral.evaluate import learned_spectrum
from neuralfactor.spectral.models import FunctionPair, ParallelMLP, SpectralModel, TabularFunctions
from neuralfactor.spectral.operators import Batch, KernelOperator, MatrixOperator
from neuralfactor.spectral.trainer import tabular_model, train_operator


def mode_angles(F: torch.Tensor, ref: torch.Tensor) -> list[float]:
    return [
        float(principal_angles(F[:, l : l + 1], ref[:, l : l + 1])[0]) for l in range(F.shape[1])
    ]


def row(name, vals, ref_vals, F, ref_F, seconds, ref_seconds, extra=None):
    rel = ((vals - ref_vals).abs() / ref_vals.abs()).tolist()
    return {
        "case": name,
        "max_rel_error": max(rel),
        "rel_error": rel,
        "max_mode_angle": max(mode_angles(F, ref_F)),
        "mode_angles": mode_angles(F, ref_F),
        "span_angle": float(principal_angles(F, ref_F)[-1]),
        "seconds": seconds,
        "reference_seconds": ref_seconds,
        **(extra or {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/spectral_finite.json")
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    L, rows = 10, []
    load0 = os.getloadavg()
    with pinned_threads(1) as threads:
        g = torch.Generator().manual_seed(0)
        m, n = 200, 100
        U, _ = torch.linalg.qr(torch.randn(m, n, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        s = 0.85 ** torch.arange(n, dtype=torch.float64)
        A = (U * s) @ V.mT
        op = MatrixOperator(A)
        ref = time_call(lambda: torch.linalg.svd(A, full_matrices=False), repeats=5)
        Ur, Sr, Vhr = ref.result
        for method in ("nestedlora-seq", "nestedlora-joint"):
            model = tabular_model(op, L, torch.Generator().manual_seed(1))
            t0 = time.perf_counter()
            train_operator(op, model, method, steps=args.steps, batch=None, lr=1e-2, ema_decay=None)
            sec = time.perf_counter() - t0
            F, G = model.net.f(None).detach(), model.net.g(None).detach()
            vals, Fn, _ = learned_spectrum(F, G, (G * (A @ F)).sum(0))
            rows.append(
                row(
                    f"matrix 200x100 SVD, {method}, exact moments, {args.steps} Adam",
                    vals,
                    Sr[:L],
                    Fn,
                    Vhr[:L].mT,
                    sec,
                    ref.median,
                )
            )
        # RBF kernel on 500 Gaussian samples in 2-D
        X = torch.randn(500, 2, generator=g, dtype=torch.float64)
        kop = KernelOperator(X, 1.0)
        # the dense reference and both Nystrom sizes timed in the same interleaved rounds
        kt = time_interleaved(
            {
                "ref": lambda: kop.reference(L),
                **{
                    f"nystrom{lm}": lambda lm=lm: kop.nystrom(
                        L, lm, torch.Generator().manual_seed(2)
                    )
                    for lm in (100, 250)
                },
            },
            min_rounds=3,
        )
        ref = kt.stats["ref"]
        lam, phi = kt.results["ref"]
        for landmarks in (100, 250):
            t = kt.stats[f"nystrom{landmarks}"]
            lam_n, phi_n = kt.results[f"nystrom{landmarks}"]
            rows.append(
                row(
                    f"kernel N=500, Nystrom M={landmarks}",
                    lam_n,
                    lam,
                    phi_n,
                    phi,
                    t.median,
                    ref.median,
                )
            )
        for net_kind, method in (
            ("table", "nestedlora-seq"),
            ("mlp", "nestedlora-seq"),
            ("mlp", "nestedlora-joint"),
        ):
            if net_kind == "table":
                f = TabularFunctions(500, L, generator=torch.Generator().manual_seed(1))
                batch, steps, lr = None, args.steps, 2e-2
            else:
                f = ParallelMLP(
                    L, 2, 64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64
                )
                batch, steps, lr = 256, args.steps, 3e-3
            model = SpectralModel(FunctionPair(f), L)
            t0 = time.perf_counter()
            train_operator(
                kop,
                model,
                method,
                steps=steps,
                batch=batch,
                lr=lr,
                ema_decay=0.99 if batch else None,
                generator=torch.Generator().manual_seed(3),
            )
            sec = time.perf_counter() - t0
            net = model.ema if batch else model.net
            with torch.no_grad():
                F, TF, w = kop.features(net, Batch(None))
            vals = (w[:, None] * F * TF).sum(0) / (w[:, None] * F * F).sum(0)
            what = "exact moments" if batch is None else f"minibatch {batch} (U-statistic)"
            rows.append(
                row(
                    f"kernel N=500, {method} {net_kind}, {what}, {steps} Adam",
                    vals,
                    lam,
                    F,
                    phi,
                    sec,
                    ref.median,
                )
            )
    rec = {
        "rows": rows,
        "threads": threads,
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "torch": torch.__version__,
    }
    write_json(args.out, rec)
    for r in rows:
        print(
            json.dumps(
                {
                    k: r[k]
                    for k in (
                        "case",
                        "max_rel_error",
                        "max_mode_angle",
                        "span_angle",
                        "seconds",
                        "reference_seconds",
                    )
                }
            )
        )


if __name__ == "__main__":
    main()
