"""Resolve ``--truncate-with NAME|MODEL_DIR[+refine]`` to a :class:`Truncation` of the fd5 stepper.

The vlasov package takes any object with ``factorize(X) -> LowRank`` and knows no names; this
module, at the top of the dependency order, turns a registered factorizer name or a trained
model directory into one.
"""

from __future__ import annotations

from pathlib import Path

from neuralfactor.vlasov.truncation import Truncation

__all__ = ["make_truncation"]

_REFINE = "+refine"


def _model_dir(spec: str) -> tuple[Path, bool] | None:
    """``(model directory, refine)`` when ``spec`` names a trained model, else None."""
    refine = spec.endswith(_REFINE)
    raw = spec[: -len(_REFINE)] if refine else spec
    p = Path(raw)
    if not p.exists():
        return None
    for cand in (p, p / "model"):  # a model directory, or a `neuralfactor train` OUT
        if (cand / "meta.json").exists():
            return cand, refine
    raise FileNotFoundError(
        f"--truncate-with {spec!r}: {p} is neither a trained model directory (no meta.json) nor "
        f"a `neuralfactor train` output with a model/ directory."
    )


def make_truncation(
    spec: str,
    *,
    tol: float | None,
    rank: int | None,
    frame_shape: tuple[int, int],
    device: str = "cpu",
) -> Truncation:
    """A :class:`Truncation` for ``spec``: a registered factorizer name (``svd``, ``rsvd``,
    ``warm-subspace``, ...; the working rank grows as the tolerance needs) or a trained model
    directory, optionally suffixed ``+refine`` (least-squares refit of V; the model's rank is
    the working rank, and a stage it cannot compress to ``tol`` stops the run with a message).

    Raises ``ValueError`` for an unknown name, a data-driven name that would need training, and
    a model trained for another frame size than ``frame_shape``.
    """
    from neuralfactor.core.factorizer import available_factorizers, make_factorizer

    model = _model_dir(spec)
    if model is not None:
        from neuralfactor.amortized.factorizer import LearnedFactorizer

        path, refine = model
        f = LearnedFactorizer.load(path, device=device, **({"refine": "lstsq"} if refine else {}))
        built = (int(f.model.m), int(f.model.n))
        if built != tuple(frame_shape):
            raise ValueError(
                f"The model at {path} was built for {built[0]}x{built[1]} frames; this run's "
                f"frames are {frame_shape[0]}x{frame_shape[1]}. Train a model on frames of this "
                f"grid (neuralfactor simulate + train) or change --nx/--nv."
            )
        if rank is not None and rank != f.rank:
            raise ValueError(
                f"The model at {path} has rank {f.rank}; use --rank {f.rank} or --truncate-tol."
            )
        return Truncation(f, tol=tol, rank=rank, name=f"{f.name}:{path}")
    names = available_factorizers()
    if spec not in names:
        raise ValueError(
            f"Unknown --truncate-with {spec!r}: expected a factorizer name (one of {names}) or "
            f"a trained model directory (neuralfactor train OUT/model, optionally +refine)."
        )
    probe = make_factorizer(spec, rank=1)
    if getattr(probe, "requires_fit", False):
        raise ValueError(
            f"--truncate-with {spec!r} is a data-driven factorizer that needs training: train it "
            f"on frames of this problem (neuralfactor train) and pass its model directory."
        )
    return Truncation(lambda r: make_factorizer(spec, rank=r), tol=tol, rank=rank, name=spec)
