"""The matvec study: the choke-point network against the truncated SVD on gallery matrices.

:func:`measure` fits one matrix and records both errors, their differences, the ratio to the
Eckart-Young optimum, the rank check, the products used, the training time and the SVD time
measured in the same run (through the one harness, :func:`neuralfactor.core.timing.time_call`);
:func:`cases` lists the study's matrices and ranks, :data:`ABLATION` / :func:`ablation` the
ingredient ablation. ``benchmarks/matvec_study.py`` parses arguments and calls these; the page
is :mod:`neuralfactor.report.matvec_page`.
"""

from __future__ import annotations

import os
from typing import Any

import scipy.sparse as sp
import torch

import neuralfactor
from neuralfactor.core.metrics import (
    effective_rank,
    ratio_to_optimum,
    relative_spectral_error,
    scaled_loss,
)
from neuralfactor.core.operators import SparseOperator
from neuralfactor.core.timing import time_call
from neuralfactor.data.gallery import get_matrix
from neuralfactor.matvec import fit_matvec
from neuralfactor.report.matvec_page import TARGET

__all__ = ["ABLATION", "ablation", "cases", "measure", "svd_truncation"]


def svd_truncation(A: torch.Tensor, k: int) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    return (U[:, :k] * S[:k]) @ Vh[:k]


def measure(name: str, A_any: Any, k: int, *, seed: int, threads: dict, **fit_kw: Any) -> dict:
    A = torch.as_tensor(A_any.toarray() if sp.issparse(A_any) else A_any, dtype=torch.float64)
    operand = SparseOperator(A_any) if sp.issparse(A_any) else A
    fit = fit_matvec(operand, k, seed=seed, on_collapse="ignore", **fit_kw)
    W = fit.lowrank.reconstruct()
    svd_t = time_call(lambda: svd_truncation(A, k), warmup=1, repeats=5)
    Ws = svd_t.result
    rec = {
        "matrix": name,
        "m": A.shape[0],
        "n": A.shape[1],
        "rank": k,
        "seed": seed,
        "net_rel_2": float(relative_spectral_error(A, W)),
        "net_rel_fro": float(scaled_loss(A, W).sqrt()),
        "svd_rel_2": float(relative_spectral_error(A, Ws)),
        "svd_rel_fro": float(scaled_loss(A, Ws).sqrt()),
        "ratio_to_optimum": float(ratio_to_optimum(A, W, k)),
        "effective_rank": int(effective_rank(fit.lowrank, rtol=1e-8)),
        "rank_ok": bool(fit.rank_ok),
        "optimal": fit.optimal,
        "residual_ratio": None if fit.residual_ratio is None else float(fit.residual_ratio),
        "probes": fit.probes,
        "optimizer": fit.optimizer,
        "n_matvecs": fit.n_matvecs,
        "steps": fit.loop.steps_done,
        "stopped": fit.loop.stopped,
        "train_seconds": fit.seconds,
        "svd_seconds": svd_t.median,
        "operator": type(operand).__name__,
        "threads": threads,
        "loadavg": os.getloadavg(),
        "version": neuralfactor.__version__,
        "torch": torch.__version__,
    }
    rec["d_rel_2"] = rec["net_rel_2"] - rec["svd_rel_2"]
    rec["d_rel_fro"] = rec["net_rel_fro"] - rec["svd_rel_fro"]
    rec["within_target"] = bool(abs(rec["d_rel_2"]) <= TARGET and abs(rec["d_rel_fro"]) <= TARGET)
    return rec


def cases(quick: bool) -> list[tuple[str, Any, list[int], int, dict]]:
    seeds = range(3 if quick else 10)
    out: list[tuple[str, Any, list[int], int, dict]] = []
    for s in seeds:
        out.append(
            ("gaussian 10x10", get_matrix("gaussian", n=10, seed=s), list(range(1, 10)), s, {})
        )
    for s in seeds:
        out.append(
            ("symmetric 10x10", get_matrix("symmetric", n=10, seed=s), list(range(1, 10)), s, {})
        )
    out.append(("identity I_50", get_matrix("identity", n=50), [20], 0, {}))
    out.append(("diag(1..50)", get_matrix("diag", n=50), [20], 0, {}))
    for ch in ("red", "green", "blue"):
        out.append(
            (
                f"astronaut 10x10 {ch}",
                get_matrix("astronaut", size=10, channel=ch),
                list(range(1, 10)),
                0,
                {},
            )
        )
    out.append(("camera 256x256", get_matrix("camera", size=256), [10], 0, {}))
    if not quick:
        out.append(("camera 400x400", get_matrix("camera", size=400), [10], 0, {}))
    # operators seen only through SciPy sparse products
    out.append(("laplacian-1d n=100 (sparse)", get_matrix("laplacian-1d", n=100), [10], 0, {}))
    out.append(
        (
            "convection-diffusion-1d n=100 (sparse)",
            get_matrix("convection-diffusion-1d", n=100),
            [10],
            0,
            {},
        )
    )
    out.append(("rbf-kernel n=100, l=0.1", get_matrix("rbf-kernel", n=100), [10], 0, {}))
    # the original study's regime: Adam on fresh Gaussian probes (for contrast)
    for s in range(3):
        out.append(
            (
                "gaussian 10x10 [Adam, Gaussian probes]",
                get_matrix("gaussian", n=10, seed=s),
                list(range(1, 10)),
                s,
                {
                    "probes": "gaussian",
                    "optimizer": "adam",
                    "lr": 1e-2,
                    "steps": 2000,
                    "n_probes": 10,
                    "patience": 10,
                },
            )
        )
    return out


ABLATION = {
    "L-BFGS, identity probes, orthogonal init, float64 (default)": {},
    "L-BFGS, identity probes, small init (1e-3)": {"init": "small"},
    "L-BFGS, identity probes, float32": {"dtype": torch.float32},
    "Adam lr 1e-2, identity probes, 3000 steps": {
        "optimizer": "adam",
        "lr": 1e-2,
        "steps": 3000,
        "patience": 10,
    },
    "Adam lr 1e-2, fresh Gaussian probes (s = n), 3000 steps": {
        "optimizer": "adam",
        "lr": 1e-2,
        "steps": 3000,
        "patience": 10,
        "probes": "gaussian",
    },
}


def ablation(threads: dict) -> list[dict]:
    """Which ingredient matters: optimizer, probes, init, precision (one matrix each)."""
    mats = [
        ("gaussian 10x10 seed 0", get_matrix("gaussian", n=10, seed=0), 5),
        ("diag(1..50)", get_matrix("diag", n=50), 20),
        ("camera 64x64", get_matrix("camera", size=64), 10),
    ]
    out = []
    for label, kw in ABLATION.items():
        for name, A, k in mats:
            rec = measure(name, A, k, seed=0, threads=threads, **kw)
            rec["config"] = label
            out.append(rec)
            print(
                f"{label:58s} {name:22s} d2={rec['d_rel_2']:+.1e} dF={rec['d_rel_fro']:+.1e} "
                f"rank={rec['effective_rank']} t={rec['train_seconds']:.2f}s",
                flush=True,
            )
    return out
