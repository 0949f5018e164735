"""Checkpoints: weights in safetensors (never pickle) beside a JSON file describing them.

A checkpoint is a directory::

    ckpt/
      weights.safetensors   model tensors (and, for resumable checkpoints, optimizer tensors)
      meta.json             model class, init args, training config/state, data fingerprint,
                            package version, tensor checksums

Both files are written through a temporary directory renamed into place, so an interrupted
write never leaves a checkpoint that looks complete. Loading checks the class, the init
arguments and the shapes before any weight is copied, and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neuralfactor.io import atomic_dir, read_json, write_json

__all__ = [
    "CheckpointError",
    "class_path",
    "load_checkpoint",
    "load_model",
    "load_state",
    "restore_optimizer",
    "save_checkpoint",
    "stream_fingerprint",
    "tensor_fingerprint",
]

WEIGHTS = "weights.safetensors"
META = "meta.json"
FORMAT = "neuralfactor-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match what the caller expects."""


def class_path(obj_or_cls: Any) -> str:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return f"{cls.__module__}:{cls.__qualname__}"


def tensor_fingerprint(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (CPU, contiguous), for data and weight fingerprints."""
    return stream_fingerprint(tuple(t.shape), t.dtype, [t])


def stream_fingerprint(
    shape: tuple[int, ...], dtype: torch.dtype, chunks: Iterable[torch.Tensor]
) -> str:
    """:func:`tensor_fingerprint` of the tensor of ``shape`` and ``dtype`` whose leading-axis
    pieces are ``chunks``, in order, without holding it whole (a split read from a store)."""
    h = hashlib.sha256()
    h.update(str(tuple(shape)).encode())
    h.update(str(dtype).encode())
    for chunk in chunks:
        data = chunk.detach().to(device="cpu", dtype=dtype).contiguous()
        h.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return h.hexdigest()


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (safetensors) and JSON-able scalars.

    Per-parameter values may be tensors, numbers, or lists/tuples of tensors (L-BFGS keeps its
    history as lists); each tensor is stored under its own key and referenced from the JSON.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}

    def put(key: str, val: Any) -> Any:
        if isinstance(val, torch.Tensor):
            tensors[key] = val.detach().contiguous()
            return {"tensor": key}
        if isinstance(val, (list, tuple)):
            return {"list": [put(f"{key}.{i}", v) for i, v in enumerate(val)]}
        return val

    for pid, pstate in state["state"].items():
        scalars["state"][str(pid)] = {k: put(f"optim.{pid}.{k}", v) for k, v in pstate.items()}
    return tensors, scalars


def _unflatten_optimizer(scalars: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict:
    def get(v: Any) -> Any:
        if isinstance(v, dict) and "tensor" in v:
            return tensors[v["tensor"]]
        if isinstance(v, dict) and "list" in v:
            return [get(x) for x in v["list"]]
        return v

    state = {
        int(pid): {k: get(v) for k, v in entry.items()} for pid, entry in scalars["state"].items()
    }
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    init_args: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    train_state: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``model`` (and optionally optimizer/RNG state) atomically to directory ``path``.

    ``init_args`` must be JSON-serializable and rebuild the model as ``cls(**init_args)``.
    ``extra_tensors`` holds e.g. RNG states (``torch.Generator.get_state()``) for exact resume.
    """
    from neuralfactor import __version__

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    optim_meta = None
    if optimizer is not None:
        opt_t, optim_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_t)
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().contiguous()
    cpu = {k: v.to("cpu") for k, v in tensors.items()}
    info = {
        "format": FORMAT,
        "model_class": class_path(model),
        "init_args": init_args,
        "shapes": {k: list(v.shape) for k, v in cpu.items() if k.startswith("model.")},
        "optimizer": optim_meta,
        "optimizer_class": class_path(optimizer) if optimizer is not None else None,
        "train_state": train_state or {},
        "version": __version__,
        "torch_version": torch.__version__,
        "weights_sha256": None,
    }
    clash = sorted(set(meta or {}) & set(info))
    if clash:
        raise ValueError(f"save_checkpoint: meta keys {clash} are reserved; rename them.")
    info.update(meta or {})
    with atomic_dir(path, overwrite=overwrite) as tmp:
        save_file(cpu, str(tmp / WEIGHTS))
        info["weights_sha256"] = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
        write_json(tmp / META, info)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, verify: bool = True) -> tuple[dict, dict]:
    """Read ``(meta, tensors)`` from a checkpoint directory, refusing anything suspicious.

    Raises :class:`CheckpointError` for a missing file, a foreign format, a checksum mismatch
    (truncated or tampered weights) or a weights file that safetensors cannot parse. Pickle
    files are never opened.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is not a checkpoint directory (expected {WEIGHTS} and {META})."
        )
    for name in (WEIGHTS, META):
        if not (path / name).is_file():
            raise CheckpointError(f"Checkpoint {path} is incomplete: {name} is missing.")
    try:
        meta = read_json(path / META)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META} is not a neuralfactor checkpoint (format {FORMAT}).")
    raw = (path / WEIGHTS).read_bytes()
    if verify and meta.get("weights_sha256") != hashlib.sha256(raw).hexdigest():
        raise CheckpointError(
            f"{path / WEIGHTS} does not match the checksum in {META}: the file is truncated or was "
            f"modified."
        )
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path / WEIGHTS} cannot be read as safetensors: {exc}.") from None
    return meta, tensors


def _resolve_class(spec: Any, allowed_prefix: str = "neuralfactor.") -> type:
    """Import the model class a checkpoint names: only ``torch.nn.Module`` subclasses inside
    the package, so a tampered ``meta.json`` cannot make loading call an arbitrary function
    (e.g. ``neuralfactor.io:write_json``) with arguments of its choosing."""
    if not isinstance(spec, str) or ":" not in spec:
        raise CheckpointError(
            f"Checkpoint names model class {spec!r}; expected 'module:Class' (corrupt meta.json)."
        )
    module, _, qual = spec.partition(":")
    if not module.startswith(allowed_prefix):
        raise CheckpointError(
            f"Checkpoint names model class {spec!r}, outside {allowed_prefix}*; refusing to import it."
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise CheckpointError(
            f"Checkpoint names model class {spec!r}, which does not exist in this version of "
            f"neuralfactor."
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise CheckpointError(
            f"Checkpoint names {spec!r} as its model class, but that is not a torch.nn.Module; "
            f"refusing to call it."
        )
    return obj


def _build(cls: type, init_args: Any, path: Path, spec: str, device: str | None) -> Any:
    """``cls(**init_args)`` with a CheckpointError for arguments that do not fit."""
    if not isinstance(init_args, dict):
        raise CheckpointError(f"Checkpoint {path}: init_args must be a JSON object (corrupt).")
    try:
        if device is None:
            return cls(**init_args)
        with torch.device(device):
            return cls(**init_args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"Checkpoint {path}: {spec} cannot be built from its init_args {init_args!r}: {exc}"
        ) from None


def load_model(
    path: str | os.PathLike,
    *,
    expected_class: type | None = None,
    expected_args: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model stored at ``path``: ``cls(**init_args)`` then load its weights.

    ``expected_class`` / ``expected_args`` make a mismatch (another model, another shape or
    rank) a clear :class:`CheckpointError` instead of a shape error deep inside torch.
    """
    meta, tensors = load_checkpoint(path)
    path = Path(path)
    spec = meta.get("model_class")
    if not isinstance(meta.get("init_args"), dict):
        raise CheckpointError(f"Checkpoint {path}: meta.json has no init_args object (corrupt).")
    if expected_class is not None and spec != class_path(expected_class):
        raise CheckpointError(
            f"Checkpoint {path} holds a {spec}, not a {class_path(expected_class)}."
        )
    for key, want in (expected_args or {}).items():
        got = meta["init_args"].get(key)
        if got != want:
            raise CheckpointError(
                f"Checkpoint {path} was made with {key}={got!r}, but {key}={want!r} was expected."
            )
    cls = _resolve_class(spec)
    # Build on the meta device first (no memory): shapes declared by init_args are checked
    # against the tensors actually in the file before anything is allocated, so a tampered
    # init_args (say m = n = 10^5) is refused instead of allocating terabytes.
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        shell = _build(cls, meta["init_args"], path, spec, "meta")
    except Exception:  # noqa: BLE001 - bad args or a constructor needing real data: see below
        shell = None
    if shell is not None:
        _check_state(shell.state_dict(), state, path, spec)
    model = _build(cls, meta["init_args"], path, spec, None)
    own = model.state_dict()
    _check_state(own, state, path, spec)
    # assign: the weights keep the dtype they were trained and saved in (a copy into the
    # freshly built float32 parameters silently rounded a float64 model to float32)
    model.load_state_dict(state, assign=True)
    return model.to(map_location), meta


def _check_state(own: dict, state: dict, path: Path, spec: str) -> None:
    if set(own) != set(state):
        raise CheckpointError(
            f"Checkpoint {path} does not fit {spec}: missing {sorted(set(own) - set(state))}, "
            f"unexpected {sorted(set(state) - set(own))}."
        )
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"Checkpoint {path}: tensor {k} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(own[k].shape)}."
            )


def load_state(model: torch.nn.Module, tensors: dict, path: str | os.PathLike) -> None:
    """Copy a checkpoint's ``model.*`` tensors into ``model`` after checking names and shapes
    (a checkpoint of another model or size is a :class:`CheckpointError`, not a torch error)."""
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    _check_state(model.state_dict(), state, Path(path), class_path(model))
    model.load_state_dict(state)


def restore_optimizer(optimizer: torch.optim.Optimizer, meta: dict, tensors: dict) -> None:
    """Load optimizer state saved by :func:`save_checkpoint` into ``optimizer``."""
    if meta.get("optimizer") is None:
        raise CheckpointError("This checkpoint holds no optimizer state; it cannot be resumed.")
    try:
        optimizer.load_state_dict(_unflatten_optimizer(meta["optimizer"], tensors))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"The checkpoint's optimizer state does not fit this optimizer ({type(exc).__name__}: "
            f"{exc}); was it written by another configuration?"
        ) from None
