"""Why the learned LU of the RBF kernel goes singular: facts about the operator and its exact
factors, no training (seconds).

    python benchmarks/lu_rbf_diagnosis.py [--n 256] [--leaf 32] [--out runs/lu_rbf_diagnosis.json]

Prints and writes (JSON):

* the nugget's share of ``||K||_F`` (a relative operator error above it need not "see" the
  nugget), the eigenvalue range of the kernel without it and how many of its eigenvalues
  exceed the nugget;
* the pivots of the exact (Doolittle) LU, ``K = L_e U_e`` with unit-diagonal ``L_e``, and the
  condition numbers of ``L_e`` and ``U_e``;
* the numerical rank of the off-diagonal blocks of ``K``, ``L_e`` and ``U_e`` that the GFMM
  far field must hold (largest block at each tree level), against the leaf size ``P`` that bounds
  the far-field rank of :class:`neuralfactor.lu.gfmm.GFMMBlock`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from neuralfactor.io import write_json
from neuralfactor.lu.operators import make_operator


def numerical_rank(B: np.ndarray, rel: float) -> int:
    s = np.linalg.svd(B, compute_uv=False)
    return int((s > rel * s[0]).sum()) if s[0] > 0 else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--leaf", type=int, default=32)
    ap.add_argument("--out", default="runs/lu_rbf_diagnosis.json")
    args = ap.parse_args()
    n, P = args.n, args.leaf
    K = make_operator("rbf", n)
    nug = 1e-4 / (1 + 1e-4) * np.eye(n)  # make_operator divides by the largest entry, 1 + 1e-4
    K0 = K - nug  # the plain Gaussian kernel, same scaling
    C = np.linalg.cholesky(K)
    Le, Ue = C / np.diag(C), np.diag(np.diag(C)) @ C.T
    piv = np.diag(Ue)
    ev = np.linalg.eigvalsh(K)
    ev0 = np.linalg.eigvalsh(K0)
    out: dict = {
        "n": n,
        "leaf": P,
        "fro_K": float(np.linalg.norm(K)),
        "nugget_share_of_fro": float(np.linalg.norm(nug) / np.linalg.norm(K)),
        "cond_K": float(ev.max() / ev.min()),
        "eig_K_without_nugget": [float(ev0.min()), float(ev0.max())],
        "eigs_K_without_nugget_above_1e-4": int((ev0 > 1e-4).sum()),
        "pivots_min": float(piv.min()),
        "pivots_max": float(piv.max()),
        "pivots_below_1e-3": int((piv < 1e-3).sum()),
        "cond_Le": float(np.linalg.cond(Le)),
        "cond_Ue": float(np.linalg.cond(Ue)),
        "max_abs_Le": float(np.abs(Le).max()),
        "far_field_ranks": [],
    }
    half = n // 2
    # the first off-diagonal block at each level: rows [half, 2 half), cols [0, half)
    while half >= P:
        rows, cols = slice(half, 2 * half), slice(0, half)
        entry = {"level_block": half}
        for name, M in (("K", K), ("Le", Le), ("Ue^T", Ue.T)):
            B = M[rows, cols]
            entry[name] = {f"rank@{r:g}": numerical_rank(B, r) for r in (1e-6, 1e-10)}
        out["far_field_ranks"].append(entry)
        half //= 2
    write_json(args.out, out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
