"""Everything written gets the mode a plain ``open()`` / ``mkdir()`` gives under the umask.

Temporary files and directories from ``mkstemp`` / ``mkdtemp`` are owner-only (0600 / 0700);
renamed into place they made reports, records, configs and weights unshareable under umask
022. Checked under umask 022 (0644 / 0755) and 077 (0600 / 0700, nothing widened).
"""

from __future__ import annotations

import os
import stat

import pytest

from neuralfactor.cli import main
from neuralfactor.io import (
    append_jsonl,
    atomic_dir,
    atomic_write_bytes,
    current_umask,
    shareable_modes,
    write_json,
)


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _check_tree(root, mask: int) -> int:
    """Every file 0666 & ~mask, every directory 0777 & ~mask; returns entries checked."""
    n = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        assert _mode(dirpath) == 0o777 & ~mask, (dirpath, oct(_mode(dirpath)))
        for f in filenames:
            p = os.path.join(dirpath, f)
            assert _mode(p) == 0o666 & ~mask, (p, oct(_mode(p)))
            n += 1
    return n


def test_current_umask_reads_without_changing(umask):
    assert current_umask() == umask
    assert current_umask() == umask  # still set: reading did not change it
    assert shareable_modes() == (0o666 & ~umask, 0o777 & ~umask)


def test_atomic_helpers_give_plain_open_modes(umask, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # the reference: what open() gives
    assert _mode(atomic_write_bytes(tmp_path / "a.bin", b"1")) == _mode(plain)
    assert _mode(write_json(tmp_path / "a.json", {"a": 1})) == _mode(plain)
    assert _mode(append_jsonl(tmp_path / "r.jsonl", [{"a": 1}])) == _mode(plain)
    with atomic_dir(tmp_path / "d") as d:
        (d / "sub").mkdir()
        (d / "sub" / "f.txt").write_text("y")
        write_json(d / "meta.json", {})
    assert _check_tree(tmp_path / "d", umask) == 2
    assert _mode(plain) == 0o666 & ~umask


def test_checkpoint_and_train_run_are_shareable(tmp_path):
    """A whole run directory (config, split, data, checkpoints, safetensors weights), the store
    it was trained on and a factor store, under umask 022 (where owner-only files showed; the
    helpers above are checked under 077 too)."""
    umask = 0o022
    old = os.umask(umask)
    try:
        _train_run_factorize(tmp_path, umask)
    finally:
        os.umask(old)


def _train_run_factorize(tmp_path, umask: int) -> None:
    store = tmp_path / "s.zarr"
    rc = main(["-q", "simulate", "--nx", "8", "--nv", "16", "--t-end", "3", "--out", str(store)])
    assert rc == 0
    run = tmp_path / "run"
    argv = ["-q", "train", "--data", str(store), "--out", str(run), "--epochs", "1"]
    assert main([*argv, "--rank", "2", "--batch-size", "8", "--device", "cpu"]) == 0
    assert _check_tree(run, umask) >= 8  # config, split, data, 3 x (meta + weights)
    assert _check_tree(store, umask) > 0
    assert main(["-q", "factorize", str(store), "--rank", "2", "--out", str(tmp_path / "f")]) == 0
    assert _check_tree(tmp_path / "f", umask) > 0
