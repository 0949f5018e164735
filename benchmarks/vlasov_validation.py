"""Validation and timing of the Vlasov-Poisson solver -> docs/results/vlasov-validation.md.

Measure (about 10 minutes on one CPU thread), writing the records and then the page:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/vlasov_validation.py

Rewrite the page from the committed records only, byte for byte, without measuring:

    python benchmarks/vlasov_validation.py --from-records

The study (windows, fits, the dispersion roots and the NumPy/SciPy reference step timed in
the same run) is :func:`neuralfactor.vlasov.validation.measure_validation`; thread counts and
the load average are recorded with the run (the machine is shared). The records go to
docs/results/records/vlasov-validation.jsonl; the page is
:func:`neuralfactor.report.vlasov_validation.render_vlasov_validation` of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neuralfactor.io import atomic_write_text
from neuralfactor.report.vlasov_validation import write_vlasov_validation
from neuralfactor.vlasov.validation import measure_validation

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "docs/results/records/vlasov-validation.jsonl"
#: the values of the earlier, hand-assembled page (its run's records were not kept)
LEGACY = ROOT / "docs/results/records/vlasov-validation-legacy.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--from-records",
        action="store_true",
        help="only rewrite the page from the records (no measurement)",
    )
    ap.add_argument(
        "--records",
        type=Path,
        default=None,
        help=f"records file (default: {RECORDS.name} if it exists, else {LEGACY.name})",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/vlasov-validation.md")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = ap.parse_args(argv)
    if args.from_records:
        path = args.records or (RECORDS if RECORDS.exists() else LEGACY)
        if not path.exists():
            ap.error(f"--from-records needs a records file; {path} does not exist")
        write_vlasov_validation(path, args.out)
    else:
        path = args.records or RECORDS
        recs = measure_validation(args.quick, path.name)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in recs))
        write_vlasov_validation(path, args.out)
    print(f"wrote {args.out} from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
