"""Count, per svds solver, valid inputs refused and why (the causes the fallback rule handles).

    OMP_NUM_THREADS=1 python benchmarks/svds_refusal_causes.py --trials 200 [--fallback-raise]

Valid inputs only: m, n in [1, 12], rank in [1, min(m, n)], kinds random / zero / constant /
rank-deficient (cycled). Run it against another checkout (``PYTHONPATH=<checkout>/src``) to
compare versions; it prints counts and writes nothing.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter

import torch

import neuralfactor as nf

KINDS = ("random", "zero", "constant", "rank-deficient")


def cause(message: str) -> str:
    """A short name for a refusal message."""
    for needle, name in (
        ("must be an int in", "rank = min(m, n) refused up front"),
        ("needs rank < min(m, n)", "rank = min(m, n): not a Krylov problem"),
        ("Starting vector is zero", "ARPACK: starting vector is zero"),
        ("non-orthonormal", "non-orthonormal vectors (breakdown)"),
        ("invariant subspace", "invariant subspace found (breakdown)"),
        ("not singular vectors", "residual check failed (breakdown)"),
        ("did not converge", "no convergence"),
    ):
        if needle in message:
            return name
    return message[:60]


def count_refusals(trials: int, seed: int = 0, **params) -> Counter:
    g = torch.Generator().manual_seed(seed)
    c: Counter = Counter()
    for solver in ("arpack", "lobpcg", "propack"):
        for t in range(trials):
            m, n = (int(torch.randint(1, 13, (1,), generator=g)) for _ in range(2))
            k = min(m, n)
            rank = int(torch.randint(1, k + 1, (1,), generator=g))
            kind = KINDS[t % len(KINDS)]
            X = torch.randn(m, n, generator=g, dtype=torch.float64)
            if kind == "zero":
                X.zero_()
            elif kind == "constant":
                X.fill_(1.0)
            elif kind == "rank-deficient" and k > 1:
                X = X[:, : k - 1] @ torch.randn(k - 1, n, generator=g, dtype=torch.float64)
            c[solver, "tried"] += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nf.make_factorizer(f"svds-{solver}", rank=rank, **params).factorize(X)
            except Exception as exc:  # noqa: BLE001 - counting every refusal is the point
                c[solver, "refused"] += 1
                c[solver, f"refused: {kind}: {cause(str(exc))}"] += 1
    return c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=200, help="valid inputs per solver")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fallback-raise",
        action="store_true",
        help="also count inputs that need the dense fallback (svds versions that have it)",
    )
    a = p.parse_args(argv)
    print(nf.__file__)
    for (solver, what), v in sorted(count_refusals(a.trials, a.seed).items()):
        print(f"svds-{solver:8s} {what}: {v}")
    if a.fallback_raise:  # how many inputs the dense fallback (not the Krylov solver) answers
        print("with fallback='raise':")
        counts = count_refusals(a.trials, a.seed, fallback="raise")
        for (solver, what), v in sorted(counts.items()):
            print(f"svds-{solver:8s} {what}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
