"""Atomic file writes: a crash never leaves a half-written file or directory that looks complete.

Everything is written under a temporary name in the destination's directory and renamed into
place (``os.replace`` is atomic on POSIX within one filesystem). What is renamed into place gets
the mode a plain ``open()`` / ``mkdir()`` would have given under the process's umask (0644 and
0755 under umask 022), not the owner-only mode of ``tempfile.mkstemp`` / ``mkdtemp``, so
reports, records and checkpoints can be shared or served as written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "replace_dir",
    "current_umask",
    "shareable_modes",
    "append_jsonl",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_json",
    "read_jsonl",
    "write_json",
]


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it (``os.umask`` has no read-only form).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shareable_modes() -> tuple[int, int]:
    """(file mode, directory mode) that ``open()`` and ``mkdir()`` give under the umask."""
    mask = current_umask()
    return 0o666 & ~mask, 0o777 & ~mask


def _share_tree(root: Path) -> None:
    """Give ``root`` and everything under it the modes ``open()``/``mkdir()`` would have.

    Only the owner-only modes of ``mkstemp``/``mkdtemp`` are widened: entries are set to the
    umask's modes, keeping executable bits of files that had them.
    """
    fmode, dmode = shareable_modes()
    os.chmod(root, dmode)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, dmode)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                exe = os.stat(p).st_mode & 0o111
                os.chmod(p, fmode | (exe & dmode))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync, then rename.

    The file ends with the mode a plain ``open(path, "wb")`` would give under the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), shareable_modes()[0])
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON with an error that names the file and what is wrong."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}.") from None


def append_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Append rows as JSON lines (rewrites the file atomically; records files are small)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    return atomic_write_text(path, old + new)


def read_jsonl(path: str | os.PathLike, *, hint: str = "") -> list[dict[str, Any]]:
    """Read JSON lines; a malformed line is reported with its file and line number.

    ``hint`` ends the message (e.g. "regenerate it with benchmarks/x.py").
    """
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    end = f"; {hint}" if hint else ""
                    raise ValueError(
                        f"{path}, line {i}: expected one JSON object per line ({exc.msg}){end}."
                    ) from None
    return rows


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``path`` on success.

    On an exception the temporary directory is removed and ``path`` is untouched. With
    ``overwrite`` an existing ``path`` is replaced only after the new one is complete. The
    finished directory and its contents get the modes ``mkdir()``/``open()`` would give under
    the umask (``mkdtemp`` creates it owner-only).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _share_tree(tmp)
    replace_dir(tmp, path)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the finished directory ``src`` to ``dst``, replacing any directory there.

    The old ``dst`` is renamed aside first and removed only after ``src`` is in place, so a
    crash leaves either the old or the new directory at ``dst``, never a mix.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
    return dst
