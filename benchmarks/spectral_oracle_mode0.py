"""Diagnostic for docs/results/neuralsvd.md: the exact ground state in place of mode 0.

    OMP_NUM_THREADS=1 python benchmarks/spectral_oracle_mode0.py RUN STEPS LR OUT.json oracle
    OMP_NUM_THREADS=1 python benchmarks/spectral_oracle_mode0.py RUN STEPS LR OUT.json learned SHIFT
    (--key NAME: OUT.json holds several trajectories, this one under NAME)

Loads a hydrogen run (``RUN`` = a run directory, e.g. runs/h_lattice/nestedlora-seq), replaces
mode 0 by the closed-form sqrt(lambda_0) phi_0 (``oracle``; ``learned`` keeps the learned
mode 0) and keeps training modes 1-8 by sequential NestedLoRA with the lattice sampler (batch
1024, cosine lr), printing the Gram row of mode 0 and the orthogonality every STEPS/8 steps.
If the n = 2 modes' overlap with mode 0 only reflected the learned ground state's error, it
would fall at once with the exact one. With ``SHIFT`` (the last, shifted stage) the modes train on
``SHIFT - H`` instead, rescaled at the start as a warm start under a new shift is
(:class:`~neuralfactor.spectral.run.SpectralConfig`); the evaluation stays on ``-H``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from neuralfactor.io import read_json, write_json
from neuralfactor.spectral.evaluate import evaluate_functions
from neuralfactor.spectral.models import SpectralModel
from neuralfactor.spectral.run import build_problem, load_run, rescale_for_shift
from neuralfactor.spectral.trainer import train_operator


def _number(kind: type) -> Callable[[str], str]:
    """An argparse type that checks ``kind(text)`` and keeps the text (the record's command
    repeats the arguments as typed)."""

    def check(text: str) -> str:
        kind(text)
        return text

    check.__name__ = kind.__name__
    return check


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsing only: ``configs/`` checks its commands against it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a hydrogen run directory, e.g. runs/h_lattice/nestedlora-seq")
    ap.add_argument("steps", type=_number(int))
    ap.add_argument("lr", type=_number(float))
    ap.add_argument("out", help="the trajectory record (JSON)")
    ap.add_argument(
        "mode",
        choices=["oracle", "learned"],
        help="oracle: the exact ground state as mode 0; learned: the learned one",
    )
    ap.add_argument("shift", type=_number(float), nargs="?", default=None)
    ap.add_argument(
        "--key",
        default=None,
        help="OUT is a record holding several trajectories, this one under KEY",
    )
    return ap


class Oracle(torch.nn.Module):
    def __init__(self, net, shift: float):
        super().__init__()
        self.net = net
        self.modes = net.modes
        self.shift = shift

    def forward(self, x):
        out = self.net(x)
        xx = x if x.ndim == 2 else x[0]
        # sqrt(lambda_0 + shift) phi_0, the NestedLoRA minimizer (lambda_0 = 1, ||phi_0|| = 1)
        phi0 = math.sqrt(1.0 + self.shift) * torch.exp(-xx.norm(dim=-1)) / math.sqrt(math.pi / 2)
        return torch.cat([phi0[:, None].to(out.dtype), out[:, 1:]], 1)


def _evaluator(m, out: str, key: str | None, cmd: list[str]):
    """The evaluation callback: appends one row to the trajectory, saves it and prints it."""
    hist = []
    t0 = time.time()

    def save():
        """Write the trajectory (atomically): the list, or under ``key`` with the command."""
        if key is None:
            write_json(out, hist)
            return
        rec = read_json(out) if Path(out).is_file() else {}
        rec.update(
            {key: hist, "command": " ".join(["python benchmarks/spectral_oracle_mode0.py", *cmd])}
        )
        write_json(out, {**rec, "threads": torch.get_num_threads()})

    def eval_fn():
        e = evaluate_functions("hydrogen-2d", m.ema, 9)
        G = e["gram"]
        r = dict(
            t=time.time() - t0,
            maxrel=e["max_rel_error"],
            ortho=e["orthogonality"],
            ortho_1_8=max(abs(G[i][j]) for i in range(1, 9) for j in range(1, 9) if i != j),
            G0=[G[0][j] for j in range(1, 9)],
            sub=[g["subspace_distance"] for g in e["groups"]],
            rel=e["rel_error"],
        )
        hist.append(r)
        save()
        g0 = [f"{v:+.4f}" for v in r["G0"][3:]]
        sub = [f"{v:.1e}" for v in r["sub"]]
        print(
            f"{r['t']:5.0f}s maxrel {r['maxrel']:.2e} ortho {r['ortho']:.2e} "
            f"(modes 1-8: {r['ortho_1_8']:.2e}) G0[4:] {g0} sub {sub}",
            flush=True,
        )
        return -r["ortho"]

    return eval_fn


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    steps, lr = int(a.steps), float(a.lr)
    shift = 0.0 if a.shift is None else float(a.shift)
    cfg, model, meta = load_run(a.run)
    if shift != cfg.resolved_shift:
        rescale_for_shift(model, shift - cfg.resolved_shift, cfg)
    m = SpectralModel(Oracle(model.net, shift), cfg.modes) if a.mode == "oracle" else model
    op, _ = build_problem(
        replace(
            cfg,
            sampler="lattice",
            batch=1024,
            lattice_theta=16,
            init_from=None,
            reset_modes=(),
            shift=shift,
        )
    )
    cmd = [a.run, a.steps, "LR", a.out, a.mode, *([] if a.shift is None else [a.shift])]
    eval_fn = _evaluator(m, a.out, a.key, cmd)
    eval_fn()
    train_operator(
        op,
        m,
        cfg.method,
        steps=steps,
        batch=1024,
        lr=lr,
        generator=torch.Generator().manual_seed(8),
        ema_decay=cfg.ema_decay,
        eval_every=max(steps // 8, 1),
        eval_fn=eval_fn,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
