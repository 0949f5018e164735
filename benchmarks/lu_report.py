"""Write docs/results/learned-lu.md from the committed records docs/results/records/lu_*.json.

    python benchmarks/lu_report.py --from-records

The records come from ``benchmarks/lu_table.py``, ``lu_extra.py``, ``lu_rbf_diagnosis.py`` and
``lu_rbf_homotopy.py`` (the page lists the commands; ``bash configs/lu-table.sh`` reruns the
Levenberg-Marquardt and learned-Cholesky ones). The page is a pure function of the records
(:func:`neuralfactor.report.learned_lu.render_learned_lu`); this script trains nothing.
"""

from __future__ import annotations

import argparse

from neuralfactor.report.learned_lu import write_learned_lu


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--from-records",
        action="store_true",
        required=True,
        help="render the page from the records (the only mode: the runs are lu_table.py's)",
    )
    ap.add_argument("--records", default="docs/results/records", help="records directory")
    ap.add_argument("--out", default="docs/results/learned-lu.md", help="page to write")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    print(write_learned_lu(args.records, args.out))


if __name__ == "__main__":
    main()
