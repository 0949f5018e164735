"""The ConvMF study: train on frames of a simulation, evaluate on unseen frames against baselines.

A *run directory* holds everything one trained model needs to be evaluated and reported::

    run/
      config.json        resolved StudyConfig (data path, split, rank, model, training settings)
      split.json         frame indices of train / val / test
      data.json          the store trained on: path, run, checksum, frames (evaluate refuses a
                         store whose checksum changed since)
      ckpt/last, ckpt/best   resumable training checkpoints
      model/             the final weights (safetensors + JSON)
      records.jsonl      evaluation records (one per method), written by :func:`evaluate_run`
      samples.npz        the worst test frame and its reconstructions (for the figure)

Records are flat dicts; per-frame losses are stored as lists so every figure of the study can
be redrawn from ``records.jsonl`` alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from neuralfactor.amortized.factorizer import LearnedFactorizer, TrainSettings
from neuralfactor.core.metrics import (
    calculated_sigma,
    calculated_U,
    calculated_V,
    effective_rank,
    optimal_scaled_loss,
    ratio_summary,
    scaled_loss,
)
from neuralfactor.core.validation import check_option, resolve_device
from neuralfactor.io import read_json, write_json

__all__ = [
    "DATA_FILE",
    "SPLITS",
    "StoreChangedError",
    "StudyConfig",
    "check_store_unchanged",
    "evaluate_run",
    "load_split_frames",
    "store_identity",
    "train_model",
]

SplitKind = Literal["interpolation", "extrapolation"]
SPLITS: tuple[str, ...] = get_args(SplitKind)
DEFAULT_BASELINES = ("svd", "svds-arpack", "rsvd", "rsvd-gemm", "warm-subspace", "pod-basis")


@dataclass(frozen=True)
class StudyConfig:
    """One trained model of the study.

    data : path of a MatrixStore; run : which run of it; frame_stride : use every k-th frame.
    split : 'interpolation' (random 70/20/10, ``split_seed``) or 'extrapolation' (first 70%
    train, then 20% validation, last 10% test).
    """

    data: str
    rank: int
    model: str = "convmf"
    nested: bool = False
    split: SplitKind = "interpolation"
    split_seed: int = 0
    run: int = 0
    frame_stride: int = 1
    settings: TrainSettings = field(default_factory=TrainSettings)
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_option(self.split, SPLITS, name="split", caller="StudyConfig")
        if self.frame_stride < 1:
            raise ValueError(f"The 'frame_stride' parameter must be >= 1. Got {self.frame_stride}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyConfig:
        d = dict(d)
        d["settings"] = TrainSettings.from_dict(d["settings"])
        return cls(**d)


def load_split_frames(
    config: StudyConfig,
) -> tuple[dict[str, Tensor], dict[str, np.ndarray], np.ndarray]:
    """Frames of the three parts, their indices (into the strided series) and the times."""
    from neuralfactor.data.splits import extrapolation_split, interpolation_split
    from neuralfactor.data.store import MatrixStore

    store = MatrixStore.open(config.data, verify=True)  # a tampered chunk is refused
    if not 0 <= config.run < len(store):
        raise ValueError(
            f"The 'run' parameter of StudyConfig must be in [0, {len(store) - 1}]: {config.data} "
            f"holds {len(store)} run(s). Got {config.run}."
        )
    run = store[config.run]
    idx_all = np.arange(0, run.shape[0], config.frame_stride)
    n = len(idx_all)
    min_size = 1
    if config.split == "interpolation":
        sp = interpolation_split(n, seed=config.split_seed, min_size=min_size)
    else:
        sp = extrapolation_split(n, min_size=min_size)
    parts = {"train": sp.train, "val": sp.val, "test": sp.test}
    frames = {k: run.as_tensor(idx_all[v], dtype=torch.float32) for k, v in parts.items()}
    t = np.asarray(run.t)[idx_all]
    return frames, parts, t


class StoreChangedError(RuntimeError):
    """The store a run was trained on changed since (its checksum differs)."""


#: File of a run directory recording the store it was trained on (path, run, checksum, shape).
DATA_FILE = "data.json"


def store_identity(config: StudyConfig) -> dict[str, Any]:
    """What identifies the training data of ``config``: store path, run, checksum and shape."""
    from neuralfactor.data.store import MatrixStore

    store = MatrixStore.open(config.data)
    _, T, m, n = store.shape
    return {
        "data": str(config.data),
        "run": int(config.run),
        "checksum": store.metadata.get("checksum"),
        "frames": int(T),
        "frame_shape": [int(m), int(n)],
    }


def check_store_unchanged(
    run_dir: str | Path, config: StudyConfig, now: dict[str, Any] | None = None
) -> None:
    """Refuse a run whose store changed since it was trained (:class:`StoreChangedError`).

    A run written before stores were recorded (no ``data.json``) is not checked.
    """
    run_dir = Path(run_dir)
    if not (run_dir / DATA_FILE).exists():
        return
    then = read_json(run_dir / DATA_FILE)
    now = store_identity(config) if now is None else now
    if then.get("checksum") != now["checksum"]:
        raise StoreChangedError(
            f"{config.data} changed since {run_dir} was trained on it: checksum "
            f"{then.get('checksum')} ({then.get('frames')} frames) then, {now['checksum']} "
            f"({now['frames']} frames) now. Its split no longer names the same frames; restore "
            f"the store the run was trained on, or retrain with `neuralfactor train --overwrite`."
        )


def _factorizer(
    config: StudyConfig, out: Path, *, resume: bool, progress: bool
) -> LearnedFactorizer:
    network = {k: getattr(config, k) for k in ("model", "nested", "settings", "model_kwargs")}
    return LearnedFactorizer(
        config.rank, checkpoint_dir=out / "ckpt", resume=resume, progress=progress, **network
    )


def check_run_dir(config: StudyConfig, out: Path, *, resume: bool, overwrite: bool) -> bool:
    """The run-directory protocol of :func:`train_model` (and of the distributed trainer), read
    only: True when ``out`` holds a finished model of the same configuration on unchanged data
    (reuse it). A different configuration is refused unless ``overwrite``; a run on a store
    that changed since is refused (:class:`StoreChangedError`) unless ``overwrite``; an
    unfinished run needs ``resume`` or ``overwrite``. A config written before a setting existed
    reads with that setting's default."""
    if not (out / "config.json").exists():
        return False
    cfg = json.loads(json.dumps(config.to_dict()))
    old = read_json(out / "config.json")
    try:
        old = json.loads(json.dumps(StudyConfig.from_dict(old).to_dict()))
    except (TypeError, ValueError, KeyError):
        pass  # unreadable: compared as written, so it differs and is refused below
    if old != cfg and not overwrite:
        raise FileExistsError(
            f"{out} holds a run with another configuration; pass --overwrite to replace it "
            f"or choose another --out."
        )
    if not overwrite:  # a finished or resumed run continues only on its own data
        check_store_unchanged(out, config)
    same = old == cfg
    if same and overwrite:  # --overwrite after the store changed: train again
        try:
            check_store_unchanged(out, config)
        except StoreChangedError:
            same = False
    if (out / "model" / "meta.json").exists() and same:
        return True
    if not resume and not overwrite and (out / "ckpt" / "last").exists():
        raise FileExistsError(
            f"{out} holds an unfinished training run; pass --resume to continue it or "
            f"--overwrite to start again."
        )
    return False


def train_model(
    config: StudyConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> LearnedFactorizer:
    """Train one model into run directory ``out`` (resumable; idempotent once finished).

    A finished run directory with the same configuration is reused; a different configuration
    is refused unless ``overwrite``. ``resume`` continues from ``out/ckpt/last``. A run whose
    store changed since (``data.json`` checksum) is refused (:class:`StoreChangedError`) unless
    ``overwrite``, which trains again. Everything (configuration, data, model, device, batch
    size) is validated before the first file is written.
    """
    out = Path(out)
    cfg = config.to_dict()
    if check_run_dir(config, out, resume=resume, overwrite=overwrite):
        return LearnedFactorizer.load(out / "model", device=config.settings.device)
    # everything is validated before the first byte is written: a refused command leaves
    # nothing in `out` that would block the corrected one
    frames, parts, _ = load_split_frames(config)
    f = _factorizer(config, out, resume=resume, progress=progress)
    f.check_fit(frames["train"], frames["val"])
    data = store_identity(config)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg)
    write_json(out / "split.json", {k: v.tolist() for k, v in parts.items()})
    write_json(out / DATA_FILE, data)
    f.fit(frames["train"], frames["val"])
    f.save(out / "model")
    return f


#: Fields of a :func:`~neuralfactor.core.timing.measure_many` record kept in the study's records.
_TIMING_KEYS = (
    "seconds_per_matrix_q25",
    "seconds_per_matrix_q75",
    "warm",
    "loadavg_before",
    "loadavg_after",
)


def _method_records(
    name: str,
    X: Tensor,
    lr,
    opt: Tensor,
    seconds: float,
    batch: int,
    fit_seconds: float,
    t: np.ndarray,
    extra: dict[str, Any],
) -> dict[str, Any]:
    loss = scaled_loss(X, lr)
    robust = ratio_summary(loss, opt, shape=tuple(X.shape), dtype=X.dtype)
    robust.pop("frames")
    return {
        "method": name,
        "seconds_per_matrix": seconds / batch,
        "batch": batch,
        "fit_seconds": fit_seconds,
        "scaled_loss_mean": float(loss.mean()),
        "scaled_loss_max": float(loss.max()),
        "optimum_mean": float(opt.mean()),
        "ratio_mean": float(loss.mean() / opt.mean()),
        # median, shares within 1.01 / 1.05 and max over frames whose optimum is above
        # round-off; those at round-off are counted in roundoff_frames
        **robust,
        "effective_rank_min": int(effective_rank(lr, rtol=1e-6).min())
        if hasattr(lr, "U")
        else None,
        "per_frame_loss": [float(v) for v in loss],
        "per_frame_optimum": [float(v) for v in opt],
        "t": [float(v) for v in t],
        **extra,
    }


def _finished_config(run_dir: Path) -> StudyConfig:
    """The configuration of a finished training run whose store is unchanged since."""
    for need in ("config.json", "model/meta.json"):
        if not (run_dir / need).exists():
            raise FileNotFoundError(f"{run_dir} is not a finished training run: {need} is missing.")
    config = StudyConfig.from_dict(read_json(run_dir / "config.json"))
    check_store_unchanged(run_dir, config)
    return config


def _load_run(
    run_dir: Path, rank: int | None, device: str
) -> tuple[StudyConfig, int, torch.device, dict[str, Tensor], np.ndarray]:
    """A finished run's configuration, evaluation rank, device, frames and test times."""
    config = _finished_config(run_dir)
    r = config.rank if rank is None else int(rank)
    if r != config.rank and not config.nested:
        raise ValueError(
            f"{run_dir} holds a rank-{config.rank} model that is not nested; it can "
            f"only be evaluated at rank {config.rank}. Got rank={r}."
        )
    if not 1 <= r <= config.rank:
        raise ValueError(
            f"The 'rank' parameter must be in [1, {config.rank}] for this nested model. Got {r}."
        )
    dev = resolve_device(device)
    frames, parts, t_all = load_split_frames(config)
    frames = {"test": frames["test"].to(dev), "train": frames["train"].to(dev)}
    return config, r, dev, frames, t_all[parts["test"]]


#: What two training runs must share to be evaluated on the same test frames.
_SAME_FRAMES: tuple[str, ...] = ("data", "split", "split_seed", "run", "frame_stride")


def _check_with_runs(config: StudyConfig, r: int, with_runs: tuple[Path, ...]) -> list:
    """The (run directory, config) of each finished extra run; refused unless it was trained
    on the same test frames as ``config`` and can be evaluated at rank ``r``."""
    out = []
    for other in with_runs:
        oc = _finished_config(other)
        diff = [k for k in _SAME_FRAMES if getattr(oc, k) != getattr(config, k)]
        if diff or not (oc.rank == r or (oc.nested and oc.rank > r)):
            raise ValueError(
                f"{other} cannot be evaluated beside this run at rank {r}: it differs in "
                f"{diff or ['rank']} (every model of one evaluation factorizes the same test "
                f"frames at the same rank)."
            )
        out.append((other, oc))
    return out


def _run_methods(
    run_dir: Path,
    config: StudyConfig,
    r: int,
    dev: torch.device,
    baselines: tuple[str, ...],
    with_runs: tuple[Path, ...] = (),
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, float]]:
    """The learned models (each plain, +refine, +subspace: the run's own first, then those of
    ``with_runs``) and the baselines, by name; per name its kind (and for a learned one its
    ``model``/``nested``), and the training seconds."""
    from neuralfactor.core.factorizer import make_factorizer

    methods: dict[str, Any] = {}
    kinds: dict[str, dict[str, Any]] = {}
    fit_times: dict[str, float] = {}
    runs = [(run_dir, config), *_check_with_runs(config, r, with_runs)]
    for where, cfg in runs:
        for refine in ("none", "lstsq", "subspace"):
            f = LearnedFactorizer.load(where / "model", device=str(dev), refine=refine)
            if r != cfg.rank:
                f = f.at_rank(r)
            if f.name in methods:
                raise ValueError(
                    f"Two models of this evaluation are both named {f.name!r} ({where}); "
                    f"evaluate models of different kinds together."
                )
            methods[f.name] = f
            kinds[f.name] = {"kind": "learned", "model": cfg.model, "nested": cfg.nested}
            fit_times[f.name] = f.fit_seconds_
    for name in baselines:
        methods[name] = make_factorizer(name, rank=r)
        kinds[name] = {"kind": "classical"}
    return methods, kinds, fit_times


def _analysis_records(name: str, X: Tensor, lr0, opt: Tensor, t: np.ndarray) -> list[dict]:
    """Error analysis of the network's factors: its U or V kept, the other solved for."""
    fits = (
        ("calculated V", lambda: calculated_V(X, lr0.U)),
        ("calculated U", lambda: calculated_U(X, lr0.V)),
        ("calculated Sigma", lambda: calculated_sigma(X, lr0.U, lr0.V)),
    )
    return [
        _method_records(
            f"{name} {label}", X, fn(), opt, float("nan"), X.shape[0], 0.0, t, {"kind": "analysis"}
        )
        for label, fn in fits
    ]


def _samples(X: Tensor, t: np.ndarray, lr0, refined, r: int) -> dict[str, np.ndarray]:
    """The worst test frame of the learned model, with its reconstructions."""
    from neuralfactor.classical.svd import truncated_svd

    worst = int(torch.argmax(scaled_loss(X, lr0)))
    return {
        "frame": X[worst].cpu().numpy(),
        "t": np.asarray(t[worst]),
        "learned": lr0[worst].reconstruct().cpu().numpy(),
        "refined": refined[worst].reconstruct().cpu().numpy(),
        "svd": truncated_svd(X[worst], r).reconstruct().cpu().numpy(),
    }


def _write_evaluation(run_dir: Path, suffix: str, records: list, samples: dict) -> None:
    import io

    from neuralfactor.io import atomic_write_bytes, atomic_write_text

    atomic_write_text(
        run_dir / f"records{suffix}.jsonl",
        "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in records),
    )
    buf = io.BytesIO()
    np.savez(buf, **samples)
    atomic_write_bytes(run_dir / f"samples{suffix}.npz", buf.getvalue())


def evaluate_run(
    run_dir: str | Path,
    *,
    baselines: tuple[str, ...] = DEFAULT_BASELINES,
    device: str = "cpu",
    repeats: int = 3,
    threads: int | None = 1,
    rank: int | None = None,
    write: bool = True,
    max_seconds: float | None = None,
    with_runs: tuple[str | Path, ...] = (),
) -> list[dict[str, Any]]:
    """Evaluate a trained run on its test frames against ``baselines`` at the same rank.

    ``rank`` (nested models only) evaluates the leading ``rank`` columns of the model and the
    baselines at that rank; records then go to ``records-r{rank}.jsonl``. ``max_seconds``
    caps the interleaved timing rounds (the harness's ``max_seconds``; ``None``: its default).
    ``with_runs``: other finished runs trained on the same frames and split (another model,
    e.g. ``sketch`` beside ``convmf``), timed in the same rounds; their records go to this
    run's records file, each with its own ``model``.

    Every method factorizes the same test batch on the same device and dtype (float32), all
    timed interleaved by :func:`~neuralfactor.core.timing.measure_many` (at least ``repeats``
    rounds, ``repeats >= 3``; median and quartiles recorded) with pinned threads. The learned
    model is evaluated plain, ``+refine`` (least-squares V) and ``+subspace``; the error
    analysis adds "calculated U/V/Sigma" refits of the network's factors. Data-driven baselines
    (pod-basis) fit on the training frames; warm-subspace streams the test frames in time order.
    """
    from neuralfactor.core.factorizer import check_factorizer_name
    from neuralfactor.core.timing import measure_many, pinned_threads

    for name in baselines:  # a typo is refused before any work, with a suggestion
        check_factorizer_name(name)
    if repeats < 3:  # refused, not silently raised to 3
        raise ValueError(
            "The 'repeats' parameter of evaluate must be >= 3 (rounds of interleaved timing; "
            f"a single sample is not a timing). Got {repeats}."
        )
    run_dir = Path(run_dir)
    with_runs = tuple(Path(p) for p in with_runs)
    config, r, dev, frames, t = _load_run(run_dir, rank, device)
    X, train = frames["test"], frames["train"]
    opt = optimal_scaled_loss(X, r, singular_values=torch.linalg.svdvals(X.double()))
    base = {
        "rank": r,
        "split": config.split,
        "model": config.model,
        "nested": config.nested,
        "data": config.data,
        "m": int(X.shape[-2]),
        "n": int(X.shape[-1]),
        "device": str(dev),
        "dtype": "float32",
        "n_test": int(X.shape[0]),
        "n_train": int(train.shape[0]),
    }
    with pinned_threads(threads) as thr:
        base["torch_threads"] = thr["torch_threads"]
        methods, kinds, fit_times = _run_methods(run_dir, config, r, dev, baselines, with_runs)
        # one harness: every method interleaved on the whole test batch (streaming baselines
        # restart their stream at the first test frame on every timed call)
        results: dict[str, Any] = {}
        timed = measure_many(
            methods,
            X,
            optimum=opt,
            device=dev,
            train=train,
            fit_seconds=fit_times,
            max_call_seconds=float("inf"),
            min_rounds=repeats,
            **({} if max_seconds is None else {"max_seconds": max_seconds}),
            errors=(),
            results=results,
        )
        by_label = {rec["label"]: rec for rec in timed}

        def timed_record(name: str) -> dict[str, Any]:
            rec = by_label[name]
            extra = {k: rec[k] for k in _TIMING_KEYS}
            extra.update(kinds[name], timing_rounds=rec["rounds"])
            return _method_records(
                name,
                X,
                results[name],
                opt,
                rec["seconds_per_call"],
                X.shape[0],
                rec["fit_seconds"],
                t,
                extra,
            )

        names = list(methods)
        lr0, refined = results[names[0]], results[names[1]]
        records = [timed_record(name) for name in names[:3]]
        records += _analysis_records(names[0], X, lr0, opt, t)
        records += [timed_record(name) for name in names[3:]]
        samples = _samples(X, t, lr0, refined, r)
    for rec in records:
        rec.update({k: v for k, v in base.items() if k not in rec})
    if write:
        _write_evaluation(run_dir, "" if rank is None else f"-r{r}", records, samples)
    return records
