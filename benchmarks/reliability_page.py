"""Write docs/results/reliability.md from the reliability records (and, by default, rerun them).

    python benchmarks/reliability_page.py --from-records     # the page from committed records
    OMP_NUM_THREADS=1 python benchmarks/reliability_page.py  # rerun the suites, then the page
    OMP_NUM_THREADS=1 python benchmarks/reliability_page.py --parts fast,thorough

Without ``--from-records`` each selected part runs its pytest command with
``NEURALFACTOR_RELIABILITY_COUNTS`` pointing at its record under ``--records`` (fast: the
default-suite part of tests/reliability; slow: ``-m slow``; thorough: the property tests with
``HYPOTHESIS_PROFILE=thorough``); a part whose tests fail leaves its record as the tests wrote
it and the script exits 1 without touching the page. The soak record and the resume matrix
come from their own scripts. The page itself is
:func:`neuralfactor.report.reliability.render_reliability_page` of the records, so
``--from-records`` reproduces it byte for byte.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from neuralfactor.report.reliability import COUNT_FILES, write_reliability_page

ROOT = Path(__file__).resolve().parent.parent
PART_ARGS: dict[str, tuple[list[str], dict[str, str]]] = {
    "fast": (["tests/reliability", "-m", "not slow and not gpu"], {}),
    "slow": (["tests/reliability", "-m", "slow"], {}),
    "thorough": (["tests/reliability/test_properties.py"], {"HYPOTHESIS_PROFILE": "thorough"}),
}


def run_part(part: str, records: Path) -> int:
    """Run one part's pytest command, writing its counts record; returns pytest's exit code."""
    args, env_extra = PART_ARGS[part]
    env = {**os.environ, **env_extra}
    env["NEURALFACTOR_RELIABILITY_COUNTS"] = str(records / COUNT_FILES[part])
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    print(f"[{part}] {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from-records", action="store_true", help="only rewrite the page")
    p.add_argument(
        "--parts",
        default="fast,slow,thorough",
        help="comma-separated parts to rerun: fast, slow, thorough (default all)",
    )
    p.add_argument("--records", type=Path, default=ROOT / "docs/results/records")
    p.add_argument("--out", type=Path, default=ROOT / "docs/results/reliability.md")
    a = p.parse_args(argv)
    if not a.from_records:
        parts = [s.strip() for s in a.parts.split(",") if s.strip()]
        unknown = [s for s in parts if s not in PART_ARGS]
        if unknown or not parts:
            p.error(f"--parts must list some of {sorted(PART_ARGS)}; got {a.parts!r}")
        failed = [part for part in parts if run_part(part, a.records) != 0]
        if failed:
            print(f"error: tests failed in {failed}; the page was not rewritten.", file=sys.stderr)
            return 1
    print(write_reliability_page(a.records, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
