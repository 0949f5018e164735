"""2-D hydrogen: NestedLoRA-seq vs the SpIN-style baseline on the same budget (CPU, 1 thread).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/spectral_hydrogen.py --iters 12000 --out runs/spectral_hydrogen

Each method is one ``neuralfactor.spectral.run.recorded_run`` (``run_spectral``, the code of
``neuralfactor spectral --problem hydrogen-2d ...``, with the machine record: load average,
threads, versions); ``--record-as NAME`` also writes it where docs/results/neuralsvd.md reads
it (``python benchmarks/spectral_page.py --from-records``). ``--reset-modes`` applies to the
NestedLoRA methods only (SpIN-style's failed modes are not near zero). The staged hydrogen
run of the page is ``bash configs/neuralsvd-hydrogen.sh``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from neuralfactor.core.validation import parse_ints
from neuralfactor.io import write_json
from neuralfactor.spectral.run import SpectralConfig, recorded_run


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=12000)
    ap.add_argument("--methods", default="nestedlora-seq,spin")
    ap.add_argument("--out", default="runs/spectral_hydrogen")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--envelope", type=float, default=0.1)
    ap.add_argument(
        "--radius-feature", action="store_true", help="append |x| to the MLP inputs (the cusp)"
    )
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument(
        "--init-from",
        default=None,
        help="warm start: a directory holding <method>/ runs of the same architecture",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reset-modes",
        default="",
        help="with --init-from: comma-separated modes re-initialized from --seed",
    )
    ap.add_argument(
        "--sampler",
        default="radial",
        help="radial (Monte Carlo, sigma 8) | lattice (randomly shifted polar lattice)",
    )
    ap.add_argument("--lattice-theta", type=int, default=16)
    ap.add_argument(
        "--shift", type=float, default=None, help="train on T = shift - H (evaluation on -H)"
    )
    ap.add_argument(
        "--record-as",
        default=None,
        help="also write each method's record to docs/results/records/<NAME>-<method>.json",
    )
    ap.add_argument("--records", type=Path, default=Path("docs/results/records"))
    return ap


def method_configs(args: argparse.Namespace) -> list[SpectralConfig]:
    """One validated :class:`~neuralfactor.spectral.run.SpectralConfig` per ``--methods`` entry
    of a parsed command line (``ValueError`` if refused); builds them only, trains nothing."""
    reset = parse_ints(args.reset_modes, "--reset-modes")
    return [
        SpectralConfig(
            problem="hydrogen-2d",
            modes=9,
            method=method,
            iters=args.iters,
            batch=args.batch,
            lr=args.lr,
            hidden=32,
            depth=3,
            laplacian="fd",
            sampler=args.sampler,
            sigma=8.0,
            lattice_theta=args.lattice_theta,
            shift=args.shift,
            dtype="float64",
            envelope=args.envelope,
            radius_feature=args.radius_feature,
            seed=args.seed,
            eval_every=args.eval_every,
            init_from=None if args.init_from is None else str(Path(args.init_from) / method),
            reset_modes=reset if method != "spin" else (),
        )
        for method in args.methods.split(",")
    ]


def main() -> None:
    args = build_parser().parse_args()
    configs = method_configs(args)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    records = []
    for cfg in configs:
        method = cfg.method
        rec = recorded_run(cfg, Path(args.out) / method, threads=1)
        records.append(rec)
        if args.record_as:
            write_json(args.records / f"{args.record_as}-{method}.json", rec)
        ev = rec["evaluation"]
        summary = {"method": method, "train_s": ev["train_seconds"], "rel_error": ev["rel_error"]}
        print(json.dumps({**summary, "ortho": ev["orthogonality"]}), flush=True)
    write_json(Path(args.out) / "records.json", records)


if __name__ == "__main__":
    main()
