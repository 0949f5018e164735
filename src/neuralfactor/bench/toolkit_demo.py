"""The classical low-rank toolkit on reference problems, with the SVD baseline.

:func:`run_toolkit_demo` runs every section (NMF, nuclear norm, rank selection,
identifiability, low-rank power, nn.Linear compression) with one pinned thread, logs its
Markdown tables and returns the records that ``docs/results/matvec-toolkit.json`` holds
(the page is :mod:`neuralfactor.report.matvec_page`). Timings go through the one harness
(:func:`neuralfactor.core.timing.time_interleaved`: each compared pair in the same rounds).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import scipy
import sklearn
import torch

import neuralfactor
from neuralfactor.classical.toolkit import (
    aic_rank,
    factored_nuclear_gd,
    gap_rank,
    gavish_donoho_lambda,
    gavish_donoho_rank,
    identifiability,
    lowrank_power,
    nmf,
    nuclear_norm,
    sparse_nmf,
    svt,
)
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.metrics import ratio_to_optimum, scaled_loss
from neuralfactor.core.timing import pinned_threads, time_call, time_interleaved
from neuralfactor.data.gallery import get_matrix
from neuralfactor.matvec import compress_linear

__all__ = ["run_toolkit_demo", "spiked", "svd_lr"]


def spiked(m: int, n: int, spikes: list[float], sigma: float, seed: int) -> torch.Tensor:
    """Orthonormal spikes ``U diag(spikes) V^T`` plus Gaussian noise of level ``sigma``."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(m, len(spikes), generator=g, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(n, len(spikes), generator=g, dtype=torch.float64)).Q
    S = torch.tensor(spikes, dtype=torch.float64)
    return (U * S) @ V.T + sigma * torch.randn(m, n, generator=g, dtype=torch.float64)


def svd_lr(X: torch.Tensor, k: int) -> LowRank:
    """The truncated SVD of ``X`` at rank ``k``."""
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    return LowRank(U[:, :k], Vh[:k], S[:k])


def run_toolkit_demo(log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every section of the demo, one thread; returns the records (one key per section)."""
    out: dict[str, Any] = {
        "loadavg_start": os.getloadavg(),
        "version": neuralfactor.__version__,
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
    }
    with pinned_threads(1) as threads:
        out["threads"] = threads
        for section in (_nmf, _nuclear, _rank_selection, _identifiability, _power, _linear):
            section(out, log)
    out["loadavg_end"] = os.getloadavg()
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return out


def _nmf(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """NMF and sparse NMF against the SVD on the camera image (timed interleaved)."""
    X = torch.as_tensor(get_matrix("camera", size=256))
    k = 10
    # all three timed in the same interleaved rounds, each warmed up once
    runs = time_interleaved(
        {
            "svd": lambda: svd_lr(X, k),
            "nmf (sklearn, cd, nndsvda)": lambda: nmf(X, k),
            "sparse-nmf (alpha=1e-3, L1 on H)": lambda: sparse_nmf(X, k, alpha=1e-3),
        },
        min_rounds=3,
    )
    rows = [(name, runs.results[name], st.median) for name, st in runs.stats.items()]
    out["nmf"] = []
    log("\n### NMF on camera 256x256, rank 10\n")
    log("| method | rel. Frobenius | ratio to SVD loss | zero fraction of H | seconds |")
    log("|---|---|---|---|---|")
    for name, lr, sec in rows:
        rf = float(scaled_loss(X, lr).sqrt())
        ratio = float(ratio_to_optimum(X, lr, k))
        zf = float((lr.V.abs() < 1e-10).double().mean())
        out["nmf"].append(
            {"method": name, "rel_fro": rf, "ratio": ratio, "zero_H": zf, "seconds": sec}
        )
        log(f"| {name} | {rf:.4f} | {ratio:.4f} | {zf:.2f} | {sec:.3g} |")


def _nuclear(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """Weight decay on factors equals the nuclear norm: factored GD against SVT."""
    log("\n### Weight decay on factors = nuclear norm (40x30, spikes 12/9/6 + noise 0.1)\n")
    log(
        "| lam | r (factor width) | GD iterations | rel. diff to svt(M, lam) "
        "| objective gap (rel.) | rank of solution | GD s | SVT s |"
    )
    log("|---|---|---|---|---|---|---|---|")
    M = spiked(40, 30, [12.0, 9.0, 6.0], 0.1, seed=0)
    out["nuclear"] = []
    for lam in (1.0, 3.0, 7.0):
        pair = time_interleaved(
            {
                "gd": lambda lam=lam: factored_nuclear_gd(
                    M, lam, rank=8, tol=1e-10, max_iter=50000
                ),
                "svt": lambda lam=lam: svt(M, lam),
            },
            min_rounds=3,
        )
        tg, ts = pair.stats["gd"], pair.stats["svt"]
        res, ref = pair.results["gd"], pair.results["svt"].reconstruct()
        Xg = res.lowrank.reconstruct()
        diff = float(torch.linalg.norm(Xg - ref) / torch.linalg.norm(ref))
        obj = lambda Z, lam=lam: float(0.5 * (Z - M).square().sum() + lam * nuclear_norm(Z))  # noqa: E731
        gap = (obj(Xg) - obj(ref)) / obj(ref)
        rank = int((torch.linalg.svdvals(ref) > 1e-9).sum())
        out["nuclear"].append(
            {
                "lam": lam,
                "iterations": res.iterations,
                "rel_diff": diff,
                "objective_gap": gap,
                "rank": rank,
                "gd_seconds": tg.median,
                "svt_seconds": ts.median,
            }
        )
        log(
            f"| {lam} | 8 | {res.iterations} | {diff:.1e} | {gap:.1e} | {rank} "
            f"| {tg.median:.3g} | {ts.median:.2g} |"
        )


def _rank_selection(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """Rank selectors (Gavish-Donoho, AIC, gap) on spiked matrices of known rank."""
    log("\n### Rank selection (true rank in the first column)\n")
    log(
        "| matrix | true rank | GD known sigma | GD unknown sigma | AIC known sigma "
        "| AIC est. sigma | gap (ratio) | sqrt(min(m,n)) scaling (optht-style bug) |"
    )
    log("|---|---|---|---|---|---|---|---|")
    out["rank_selection"] = []
    problems = [
        (
            "200x1000, spikes 200..80, sigma 1",
            200,
            1000,
            [200.0, 150.0, 120.0, 100.0, 80.0],
            1.0,
        ),
        ("200x1000, spikes 60..40, sigma 1", 200, 1000, [60.0, 55.0, 50.0, 45.0, 40.0], 1.0),
        ("300x300, spikes 60..40, sigma 1", 300, 300, [60.0, 55.0, 50.0, 45.0, 40.0], 1.0),
    ]
    for name, m, n, spikes, sigma in problems:
        Y = spiked(m, n, spikes, sigma, seed=1)
        s = torch.linalg.svdvals(Y)
        wrong = int(
            (s > gavish_donoho_lambda(min(m, n) / max(m, n)) * math.sqrt(min(m, n)) * sigma).sum()
        )
        row = {
            "matrix": name,
            "true": len(spikes),
            "gd_known": gavish_donoho_rank(Y, sigma),
            "gd_unknown": gavish_donoho_rank(Y),
            "aic_known": aic_rank(Y, sigma=sigma)[0],
            "aic_est": aic_rank(Y)[0],
            "gap": gap_rank(Y)[0],
            "gd_min_scaling": wrong,
        }
        out["rank_selection"].append(row)
        log("| " + " | ".join(str(v) for v in row.values()) + " |")


def _identifiability(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """Top-k subspaces of two noisy copies against the Wedin bound."""
    log("\n### Identifiability: top-k subspaces of two noisy copies (60x40, spikes 10/9/5)\n")
    log("| k | gap s_k - s_k+1 | largest principal angle (rad) | Wedin bound on sin |")
    log("|---|---|---|---|")
    A0 = spiked(60, 40, [10.0, 9.0, 5.0], 0.0, seed=2)
    g = torch.Generator().manual_seed(3)
    E1 = 0.05 * torch.randn(60, 40, generator=g, dtype=torch.float64)
    E2 = 0.05 * torch.randn(60, 40, generator=g, dtype=torch.float64)
    out["identifiability"] = []
    for kk in (1, 2, 3):
        U1 = torch.linalg.svd(A0 + E1).U[:, :kk]
        U2 = torch.linalg.svd(A0 + E2).U[:, :kk]
        res = identifiability(U1, U2, X=A0, rank=kk, perturbation=E1 - E2)
        out["identifiability"].append(
            {
                "k": kk,
                "gap": float(res.gap),
                "max_angle": float(res.max_angle),
                "wedin": float(res.wedin_bound),
            }
        )
        log(
            f"| {kk} | {float(res.gap):.3g} | {float(res.max_angle):.3g} "
            f"| {float(res.wedin_bound):.3g} |"
        )


def _power(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """Low-rank power U (V U)^(p-1) V against dense matrix_power."""
    log("\n### Low-rank power A^p = U (V U)^(p-1) V vs dense matrix_power (500x500, rank 20)\n")
    log("| p | rel. error vs dense | low-rank s | dense s |")
    log("|---|---|---|---|")
    g = torch.Generator().manual_seed(4)
    U = torch.randn(500, 20, generator=g, dtype=torch.float64) / math.sqrt(500)
    V = torch.randn(20, 500, generator=g, dtype=torch.float64) / math.sqrt(20)
    lr = LowRank(U, V)
    D = lr.reconstruct()
    out["power"] = []
    for p in (2, 5, 10):
        tl = time_call(lambda p=p: lowrank_power(lr, p).reconstruct(), repeats=3)
        td = time_call(lambda p=p: torch.linalg.matrix_power(D, p), repeats=3)
        err = float(torch.linalg.norm(tl.result - td.result) / torch.linalg.norm(td.result))
        out["power"].append({"p": p, "rel_err": err, "lowrank_s": tl.median, "dense_s": td.median})
        log(f"| {p} | {err:.1e} | {tl.median:.2g} | {td.median:.2g} |")


def _linear(out: dict[str, Any], log: Callable[[str], None]) -> None:
    """Compressing an nn.Linear whose weight has the spectrum 0.97^i."""
    log("\n### Compressing nn.Linear(512, 256): weight with spectrum 0.97^i\n")
    log(
        "| rank | params before | params after | saved | weight rel. Frob | weight rel. 2 "
        "| output rel. error (Gaussian inputs) |"
    )
    log("|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(5)
    layer = torch.nn.Linear(512, 256, dtype=torch.float64)
    Uw = torch.linalg.qr(torch.randn(256, 256, generator=g, dtype=torch.float64)).Q
    Vw = torch.linalg.qr(torch.randn(512, 256, generator=g, dtype=torch.float64)).Q
    with torch.no_grad():
        layer.weight.copy_((Uw * 0.97 ** torch.arange(256.0, dtype=torch.float64)) @ Vw.T)
        layer.bias.zero_()
    out["linear"] = []
    for r in (16, 32, 64, 128):
        _, rep = compress_linear(layer, r)
        out["linear"].append(rep.__dict__)
        log(
            f"| {r} | {rep.params_before} | {rep.params_after} | {rep.params_saved} "
            f"| {rep.weight_rel_fro:.4f} | {rep.weight_rel_spectral:.4f} "
            f"| {rep.output_rel_error:.4f} |"
        )
