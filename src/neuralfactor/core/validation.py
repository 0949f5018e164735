"""One place for input checks, so every routine fails with the same style of message.

Messages say what was expected, what was given and, where it helps, what to do. User input is
never checked with ``assert`` (it vanishes under ``python -O``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FLOAT_DTYPES",
    "as_generator",
    "check_finite",
    "check_matrix",
    "check_option",
    "check_positive_float",
    "check_positive_int",
    "check_rank",
    "check_same_device",
    "did_you_mean",
    "parse_ints",
    "parse_list",
    "parse_shape",
    "resolve_device",
]

#: dtypes the factorizers accept; LAPACK-backed code needs float32/float64.
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


def _where(caller: str | None) -> str:
    return f" of {caller}" if caller else ""


def check_matrix(
    X: Any,
    *,
    name: str = "X",
    caller: str | None = None,
    finite: bool = True,
    dtypes: Sequence[torch.dtype] = FLOAT_DTYPES,
    device: torch.device | str | None = None,
) -> Tensor:
    """Validate a matrix or a batch of matrices of shape ``(*, m, n)``; return it as a tensor.

    NumPy arrays are converted with :func:`torch.as_tensor` (no copy when possible). Raises
    ``TypeError`` for a non-array or a non-floating dtype and ``ValueError`` for a wrong
    number of dimensions, an empty matrix or batch, non-finite entries (when ``finite``) or a
    tensor on an unexpected device.
    """
    where = _where(caller)
    if isinstance(X, np.ndarray):
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise TypeError(
                f"The '{name}' parameter{where} must be a real floating array. Got dtype {X.dtype}."
            )
        X = torch.as_tensor(X)
    if not isinstance(X, Tensor):
        raise TypeError(
            f"The '{name}' parameter{where} must be a torch.Tensor or numpy.ndarray of shape "
            f"(*, m, n). Got {type(X).__name__}."
        )
    if X.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(
            f"The '{name}' parameter{where} must have a floating dtype in [{allowed}]. "
            f"Got {str(X.dtype).removeprefix('torch.')}; convert with X.to(torch.float32) or "
            f"X.double()."
        )
    if X.ndim < 2:
        raise ValueError(
            f"The '{name}' parameter{where} must have shape (*, m, n) with at least 2 "
            f"dimensions. Got shape {tuple(X.shape)}."
        )
    m, n = X.shape[-2:]
    if m == 0 or n == 0:
        raise ValueError(
            f"The '{name}' parameter{where} must have non-empty matrices. Got shape "
            f"{tuple(X.shape)} (m={m}, n={n})."
        )
    if X.numel() == 0:
        raise ValueError(
            f"The '{name}' parameter{where} is an empty batch: shape {tuple(X.shape)}. "
            f"Pass at least one matrix."
        )
    if device is not None and X.device != torch.device(device):
        raise ValueError(
            f"The '{name}' parameter{where} is on device {X.device}, expected {device}. "
            f"Move it with .to({str(device)!r})."
        )
    if finite:
        check_finite(X, name=name, caller=caller)
    return X


def check_finite(X: Tensor, *, name: str = "X", caller: str | None = None) -> None:
    """Raise ``ValueError`` naming the first matrix of a batch that holds NaN or Inf."""
    # Fast path: one min/max reduction, no boolean copy of X (NaN propagates through both,
    # +-Inf shows in one of them); the per-entry mask is built only to locate a bad matrix.
    if X.numel() == 0:
        return
    if X.is_floating_point():
        lo, hi = torch.aminmax(X)
        if bool(torch.isfinite(lo) & torch.isfinite(hi)):
            return
    bad = ~torch.isfinite(X)
    if bool(bad.any()):
        where = _where(caller)
        if X.ndim > 2:
            per = bad.reshape(-1, *X.shape[-2:]).flatten(1).any(dim=1)
            idx = int(torch.nonzero(per)[0])
            first = np.unravel_index(idx, tuple(X.shape[:-2]))
            loc = f" (first at batch index {tuple(int(i) for i in first)})"
        else:
            loc = ""
        kind = "NaN" if bool(torch.isnan(X).any()) else "Inf"
        raise ValueError(
            f"The '{name}' parameter{where} contains {kind}{loc}; every entry must be finite."
        )


def check_rank(
    rank: Any, shape: Sequence[int], *, caller: str | None = None, name: str = "rank"
) -> int:
    """Check ``1 <= rank <= min(m, n)`` for matrices of trailing shape ``(m, n)``."""
    m, n = int(shape[-2]), int(shape[-1])
    k = min(m, n)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise TypeError(
            f"The '{name}' parameter{_where(caller)} must be an int in [1, min(m, n)={k}]. "
            f"Got {rank!r} of type {type(rank).__name__}."
        )
    rank = int(rank)
    if not 1 <= rank <= k:
        raise ValueError(
            f"The '{name}' parameter{_where(caller)} must be an int in [1, min(m, n)={k}] for "
            f"{m}x{n} matrices. Got {rank}."
        )
    return rank


def check_positive_int(
    value: Any, *, name: str, caller: str | None = None, minimum: int = 1
) -> int:
    """Check an integer parameter ``>= minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"The '{name}' parameter{_where(caller)} must be an int >= {minimum}. Got {value!r}."
        )
    if value < minimum:
        raise ValueError(
            f"The '{name}' parameter{_where(caller)} must be an int >= {minimum}. Got {value}."
        )
    return int(value)


def did_you_mean(value: Any, allowed: Iterable[str]) -> str:
    """``" Did you mean 'rsvd'?"`` for a near miss among ``allowed`` (difflib), else ``""``.

    Appended to every "unknown name" error (factorizers, models, options) so a typo names its
    fix.
    """
    import difflib

    if not isinstance(value, str):
        return ""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
    if not close:  # a case slip ("SVD") or a prefix ("rsvd-g")
        low = {a.lower(): a for a in allowed}
        close = [low[value.lower()]] if value.lower() in low else []
        close = close or [a for a in allowed if value and a.startswith(value)][:1]
    return f" Did you mean {close[0]!r}?" if close else ""


def check_option(
    value: Any, allowed: Iterable[str], *, name: str, caller: str | None = None
) -> str:
    """Check that ``value`` is one of the allowed strings (defined once as a ``Literal``)."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(
            f"The '{name}' parameter{_where(caller)} must be one of {allowed}. Got {value!r}."
            + did_you_mean(value, allowed)
        )
    return value


def check_same_device(*tensors: Tensor, names: Sequence[str], caller: str | None = None) -> None:
    """Raise ``ValueError`` when tensors live on different devices."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        desc = ", ".join(f"{n} on {t.device}" for n, t in zip(names, tensors, strict=True))
        raise ValueError(f"Tensors{_where(caller)} must be on one device. Got {desc}.")


def as_generator(
    seed: int | torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Generator:
    """Turn a seed (or ``None``, meaning fresh entropy) into an explicit ``torch.Generator``.

    An existing generator is returned unchanged when it is on ``device``. The global RNG is
    never used.
    """
    device = torch.device(device)
    if isinstance(seed, torch.Generator):
        if seed.device.type != device.type:
            raise ValueError(
                f"The generator is on {seed.device} but the data is on {device}; create it with "
                f"torch.Generator(device={str(device)!r})."
            )
        return seed
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"A seed must be an int, a torch.Generator or None. Got {seed!r}.")
        g.manual_seed(int(seed) % (2**63))
    return g


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; ``'cuda'`` without a GPU is an error."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got {device!r}."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "The 'device' parameter is 'cuda' but no CUDA device is available; use "
            "--device cpu or --device auto."
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got {device!r}.")
    return dev


def check_positive_float(
    value: Any, *, name: str, caller: str | None = None, allow_zero: bool = False
) -> float:
    """Check a finite real number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):
        raise TypeError(
            f"The '{name}' parameter{_where(caller)} must be a finite number. Got {value!r}."
        )
    value = float(value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"The '{name}' parameter{_where(caller)} must be {bound}. Got {value}.")
    return value


def parse_list(text: str, name: str, item: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """``'a, b,,c'`` -> ``(item('a'), item('b'), item('c'))``: the one parser of the command line's
    comma-separated lists (items stripped, empty items skipped).

    ``item`` converts one item (``int``, ``float``, ``str``, :func:`parse_shape`, ...); a
    ``ValueError`` or ``TypeError`` from it becomes one ``ValueError`` naming the option ``name``
    and the bad item.
    """
    if not isinstance(text, str):
        raise TypeError(f"The '{name}' option takes a comma-separated list. Got {text!r}.")
    out = []
    for raw in text.split(","):
        v = raw.strip()
        if not v:
            continue
        try:
            out.append(item(v))
        except (TypeError, ValueError):
            kind = _LIST_KINDS.get(item, f"comma-separated {getattr(item, '__name__', '')} items")
            raise ValueError(f"The '{name}' option takes {kind}. Got {v!r} in {text!r}.") from None
    return tuple(out)


def parse_shape(text: str) -> tuple[int, int]:
    """``'128x256'`` -> ``(128, 256)`` (positive ints); ``ValueError`` otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise ValueError(f"expected MxN, e.g. 128x256. Got {text!r}.")
    m, n = (int(p) for p in parts)
    if m < 1 or n < 1:
        raise ValueError(f"expected positive MxN, e.g. 128x256. Got {text!r}.")
    return m, n


#: how :func:`parse_list`'s messages describe the items of its known converters
_LIST_KINDS: dict[Callable[[str], Any], str] = {
    int: "comma-separated integers such as '4,8,12'",
    float: "comma-separated numbers such as '0.5,1e-3'",
    parse_shape: "MxN sizes, comma-separated, such as '128x256,64x128'",
}


def parse_ints(text: str, name: str) -> tuple[int, ...]:
    """``'4,8'`` -> ``(4, 8)``: :func:`parse_list` with integer items."""
    return parse_list(text, name, int)
