"""Kill/resume fault-injection matrix: SIGKILL simulate/train/factorize mid-run, resume, compare.

Writes one JSON line per kill/resume to ``docs/results/records/resume-matrix.jsonl`` with the
keys ``kind, case, kill_at, identical, checksum_uninterrupted, checksum_resumed, seconds``
(see :mod:`neuralfactor.kill_resume`). The matrix:

- ``simulate``: grids 16x32, 64x128, 128x256 x schemes spectral, fd5, fd5 with
  ``--truncate-tol 1e-5`` x ``--save-every`` 1, 5 x ``--chunk-frames`` 4, 16 (two-stream),
  run with 2 torch/BLAS threads; the schemes whose state is more than dense frames (fd5
  truncated by ``warm-subspace``, ``lowrank``, ``dlr``; labels ``fd5-warm``, ``lowrank``,
  ``dlr``) are in the committed records at 16x32 only, appended by
  ``--kinds simulate --grids 16x32 --schemes fd5-warm,lowrank,dlr --kills 1 --append``;
- ``train``: ConvMF at ranks 4 and 12 (two model sizes), 6 epochs;
- ``factorize``: ``svds-arpack`` and ``rsvd`` at rank 4;

each with ``--kills`` kill points drawn (seeded) over the run: 40 cases (the first three
simulate schemes; 76 with all six), each one reference
run plus a killed and a resumed process per kill point. ``--quick`` runs one case per kind;
``--grids``/``--schemes``/``--save-every``/``--chunk-frames`` select part of the simulate
matrix. Use a quiet machine: kill points are fractions of the reference run's wall time.

    python benchmarks/resume_matrix.py                 # the full matrix
    python benchmarks/resume_matrix.py --quick --out /tmp/rm.jsonl
    python benchmarks/resume_matrix.py --from-records  # print the counts of the records
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from neuralfactor.io import atomic_write_text, read_jsonl
from neuralfactor.kill_resume import (
    SIMULATE_SCHEMES,
    draw_kill_fractions,
    factorize_cases,
    run_case,
    simulate_cases,
    summarize,
    train_cases,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results" / "records" / "resume-matrix.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RECORDS, help="JSON-lines records to write.")
    ap.add_argument("--kills", type=int, default=2, help="Kill points per case (default 2).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the kill points.")
    ap.add_argument("--kinds", default="simulate,train,factorize", help="Comma-separated.")
    ap.add_argument("--sim-threads", type=int, default=2, help="Threads of simulate runs.")
    ap.add_argument("--threads", type=int, default=1, help="Threads of train/factorize runs.")
    ap.add_argument("--grids", default="16x32,64x128,128x256", help="simulate grids, NXxNV.")
    ap.add_argument("--schemes", default=",".join(SIMULATE_SCHEMES), help="simulate schemes.")
    ap.add_argument("--save-every", default="1,5", help="simulate --save-every values.")
    ap.add_argument("--chunk-frames", default="4,16", help="simulate --chunk-frames values.")
    ap.add_argument("--quick", action="store_true", help="One case per kind (smoke test).")
    ap.add_argument("--workdir", type=Path, default=None, help="Scratch (default a temp dir).")
    ap.add_argument("--append", action="store_true", help="Keep the rows already in --out.")
    ap.add_argument("--from-records", action="store_true", help="Print the counts of --out.")
    a = ap.parse_args(argv)
    if a.from_records:
        print(summarize(read_jsonl(a.out)))
        return 0
    if a.kills < 1:
        ap.error(f"--kills must be >= 1. Got {a.kills}.")
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    rng = random.Random(a.seed)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="resume-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = []
    if "simulate" in kinds:
        try:
            grids = [tuple(int(n) for n in g.split("x")) for g in a.grids.split(",")]
            save_every = [int(k) for k in a.save_every.split(",")]
            chunks = [int(c) for c in a.chunk_frames.split(",")]
        except ValueError:
            ap.error("--grids takes NXxNV,...; --save-every and --chunk-frames integers.")
        sim = simulate_cases(
            grids=grids,
            schemes=a.schemes.split(","),
            save_every=save_every,
            chunk_frames=chunks,
            threads=a.sim_threads,
        )
        cases += [sim[len(sim) // 2]] if a.quick else sim
    if {"train", "factorize"} & set(kinds):
        from neuralfactor.cli import main as cli

        store = work / "data.zarr"
        if not store.exists():  # the fault-injection tests' data: 16x32 strong Landau
            rc = cli(["-q", "simulate", "--nx", "16", "--nv", "32", "--t-end", "20",
                      "--chunk-frames", "8", "--out", str(store)])  # fmt: skip
            if rc != 0:
                raise SystemExit(f"simulating the training data failed (exit {rc})")
        if "train" in kinds:
            tc = train_cases(store, threads=a.threads)
            cases += tc[:1] if a.quick else tc
        if "factorize" in kinds:
            fc = factorize_cases(store, threads=a.threads)
            cases += fc[:1] if a.quick else fc
    rows = read_jsonl(a.out) if a.append and a.out.exists() else []
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        fracs = draw_kill_fractions(a.kills, rng)
        got = run_case(case, work / f"case-{i:03d}", kill_fractions=fracs)
        rows += got
        same = sum(r["identical"] for r in got)
        if not got:
            print(f"  {case.case}: never interrupted (its run is too short); no row", flush=True)
        print(f"[{time.perf_counter() - t0:7.1f} s] {case.kind:9s} {case.case}: "
              f"{same}/{len(got)} identical", flush=True)  # fmt: skip
        # records so far, atomically: an interrupted matrix keeps its finished cases
        atomic_write_text(a.out, "".join(json.dumps(r) + "\n" for r in rows))
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(summarize(rows))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
