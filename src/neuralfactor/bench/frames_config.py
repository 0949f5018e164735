"""Configuration of the ``frames`` suite: what it measures, which methods, which dtypes.

:class:`FramesConfig` is the suite's one configuration (its timing options become one
:class:`~neuralfactor.core.timing.TimingConfig`); the method families and the methods the
suite leaves out, with the reason, are defined here once. Execution lives in
:mod:`neuralfactor.bench.frames`, the Markdown in :mod:`neuralfactor.bench.frames_render`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from neuralfactor.core.factorizer import available_factorizers
from neuralfactor.core.timing import SuiteTiming

__all__ = [
    "BASELINE",
    "CPU_ONLY",
    "FRAME_DTYPES",
    "LEARNED",
    "PEERS",
    "SKIPPED",
    "FramesConfig",
    "classical_methods",
    "config_dict",
    "family",
]

FRAME_DTYPES: tuple[str, ...] = ("float32", "tf32", "bf16")
#: Library peers (all registered factorizers; scipy/sklearn run on the CPU whatever the device).
PEERS: tuple[str, ...] = ("svd", "scipy-gesdd", "svds-arpack", "sklearn-rsvd", "torch-lowrank")
#: Learned factorizers of the suite: ConvMF, its least-squares refinement, the nested model.
#: Learned factorizers of the suite: ConvMF, its least-squares refinement, the nested model,
#: and the sketch encoder (two frame-sized products per frame).
LEARNED: tuple[str, ...] = (
    "convmf",
    "convmf+refine",
    "convmf-nested",
    "convmf-nested+refine",
    "sketch",
    "sketch+refine",
)
#: Registered names the suite leaves out, with the reason (printed as a note).
SKIPPED: dict[str, str] = {
    "fork": "learned; the suite times ConvMF",
    "fork+refine": "learned; the suite times ConvMF",
    "danmf": "learned; the suite times ConvMF",
    "danmf+refine": "learned; the suite times ConvMF",
    "convmf+subspace": "learned; +refine and nested are the suite's learned variants",
    "matvec-ae": "learns from products x -> Ax, not from frames",
}
BASELINE = "scipy-gesdd"
#: Methods that run on the CPU (SciPy, scikit-learn) whatever the device: the matmul
#: precision of the device does not apply to them, so they are timed in float32 only.
CPU_ONLY: frozenset[str] = frozenset(
    {"scipy-gesdd", "svds-arpack", "svds-lobpcg", "svds-propack", "sklearn-rsvd", "nmf"}
)


def classical_methods() -> tuple[str, ...]:
    """Every registered classical factorizer (peers included), in a stable order."""
    learned = set(LEARNED) | set(SKIPPED)
    names = [n for n in available_factorizers() if n not in learned]
    first = [p for p in PEERS if p in names]
    return tuple(first + [n for n in names if n not in first])


@dataclass(frozen=True, kw_only=True)
class FramesConfig(SuiteTiming):
    """What the frames suite measures. Every size x rank x batch x dtype is run.

    Timing options (``repeats``: fewest interleaved rounds, at least 3; ``warmup``,
    ``max_call_seconds``, ``min_run_time``, ``max_case_seconds``) come from
    :class:`~neuralfactor.core.timing.SuiteTiming`; ``timing`` is their one
    :class:`~neuralfactor.core.timing.TimingConfig`.

    ``train_lr``: Adam's learning rate for the learned rows' short training; ``None`` (the
    default) takes each model's documented default, :func:`neuralfactor.amortized.default_lr`.
    """

    device: str = "cpu"
    sizes: tuple[tuple[int, int], ...] = ((64, 128), (128, 256), (256, 512))
    ranks: tuple[int, ...] = (6, 12, 30)
    batches: tuple[int, ...] = (1, 256)
    dtypes: tuple[str, ...] = ("float32",)
    methods: tuple[str, ...] | None = None  # None: classical_methods() + LEARNED
    threads: int | None = 1
    min_run_time: float = 0.05
    peer_settings: bool = True  # peers twice: documented defaults and our budget
    train_frames: int = 512
    train_epochs: int = 10
    train_lr: float | None = None  # None: each model's default_lr (neuralfactor.amortized)
    models_dir: str | None = None
    t_end: float = 40.0
    max_batch_at: dict[str, int] | None = None  # e.g. {"256x512": 1024}
    deadline_seconds: float | None = None  # stop starting new cases after this (noted)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sizes", "ranks", "batches", "dtypes"):
            if not getattr(self, name):
                raise ValueError(f"The '{name}' parameter of the frames suite must not be empty.")
        for d in self.dtypes:
            if d not in FRAME_DTYPES:
                raise ValueError(
                    f"The 'dtypes' parameter of the frames suite takes {FRAME_DTYPES}. Got {d!r}."
                )
        known = available_factorizers()
        for m in self.methods or ():
            if m not in known:
                raise ValueError(f"Unknown factorizer {m!r}; expected one of {known}.")
        if self.methods is not None and not self.methods:
            raise ValueError("The 'methods' parameter of the frames suite must not be empty.")
        for m, n in self.sizes:
            if m < 4 or n < 4:
                raise ValueError(f"The frames suite needs sizes of at least 4x4. Got {m}x{n}.")
        small = min(min(s) for s in self.sizes)
        for r in self.ranks:
            if not 1 <= r <= small:
                raise ValueError(
                    f"The 'ranks' parameter of the frames suite must lie in [1, {small}]. Got {r}."
                )
        if any(b < 1 for b in self.batches):
            raise ValueError(f"The 'batches' parameter must be >= 1. Got {self.batches}.")
        if self.repeats < 3:
            raise ValueError(
                "The 'repeats' parameter of the frames suite must be >= 3 (rounds of interleaved "
                f"timing; a single sample is not a timing). Got {self.repeats}."
            )
        if self.train_lr is not None and not self.train_lr > 0:
            raise ValueError(f"The 'train_lr' parameter must be > 0 or None. Got {self.train_lr}.")
        if self.train_frames < 25 or self.train_epochs < 1:
            raise ValueError(
                "The frames suite needs train_frames >= 25 (one training batch) and "
                f"train_epochs >= 1. Got {self.train_frames}, {self.train_epochs}."
            )

    @property
    def all_methods(self) -> tuple[str, ...]:
        return self.methods if self.methods is not None else classical_methods() + LEARNED


def family(method: str) -> str:
    if method in PEERS:
        return "peer"
    if method in LEARNED or method in SKIPPED:
        return "learned"
    return "classical"


def config_dict(config: FramesConfig) -> dict[str, Any]:
    return asdict(config)
