"""The choke-point network vs the truncated SVD: relative 2-norm and Frobenius errors.

Run (CPU, one thread):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/matvec_study.py --out docs/results/matvec-study.jsonl

Every record holds the network's and the SVD's errors on the same matrix, their differences,
the ratio of scaled losses (network / Eckart-Young optimum), the rank check, the products
used, the training time and the SVD time (both taken in the same run), thread counts and the load
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

import numpy as np
import scipy
import sklearn
import torch

import neuralfactor
from neuralfactor.bench.matvec_study import ablation, cases, measure
from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import write_json
from neuralfactor.report.matvec_page import (
    TARGET,
    summarize,
    summarize_ablation,
    write_matvec_page,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs/results"


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
    t0 = time.perf_counter()  # the whole run's wall time, recorded in the meta
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
