"""Untrusted files: tampered, truncated or forged stores and checkpoints are refused with a
message naming the file, before anything is allocated or executed.

Each case counts as one file refused (``tally['files_refused.<kind>']``). Cases already
covered elsewhere (truncated weights, ``os:system`` class, foreign Zarr group, flipped frame
values found by ``verify``) are not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from neuralfactor.amortized.models import ConvMF, Fork
from neuralfactor.cli import main
from neuralfactor.data import MatrixStore, MatrixStoreWriter, StoreError
from neuralfactor.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_state,
    save_checkpoint,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "neuralfactor"


# ----------------------------------------------------------------------------- stores
def _store(path, T=11, m=6, n=5, upto=None, finalize=True):
    g = torch.Generator().manual_seed(0)
    F = torch.randn(2, T, m, n, generator=g, dtype=torch.float64)
    w = MatrixStoreWriter.create(
        path,
        n_runs=2,
        n_frames=T,
        matrix_shape=(m, n),
        dtype=F.dtype,
        diagnostics=["mass"],
        metadata={"config": {}},
        chunk_frames=4,
    )
    for i in range(T if upto is None else upto):
        w.append(F[:, i], 0.1 * i, {"mass": F[:, i].sum((-2, -1))}, step=i)
    if finalize:
        return w.finalize()
    w.flush()
    return w


def _chunk(p):
    return p / "run-000" / "f" / "c" / "0" / "0" / "0"


def _edit_json(path, fn):
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def _flip_byte(p):
    b = bytearray(_chunk(p).read_bytes())
    b[len(b) // 2] ^= 0xFF
    _chunk(p).write_bytes(bytes(b))


def _truncate(p):
    _chunk(p).write_bytes(_chunk(p).read_bytes()[:20])


def _root_attr(key, value):
    return lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"].__setitem__(key, value))


def _huge_array(p):
    _edit_json(
        p / "run-000" / "f" / "zarr.json", lambda d: d.__setitem__("shape", [10**9, 10**5, 10**5])
    )
    _root_attr("n_frames", 10**9)(p)
    _root_attr("matrix_shape", [10**5, 10**5])(p)


def _read_all(p):
    store = MatrixStore.open(p)
    return [run[:] for run in store]


def _verify(p):
    return MatrixStore.open(p, verify=True)


STORE_CASES = {
    # name: (tamper, action, message)
    "flipped-byte-in-chunk": (
        _flip_byte,
        _verify,
        r"checksum mismatch in run-000|cannot be decoded",
    ),
    "truncated-chunk-read": (_truncate, _read_all, r"chunk cannot be decoded .* truncated"),
    "truncated-chunk-verify": (_truncate, _verify, r"chunk cannot be decoded"),
    "deleted-chunk": (lambda p: _chunk(p).unlink(), _read_all, r"1 of the 3 chunks .* missing"),
    "wrong-store-checksum": (_root_attr("checksum", "0" * 64), _verify, r"store checksum mismatch"),
    "wrong-run-checksum": (
        lambda p: _edit_json(
            p / "run-001" / "zarr.json", lambda d: d["attributes"].__setitem__("checksum", "ab")
        ),
        _verify,
        r"checksum mismatch in run-001",
    ),
    "n_frames-larger-than-array": (
        _root_attr("n_frames", 10**9),
        _read_all,
        r"declares 1000000000 frames",
    ),
    "huge-declared-shape": (_huge_array, _read_all, r"chunks .* missing from disk"),
    "n_runs-not-int": (_root_attr("n_runs", "../../etc"), _read_all, r"'n_runs' must be"),
    "dtype-unknown": (_root_attr("dtype", "int8"), _read_all, r"'dtype' must be one of"),
    "matrix_shape-malformed": (
        _root_attr("matrix_shape", [6]),
        _read_all,
        r"'matrix_shape' must be",
    ),
    "array-dtype-differs": (_root_attr("dtype", "float32"), _read_all, r"has dtype float64"),
    "incomplete-flag-cleared": (_root_attr("complete", False), _read_all, r"marked incomplete"),
}


@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_tampered_store_is_refused(case, tmp_path, tally):
    tamper, action, msg = STORE_CASES[case]
    p = tmp_path / "s.zarr"
    _store(p)
    tamper(p)
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=msg):
        action(p)
    # Refused up front: no attempt to allocate or scan a declared 10^9 x 10^5 x 10^5 array.
    assert time.perf_counter() - t0 < 10
    tally["files_refused.store"] += 1


@pytest.mark.parametrize(
    "field, value, msg",
    [
        ("history_slot", "../../../evil", r"'history_slot' must be 0 or 1"),
        ("frames_written", 10**9, r"frames written of 11"),
        ("frames_written", "3", r"'frames_written' must be a non-negative int"),
        ("metadata", [1], r"'metadata' must be a JSON object"),
    ],
)
def test_tampered_partial_marker_is_refused(field, value, msg, tmp_path, tally):
    p = tmp_path / "s.zarr"
    _store(p, upto=5, finalize=False)
    marker = p.with_name("s.zarr.partial") / "neuralfactor-partial.json"
    _edit_json(marker, lambda d: d.__setitem__(field, value))
    with pytest.raises(StoreError, match=msg):
        MatrixStoreWriter.resume(p)
    with pytest.raises(StoreError, match=msg):
        MatrixStore.open(p, allow_partial=True)
    tally["files_refused.partial_marker"] += 1


def test_cli_train_on_a_damaged_store_exits_2_with_one_line(tmp_path, capsys, tally):
    p = tmp_path / "s.zarr"
    _store(p, T=40)
    _flip_byte(p)
    rc = main(["train", "--data", str(p), "--out", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert re.search(r"checksum mismatch|cannot be decoded", err)
    assert not (tmp_path / "run" / "model").exists()
    tally["files_refused.store_via_cli"] += 1


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def ckpt(tmp_path):
    model = Fork(6, 5, 2)
    save_checkpoint(tmp_path / "c", model, init_args=model.init_args)
    return tmp_path / "c"


def _copy_with_meta(ckpt, dest, fn):
    shutil.copytree(ckpt, dest)
    _edit_json(dest / "meta.json", fn)
    return dest


def _reseal(d):
    """Make meta.json's weights checksum match a forged weights file (the attacker's move)."""
    sha = hashlib.sha256((d / "weights.safetensors").read_bytes()).hexdigest()
    _edit_json(d / "meta.json", lambda m: m.__setitem__("weights_sha256", sha))


CKPT_META_CASES = {
    "class-is-a-function": (
        lambda m: m.update(
            model_class="neuralfactor.io:write_json", init_args={"path": "PWNED", "obj": 1}
        ),
        r"not a torch.nn.Module; refusing to call it",
    ),
    "class-module-missing": (
        lambda m: m.update(model_class="neuralfactor.nope:X"),
        r"does not exist",
    ),
    "class-attr-missing": (
        lambda m: m.update(model_class="neuralfactor.amortized.models:Nope"),
        r"does not exist",
    ),
    "class-malformed": (lambda m: m.update(model_class=42), r"expected 'module:Class'"),
    "class-missing": (lambda m: m.pop("model_class"), r"expected 'module:Class'"),
    "another-class": (
        lambda m: m.update(model_class="neuralfactor.amortized.models:ConvMF"),
        r"does not fit .*ConvMF|cannot be built",
    ),
    "another-shape": (
        lambda m: m["init_args"].update(m=7),
        r"has shape \(500, 30\), the model expects",
    ),
    "huge-declared-shape": (
        lambda m: m["init_args"].update(m=10**5, n=10**5),
        r"the model expects \(500, 10000000000\)",
    ),
    "unknown-init-arg": (
        lambda m: m["init_args"].update(bogus=1),
        r"cannot be built from its init_args",
    ),
    "init-args-not-object": (lambda m: m.update(init_args=[1, 2]), r"no init_args object"),
    "foreign-format": (
        lambda m: m.update(format="something-else"),
        r"not a neuralfactor checkpoint",
    ),
}


@pytest.mark.parametrize("case", sorted(CKPT_META_CASES))
def test_forged_checkpoint_meta_is_refused(case, ckpt, tmp_path, tally, monkeypatch):
    fn, msg = CKPT_META_CASES[case]
    d = _copy_with_meta(ckpt, tmp_path / "d", fn)
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=msg):
        load_model(d)
    assert time.perf_counter() - t0 < 10  # nothing of 10^10 weights was allocated
    assert not (tmp_path / "PWNED").exists()  # nothing named by the file was called
    tally["files_refused.checkpoint"] += 1


def _pickle_bomb(path, marker):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"model.x": Evil()}))


@pytest.mark.parametrize("payload", ["pickle", "torch-save", "huge-header-shape", "garbage"])
def test_weights_that_are_not_safetensors_are_refused_and_never_unpickled(
    payload, ckpt, tmp_path, tally
):
    d = tmp_path / "d"
    shutil.copytree(ckpt, d)
    w = d / "weights.safetensors"
    marker = tmp_path / "PICKLE-RAN"
    if payload == "pickle":
        _pickle_bomb(w, marker)
    elif payload == "torch-save":
        torch.save({"model.x": torch.zeros(2)}, w)
    elif payload == "huge-header-shape":
        raw = w.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        hdr = json.loads(raw[8 : 8 + n])
        key = next(k for k in hdr if k != "__metadata__")
        hdr[key]["shape"] = [10**6, 10**6]
        h = json.dumps(hdr).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        w.write_bytes(len(h).to_bytes(8, "little") + h + raw[8 + n :])
    else:
        w.write_bytes(os.urandom(4096))
    # Without resealing the checksum the file is refused as modified; resealed (an attacker
    # who rewrites meta.json too) it is refused by the safetensors parser. Never unpickled.
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_checkpoint(d)
    _reseal(d)
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        load_model(d)
    assert not marker.exists()
    tally["files_refused.weights"] += 2


def test_state_of_another_model_is_refused_by_load_state(ckpt, tally):
    _, tensors = load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state(ConvMF(6, 5, 2), tensors, ckpt)
    tally["files_refused.checkpoint"] += 1


def test_no_unsafe_deserialization_in_the_library(tally):
    """Weights load only through safetensors: no pickle, no unrestricted torch.load, and
    np.load only with allow_pickle=False."""
    offenders = []
    for f in sorted(SRC.rglob("*.py")):
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            bad = (
                re.search(r"\bpickle\.loads?\(|\bdill\.|\bjoblib\.load\(|\bcloudpickle\b", code)
                or ("torch.load(" in code and "weights_only=True" not in code)
                or ("np.load(" in code and "allow_pickle=False" not in code)
                or re.search(r"(?<![.\w])(eval|exec)\(", code)
            )
            if bad:
                offenders.append(f"{f.relative_to(SRC)}:{i}: {line.strip()}")
        tally["source_files_scanned"] += 1
    assert not offenders, "\n".join(offenders)
