"""Low-rank Vlasov solvers side by side -> docs/results/low-rank-solvers.md.

Reduced configuration (128x256, t_end = 10; what the shared development machine allows):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/low_rank_solvers.py

Full configuration of the issue (128x256 and 512x1024 to t_end = 40; hours on one core):

    ... python benchmarks/low_rank_solvers.py --full [--learned MODEL_DIR+refine]

Learned truncations (any trained model directory, ``DIR[+refine]``, comma-separated; rows are
labelled by the model, its rank and training, read from the model's run directory), e.g. the
sketch encoder at rank 48 trained on a separate fd5 run of strong Landau to t = 5:

    ... neuralfactor simulate -o runs/learned/sl128-fd5-t5.zarr --ic landau-strong --nx 128 \\
            --nv 256 --t-end 5 --dt 0.0025 --save-every 20 --scheme fd5
    ... neuralfactor train --data runs/learned/sl128-fd5-t5.zarr --out runs/learned/sketch128 \\
            --model sketch --rank 48
    ... python benchmarks/low_rank_solvers.py --cases strong-landau --grid 128x256 --t-end 10 \\
            --tol 1e-5 --learned runs/learned/sketch128/model \\
            --solvers spectral,fd5+svd,fd5+rsvd,fd5+warm-subspace,fd5+runs/learned/sketch128/model

Two-stream growth rates, fitted on the validation page's windows for the case's alpha
(``neuralfactor.bench.low_rank_solvers.growth_windows``): alpha = 1e-3 on [16, 26] and
[18, 27], and the validation's linear setup alpha = 1e-6 on [20, 40]:

    ... python benchmarks/low_rank_solvers.py --cases two-stream --grid 64x128,128x256 \\
            --t-end 28 [--tol 1e-8 --solvers spectral,fd5+svd,lowrank,dlr]
    ... python benchmarks/low_rank_solvers.py --cases two-stream-a1e-6 --grid 64x128,128x256 \\
            --t-end 41

Regenerate the page from the committed records only:

    python benchmarks/low_rank_solvers.py --from-records

Every run executes in its own Python process (so its peak RSS is its own) and appends one
record to docs/results/records/low-rank-solvers.jsonl; a rerun skips the (case, grid, solver,
truncation, tol, t_end) rows already recorded, so an interrupted campaign resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs/results/records/low-rank-solvers.jsonl"
PAGE = ROOT / "docs/results/low-rank-solvers.md"


def run_in_subprocess(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        return {**spec, "status": "failed", "message": out.stderr.strip().splitlines()[-1][:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from neuralfactor.bench.low_rank_solvers import CASES, PAIRS, run_campaign, worker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-records", action="store_true", help="only regenerate the page")
    ap.add_argument("--full", action="store_true", help="128x256 and 512x1024 to t_end = 40")
    ap.add_argument("--t-end", type=float, default=None, help="override t_end")
    ap.add_argument("--grid", default=None, help="override grids, e.g. 32x64,64x128")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument(
        "--tol-per", default="time", choices=("time", "stage"), help="tolerance per unit time"
    )
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument(
        "--learned", default=None, help="trained model dirs (DIR[+refine], comma-separated)"
    )
    ap.add_argument("--solvers", default=None, help="only these, e.g. spectral,fd5+svd,lowrank")
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--out", type=Path, default=PAGE)
    ap.add_argument("--speed-window", type=float, default=None, help="short-window speed mode")
    ap.add_argument("--warmup", type=float, default=5.0, help="spectral warm-up (speed mode)")
    ap.add_argument("--mass-drift", action="store_true", help="short fd5 + T mass-drift runs")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        from neuralfactor.vlasov import make_truncation

        print(json.dumps(worker(json.loads(args.worker), make_truncation)))
        return
    from neuralfactor.core.validation import parse_list, parse_shape
    from neuralfactor.io import atomic_write_text, read_jsonl
    from neuralfactor.report.low_rank_solvers import render_page
    from neuralfactor.report.low_rank_speed import render_speed_section

    speed = ROOT / "docs/results/records/low-rank-speed.jsonl"
    if args.speed_window or args.mass_drift:
        from neuralfactor.bench.solver_speed import campaign

        campaign(
            speed,
            grids=list(parse_list(args.grid or "512x1024", "--grid", parse_shape)),
            window=args.speed_window,
            warmup=args.warmup,
            mass=args.mass_drift,
            scratch=ROOT / "runs" / "low-rank-speed",
        )
    elif not args.from_records:
        grids = [(128, 256), (512, 1024)] if args.full else [(128, 256)]
        if args.grid:
            grids = list(parse_list(args.grid, "--grid", parse_shape))
        learned = parse_list(args.learned, "--learned") if args.learned else []
        pairs = list(PAIRS) + [("fd5", m) for m in learned]
        if args.solvers:
            want = parse_list(args.solvers, "--solvers")
            pairs = [p for p in pairs if (p[0] if p[1] is None else f"{p[0]}+{p[1]}") in want]
        run_campaign(
            grids,
            list(parse_list(args.cases, "--cases")),
            pairs,
            t_end=args.t_end or (40.0 if args.full else 10.0),
            tol=args.tol,
            tol_per=args.tol_per,
            records=args.records,
            refdir=ROOT / "runs" / "low-rank-solvers-ref",  # scratch (runs/ is not committed)
            run_one=run_in_subprocess,
            log=lambda s: print(s, flush=True),
        )
    records = read_jsonl(args.records)
    extra = render_speed_section(read_jsonl(speed) if speed.exists() else [], records)
    atomic_write_text(args.out, render_page(records) + extra)
    print(f"wrote {args.out} from {len(records)} records")


if __name__ == "__main__":
    main()
