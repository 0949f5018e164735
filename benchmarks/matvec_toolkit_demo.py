"""The classical low-rank toolkit on reference problems, with the SVD baseline.

Run (CPU, one thread):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/matvec_toolkit_demo.py --out docs/results/matvec-toolkit.json

Prints the toolkit tables; when the records go to docs/results/, the page
docs/results/matvec-and-toolkit.md is then rewritten from all its records (the page alone:
``python benchmarks/matvec_study.py --from-records``). The sections live in
:mod:`neuralfactor.bench.toolkit_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuralfactor.bench.toolkit_demo import run_toolkit_demo
from neuralfactor.io import write_json
from neuralfactor.report.matvec_page import write_matvec_page

RESULTS = Path(__file__).resolve().parent.parent / "docs/results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results/matvec-toolkit.json")
    args = ap.parse_args()
    out = run_toolkit_demo()
    write_json(args.out, out)
    if Path(args.out).resolve().parent == RESULTS.resolve():
        try:
            write_matvec_page(RESULTS, RESULTS / "matvec-and-toolkit.md")
        except FileNotFoundError as exc:
            print(f"page not rewritten: {exc}")
    print(
        f"\nload average start {out['loadavg_start']}, end {out['loadavg_end']}; "
        f"threads {out['threads']}"
    )


if __name__ == "__main__":
    main()
