"""Low-rank approximation of one matrix, measured against the truncated SVD.

:func:`approx_run` is the pipeline behind ``neuralfactor approx``: read the input
(:func:`load_input`: a ``.npy``, ``.csv``/``.txt`` or image file, or a gallery matrix of
:mod:`neuralfactor.data.gallery`), choose the rank (given, or by a rank selector of
:mod:`neuralfactor.classical.toolkit`), approximate with the chosen method
(:func:`run_approx`: the SVD, singular value thresholding, sparse NMF, the matvec autoencoder
or any registered factorizer) and measure the result against the truncated SVD at the same
rank (relative Frobenius and 2-norm errors, ratio to the Eckart-Young optimum, numerical
rank, seconds per call: median of interleaved rounds with the SVD). Optionally writes a
side-by-side image and the record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUILTIN_METHODS",
    "CHANNELS",
    "ApproxConfig",
    "ApproxResult",
    "approx_run",
    "load_input",
    "plot_approx",
    "run_approx",
]

#: Methods handled here; any other registered factorizer name is accepted too.
BUILTIN_METHODS: tuple[str, ...] = ("svd", "rsvd", "matvec-ae", "nmf", "sparse-nmf", "svt")
CHANNELS: tuple[str, ...] = ("red", "green", "blue", "gray")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Built and checked when applied (not through the registry up front).
_APPLIED_LATE = ("svd", "svt", "sparse-nmf", "matvec-ae")


@dataclass(frozen=True)
class ApproxConfig:
    """One ``approx`` job.

    Parameters
    ----------
    input : a ``.npy``/``.csv``/``.txt``/image file or a gallery name.
    rank : the target rank, or ``"auto"`` (chosen by ``rank_method``).
    method : one of :data:`BUILTIN_METHODS` or any registered factorizer name.
    rank_method : rank selector for ``rank="auto"`` (``gavish-donoho``, ``aic``, ``gap``).
    sigma : known noise level for the rank selector.
    tau : threshold of ``svt`` (default the (rank+1)-th singular value).
    channel : for color images, ``red``, ``green``, ``blue`` or ``gray``.
    params : parameters of a gallery matrix (e.g. ``{"size": 256}``).
    seed : seed of randomized and learned methods.
    plot : write original / SVD / method side by side to this image file.
    json_out : write the record as JSON to this file.
    """

    input: str
    rank: int | str = "auto"
    method: str = "svd"
    rank_method: str = "gavish-donoho"
    sigma: float | None = None
    tau: float | None = None
    channel: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    plot: Path | None = None
    json_out: Path | None = None


@dataclass(frozen=True)
class ApproxResult:
    """What :func:`approx_run` measured: the flat ``record`` (errors, ratio, rank check,
    seconds; ``input`` included), the method's and the SVD's :class:`LowRank`, the matrix."""

    record: dict[str, Any]
    approximation: Any
    optimum: Any
    matrix: Any


def _image_to_matrix(img: Any, source: str, channel: str | None) -> Any:
    import numpy as np

    arr = np.asarray(img)
    if arr.dtype.kind in "ui":
        arr = arr / float(np.iinfo(arr.dtype).max)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if channel is None:
            raise ValueError(
                f"INPUT {source!r} is a color image ({arr.shape[0]}x{arr.shape[1]}x"
                f"{arr.shape[2]}) but approx needs one matrix: choose a channel with "
                f"--channel red|green|blue|gray."
            )
        if channel == "gray":
            from skimage.color import rgb2gray

            return rgb2gray(arr[..., :3])
        return arr[..., CHANNELS.index(channel)]
    if channel not in (None, "gray"):
        raise ValueError(f"INPUT {source!r} is grayscale: it has no {channel!r} channel.")
    return arr


def load_input(
    source: str, *, channel: str | None = None, params: dict[str, Any] | None = None
) -> Any:
    """Read INPUT into a float64 ``(m, n)`` ndarray (see the module docstring).

    Raises ``FileNotFoundError`` for a missing file that is not a gallery name and
    ``ValueError`` naming the file for unreadable, non-numeric, non-2-D or non-finite data.
    """
    import numpy as np
    import scipy.sparse as sp

    from neuralfactor.data.gallery import GALLERY, available_matrices, get_matrix

    if channel is not None and channel not in CHANNELS:
        raise ValueError(
            f"The '--channel' option must be one of {list(CHANNELS)}. Got {channel!r}."
        )
    path = Path(source)
    if source in GALLERY and not path.exists():
        params = dict(params or {})
        if channel is not None and source == "astronaut":
            params.setdefault("channel", channel)
        A = get_matrix(source, **params)
        A = A.toarray() if sp.issparse(A) else A
    elif not path.exists():
        raise FileNotFoundError(
            f"INPUT {source!r} is neither an existing file nor a gallery matrix "
            f"(gallery: {available_matrices()})."
        )
    else:
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                A = np.load(path, allow_pickle=False)
            elif suffix in (".csv", ".txt"):
                A = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
            elif suffix in _IMAGE_SUFFIXES:
                from skimage import io

                A = io.imread(path)
            else:
                raise ValueError(
                    f"INPUT {source!r} has an unsupported extension {suffix!r}; use .npy, "
                    f".csv, .txt, .png or .jpg."
                )
        except ValueError as exc:
            if "unsupported extension" in str(exc):
                raise
            raise ValueError(f"INPUT {source!r} could not be read as numbers: {exc}") from None
        except OSError as exc:
            raise ValueError(f"INPUT {source!r} could not be read: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - image decoders raise many types
            raise ValueError(
                f"INPUT {source!r} could not be read ({type(exc).__name__}: {exc})"
            ) from None
        if suffix in _IMAGE_SUFFIXES:
            A = _image_to_matrix(A, source, channel)
    A = np.asarray(A)
    if A.dtype.kind not in "fiub":
        raise ValueError(f"INPUT {source!r} is not numeric (dtype {A.dtype}).")
    if A.ndim == 3 and A.shape[-1] in (3, 4):
        A = _image_to_matrix(A, source, channel)
    if A.ndim != 2:
        raise ValueError(f"INPUT {source!r} must hold one matrix (2-D). Got shape {A.shape}.")
    A = A.astype(np.float64)
    if not np.isfinite(A).all():
        raise ValueError(f"INPUT {source!r} contains NaN or Inf entries.")
    return A


def _svd(A: Any, k: int) -> Any:
    import torch

    from neuralfactor.core.lowrank import LowRank

    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    return LowRank(U[:, :k].contiguous(), Vh[:k].contiguous(), S[:k].contiguous())


def _choose_rank(X: Any, rank: int | str, rank_method: str, sigma: float | None):
    """``(rank, chosen by)``: a given rank checked against ``[1, min(m, n) - 1]``, or the
    rank selector's choice for ``"auto"``."""
    from neuralfactor.classical.toolkit import select_rank

    m, n = X.shape
    limit = min(m, n) - 1
    if limit < 1:
        raise ValueError(f"approx needs a matrix with min(m, n) >= 2. Got {m}x{n}.")
    if rank == "auto":
        return min(select_rank(X, rank_method, sigma=sigma), limit), rank_method
    try:
        rank = int(rank)
    except (TypeError, ValueError):
        raise ValueError(
            f"The '--rank' option must be 'auto' or an int in [1, min(m, n) - 1={limit}]. "
            f"Got {rank!r}."
        ) from None
    if not 1 <= rank <= limit:
        raise ValueError(
            f"The '--rank' option must be 'auto' or an int in [1, min(m, n) - 1={limit}] "
            f"for a {m}x{n} matrix (rank >= min(m, n) is no approximation). Got {rank}."
        )
    return rank, "user"


def _factorizer(method: str, rank: int, seed: int) -> Any:
    """The registered factorizer of ``method`` (None for the methods applied late), refusing
    an unknown name and a data-driven one before any work."""
    from neuralfactor.core.factorizer import available_factorizers, make_factorizer
    from neuralfactor.core.validation import did_you_mean

    known = sorted(set(BUILTIN_METHODS) | set(available_factorizers()))
    if method not in known:
        raise ValueError(
            f"The '--method' option must be one of {known}. Got {method!r}."
            + did_you_mean(method, known)
        )
    if method in _APPLIED_LATE:
        return None
    f = make_factorizer(method, rank=rank, **({"seed": seed} if method == "nmf" else {}))
    if getattr(f, "requires_fit", False):
        raise ValueError(
            f"--method {method} is data-driven: it must be trained on many frames before it "
            f"can factorize one matrix, which approx cannot do. Train it with `neuralfactor "
            f"train` and apply it with `neuralfactor factorize --model RUN/model`, or choose "
            f"a method that needs no training (svd, rsvd, svds-arpack, nmf, ...)."
        )
    return f


def _apply(method: str, f: Any, X: Any, rank: int, ref: Any, *, tau, seed, progress):
    """``(LowRank, extra record fields)`` of ``method`` on ``X``."""
    import torch

    from neuralfactor.classical.toolkit import sparse_nmf, svt
    from neuralfactor.core.factorizer import make_factorizer
    from neuralfactor.core.lowrank import LowRank

    if method == "svd":
        return ref, {}
    if method == "svt":
        s = torch.linalg.svdvals(X)
        t = float(s[rank]) if tau is None else float(tau)
        full = svt(X, t)
        return LowRank(full.U[:, :rank], full.V[:rank], full.S[:rank]), {"tau": t}
    if method == "sparse-nmf":
        return sparse_nmf(X, rank, seed=seed), {}
    if method == "matvec-ae":
        f = make_factorizer("matvec-ae", rank=rank, seed=seed, progress=progress)
        lr = f.fit(X).factorize(X)
        res = f.result_
        return lr, {"n_matvecs": res.n_matvecs, "steps": res.loop.steps_done,
                    "optimality_check": res.optimal}  # fmt: skip
    return f.factorize(X), {}


#: Methods whose call is a training run: timed once (its wall time), not in repeated rounds.
TRAINED = frozenset({"matvec-ae"})


def _time_against_svd(method, f, X, rank, ref, *, tau, seed) -> tuple[dict[str, Any], Any]:
    """Median and quartiles of the SVD's and the method's seconds per call, interleaved, and
    the method's last ``(LowRank, extra)`` (None for the SVD itself and for a method that
    trains: neither is called here)."""
    from neuralfactor.core.timing import time_interleaved

    calls = {"svd": lambda: _svd(X, rank)}
    if method not in TRAINED and method != "svd":
        calls["method"] = lambda: _apply(
            method, f, X, rank, ref, tau=tau, seed=seed, progress=False
        )
    res = time_interleaved(calls, min_rounds=3, max_seconds=5.0)
    svd, me = res.stats["svd"], res.stats.get("method", res.stats["svd"])
    timing = {
        "seconds": me.median, "seconds_q25": me.q25, "seconds_q75": me.q75,
        "svd_seconds": svd.median, "svd_seconds_q25": svd.q25, "svd_seconds_q75": svd.q75,
        "timing": f"interleaved with the SVD, {res.rounds} rounds (median, quartiles)",
    }  # fmt: skip
    return timing, res.results.get("method")


def run_approx(
    A: Any,
    rank: int | str,
    method: str = "svd",
    *,
    rank_method: str = "gavish-donoho",
    sigma: float | None = None,
    tau: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Any], Any, Any]:
    """Approximate ``A`` (m, n) and measure it: ``(record, method LowRank, SVD LowRank)``.

    ``rank`` is an int in ``[1, min(m, n) - 1]`` or ``"auto"``; the SVD of the same rank is
    computed in the same run and timed with the method in interleaved rounds by the harness
    (:func:`neuralfactor.core.timing.time_interleaved`: median and quartiles of at least 3
    rounds). A method that trains (``matvec-ae``) is timed by its one training run instead.
    """
    import torch

    from neuralfactor.core.metrics import (
        effective_rank,
        ratio_to_optimum,
        relative_spectral_error,
        scaled_loss,
    )

    X = torch.as_tensor(A, dtype=torch.float64)
    m, n = X.shape
    rank, chosen_by = _choose_rank(X, rank, rank_method, sigma)
    f = _factorizer(method, rank, seed)
    ref = _svd(X, rank)
    timing, result = _time_against_svd(method, f, X, rank, ref, tau=tau, seed=seed)
    if result is None:  # the SVD itself (ref), or a method that trains: called once
        t0 = time.perf_counter()  # a training run's wall time, not a repeated timing
        result = _apply(method, f, X, rank, ref, tau=tau, seed=seed, progress=progress)
        if method in TRAINED:
            timing.update(seconds=time.perf_counter() - t0, seconds_q25=None,
                          seconds_q75=None, timing="one training run (wall time)")  # fmt: skip
    lr, extra = result
    return (
        {
            "method": method,
            "m": m,
            "n": n,
            "rank": rank,
            "rank_chosen_by": chosen_by,
            "rel_fro": float(scaled_loss(X, lr).sqrt()),
            "rel_2": float(relative_spectral_error(X, lr)),
            "svd_rel_fro": float(scaled_loss(X, ref).sqrt()),
            "svd_rel_2": float(relative_spectral_error(X, ref)),
            "ratio_to_optimum": float(ratio_to_optimum(X, lr, rank)),
            "effective_rank": int(effective_rank(lr, rtol=1e-8)),
            **timing,
            **extra,
        },
        lr,
        ref,
    )


def plot_approx(path: str, A: Any, ref: Any, lr: Any, rec: dict[str, Any]) -> None:
    """Original / rank-k SVD / method side by side (gray, shared color scale) to ``path``."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralfactor.io import atomic_write_bytes

    panels = [
        ("original", A),
        (f"SVD rank {rec['rank']} (rel. F {rec['svd_rel_fro']:.3g})", ref.reconstruct().numpy()),
        (f"{rec['method']} (rel. F {rec['rel_fro']:.3g})", lr.reconstruct().numpy()),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    vmin, vmax = float(A.min()), float(A.max())
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    fig.savefig(buf, format=fmt, dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def approx_run(config: ApproxConfig, *, progress: bool = False) -> ApproxResult:
    """Run one ``approx`` job (see the module docstring): check the options, read the input,
    approximate and measure, then write the plot and the JSON record when asked.

    Raises
    ------
    ValueError
        a bad option, an unreadable or non-numeric input, a rank out of range, an unknown or
        data-driven method.
    FileNotFoundError
        an input that is neither a file nor a gallery matrix.
    """
    from neuralfactor.classical.toolkit import RANK_METHODS
    from neuralfactor.core.validation import check_option, check_positive_float
    from neuralfactor.io import write_json

    c = config
    check_option(c.rank_method, RANK_METHODS, name="--rank-method", caller="approx")
    if c.sigma is not None:
        check_positive_float(c.sigma, name="--sigma", caller="approx")
    if c.tau is not None:
        check_positive_float(c.tau, name="--tau", caller="approx", allow_zero=True)
    A = load_input(c.input, channel=c.channel, params=c.params)
    rec, lr, ref = run_approx(
        A, c.rank, c.method, rank_method=c.rank_method, sigma=c.sigma, tau=c.tau, seed=c.seed,
        progress=progress,
    )  # fmt: skip
    rec["input"] = c.input
    if c.plot is not None:
        plot_approx(str(c.plot), A, ref, lr, rec)
    if c.json_out is not None:
        write_json(c.json_out, rec)
    return ApproxResult(rec, lr, ref, A)
