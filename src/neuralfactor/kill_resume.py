"""Kill/resume fault injection: SIGKILL a CLI command mid-run, resume it, compare the result.

A :class:`KillResumeCase` is one command line of ``neuralfactor simulate``, ``train`` or
``factorize``. :func:`run_case` runs it once uninterrupted (the reference), then, for each kill
point, starts it afresh, SIGKILLs it after a drawn number of seconds, checks that the output
path holds nothing or a complete and verifiable result, resumes it (``--resume`` when a partial
run is there, else the same command again: ``factorize`` reruns idempotently) and compares a
checksum of the result with the reference's. Each kill gives one row with the keys
:data:`ROW_KEYS`; ``identical`` is the only verdict and a ``False`` is a bug.

Checksums: ``simulate`` the store's sha256 content checksum; ``train`` a sha256 over the model's
safetensors tensors (name, dtype, shape, bytes); ``factorize`` a sha256 over U, V and the
per-frame diagnostics of every run.

>>> cases = simulate_cases(grids=[(16, 32)], schemes=["spectral"], save_every=[5],
...                        chunk_frames=[8])
>>> rows = run_case(cases[0], "/tmp/kr", kill_fractions=[0.5])
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS",
    "ROW_KEYS",
    "SIMULATE_SCHEMES",
    "KillResumeCase",
    "draw_kill_fractions",
    "factorize_cases",
    "output_checksum",
    "run_case",
    "simulate_cases",
    "summarize",
    "train_cases",
]

KINDS = ("simulate", "train", "factorize")
#: Exactly the keys of a row (one kill/resume), in this order.
ROW_KEYS = (
    "kind",
    "case",
    "kill_at",
    "identical",
    "checksum_uninterrupted",
    "checksum_resumed",
    "seconds",
)
#: scheme label -> simulate options: the reference scheme, fd5 with and without the truncated
#: SVD after every stage, fd5 truncated by the warm-started subspace iteration (a truncation
#: that carries a basis and a working rank), and the factored schemes (whose state is factors).
SIMULATE_SCHEMES: dict[str, tuple[str, ...]] = {
    "spectral": ("--scheme", "spectral"),
    "fd5": ("--scheme", "fd5"),
    "fd5-trunc": ("--scheme", "fd5", "--truncate-tol", "1e-5"),
    "fd5-warm": ("--scheme", "fd5", "--truncate-tol", "1e-5", "--truncate-with", "warm-subspace"),
    "lowrank": ("--scheme", "lowrank", "--truncate-tol", "1e-5"),
    "dlr": ("--scheme", "dlr", "--truncate-tol", "1e-5"),
}
_ENTRY = "from neuralfactor.cli import main; raise SystemExit(main())"


@dataclass(frozen=True)
class KillResumeCase:
    """One command to kill and resume.

    ``kind`` is ``simulate``, ``train`` or ``factorize``; ``case`` a short label; ``args`` the
    argument list after ``neuralfactor`` without ``--out``; ``threads`` the torch/BLAS threads
    of the subprocesses (multithreaded FFTs and GEMMs may round differently for different
    memory layouts, which a resume must not expose).
    """

    kind: str
    case: str
    args: tuple[str, ...]
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown kind {self.kind!r}; expected one of {list(KINDS)}.")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"The 'threads' parameter must be an int >= 1. Got {self.threads!r}.")


def simulate_cases(
    *,
    grids: Sequence[tuple[int, int]] = ((16, 32), (64, 128), (128, 256)),
    schemes: Sequence[str] = tuple(SIMULATE_SCHEMES),
    save_every: Sequence[int] = (1, 5),
    chunk_frames: Sequence[int] = (4, 16),
    steps: int | None = None,
    ic: str = "two-stream",
    threads: int = 2,
) -> list[KillResumeCase]:
    """The simulate matrix: every grid x scheme x save_every x chunk_frames.

    ``steps`` per run defaults to ``max(400, 1000000 // (nx * nv))`` (seconds of stepping at
    every grid, so that kills land mid-run; a run of 100 steps on 64x128 was too short to be
    interrupted reliably); ``dt`` is 0.01 for ``spectral`` and the
    default ``min(hx, hv) / 20`` of fd5 for the other schemes, ``t_end = steps * dt``.
    """
    from neuralfactor.vlasov import SimulationConfig

    out = []
    for nx, nv in grids:
        n_steps = steps if steps is not None else max(400, 1_000_000 // (nx * nv))
        for label in schemes:
            if label not in SIMULATE_SCHEMES:
                raise ValueError(
                    f"Unknown scheme label {label!r}; expected one of {list(SIMULATE_SCHEMES)}."
                )
            fd5 = label != "spectral"
            dt = SimulationConfig(ic=ic, nx=nx, nv=nv, scheme="fd5").dt if fd5 else 0.01
            for k in save_every:
                made = (n_steps // k) * k  # whole saved blocks
                t_end = made * dt
                for cf in chunk_frames:
                    args = (
                        "simulate", "--ic", ic, "--nx", str(nx), "--nv", str(nv),
                        "--t-end", repr(t_end), "--dt", repr(dt), "--save-every", str(k),
                        "--chunk-frames", str(cf), *SIMULATE_SCHEMES[label],
                    )  # fmt: skip
                    name = (
                        f"{nx}x{nv} {label} save_every={k} chunk={cf} steps={made} "
                        f"threads={threads}"
                    )
                    out.append(KillResumeCase("simulate", name, args, threads))
    return out


def train_cases(
    store: str | os.PathLike,
    *,
    ranks: Sequence[int] = (4, 12),
    model: str = "convmf",
    epochs: int = 6,
    threads: int = 1,
) -> list[KillResumeCase]:
    """``train`` on ``store`` at two model sizes (the rank sets the width of the factor heads)."""
    return [
        KillResumeCase(
            "train",
            f"{model} rank={r} epochs={epochs} threads={threads}",
            (
                "train",
                "--data",
                str(store),
                "--model",
                model,
                "--rank",
                str(r),
                "--epochs",
                str(epochs),
                "--batch-size",
                "10",
                "--device",
                "cpu",
            ),  # fmt: skip
            threads,
        )
        for r in ranks
    ]


def factorize_cases(
    store: str | os.PathLike,
    *,
    methods: Sequence[str] = ("svds-arpack", "rsvd"),
    rank: int = 4,
    threads: int = 1,
) -> list[KillResumeCase]:
    """``factorize`` of every frame of ``store`` with each method (one Dask worker)."""
    return [
        KillResumeCase(
            "factorize",
            f"{m} rank={rank} threads={threads}",
            ("factorize", str(store), "--method", m, "--rank", str(rank), "--workers", "1"),
            threads,
        )
        for m in methods
    ]


def draw_kill_fractions(n: int, rng: random.Random, lo: float = 0.15, hi: float = 0.85) -> list:
    """``n`` kill points as fractions of the reference run's wall time, one per stratum of
    [lo, hi] (so they spread over the run), each uniform within its stratum."""
    width = (hi - lo) / n
    return [lo + width * (i + rng.random()) for i in range(n)]


# -- processes --------------------------------------------------------------------------------
def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
    return env


def _argv(case: KillResumeCase, out: Path, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-c", _ENTRY, "-q", *case.args, "--out", str(out), *extra]


def _run(case: KillResumeCase, out: Path, extra: Sequence[str] = (), timeout: float = 1800):
    p = subprocess.run(
        _argv(case, out, extra), env=_env(case.threads), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(
            f"{case.kind} ({case.case}) exited {p.returncode}: {p.stderr.strip()[-2000:]}"
        )


def _started(case: KillResumeCase, out: Path) -> bool:
    """Whether the command has begun writing its output (its start-up is over)."""
    if case.kind == "train":
        return (out / "config.json").exists()
    return _partial(out).exists() or out.exists()


def _finished(case: KillResumeCase, out: Path) -> bool:
    """Whether the command's final output is in place (its work is over)."""
    return (out / "model").exists() if case.kind == "train" else out.exists()


def _run_timed(case: KillResumeCase, out: Path, timeout: float = 1800) -> tuple[float, float]:
    """Run to completion; seconds until the output began to appear and until the final output
    was in place (the working window; what follows is printing and interpreter exit)."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: nothing can block on it
        t0 = time.perf_counter()
        p = subprocess.Popen(
            _argv(case, out), env=_env(case.threads), stdout=subprocess.DEVNULL, stderr=log
        )
        started = finished = None
        while p.poll() is None:
            if started is None and _started(case, out):
                started = time.perf_counter() - t0
            if finished is None and _finished(case, out):
                finished = time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                p.kill()
                p.wait()
                raise TimeoutError(f"{case.kind} ({case.case}) ran over {timeout:g} s.")
            time.sleep(0.01)
        total = time.perf_counter() - t0
        log.seek(0)
        err = log.read()
    if p.returncode != 0:
        raise RuntimeError(f"{case.kind} ({case.case}) exited {p.returncode}: {err[-2000:]}")
    started = total if started is None else started
    return started, max(started, total if finished is None else finished)


def _kill_after(case: KillResumeCase, out: Path, delay: float) -> bool:
    """Start the command and SIGKILL it after ``delay`` s; True when it was killed mid-run."""
    p = subprocess.Popen(
        _argv(case, out), env=_env(case.threads), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        p.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return True


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _hash_tensors(tensors: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        arr = t.detach().cpu().contiguous().numpy() if hasattr(t, "detach") else t
        h.update(f"{name}|{arr.dtype.str}|{tuple(arr.shape)}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def output_checksum(kind: str, out: str | os.PathLike) -> str | None:
    """Checksum of a finished output; ``None`` when nothing is at ``out``.

    Raises (``StoreError``, ``ValueError``) when something is there but incomplete or corrupt:
    the invariant after a kill is "nothing, or a complete and verifiable result".
    """
    out = Path(out)
    if kind == "simulate":
        if not out.exists():
            return None
        from neuralfactor.data import MatrixStore

        return str(MatrixStore.open(out, verify=True).metadata["checksum"])
    if kind == "train":
        model = out / "model"
        if not model.exists():
            return None
        from safetensors.torch import load_file

        from neuralfactor.train.checkpoint import load_checkpoint

        load_checkpoint(model)  # complete and checksum-valid, or this raises
        return _hash_tensors(load_file(str(model / "weights.safetensors")))
    if kind == "factorize":
        if not out.exists():
            return None
        from neuralfactor.distributed.factorize import FactorStore

        fs = FactorStore.open(out)
        tensors = {}
        for run in fs.runs:
            lr = fs.lowrank(run)
            tensors.update({f"{run}/U": lr.U, f"{run}/V": lr.V})
            tensors.update({f"{run}/{k}": v for k, v in fs.diagnostics(run).items()})
        return _hash_tensors(tensors)
    raise ValueError(f"Unknown kind {kind!r}; expected one of {list(KINDS)}.")


def run_case(
    case: KillResumeCase,
    workdir: str | os.PathLike,
    *,
    kill_fractions: Sequence[float],
    max_tries: int = 4,
) -> list[dict[str, Any]]:
    """Reference run, then one kill + resume per fraction of the reference's working time.

    The reference run is timed from its start to the moment its output appears (start-up:
    imports, validation) and to the moment its final output is in place (end); a kill
    fraction ``q`` kills at ``start-up + q x (end - start-up)`` seconds after the process
    starts, so kills spread over the work, not the imports or the exit. A kill that lands
    after the final output is in place is retried with the whole delay halved, start-up
    included (the machine may have been slower during the reference run than now, so its
    start-up alone can outlast a later run), up to ``max_tries`` times; a case that is never
    interrupted gives no row. ``kill_at`` is that delay in seconds; ``seconds`` the wall time
    of the killed and the resumed processes together.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ref_out = work / "reference"
    shutil.rmtree(ref_out, ignore_errors=True)
    startup, total = _run_timed(case, ref_out)
    ref = output_checksum(case.kind, ref_out)
    rows = []
    for i, frac in enumerate(kill_fractions):
        out = work / f"kill-{i}"
        delay = startup + frac * (total - startup)
        for _ in range(max_tries):
            for p in (out, _partial(out)):
                shutil.rmtree(p, ignore_errors=True)
            t0 = time.perf_counter()
            # a kill after the final output is in place interrupts nothing: not a case
            killed = _kill_after(case, out, delay) and not _finished(case, out)
            if killed:
                break
            delay /= 2
        if not killed:
            continue
        output_checksum(case.kind, out)  # nothing or complete; raises otherwise
        try:
            if case.kind == "simulate":
                if not out.exists():
                    _run(case, out, ["--resume"] if _partial(out).exists() else [])
            elif case.kind == "train":
                _run(case, out, ["--resume"] if (out / "config.json").exists() else [])
            else:
                _run(case, out)  # idempotent: computes the chunks without a completion marker
            got = output_checksum(case.kind, out)
        except RuntimeError as exc:  # the resume itself failed: a differing result, recorded
            got = f"error: {exc}"[:300]
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "kind": case.kind,
                "case": case.case,
                "kill_at": round(delay, 3),
                "identical": got == ref,
                "checksum_uninterrupted": ref,
                "checksum_resumed": got,
                "seconds": round(seconds, 3),
            }
        )
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(ref_out, ignore_errors=True)
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> str:
    """Counts per kind (identical of all) and one line per differing case, from the rows
    alone; a row whose keys are not exactly :data:`ROW_KEYS` raises ``ValueError``."""
    total: Counter = Counter()
    same: Counter = Counter()
    for r in rows:
        if tuple(r) != ROW_KEYS:
            raise ValueError(f"A record has keys {list(r)}; expected exactly {list(ROW_KEYS)}.")
        total[r["kind"]] += 1
        same[r["kind"]] += bool(r["identical"])
    lines = [f"{k}: {same[k]} of {total[k]} kill/resume cases identical" for k in sorted(total)]
    bad = [f"differs: {r['kind']} {r['case']} kill_at={r['kill_at']}" for r in rows
           if not r["identical"]]  # fmt: skip
    return "\n".join(lines + bad)
