"""The random-access benchmark: frames in random order from a simulation, no warm start.

Where learning should have its chance: a stream method cannot carry a basis from the previous
frame, so every classical method starts cold. For each frame size x rank x split the
benchmark

- simulates a strong-Landau run (:func:`neuralfactor.bench.frames.simulate_frames`) and splits
  its frames by :func:`neuralfactor.data.splits.interpolation_split` (random: test frames lie
  between training frames in time) or :func:`~neuralfactor.data.splits.extrapolation_split`
  (the last tenth of the run); the test frames are shuffled (random order);
- trains the learned encoder ``sketch`` (:class:`neuralfactor.amortized.SketchMF`) and ConvMF
  with the documented recipe (``train_preset('best')``, fewer epochs: the budget is
  recorded), timing the training (``fit_seconds``, training frames per second);
- picks ``rsvd`` at its cheapest setting (fewest flops over ``n_iter`` 0-4 and
  ``oversample`` 2/5/10) whose worst ratio to the optimum over the test frames lies within
  each band (1.05 and 1.01);
- times ``rsvd`` at those settings, ``pod-basis`` (fitted on the training frames),
  ``svds-arpack``, ``scipy-gesdd``, ``sketch``, ``sketch+refine`` and ``convmf+refine`` on the
  same test frames, interleaved, by the one harness (:func:`neuralfactor.core.timing.
  measure_many`), all in one batched call per method;
- records each method's flop count and its flop floor at the single-core GEMM rate of the
  frame-sized product measured in the same case.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from neuralfactor.amortized.factorizer import default_lr
from neuralfactor.bench.flop_floor import convmf_flops, flop_fields, method_flops
from neuralfactor.core.metrics import optimal_scaled_loss, ratio_to_optimum
from neuralfactor.core.timing import measure_many, pinned_threads

__all__ = [
    "CLASSICAL",
    "LEARNED",
    "RandomAccessConfig",
    "cheapest_rsvd",
    "convmf_flops",
    "method_flops",
    "quick_config",
    "run_random_access",
    "split_frames",
]

#: Classical rows besides the rsvd band picks.
CLASSICAL: tuple[str, ...] = ("pod-basis", "svds-arpack", "scipy-gesdd")
#: Learned rows: the base model trained once per case, then each variant.
LEARNED: tuple[str, ...] = ("sketch", "sketch+refine", "convmf+refine")
_RSVD_GRID = [(q, p) for q in range(5) for p in (2, 5, 10)]
_SPLITS = ("interpolation", "extrapolation")


@dataclass(frozen=True)
class RandomAccessConfig:
    """What the random-access benchmark measures; every size x rank x split is run."""

    sizes: tuple[tuple[int, int], ...] = ((64, 128), (128, 256))
    ranks: tuple[int, ...] = (6, 12)
    splits: tuple[str, ...] = _SPLITS
    bands: tuple[float, ...] = (1.05, 1.01)
    frames: int = 300  # simulated frames per size (70/20/10 train/val/test)
    sketch_epochs: int = 40
    sketch_lr: float = default_lr("sketch")  # the sketch's documented default
    sketch_oversample: tuple[int, ...] = (5, 15)  # one model each; the first also +refine
    convmf_epochs: int = 10
    t_end: float = 40.0
    threads: int | None = 1
    repeats: int = 5
    min_run_time: float = 0.2
    max_case_seconds: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        for s in self.splits:
            if s not in _SPLITS:
                raise ValueError(
                    f"The 'splits' parameter of the random-access benchmark takes {_SPLITS}. "
                    f"Got {s!r}."
                )
        small = min(min(s) for s in self.sizes)
        if not self.ranks or any(not 1 <= r <= small for r in self.ranks):
            raise ValueError(
                f"The 'ranks' parameter of the random-access benchmark must lie in [1, {small}] "
                f"(the smallest min(m, n)). Got {self.ranks}."
            )
        if not self.sketch_oversample or min(self.sketch_oversample) < 0:
            raise ValueError(
                "The 'sketch_oversample' parameter of the random-access benchmark needs at least "
                f"one int >= 0. Got {self.sketch_oversample}."
            )
        if self.frames < 100 or self.sketch_epochs < 1 or self.convmf_epochs < 1:
            raise ValueError(
                "The random-access benchmark needs frames >= 100 (the 70% training split then "
                f"holds two batches of 25) and epochs >= 1. Got frames={self.frames}, "
                f"epochs {self.sketch_epochs}/{self.convmf_epochs}."
            )


def quick_config(**overrides: Any) -> RandomAccessConfig:
    """A seconds-long configuration for tests: 16x32 frames, rank 3, one epoch each."""
    values: dict[str, Any] = {
        "sizes": ((16, 32),),
        "ranks": (3,),
        "frames": 100,
        "sketch_epochs": 2,
        "sketch_oversample": (5, 2),
        "convmf_epochs": 1,
        "t_end": 10.0,
        "repeats": 3,
        "min_run_time": 0.0,
        "max_case_seconds": 0.5,
    }
    return RandomAccessConfig(**{**values, **overrides})


def split_frames(
    frames: Tensor, split: str, *, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(train, val, test, test_index)`` of time-ordered ``frames`` (T, m, n).

    The test frames come back in a random order (``test_index``: their time indices in that
    order), drawn from ``torch.Generator().manual_seed(seed)``.
    """
    from neuralfactor.data.splits import extrapolation_split, interpolation_split

    if split == "interpolation":
        sp = interpolation_split(frames.shape[0], seed=seed)
    elif split == "extrapolation":
        sp = extrapolation_split(frames.shape[0])
    else:
        raise ValueError(f"The 'split' parameter takes {_SPLITS}. Got {split!r}.")
    g = torch.Generator().manual_seed(seed)
    test = torch.as_tensor(sp.test)[torch.randperm(len(sp.test), generator=g)]
    return frames[torch.as_tensor(sp.train)], frames[torch.as_tensor(sp.val)], frames[test], test


def cheapest_rsvd(X: Tensor, X64: Tensor, rank: int, band: float) -> dict[str, Any]:
    """The cheapest ``rsvd`` (n_iter 0-4, oversample 2/5/10; by flop count) whose worst ratio
    to the optimum over the frames X is <= ``band``; ``missed`` when none is."""
    from neuralfactor.classical import flops
    from neuralfactor.core.factorizer import make_factorizer

    m, n = X.shape[-2:]
    grid = sorted(
        _RSVD_GRID, key=lambda qp: flops("rsvd", m, n, rank, n_iter=qp[0], oversample=qp[1])
    )
    tried = []
    for q, p in grid:
        f = make_factorizer("rsvd", rank=rank, n_iter=q, oversample=p)
        worst = float(ratio_to_optimum(X64, f.factorize(X), rank=rank).max())
        tried.append({"n_iter": q, "oversample": p, "worst_ratio": worst})
        if worst <= band:
            return {"n_iter": q, "oversample": p, "tried": tried, "missed": False}
    return {"n_iter": 4, "oversample": 10, "tried": tried, "missed": True}


def _train(model: str, rank: int, train: Tensor, val: Tensor, epochs: int, seed: int, **kw):
    from neuralfactor.amortized import LearnedFactorizer, train_preset

    lr = kw.pop("lr", None) or default_lr(model)
    settings = train_preset("best", epochs=epochs, lr=lr, seed=seed, device="cpu")
    f = LearnedFactorizer(rank, model=model, settings=settings, model_kwargs=kw).fit(train, val)
    return f, {
        "fit_seconds": f.fit_seconds,
        "train_epochs": epochs,
        "train_lr": lr,
        "train_frames": int(train.shape[0]),
        "train_frames_per_s": epochs * train.shape[0] / f.fit_seconds,
        "weight_bytes": sum(p.numel() * p.element_size() for p in f.model.parameters()),
        "val_metric_last": f.history[-1].get("metric") if f.history else None,
    }


def _rows(config, rank, train, val, X, X64):
    """label -> (factorizer, extra record fields) for one case."""
    import copy

    from neuralfactor.core.factorizer import make_factorizer

    rows: dict[str, tuple[Any, dict[str, Any]]] = {}
    for band in config.bands:
        pick = cheapest_rsvd(X, X64, rank, band)
        label = f"rsvd [n_iter={pick['n_iter']}, oversample={pick['oversample']}]"
        f = make_factorizer("rsvd", rank=rank, n_iter=pick["n_iter"], oversample=pick["oversample"])
        extra = rows.get(label, (f, {"cheapest_for": []}))[1]
        extra["cheapest_for"] = extra["cheapest_for"] + [band] * (not pick["missed"])
        extra["search"] = pick["tried"]
        rows[label] = (f, extra)
    for name in CLASSICAL:
        f = make_factorizer(name, rank=rank)
        rows[name] = (f, {})
        if getattr(f, "requires_fit", False):
            t0 = time.perf_counter()
            f.fit(train)
            rows[name] = (f, {"fit_seconds": time.perf_counter() - t0})
    for i, p in enumerate(config.sketch_oversample):
        ep, lr = config.sketch_epochs, config.sketch_lr
        sk, info = _train("sketch", rank, train, val, ep, config.seed, lr=lr, oversample=p)
        rows["sketch" if i == 0 else f"sketch [oversample={p}]"] = (sk, info)
        if i == 0:
            refined = copy.copy(sk)
            refined.refine, refined.name = "lstsq", "sketch+refine"
            rows["sketch+refine"] = (refined, info)
    cm, cm_info = _train("convmf", rank, train, val, config.convmf_epochs, config.seed)
    cm.refine, cm.name = "lstsq", "convmf+refine"
    rows["convmf+refine"] = (cm, cm_info)
    return rows


def _case(config, m, n, rank, split, frames64) -> list[dict[str, Any]]:
    from neuralfactor.classical import gemm_rate

    train64, val64, X64, index = split_frames(frames64, split, seed=config.seed)
    train, val, X = train64.float(), val64.float(), X64.float().contiguous()
    rows = _rows(config, rank, train, val, X, X64)
    rate = gemm_rate(m, n, min(rank + 5, m, n), min_seconds=max(config.min_run_time, 0.05))
    opt = optimal_scaled_loss(X64, rank)
    recs = measure_many(
        {label: f for label, (f, _) in rows.items()},
        X,
        optimum=opt,
        fit_seconds={
            label: e["fit_seconds"] for label, (_, e) in rows.items() if "fit_seconds" in e
        },
        max_call_seconds=10.0,  # one call: every test frame
        min_rounds=config.repeats,
        min_run_time=config.min_run_time,
        max_seconds=config.max_case_seconds,
    )
    out = []
    for rec in recs:
        extra = rows[rec["label"]][1]
        fl = method_flops(
            rec["method"], m, n, rank, rec["params"].get("model_kwargs") or rec["params"]
        )
        rec.update({k: v for k, v in extra.items() if k != "fit_seconds"})
        rec.update(
            {
                "suite": "random-access",
                "split": split,
                "m": m,
                "n": n,
                "rank": rank,
                "test_frames": int(X.shape[0]),
                "test_time_index_first": int(index[0]),
                **flop_fields(fl, rate, rec["seconds_per_matrix"]),
            }
        )
        out.append(rec)
    return out


def run_random_access(
    config: RandomAccessConfig,
    *,
    command: str = "",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every case of ``config`` on the CPU; return flat records (also passed to
    ``on_record``), each with the simulation, environment and timing conditions and the
    ``command`` that ran it."""
    from neuralfactor.bench.environment import environment
    from neuralfactor.bench.frames import simulate_frames

    env = {
        **environment("cpu"),
        "machine": platform.machine(),
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    records: list[dict[str, Any]] = []
    with pinned_threads(config.threads) as threads:
        for m, n in config.sizes:
            t0 = time.perf_counter()
            frames64, sim = simulate_frames(m, n, config.frames, t_end=config.t_end)
            sim["sim_seconds"] = time.perf_counter() - t0
            for rank in config.ranks:
                for split in config.splits:
                    for rec in _case(config, m, n, rank, split, frames64):
                        rec.update(env)
                        rec.update(sim)
                        rec["threads"] = threads["torch_threads"]
                        rec["config"] = asdict(config)
                        records.append(rec)
                        if on_record is not None:
                            on_record(rec)
    return records
