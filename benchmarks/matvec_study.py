"""The choke-point network vs the truncated SVD: relative 2-norm and Frobenius errors.

Run (CPU, one thread):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/matvec_study.py --out docs/results/matvec-study.jsonl

Every record holds the network's and the SVD's errors on the same matrix, their differences,
the ratio of scaled losses (network / Eckart-Young optimum), the rank check, the products
used, the training time and the SVD time measured in the same run, thread counts and the load
average. After a run the page docs/results/matvec-and-toolkit.md is rewritten from the
records (with those of ``--ablation`` and ``benchmarks/matvec_toolkit_demo.py``); rewrite it
alone, byte for byte and without measuring, with

    python benchmarks/matvec_study.py --from-records
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
import torch

import neuralfactor
from neuralfactor.core.metrics import (
    effective_rank,
    ratio_to_optimum,
    relative_spectral_error,
    scaled_loss,
)
from neuralfactor.core.operators import SparseOperator
from neuralfactor.core.timing import pinned_threads, time_call
from neuralfactor.data.gallery import get_matrix
from neuralfactor.io import write_json
from neuralfactor.matvec import fit_matvec
from neuralfactor.report.matvec_page import (
    TARGET,
    summarize,
    summarize_ablation,
    write_matvec_page,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs/results"


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


def write_page(out: str, page: Path) -> None:
    """Rewrite the page from the records in docs/results/ once all exist (when ``out`` is there)."""
    if Path(out).resolve().parent != RESULTS.resolve():
        print(f"records written to {out}, outside {RESULTS}: page not rewritten")
        return
    try:
        write_matvec_page(RESULTS, page)
    except FileNotFoundError as exc:
        print(f"page not rewritten: {exc}")
    else:
        print(f"wrote {page}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--from-records",
        action="store_true",
        help=f"only rewrite --page from the records in {RESULTS.relative_to(ROOT)} (no measuring)",
    )
    ap.add_argument("--page", type=Path, default=RESULTS / "matvec-and-toolkit.md")
    ap.add_argument("--out", default="docs/results/matvec-study.jsonl")
    ap.add_argument("--quick", action="store_true", help="3 seeds, no 400x400 image")
    ap.add_argument(
        "--ablation",
        action="store_true",
        help="only the ablation (optimizer/probes/init/precision); writes --out",
    )
    args = ap.parse_args()
    if args.from_records:
        write_matvec_page(RESULTS, args.page)
        print(f"wrote {args.page}")
        return 0
    if args.ablation:
        import json

        from neuralfactor.io import atomic_write_text

        with pinned_threads(1) as threads:
            recs = ablation(threads)
        atomic_write_text(args.out, "".join(json.dumps(r, default=str) + "\n" for r in recs))
        print()
        print(summarize_ablation(recs))
        print(f"load average at end {os.getloadavg()}")
        write_page(args.out, args.page)
        return 0
    records: list[dict] = []
    t0 = time.perf_counter()
    with pinned_threads(1) as threads:
        for name, A, ranks, seed, kw in cases(args.quick):
            for k in ranks:
                rec = measure(name, A, k, seed=seed, threads=threads, **kw)
                records.append(rec)
                print(
                    f"{name:40s} k={k:2d} seed={seed} d2={rec['d_rel_2']:+.1e} "
                    f"dF={rec['d_rel_fro']:+.1e} rank={rec['effective_rank']} "
                    f"t={rec['train_seconds']:.2f}s load={rec['loadavg'][0]:.1f}",
                    flush=True,
                )
    import json

    from neuralfactor.io import atomic_write_text

    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
    meta = {
        "command": "python benchmarks/matvec_study.py" + (" --quick" if args.quick else ""),
        "seconds": time.perf_counter() - t0,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "neuralfactor": neuralfactor.__version__,
        "loadavg_end": os.getloadavg(),
    }
    write_json(os.path.splitext(args.out)[0] + ".meta.json", meta)
    n_ok = sum(r["within_target"] for r in records if r["optimizer"] == "lbfgs")
    n_all = sum(r["optimizer"] == "lbfgs" for r in records)
    print()
    print(summarize(records))
    print(f"\nL-BFGS/identity fits within {TARGET:g} of the SVD in both norms: {n_ok}/{n_all}")
    print(f"total {meta['seconds']:.0f} s, load average at end {meta['loadavg_end']}")
    write_page(args.out, args.page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
