"""Write docs/results/neuralsvd.md from the committed spectral records.

    python benchmarks/spectral_page.py --from-records

The records come from ``benchmarks/spectral_finite.py``, ``spectral_oscillator.py``,
``spectral_hydrogen.py`` (the hydrogen stages: ``bash configs/neuralsvd-hydrogen.sh``) and
``spectral_oracle_mode0.py``; this script only renders them
(:func:`neuralfactor.report.neuralsvd.render_neuralsvd_page`), so a rerun is byte-identical.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuralfactor.report.neuralsvd import write_neuralsvd_page


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--from-records",
        action="store_true",
        required=True,
        help="render the page from the records (the only mode: the runs have their own scripts)",
    )
    p.add_argument("--records", type=Path, default=Path("docs/results/records"))
    p.add_argument("--out", type=Path, default=Path("docs/results/neuralsvd.md"))
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    print(write_neuralsvd_page(a.records, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
