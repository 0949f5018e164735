"""``neuralfactor spectral``: NeuralSVD (NestedLoRA) / SpIN-style eigenfunctions of operators.

    neuralfactor spectral --problem hydrogen-2d --modes 9 --iters N \
        --method nestedlora-seq|nestedlora-joint|spin --out runs/h2d
    neuralfactor spectral evaluate RUN

Parses the options into a :class:`~neuralfactor.spectral.run.SpectralConfig`, calls
:func:`~neuralfactor.spectral.run.run_spectral` (or ``evaluate_run``) and prints the evaluation.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

_Opt = typer.Option
Problem = Annotated[str, _Opt(help="hydrogen-2d | oscillator-2d")]
Modes = Annotated[int, _Opt(help="Number of eigenfunctions.")]
Iters = Annotated[
    int | None, _Opt(help="Optimizer steps (default 12000; 2000 with --preset original).")
]
Method = Annotated[str, _Opt(help="nestedlora-seq | nestedlora-joint | spin")]
Out = Annotated[Path | None, _Opt(help="Run directory (required to train).")]
Batch = Annotated[int, _Opt(help="Samples per step (even).")]
Lr = Annotated[
    float | None,
    _Opt(help="Peak learning rate, cosine schedule (default 3e-3; 1e-3 with --preset original)."),
]
Optimizer = Annotated[str, _Opt(help="adam | rmsprop")]
Hidden = Annotated[int, _Opt(help="Hidden width of each mode's MLP.")]
Depth = Annotated[int, _Opt(help="Hidden layers of each mode's MLP.")]
Laplacian = Annotated[str, _Opt(help="fd | autograd")]
Sampler = Annotated[
    str,
    _Opt(
        help="radial | gaussian (Monte Carlo) | lattice (randomly shifted polar lattice, 2-D; "
        "--batch a multiple of 2 * --lattice-theta)."
    ),
]
Sigma = Annotated[float, _Opt(help="Scale of the radial and gaussian samplers.")]
LatticeTheta = Annotated[int, _Opt(help="Angles per rule of the lattice sampler.")]
LatticeScale = Annotated[
    float, _Opt(help="Radial map r = a t / (1 - t)^2 of the lattice sampler: this a.")
]
Shift = Annotated[
    float | None,
    _Opt(
        help="Train on T = shift - H (default: 0 for hydrogen, above the wanted oscillator "
        "levels). For hydrogen a shift of about 1 makes sequential NestedLoRA's n = 2 modes far "
        "less sensitive to the ground state's error; evaluation stays on -H."
    ),
]
Envelope = Annotated[
    float | None,
    _Opt(
        help="Multiply each MLP by exp(-a sqrt(1+|x|^2)) with this rate a (default 0.1; "
        "--preset original: none; 0: a constant 1)."
    ),
]
Preset = Annotated[
    str,
    _Opt(
        help="best: the documented hydrogen schedule (12000 steps, lr 3e-3, envelope 0.1, "
        "docs/results/neuralsvd.md); original: the earlier defaults (2000 steps, lr 1e-3, no "
        "envelope; hydrogen diverges). Options given explicitly override the preset."
    ),
]
RadiusFeature = Annotated[
    bool,
    _Opt("--radius-feature", help="Append |x| to each MLP's inputs (fits hydrogen's cusp)."),
]
Dtype = Annotated[str, _Opt(help="float32 | float64")]
EmaDecay = Annotated[float, _Opt(help="EMA decay of the evaluated weights.")]
Seed = Annotated[int, _Opt(help="Seed of initialization and sampling.")]
EvalEvery = Annotated[int, _Opt(help="Validation/checkpoint interval (steps).")]
Threads = Annotated[int, _Opt(help="CPU threads (pinned).")]
Resume = Annotated[bool, _Opt(help="Continue an interrupted run in --out.")]
InitFrom = Annotated[
    Path | None,
    _Opt(
        help="Warm start from the weights of another run (same architecture); the optimizer, "
        "schedule and sampler start fresh."
    ),
]
ResetModes = Annotated[
    str,
    _Opt(
        help="With --init-from: comma-separated modes given a fresh initialization (from "
        "--seed) instead of the copied weights, e.g. a mode stalled at the zero function."
    ),
]
Figure = Annotated[bool, _Opt(help="Write figure.png after training.")]


def spectral(
    ctx: typer.Context,
    problem: Problem = "hydrogen-2d",
    modes: Modes = 9,
    iters: Iters = None,
    method: Method = "nestedlora-seq",
    out: Out = None,
    batch: Batch = 256,
    lr: Lr = None,
    optimizer: Optimizer = "adam",
    hidden: Hidden = 32,
    depth: Depth = 3,
    laplacian: Laplacian = "fd",
    sampler: Sampler = "radial",
    sigma: Sigma = 8.0,
    lattice_theta: LatticeTheta = 16,
    lattice_scale: LatticeScale = 1.0,
    shift: Shift = None,
    envelope: Envelope = None,
    preset: Preset = "best",
    radius_feature: RadiusFeature = False,
    dtype: Dtype = "float64",
    ema_decay: EmaDecay = 0.995,
    seed: Seed = 0,
    eval_every: EvalEvery = 500,
    threads: Threads = 1,
    resume: Resume = False,
    init_from: InitFrom = None,
    reset_modes: ResetModes = "",
    figure: Figure = True,
) -> None:
    """Train ordered eigenfunctions of a differential operator and evaluate them."""
    given = dict(locals())  # the options, before anything else is bound
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise ValueError("The '--out' option is required to train (a run directory).")
    from neuralfactor.cli import console, state
    from neuralfactor.core.validation import parse_ints
    from neuralfactor.spectral import run

    config_fields = {f.name for f in fields(run.SpectralConfig)}
    options = {k: v for k, v in given.items() if k in config_fields}
    options["init_from"] = None if init_from is None else str(init_from)
    options["reset_modes"] = parse_ints(reset_modes, "--reset-modes")
    cfg = run.spectral_preset(preset, **options)
    ev = run.run_spectral(
        cfg, out, resume=resume, progress=not state["quiet"], threads=threads, figure=figure
    )
    _print_evaluation(ev)
    console.print(f"wrote {out}/evaluation.json" + (f", {out}/figure.png" if figure else ""))
    _exit_if_unusable(ev)


def evaluate(
    run: Annotated[
        Path, typer.Argument(help="A run directory written by 'neuralfactor spectral'.")
    ],
    figure: Annotated[bool, _Opt(help="Write figure.png.")] = True,
) -> None:
    """Re-evaluate a run (EMA weights of ckpt/last) and draw learned vs true eigenfunctions."""
    from neuralfactor.cli import console
    from neuralfactor.spectral.run import evaluate_run

    ev = evaluate_run(run, figure=figure)
    _print_evaluation(ev)
    console.print(f"wrote {run}/evaluation.json" + (f", {run}/figure.png" if figure else ""))
    _exit_if_unusable(ev)


def _print_evaluation(ev: dict) -> None:
    from neuralfactor.cli import console
    from neuralfactor.cli._tables import print_table

    gid = {m: g["group"] for g in ev["groups"] for m in g["modes"]}
    norms = ev.get("sq_norms") or [float("nan")] * len(ev["eigenvalues"])  # older runs lack it
    rows = [
        [str(l), str(gid.get(l, "")), f"{lam:.6g}", f"{tr:.6g}", f"{err:.2e}", f"{nrm:.3g}"]
        for l, (lam, tr, err, nrm) in enumerate(
            zip(ev["eigenvalues"], ev["true"], ev["rel_error"], norms, strict=True)
        )
    ]
    print_table(
        f"{ev['method']} on {ev['problem']} (EMA weights, polar quadrature)",
        ("mode", "group", "eigenvalue", "true", "rel. error", "||f||^2"),
        rows,
        justify="right",
    )
    for g in ev["groups"]:
        if g["modes"]:
            console.print(
                f"group {g['group']} (true {g['true']:.6g}, degeneracy {g['degeneracy']}, "
                f"{'complete' if g['complete'] else 'partial'}): max rel. error "
                f"{g['max_rel_error']:.2e}, subspace distance {g['subspace_distance']:.2e}"
            )
    console.print(f"orthogonality (max |normalized Gram off-diagonal|): {ev['orthogonality']:.2e}")
    _print_verdict(ev)
    stalled = ev.get("stalled_modes") or []
    if stalled:
        console.print(
            f"modes {stalled} are near the zero function (||f||^2 far below their Rayleigh "
            f"quotient): a saddle of the objective, not eigenfunctions. Train longer; if the "
            f"modes before them have converged, restart these: --init-from RUN "
            f"--reset-modes {','.join(map(str, stalled))} --seed <new seed>."
        )


def _print_verdict(ev: dict) -> None:
    """One line saying whether the training converged, with the documented remedy."""
    from neuralfactor.cli import console, err_console

    v = ev.get("verdict")
    if v is None:
        return
    why = "; ".join(v["reasons"])
    if v["status"] == "converged":
        console.print("converged: every mode within 1e-2 and orthogonal to 1e-2.")
    elif v["status"] == "partial":
        console.print(f"not fully converged ({why}). {v['remedy']}")
    else:
        err_console.print(
            f"{v['status'].upper()}: the result is unusable ({why}). {v['remedy']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _exit_if_unusable(ev: dict) -> None:
    v = ev.get("verdict")
    if v is not None and not v["usable"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Ordered eigenfunctions by NestedLoRA (NeuralSVD) or SpIN-style.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    sub.callback()(spectral)
    sub.command("evaluate")(evaluate)
    app.add_typer(sub, name="spectral")
