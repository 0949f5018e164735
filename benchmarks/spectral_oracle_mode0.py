"""Diagnostic for docs/results/neuralsvd.md: the exact ground state in place of mode 0.

    OMP_NUM_THREADS=1 python benchmarks/spectral_oracle_mode0.py RUN STEPS LR OUT.json oracle
    OMP_NUM_THREADS=1 python benchmarks/spectral_oracle_mode0.py RUN STEPS LR OUT.json learned SHIFT
    (--key NAME: OUT.json holds several trajectories, this one under NAME)

Loads a hydrogen run (``RUN`` = a run directory, e.g. runs/h_lattice/nestedlora-seq), replaces
mode 0 by the closed-form sqrt(lambda_0) phi_0 (``oracle``; anything else keeps the learned
mode 0) and keeps training modes 1-8 by sequential NestedLoRA with the lattice sampler (batch
1024, cosine lr), printing the Gram row of mode 0 and the orthogonality every STEPS/8 steps.
If the n = 2 modes' overlap with mode 0 only reflected the learned ground state's error, it
would fall at once with the exact one. With ``SHIFT`` (the last, shifted stage) the modes train on
``SHIFT - H`` instead, rescaled at the start as a warm start under a new shift is
(:class:`~neuralfactor.spectral.run.SpectralConfig`); the evaluation stays on ``-H``.
"""

import math
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from neuralfactor.io import read_json, write_json  # noqa: E402
from neuralfactor.spectral.evaluate import evaluate_functions  # noqa: E402
from neuralfactor.spectral.models import SpectralModel  # noqa: E402
from neuralfactor.spectral.run import build_problem, load_run, rescale_for_shift  # noqa: E402
from neuralfactor.spectral.trainer import train_operator  # noqa: E402

argv = sys.argv[1:]
key = None  # --key NAME: OUT is a record holding several trajectories, this one under NAME
if "--key" in argv:
    i = argv.index("--key")
    key = argv[i + 1]
    del argv[i : i + 2]
src, steps, lr, out = argv[0], int(argv[1]), float(argv[2]), argv[3]
oracle = argv[4] == "oracle"
shift = float(argv[5]) if len(argv) > 5 else 0.0
cfg, model, meta = load_run(src)
if shift != cfg.resolved_shift:
    rescale_for_shift(model, shift - cfg.resolved_shift, cfg)


class Oracle(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.modes = net.modes

    def forward(self, x):
        out = self.net(x)
        xx = x if x.ndim == 2 else x[0]
        # sqrt(lambda_0 + shift) phi_0, the NestedLoRA minimizer (lambda_0 = 1, ||phi_0|| = 1)
        phi0 = math.sqrt(1.0 + shift) * torch.exp(-xx.norm(dim=-1)) / math.sqrt(math.pi / 2)
        return torch.cat([phi0[:, None].to(out.dtype), out[:, 1:]], 1)


m = SpectralModel(Oracle(model.net), cfg.modes) if oracle else model
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
hist = []
t0 = time.time()


def save():
    """Write the trajectory (atomically): the list, or under ``key`` with the command."""
    if key is None:
        write_json(out, hist)
        return
    rec = read_json(out) if Path(out).is_file() else {}
    cmd = [*argv[:2], "LR", *argv[3:]]
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
