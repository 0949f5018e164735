"""Spectral trainings report their own failure: the verdict on planted functions, on synthetic
evaluations, and on a deliberately diverging run (learning rate 100x the default)."""

from __future__ import annotations

import math

import pytest
import torch

from neuralfactor.spectral.analytic import (
    hydrogen_2d_eigenfunctions,
    polar_quadrature,
    true_spectrum,
)
from neuralfactor.spectral.evaluate import (
    BLOWUP_RATIO,
    PARTIAL_TOL,
    UNUSABLE_TOL,
    convergence_verdict,
    evaluate_functions,
)


class _Scaled(torch.nn.Module):
    """``f_l = c_l psi_l`` for the closed-form hydrogen states."""

    def __init__(self, coef) -> None:
        super().__init__()
        self.coef, self.modes = coef, len(coef)

    def forward(self, x):
        if x.ndim == 3:
            return torch.stack([self.forward(x[l])[:, l] for l in range(len(self.coef))], -1)
        return hydrogen_2d_eigenfunctions(x, 3)[:, : len(self.coef)] * self.coef


def _minimizer_coef():
    x, w = polar_quadrature(96, 32, 2.0)
    psi = hydrogen_2d_eigenfunctions(x, 3)
    nrm = (w[:, None] * psi * psi).sum(0).sqrt()
    true, _, _ = true_spectrum("hydrogen-2d", 9)
    return true.sqrt() / nrm, true  # NestedLoRA's minimizer: ||f_l||^2 = lambda_l


def test_planted_minimizer_converges_and_blown_up_norms_diverge():
    coef, true = _minimizer_coef()
    ev = evaluate_functions("hydrogen-2d", _Scaled(coef), 9)
    v = convergence_verdict(ev, norm_targets=true.tolist())
    assert v == {"status": "converged", "usable": True, "reasons": [], "remedy": ""}
    # the same eigenfunctions with norms 1e6 x too large (the README's old hydrogen command
    # ended at 5e6-3e7): right Rayleigh quotients, but NestedLoRA's norms blew up
    ev = evaluate_functions("hydrogen-2d", _Scaled(1e3 * coef), 9)
    assert max(ev["rel_error"]) < 1e-9
    v = convergence_verdict(ev, norm_targets=true.tolist())
    assert v["status"] == "diverged" and not v["usable"]
    assert "blew up" in v["reasons"][0] and "--lr" in v["remedy"]
    # whitened SpIN functions have no meaningful norm: not judged on it
    assert convergence_verdict(ev, norm_targets=None)["status"] == "converged"
    # a norm just inside the bound is not a blow-up
    ok = dict(ev, sq_norms=[0.99 * BLOWUP_RATIO * t for t in true.tolist()])
    assert convergence_verdict(ok, norm_targets=true.tolist())["status"] == "converged"


def _synthetic(rel, ortho, **kw):
    lam = [1.0 + r for r in rel]
    return {"eigenvalues": lam, "rel_error": rel, "orthogonality": ortho, **kw}


@pytest.mark.parametrize(
    "rel,ortho,status",
    [
        ([1e-4, 1e-3], 1e-3, "converged"),
        ([1e-4, 2 * PARTIAL_TOL], 1e-3, "partial"),
        ([1e-4, 1e-3], 2 * PARTIAL_TOL, "partial"),
        ([1e-4, 2 * UNUSABLE_TOL], 1e-3, "not-converged"),
        ([1e-4, 1e-3], 2 * UNUSABLE_TOL, "not-converged"),
        ([math.nan, 1e-3], 1e-3, "diverged"),
    ],
)
def test_verdict_thresholds(rel, ortho, status):
    v = convergence_verdict(_synthetic(rel, ortho), norm_targets=None)
    assert v["status"] == status
    assert v["usable"] == (status in ("converged", "partial"))
    assert bool(v["remedy"]) == (status != "converged")


def test_stalled_modes_are_partial():
    v = convergence_verdict(_synthetic([1e-4], 0.0, stalled_modes=[3]), norm_targets=None)
    assert v["status"] == "partial" and "modes [3] stalled" in v["reasons"][0]


def test_diverging_run_exits_1_with_one_line(tmp_path, capsys):
    """Hydrogen without an envelope (the original preset, as the README's old command trained
    it) and a learning rate of 0.1, 100x the original 1e-3: the squared norms blow up (5.5e7
    here, against eigenvalues <= 2; at 1e-3 they blow up too, to 7.9e8); the command says so
    and exits 1."""
    from neuralfactor.cli import main
    from neuralfactor.io import read_json

    out = tmp_path / "run"
    args = ["--quiet", "spectral", "--preset", "original", "--problem", "hydrogen-2d"]
    args += ["--modes", "2", "--iters", "100"]
    args += ["--batch", "64", "--hidden", "8", "--depth", "2", "--lr", "0.1", "--eval-every"]
    args += ["50", "--no-figure", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "DIVERGED: the result is unusable (squared norms of modes" in err
    assert "Lower --lr" in err
    assert read_json(out / "evaluation.json")["verdict"]["status"] == "diverged"
    assert main(["--quiet", "spectral", "evaluate", str(out), "--no-figure"]) == 1
