"""``neuralfactor spectral``: NeuralSVD (NestedLoRA) / SpIN-style eigenfunctions of operators.

    neuralfactor spectral --problem hydrogen-2d --modes 9 --iters N \
        --method nestedlora-seq|nestedlora-joint|spin --out runs/h2d
    neuralfactor spectral evaluate RUN
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


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

    @sub.callback()
    def spectral(
        ctx: typer.Context,
        problem: str = typer.Option("hydrogen-2d", help="hydrogen-2d | oscillator-2d"),
        modes: int = typer.Option(9, help="Number of eigenfunctions."),
        iters: int = typer.Option(
            None, help="Optimizer steps (default 12000; 2000 with --preset original)."
        ),
        method: str = typer.Option(
            "nestedlora-seq", help="nestedlora-seq | nestedlora-joint | spin"
        ),
        out: Path = typer.Option(None, help="Run directory (required to train)."),
        batch: int = typer.Option(256, help="Samples per step (even)."),
        lr: float = typer.Option(
            None,
            help="Peak learning rate, cosine schedule (default 3e-3; 1e-3 with --preset original).",
        ),
        optimizer: str = typer.Option("adam", help="adam | rmsprop"),
        hidden: int = typer.Option(32, help="Hidden width of each mode's MLP."),
        depth: int = typer.Option(3, help="Hidden layers of each mode's MLP."),
        laplacian: str = typer.Option("fd", help="fd | autograd"),
        sampler: str = typer.Option(
            "radial",
            help="radial | gaussian (Monte Carlo) | lattice (randomly shifted polar lattice, "
            "2-D; --batch a multiple of 2 * --lattice-theta).",
        ),
        sigma: float = typer.Option(8.0, help="Scale of the radial and gaussian samplers."),
        lattice_theta: int = typer.Option(16, help="Angles per rule of the lattice sampler."),
        lattice_scale: float = typer.Option(
            1.0, help="Radial map r = a t / (1 - t)^2 of the lattice sampler: this a."
        ),
        shift: float = typer.Option(
            None,
            help="Train on T = shift - H (default: 0 for hydrogen, above the wanted oscillator "
            "levels). For hydrogen a shift of about 1 makes sequential NestedLoRA's n = 2 modes "
            "far less sensitive to the ground state's error; evaluation stays on -H.",
        ),
        envelope: float = typer.Option(
            None,
            help="Multiply each MLP by exp(-a sqrt(1+|x|^2)) with this rate a (default 0.1; "
            "--preset original: none; 0: a constant 1).",
        ),
        preset: str = typer.Option(
            "best",
            help="best: the documented hydrogen schedule (12000 steps, lr 3e-3, envelope 0.1, "
            "docs/results/neuralsvd.md); original: the earlier defaults (2000 steps, lr 1e-3, "
            "no envelope; hydrogen diverges). Options given explicitly override the preset.",
        ),
        radius_feature: bool = typer.Option(
            False,
            "--radius-feature",
            help="Append |x| to each MLP's inputs (fits hydrogen's cusp at the origin).",
        ),
        dtype: str = typer.Option("float64", help="float32 | float64"),
        ema_decay: float = typer.Option(0.995, help="EMA decay of the evaluated weights."),
        seed: int = typer.Option(0, help="Seed of initialization and sampling."),
        eval_every: int = typer.Option(500, help="Validation/checkpoint interval (steps)."),
        threads: int = typer.Option(1, help="CPU threads (pinned)."),
        resume: bool = typer.Option(False, help="Continue an interrupted run in --out."),
        init_from: Path = typer.Option(
            None,
            help="Warm start from the weights of another run (same architecture); the "
            "optimizer, schedule and sampler start fresh.",
        ),
        reset_modes: str = typer.Option(
            "",
            help="With --init-from: comma-separated modes given a fresh initialization (from "
            "--seed) instead of the copied weights, e.g. a mode stalled at the zero function.",
        ),
        figure: bool = typer.Option(True, help="Write figure.png after training."),
    ) -> None:
        """Train ordered eigenfunctions of a differential operator and evaluate them."""
        if ctx.invoked_subcommand is not None:
            return
        if out is None:
            raise ValueError("The '--out' option is required to train (a run directory).")
        from neuralfactor.cli import console, state
        from neuralfactor.core.timing import pinned_threads
        from neuralfactor.core.validation import parse_ints
        from neuralfactor.spectral import trainer

        cfg = trainer.spectral_preset(
            preset,
            problem=problem,
            modes=modes,
            method=method,
            iters=iters,
            batch=batch,
            lr=lr,
            optimizer=optimizer,
            hidden=hidden,
            depth=depth,
            laplacian=laplacian,
            sampler=sampler,
            sigma=sigma,
            lattice_theta=lattice_theta,
            lattice_scale=lattice_scale,
            shift=shift,
            dtype=dtype,
            ema_decay=ema_decay,
            seed=seed,
            envelope=envelope,
            radius_feature=radius_feature,
            eval_every=eval_every,
            init_from=None if init_from is None else str(init_from),
            reset_modes=parse_ints(reset_modes, "--reset-modes"),
        )
        with pinned_threads(threads):
            ev = trainer.run_spectral(cfg, out, resume=resume, progress=not state["quiet"])
            if figure:
                from neuralfactor.spectral.evaluate import plot_run

                config, model, _ = trainer.load_run(out)
                plot_run(config, model, ev, Path(out) / "figure.png")
        _print_evaluation(ev)
        console.print(f"wrote {out}/evaluation.json" + (f", {out}/figure.png" if figure else ""))
        _exit_if_unusable(ev)

    @sub.command("evaluate")
    def evaluate(
        run: Path = typer.Argument(..., help="A run directory written by 'neuralfactor spectral'."),
        figure: bool = typer.Option(True, help="Write figure.png."),
    ) -> None:
        """Re-evaluate a run (EMA weights of ckpt/last) and draw learned vs true eigenfunctions."""
        from neuralfactor.cli import console
        from neuralfactor.io import read_json, write_json
        from neuralfactor.spectral.evaluate import evaluate_model, plot_run
        from neuralfactor.spectral.trainer import load_run

        config, model, _ = load_run(run)
        ev = evaluate_model(config, model)
        old = Path(run) / "evaluation.json"
        if old.is_file():  # keep the training record (time, steps) of the original run
            prev = read_json(old)
            ev.update({k: prev[k] for k in ("train_seconds", "steps_done") if k in prev})
        write_json(Path(run) / "evaluation.json", ev)
        if figure:
            plot_run(config, model, ev, Path(run) / "figure.png")
        _print_evaluation(ev)
        console.print(f"wrote {run}/evaluation.json" + (f", {run}/figure.png" if figure else ""))
        _exit_if_unusable(ev)

    app.add_typer(sub, name="spectral")
