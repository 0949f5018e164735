"""Run directories of learned LU factors: :func:`train_run` writes one, :func:`evaluate_run`
measures it.

A run directory holds ``config.json`` (the :class:`LURunConfig`, written before training),
``ckpt/`` (the resumable per-stage checkpoints of :func:`~neuralfactor.lu.train.train_lu`),
``model/`` (the trained :class:`~neuralfactor.lu.model.LUNetwork`, safetensors + JSON),
``train.json`` (final error, seconds, weights) and, after :func:`evaluate_run`,
``metrics.json``. ``neuralfactor lu`` and ``neuralfactor lu evaluate`` are thin commands over
these two functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from neuralfactor.core.timing import pinned_threads
from neuralfactor.io import read_json, write_json
from neuralfactor.lu.evaluate import evaluate_lapack, evaluate_learned
from neuralfactor.lu.model import LUNetwork
from neuralfactor.lu.operators import make_operator
from neuralfactor.lu.precond import iteration_counts
from neuralfactor.lu.solve import LUSolver
from neuralfactor.lu.train import LUTrainConfig, lu_preset, parse_precond_stages, train_lu
from neuralfactor.train.checkpoint import load_model, save_checkpoint

__all__ = ["LURunConfig", "LURunSummary", "evaluate_run", "train_run"]

#: the fields of :class:`LURunConfig` that are :class:`LUNetwork` arguments
_MODEL_FIELDS = ("n", "leaf", "dim", "band", "diag", "dtype", "seed", "symmetric")


@dataclass(frozen=True)
class LURunConfig:
    """What one ``neuralfactor lu`` run trains: the operator, the network and its training.

    Parameters
    ----------
    operator : name of a test operator (:data:`neuralfactor.lu.operators.OPERATORS`).
    n, leaf, dim, band, diag, dtype, seed, symmetric : the
        :class:`~neuralfactor.lu.model.LUNetwork` arguments.
    train : the :class:`~neuralfactor.lu.train.LUTrainConfig`.

    Use :meth:`from_preset` to start from a named preset (``'best'``, the default, or
    ``'original'``) with explicit settings overriding it, as the command line does.
    """

    operator: str = "laplacian-1d"
    n: int = 256
    leaf: int = 32
    dim: int = 1
    band: int = 2
    diag: str = "triangular"
    dtype: str = "float64"
    seed: int = 0
    symmetric: bool = False
    train: LUTrainConfig = field(default_factory=LUTrainConfig)

    @classmethod
    def from_preset(
        cls,
        preset: str = "best",
        *,
        diag: str | None = None,
        precond_stages: str | tuple[tuple[float, int], ...] = (),
        train: dict[str, Any] | None = None,
        **model: Any,
    ) -> LURunConfig:
        """The preset's diagonal-block mode and training settings, overridden by ``diag`` and
        the :class:`LUTrainConfig` fields in ``train`` that are not ``None``;
        ``precond_stages`` may be the command-line text ``'0.01:30,0.003:40'``; ``model``
        holds the other fields (``operator``, ``n``, ``leaf``, ...)."""
        if isinstance(precond_stages, str):
            precond_stages = parse_precond_stages(precond_stages)
        settings = lu_preset(preset, diag=diag, precond_stages=precond_stages, **(train or {}))
        return cls(diag=settings.diag, train=settings.train, **model)

    def model_args(self) -> dict[str, Any]:
        """Keyword arguments of :class:`LUNetwork` (``n`` and ``leaf`` included)."""
        return {k: getattr(self, k) for k in _MODEL_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` form (JSON types: tuples become lists); ``symmetric`` appears
        only when true, as in run directories written before it existed."""
        d: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "symmetric"
        }
        d["train"] = asdict(self.train)
        if self.symmetric:
            d["symmetric"] = True
        return json.loads(json.dumps(d))


@dataclass(frozen=True)
class LURunSummary:
    """What :func:`train_run` wrote to ``train.json``, with the run directory and config."""

    run_dir: Path
    config: LURunConfig
    rel_fro: float
    seconds: float
    params: int
    stages: list[dict[str, Any]]

    @property
    def dense(self) -> int:
        """Entries of the dense operator, ``n**2`` (compare with ``params``)."""
        return self.config.n**2


def _check_run_dir(run_dir: Path, cfg: dict[str, Any], resume: bool, overwrite: bool) -> None:
    if overwrite and resume:
        raise ValueError("Pass either --overwrite or --resume, not both.")
    if not (run_dir / "config.json").exists():
        return
    if resume:
        if read_json(run_dir / "config.json") != cfg:
            raise ValueError(
                f"--resume: {run_dir}/config.json was written with different settings; rerun "
                f"with the same options or choose another --out."
            )
    elif not overwrite:
        raise FileExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or --overwrite."
        )


def train_run(
    run_dir: str | Path,
    config: LURunConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> LURunSummary:
    """Train learned LU factors of ``config.operator`` into ``run_dir``.

    An existing run directory is refused unless ``resume`` (same configuration only: it
    continues from the checkpoints in ``run_dir/ckpt``) or ``overwrite``. The operator and the
    network are validated before the first file is written. Training runs on one torch thread
    and one BLAS thread (restored afterwards).

    Raises
    ------
    ValueError : both ``resume`` and ``overwrite``; ``resume`` with another configuration; an
        unknown operator or a leaf layout the network cannot take.
    FileExistsError : ``run_dir`` holds a run and neither ``resume`` nor ``overwrite``.
    """
    cfg = config or LURunConfig()
    out = Path(run_dir)
    run = cfg.to_dict()
    _check_run_dir(out, run, resume, overwrite)
    A = make_operator(cfg.operator, cfg.n)
    args = cfg.model_args()
    model = LUNetwork(args.pop("n"), args.pop("leaf"), **args)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", run)
    meta = {"operator": cfg.operator}
    with pinned_threads(1):
        res = train_lu(
            A,
            model,
            cfg.train,
            checkpoint_dir=out / "ckpt",
            resume=resume,
            progress=progress,
            meta=meta,
        )
    save_checkpoint(
        out / "model", model, init_args=model.init_args, meta={**meta, "rel_fro": res.rel_fro}
    )
    summary = LURunSummary(out, cfg, res.rel_fro, res.seconds, model.num_parameters(), res.stages)
    write_json(
        out / "train.json",
        {
            "rel_fro": res.rel_fro,
            "seconds": res.seconds,
            "params": summary.params,
            "dense": summary.dense,
            "stages": res.stages,
        },
    )
    return summary


def evaluate_run(
    run_dir: str | Path, *, samples: int = 100, method: str = "gmres"
) -> dict[str, Any]:
    """Every metric of a trained run against LAPACK, and Krylov iterations per preconditioner.

    Rows: the learned factors (:func:`~neuralfactor.lu.evaluate.evaluate_learned`) and
    ``scipy.linalg.lu_factor`` in float32 and float64, on the same ``samples`` random
    solutions; ``iterations``: :func:`~neuralfactor.lu.precond.iteration_counts` with
    ``method`` for one right-hand side ``b = A x`` (``{"error": ...}`` when the learned
    factors cannot be used as a preconditioner). Written to ``run_dir/metrics.json`` and
    returned (with ``leaf`` and ``n`` of the run).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not an lu run (no config.json); train one with "
            f"`neuralfactor lu --out {run_dir}`."
        )
    cfg = read_json(run_dir / "config.json")
    model, _ = load_model(run_dir / "model", expected_class=LUNetwork)
    A = make_operator(cfg["operator"], cfg["n"])
    rows = [
        evaluate_learned(A, model, samples=samples),
        evaluate_lapack(A, "float32", samples=samples),
        evaluate_lapack(A, "float64", samples=samples),
    ]
    b = A @ np.random.default_rng(0).standard_normal(cfg["n"])
    try:
        its = iteration_counts(A, b, solver=LUSolver(model), method=method)
    except ValueError as exc:
        its = {"error": str(exc)}
    metrics = {"operator": cfg["operator"], "rows": rows, "iterations": its, "method": method}
    write_json(run_dir / "metrics.json", metrics)
    return {**metrics, "n": cfg["n"], "leaf": cfg["leaf"]}
