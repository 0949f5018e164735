"""Evaluation of learned eigen/singular functions against exact spectra.

* Differential operators (:func:`evaluate_functions`): on a fixed polar quadrature
  (Gauss–Laguerre x trapezoid, exact Laplacian by autograd, float64), per-mode Rayleigh
  quotients ``<f, T f> / <f, f>``, relative errors against the analytic levels, the normalized
  Gram matrix ``<f_i, f_j> / (|f_i| |f_j|)`` (orthogonality = its largest off-diagonal
  magnitude), and per degenerate group the subspace distance (sine of the largest principal
  angle, in ``L^2``) between the learned modes of that group and the true eigenspace.
* Finite operators (:func:`learned_spectrum`): learned values and functions from a trained
  table or network, compared with ``torch.linalg.eigh`` / ``svd`` by the caller.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from neuralfactor.core.metrics import principal_angles
from neuralfactor.spectral.analytic import (
    hydrogen_2d_eigenfunctions,
    oscillator_2d_eigenfunctions,
    polar_quadrature,
    true_spectrum,
)
from neuralfactor.spectral.operators import SchrodingerOperator
from neuralfactor.spectral.spin import spin_whiten

__all__ = [
    "BLOWUP_RATIO",
    "PARTIAL_TOL",
    "STALL_RATIO",
    "UNUSABLE_TOL",
    "convergence_verdict",
    "evaluate_functions",
    "evaluate_model",
    "learned_spectrum",
    "plot_run",
    "sampler_gram_error",
]

#: a NestedLoRA mode with ``||f_l||^2`` below this fraction of its Rayleigh quotient is reported
#: as stalled near the zero function (at the minimizer the ratio is 1)
STALL_RATIO = 0.1
#: a NestedLoRA mode with ``||f_l||^2`` above this multiple of its eigenvalue (of the trained
#: operator, where the minimizer puts it) has blown up: the training diverged
BLOWUP_RATIO = 100.0
#: a largest relative eigenvalue error or orthogonality defect above this: not eigenfunctions
#: at all (unusable, the command exits 1)
UNUSABLE_TOL = 0.5
#: above this (and at most UNUSABLE_TOL): recognisable but not converged (a warning)
PARTIAL_TOL = 1e-2

_REMEDY_DIVERGED = (
    "Lower --lr (3-10x) and bound the functions with --envelope (0.1 for hydrogen, 0.5 for the "
    "oscillator); settings that work are in docs/results/neuralsvd.md."
)
_REMEDY_SLOW = (
    "Train longer (--iters; hydrogen needs 12,000+ steps with --envelope 0.1 --lr 3e-3), or "
    "continue with --init-from RUN (--reset-modes for stalled modes); docs/results/neuralsvd.md."
)


def convergence_verdict(ev: dict[str, Any], *, norm_targets: list[float] | None) -> dict:
    """Did the training converge? Judged on an evaluation of :func:`evaluate_functions`.

    Parameters
    ----------
    ev : the evaluation (``eigenvalues``, ``rel_error``, ``orthogonality``, ``sq_norms``,
        ``stalled_modes``).
    norm_targets : NestedLoRA only: the true eigenvalues of the *trained* operator, where the
        minimizer puts each ``||f_l||^2``; ``None`` for whitened (SpIN-style) functions, whose
        norms mean nothing.

    Returns
    -------
    dict with ``status``: ``'diverged'`` (non-finite values, or a squared norm above
    ``BLOWUP_RATIO`` times its target), ``'not-converged'`` (largest relative eigenvalue error or
    orthogonality defect above ``UNUSABLE_TOL``: the functions are not eigenfunctions),
    ``'partial'`` (above ``PARTIAL_TOL``, or stalled modes) or ``'converged'``; ``usable``
    (False for the first two), ``reasons`` (list of str) and ``remedy`` (the documented fix).
    """
    import math

    lam, rel = ev["eigenvalues"], ev["rel_error"]
    ortho, sq = ev["orthogonality"], ev.get("sq_norms") or []
    values = [*lam, *rel, ortho, *sq]
    reasons: list[str] = []
    status = "converged"
    if not all(math.isfinite(v) for v in values):
        status = "diverged"
        reasons.append("non-finite eigenvalues or norms")
    elif norm_targets is not None and sq:  # runs evaluated before sq_norms existed lack them
        pairs = enumerate(zip(sq, norm_targets, strict=True))
        blown = [l for l, (n, t) in pairs if n > BLOWUP_RATIO * abs(t)]
        if blown:
            status = "diverged"
            reasons.append(
                f"squared norms of modes {blown} blew up ({max(sq[l] for l in blown):.3g}, "
                f"more than {BLOWUP_RATIO:g}x their eigenvalues, where the minimizer puts them)"
            )
    worst = max(rel)
    if status == "converged" and (worst > UNUSABLE_TOL or ortho > UNUSABLE_TOL):
        status = "not-converged"
    if worst > PARTIAL_TOL:
        reasons.append(f"largest relative eigenvalue error {worst:.2e}")
    if ortho > PARTIAL_TOL:
        reasons.append(f"orthogonality {ortho:.2e}")
    stalled = ev.get("stalled_modes") or []
    if stalled:
        reasons.append(f"modes {stalled} stalled near the zero function")
    if status == "converged" and reasons:
        status = "partial"
    remedy = {"diverged": _REMEDY_DIVERGED, "converged": ""}.get(status, _REMEDY_SLOW)
    return {
        "status": status,
        "usable": status in ("converged", "partial"),
        "reasons": reasons,
        "remedy": remedy,
    }


def learned_spectrum(F: Tensor, G: Tensor | None, cross: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Values ``c_l / (|f_l| |g_l|)`` and unit-norm functions from NestedLoRA tables.

    ``F`` (n, L), ``G`` (m, L) or ``None`` (EVD), ``cross`` (L,) = ``<g_l, T f_l>``.
    Returns ``(values, F / |F|, G / |G|)``.
    """
    nf = torch.linalg.vector_norm(F, dim=0)
    Gm = F if G is None else G
    ng = torch.linalg.vector_norm(Gm, dim=0)
    return cross / (nf * ng), F / nf, Gm / ng


def _true_functions(problem: str, x: Tensor, groups: int) -> Tensor:
    if problem == "hydrogen-2d":
        return hydrogen_2d_eigenfunctions(x, groups)
    return oscillator_2d_eigenfunctions(x, groups)


def evaluate_functions(
    problem: str,
    net: torch.nn.Module,
    modes: int,
    *,
    shift: float = 0.0,
    whiten: Tensor | None = None,
    n_r: int = 96,
    n_theta: int = 32,
    scale: float = 2.0,
) -> dict[str, Any]:
    """Metrics of learned eigenfunctions of ``T = shift - H`` on a polar quadrature.

    Parameters
    ----------
    problem : {'hydrogen-2d', 'oscillator-2d'}
    net : module mapping (B, 2) or (L, B, 2) -> (B, L) (evaluated in float64)
    whiten : Tensor (L, L), optional
        SpIN covariance: the eigenfunctions are ``L^{-1} f`` with ``whiten = L L^T``.

    Returns
    -------
    dict with per-mode ``eigenvalues``, ``true``, ``rel_error``, ``sq_norms`` (``||f_l||^2``,
    which NestedLoRA drives to the eigenvalue of the *trained* operator, ``lambda_l`` plus
    its shift), ``stalled_modes`` (NestedLoRA modes with
    ``||f_l||^2 < STALL_RATIO x`` their positive Rayleigh quotient: near the zero function,
    candidates for ``reset_modes``); ``orthogonality`` (max
    off-diagonal normalized Gram entry), ``gram`` (L x L), ``rayleigh_ritz`` eigenvalues of the
    learned span, and ``groups``: per complete degenerate group its modes, max relative
    eigenvalue error and subspace distance. Modes beyond the last complete group are
    reported per mode only.
    """
    potential = "coulomb" if problem == "hydrogen-2d" else "harmonic"
    op = SchrodingerOperator(potential, shift=shift, laplacian="autograd")
    net64 = copy.deepcopy(net).double()
    x, w = polar_quadrature(n_r, n_theta, scale)
    F, TF = op.apply(net64, x)
    F, TF = F.detach(), TF.detach()
    if whiten is not None:
        F, TF = spin_whiten(F, whiten.double()), spin_whiten(TF, whiten.double())
    Wf = w[:, None] * F
    G = F.mT @ Wf
    Pi = 0.5 * (F.mT @ (w[:, None] * TF) + TF.mT @ Wf)
    norms = G.diagonal().clamp_min(1e-300).sqrt()
    Gn = G / (norms[:, None] * norms[None, :])
    off = Gn - torch.diag_embed(Gn.diagonal())
    lam = Pi.diagonal() / G.diagonal()
    true, gid, ngroups = true_spectrum(problem, modes, shift=shift)
    rel = (lam - true[:modes]).abs() / true[:modes].abs()
    # NestedLoRA's minimizer has ||f_l||^2 = lambda_l; a mode far below its own Rayleigh
    # quotient sits near the zero function (a saddle), not at an eigenfunction. Meaningless
    # for whitened (SpIN) functions.
    stalled = (
        []
        if whiten is not None
        else [l for l in range(modes) if lam[l] > 0 and G[l, l] < STALL_RATIO * lam[l]]
    )
    # Rayleigh-Ritz on the learned span: generalized eigenproblem Pi v = mu G v
    C = torch.linalg.cholesky(G + 1e-14 * G.diagonal().mean() * torch.eye(modes, dtype=G.dtype))
    Ci = torch.linalg.inv(C)
    rr = torch.linalg.eigvalsh(Ci @ Pi @ Ci.mT).flip(0)
    Psi = _true_functions(problem, x, ngroups)
    sw = w.sqrt()[:, None]
    groups = []
    for g in range(ngroups):
        idx = (gid == g).nonzero().flatten()
        sel = idx[idx < modes]
        entry: dict[str, Any] = {
            "group": g,
            "true": float(true[idx[0]]),
            "degeneracy": len(idx),
            "modes": sel.tolist(),
            "complete": len(sel) == len(idx),
        }
        if len(sel):
            entry["max_rel_error"] = float(rel[sel].max())
            ang = principal_angles(sw * F[:, sel], sw * Psi[:, idx])
            entry["subspace_distance"] = float(torch.sin(ang[-1]))
        groups.append(entry)
    return {
        "problem": problem,
        "modes": modes,
        "eigenvalues": lam.tolist(),
        "true": true[:modes].tolist(),
        "rel_error": rel.tolist(),
        "max_rel_error": float(rel.max()),
        "sq_norms": G.diagonal().tolist(),
        "stalled_modes": stalled,
        "orthogonality": float(off.abs().max()) if modes > 1 else 0.0,
        "gram": Gn.tolist(),
        "rayleigh_ritz": rr.tolist(),
        "rayleigh_ritz_rel_error": ((rr - true[:modes]).abs() / true[:modes].abs()).tolist(),
        "groups": groups,
        "quadrature": {"n_r": n_r, "n_theta": n_theta, "scale": scale},
    }


def evaluate_model(config: Any, model: Any, *, use_ema: bool = True) -> dict[str, Any]:
    """:func:`evaluate_functions` for a ``SpectralConfig`` and its trained ``SpectralModel``.

    Hydrogen is evaluated on ``-H`` whatever shift it was trained with (``train_shift`` in the
    result); the oscillator on ``shift - H`` as trained.
    """
    net = model.ema if use_ema else model.net
    whiten = model.sigma_avg if config.method == "spin" else None
    out = evaluate_functions(
        config.problem,
        net,
        config.modes,
        shift=config.eval_shift,
        whiten=whiten,
        scale=config.eval_scale,
    )
    out["method"] = config.method
    out["weights"] = "ema" if use_ema else "last"
    out["train_shift"] = config.resolved_shift
    # NestedLoRA puts ||f_l||^2 at the eigenvalue of the trained operator resolved_shift - H
    delta = config.resolved_shift - config.eval_shift
    targets = None if whiten is not None else [t + delta for t in out["true"]]
    out["verdict"] = convergence_verdict(out, norm_targets=targets)
    return out


def plot_run(
    config: Any,
    model: Any,
    evaluation: dict,
    path: str | Path,
    *,
    extent: float | None = None,
    points: int = 121,
) -> Path:
    """Figure: learned vs true eigenfunctions on a grid, and the normalized Gram matrix.

    Learned modes of a degenerate group are rotated onto the true eigenbasis of that group by
    least squares (the group's basis is arbitrary), then sign-matched; the figure is written
    atomically.
    """
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralfactor.io import atomic_write_bytes

    L = config.modes
    if extent is None:
        extent = 12.0 if config.problem == "hydrogen-2d" else 4.0
    t = torch.linspace(-extent, extent, points, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], -1)
    net = copy.deepcopy(model.ema).double()
    with torch.no_grad():
        F = net(pts)
        if config.method == "spin":
            F = spin_whiten(F, model.sigma_avg.double())
    _, gid, ngroups = true_spectrum(config.problem, L, shift=config.resolved_shift)
    Psi = _true_functions(config.problem, pts, ngroups)[:, :L]
    Psi = Psi / torch.linalg.vector_norm(Psi, dim=0)
    Fn = F / torch.linalg.vector_norm(F, dim=0)
    aligned = torch.empty_like(Psi)
    for g in range(ngroups):
        idx = (gid[:L] == g).nonzero().flatten()
        if len(idx) == 0:
            continue
        coef = torch.linalg.lstsq(Fn[:, idx], Psi[:, idx]).solution
        aligned[:, idx] = Fn[:, idx] @ coef
    aligned = aligned / torch.linalg.vector_norm(aligned, dim=0).clamp_min(1e-300)
    fig, axes = plt.subplots(3, L + 1, figsize=(1.9 * (L + 1), 5.8))
    ext = [-extent, extent, -extent, extent]
    for l in range(L):
        for row, (data, label) in enumerate([(Psi[:, l], "true"), (aligned[:, l], "learned")]):
            img = data.reshape(points, points).numpy()
            v = abs(img).max() or 1.0
            axes[row, l].imshow(img, extent=ext, cmap="RdBu_r", vmin=-v, vmax=v, origin="lower")
            axes[row, l].set_xticks([])
            axes[row, l].set_yticks([])
            if l == 0:
                axes[row, l].set_ylabel(label)
        axes[0, l].set_title(f"mode {l}\nerr {evaluation['rel_error'][l]:.1e}", fontsize=8)
        diff = (aligned[:, l] - Psi[:, l]).reshape(points, points).numpy()
        axes[2, l].imshow(diff, extent=ext, cmap="RdBu_r", origin="lower")
        axes[2, l].set_xticks([])
        axes[2, l].set_yticks([])
        if l == 0:
            axes[2, l].set_ylabel("difference")
    G = torch.tensor(evaluation["gram"]).abs()
    G = G + torch.eye(L) * 1e-16
    im = axes[0, L].imshow(torch.log10(G.clamp_min(1e-16)).numpy(), cmap="viridis", vmin=-8, vmax=0)
    axes[0, L].set_title(f"log10 |Gram|\northo {evaluation['orthogonality']:.1e}", fontsize=8)
    fig.colorbar(im, ax=axes[0, L], fraction=0.046)
    axes[1, L].semilogy(evaluation["rel_error"], "o-")
    axes[1, L].set_title("rel. eigenvalue error", fontsize=8)
    axes[2, L].axis("off")
    fig.suptitle(f"{config.method} on {config.problem}: learned vs true eigenfunctions")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def sampler_gram_error(
    op: SchrodingerOperator, *, batch: int, draws: int, generator: torch.Generator, groups: int = 3
) -> dict[str, Any]:
    """How well one half of a training batch estimates the Gram matrix of the true states.

    Each draw's two halves (weights doubled, the estimates the unbiased two-half NestedLoRA
    estimator uses) give the normalized Gram matrix ``<phi_i, phi_j> / (|phi_i| |phi_j|)`` of the
    closed-form hydrogen eigenfunctions of the first ``groups`` levels; the error is against the
    evaluation quadrature's matrix. Returns the r.m.s. and the largest error over all entries,
    halves and draws.

    Parameters
    ----------
    op : SchrodingerOperator
        A Coulomb operator in 2-D, with the sampler to measure.
    batch : int
        Points per draw (both halves), as in training.
    draws : int
        Number of batches; the r.m.s. is over ``2 draws`` half-batch estimates.
    """
    from neuralfactor.core.validation import check_positive_int

    check_positive_int(draws, name="draws", caller="sampler_gram_error")
    if op.potential != "coulomb" or op.dim != 2:
        raise ValueError(
            f"sampler_gram_error needs the 2-D hydrogen operator (closed-form states). Got "
            f"potential={op.potential!r}, dim={op.dim}."
        )
    x, w = polar_quadrature(96, 32, 2.0)
    Q = hydrogen_2d_eigenfunctions(x, groups)
    ref = Q.mT @ (w[:, None] * Q)
    d = ref.diagonal().sqrt()
    scale = d[:, None] * d[None]
    errs = []
    for _ in range(draws):
        b = op.sample(batch, generator, dtype=torch.float64)
        half = b.x.shape[0] // 2
        for part in (slice(0, half), slice(half, None)):
            P = hydrogen_2d_eigenfunctions(b.x[part], groups)
            errs.append((P.mT @ (2 * b.w[part, None] * P) - ref) / scale)
    E = torch.stack(errs)
    return {
        "rms": float(E.square().mean().sqrt()),
        "max": float(E.abs().max()),
        "estimates": len(E),
    }
