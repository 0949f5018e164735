"""``neuralfactor approx INPUT --rank K|auto --method ...``: low-rank approximation of one matrix.

INPUT is a ``.npy``, ``.csv``/``.txt``, ``.png``/``.jpg``/``.jpeg`` file or a gallery name
(:mod:`neuralfactor.data.gallery`). Prints the relative Frobenius and 2-norm errors of the
method and of the truncated SVD at the same rank, the ratio to the optimum and the rank check;
``--plot`` saves original / SVD / method side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["BUILTIN_METHODS", "load_input", "register", "run_approx"]

#: Methods handled here; any other registered factorizer name is accepted too.
BUILTIN_METHODS: tuple[str, ...] = ("svd", "rsvd", "matvec-ae", "nmf", "sparse-nmf", "svt")
CHANNELS: tuple[str, ...] = ("red", "green", "blue", "gray")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"The '--param' option must look like key=value. Got {item!r}.")
        key, val = item.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(val)
                break
            except ValueError:
                continue
        else:
            out[key] = val
    return out


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
    """Approximate ``A`` (m, n) and measure it: ``(record, method LowRank, SVD LowRank)``."""
    import time

    import torch

    from neuralfactor.classical.toolkit import select_rank, sparse_nmf, svt
    from neuralfactor.core.factorizer import available_factorizers, make_factorizer
    from neuralfactor.core.lowrank import LowRank
    from neuralfactor.core.metrics import (
        effective_rank,
        ratio_to_optimum,
        relative_spectral_error,
        scaled_loss,
    )
    from neuralfactor.core.validation import did_you_mean

    X = torch.as_tensor(A, dtype=torch.float64)
    m, n = X.shape
    limit = min(m, n) - 1
    if limit < 1:
        raise ValueError(f"approx needs a matrix with min(m, n) >= 2. Got {m}x{n}.")
    chosen_by = "user"
    if rank == "auto":
        rank = min(select_rank(X, rank_method, sigma=sigma), limit)
        chosen_by = rank_method
    else:
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
    known = sorted(set(BUILTIN_METHODS) | set(available_factorizers()))
    if method not in known:
        raise ValueError(
            f"The '--method' option must be one of {known}. Got {method!r}."
            + did_you_mean(method, known)
        )
    f = None
    if method not in ("svd", "svt", "sparse-nmf", "matvec-ae"):  # built and checked up front
        f = make_factorizer(method, rank=rank, **({"seed": seed} if method == "nmf" else {}))
        if getattr(f, "requires_fit", False):
            raise ValueError(
                f"--method {method} is data-driven: it must be trained on many frames before it "
                f"can factorize one matrix, which approx cannot do. Train it with `neuralfactor "
                f"train` and apply it with `neuralfactor factorize --model RUN/model`, or choose "
                f"a method that needs no training (svd, rsvd, svds-arpack, nmf, ...)."
            )
    t_ref = time.perf_counter()
    ref = _svd(X, rank)
    svd_seconds = time.perf_counter() - t_ref  # the baseline's time, measured in the same run
    t0 = time.perf_counter()
    extra: dict[str, Any] = {"svd_seconds": svd_seconds}
    if method == "svd":
        lr = ref
    elif method == "svt":
        s = torch.linalg.svdvals(X)
        t = float(s[rank]) if tau is None else float(tau)
        full = svt(X, t)
        lr = LowRank(full.U[:, :rank], full.V[:rank], full.S[:rank])
        extra["tau"] = t
    elif method == "sparse-nmf":
        lr = sparse_nmf(X, rank, seed=seed)
    elif method == "matvec-ae":
        f = make_factorizer("matvec-ae", rank=rank, seed=seed, progress=progress)
        lr = f.fit(X).factorize(X)
        extra.update(
            n_matvecs=f.result_.n_matvecs,
            steps=f.result_.loop.steps_done,
            optimality_check=f.result_.optimal,
        )
    else:
        lr = f.factorize(X)
    seconds = svd_seconds if method == "svd" else time.perf_counter() - t0
    rec = {
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
        "seconds": seconds,
        **extra,
    }
    return rec, lr, ref


def _plot(path: str, A: Any, ref: Any, lr: Any, rec: dict[str, Any]) -> None:
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


def register(app: typer.Typer) -> None:
    """Add the ``approx`` command to the CLI."""

    @app.command("approx")
    def approx(
        input: str = typer.Argument(..., help="A .npy/.csv/.png/.jpg file or a gallery name."),
        rank: str = typer.Option("auto", "--rank", "-k", help="Target rank K, or 'auto'."),
        method: str = typer.Option(
            "svd", "--method", "-m", help=f"One of {', '.join(BUILTIN_METHODS)} or any factorizer."
        ),
        rank_method: str = typer.Option(
            "gavish-donoho", "--rank-method", help="For --rank auto: gavish-donoho|aic|gap."
        ),
        sigma: float | None = typer.Option(None, "--sigma", help="Known noise level (auto rank)."),
        tau: float | None = typer.Option(None, "--tau", help="svt threshold (default s_{K+1})."),
        channel: str | None = typer.Option(
            None, "--channel", help="For color images: red|green|blue|gray."
        ),
        param: list[str] = typer.Option(
            [], "--param", help="Gallery parameter key=value (repeatable), e.g. size=256."
        ),
        plot: Path | None = typer.Option(None, "--plot", help="Save original/SVD/method image."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the record as JSON."),
        seed: int = typer.Option(0, "--seed", help="Seed for randomized/learned methods."),
    ) -> None:
        """Low-rank approximation of one matrix, measured against the truncated SVD."""
        from neuralfactor.classical.toolkit import RANK_METHODS
        from neuralfactor.cli import console, state
        from neuralfactor.core.validation import check_option, check_positive_float
        from neuralfactor.io import write_json

        check_option(rank_method, RANK_METHODS, name="--rank-method", caller="approx")
        if sigma is not None:
            check_positive_float(sigma, name="--sigma", caller="approx")
        if tau is not None:
            check_positive_float(tau, name="--tau", caller="approx", allow_zero=True)
        A = load_input(input, channel=channel, params=_parse_params(param))
        rec, lr, ref = run_approx(
            A,
            rank,
            method,
            rank_method=rank_method,
            sigma=sigma,
            tau=tau,
            seed=seed,
            progress=not state["quiet"],
        )
        rec["input"] = input
        head = f"{'method':<16}{'rel. Frobenius':>16}{'rel. 2-norm':>14}{'ratio to SVD loss':>19}"
        lines = [
            f"{input}: {rec['m']}x{rec['n']}, rank {rec['rank']} (chosen by "
            f"{rec['rank_chosen_by']})",
            head + f"{'effective rank':>16}{'seconds':>10}",
            f"{rec['method']:<16}{rec['rel_fro']:>16.6g}{rec['rel_2']:>14.6g}"
            f"{rec['ratio_to_optimum']:>19.6g}{rec['effective_rank']:>16d}{rec['seconds']:>10.3g}",
            f"{'svd (optimum)':<16}{rec['svd_rel_fro']:>16.6g}{rec['svd_rel_2']:>14.6g}"
            f"{1:>19d}{rec['rank']:>16d}",
        ]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if rec["effective_rank"] < rec["rank"]:
            console.print(
                f"rank check: the {method} approximation has numerical rank "
                f"{rec['effective_rank']} < {rec['rank']}."
            )
        if plot is not None:
            _plot(str(plot), A, ref, lr, rec)
            console.print(f"saved {plot}")
        if json_out is not None:
            write_json(json_out, rec)
