"""docs/results/reliability.md as a pure function of the committed records.

The reliability suite (``tests/reliability/``) writes its counts as JSON
(``NEURALFACTOR_RELIABILITY_COUNTS``), ``benchmarks/soak.py`` its blocks, the resume matrix
its rows; :func:`render_reliability_page` turns those records into the page, so the page
never holds a number that no record holds. ``benchmarks/reliability_page.py`` is the command.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neuralfactor.io import atomic_write_text, read_jsonl
from neuralfactor.kill_resume import ROW_KEYS

__all__ = [
    "COUNT_FILES",
    "PAGE_COMMAND",
    "load_reliability_records",
    "render_reliability_page",
    "write_reliability_page",
]

#: Part name -> counts file under the records folder.
COUNT_FILES: dict[str, str] = {
    "fast": "reliability-counts-fast.json",
    "slow": "reliability-counts-slow.json",
    "thorough": "reliability-counts-thorough.json",
}
SOAK_FILE = "soak.json"
DEFECTS_FILE = "reliability-defects.jsonl"
RESUME_FILE = "resume-matrix.jsonl"
PAGE_COMMAND = "python benchmarks/reliability_page.py --from-records"
_RESUME_KEYS = ROW_KEYS  # the kill/resume matrix writes exactly these keys


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines records file (:func:`neuralfactor.io.read_jsonl`)."""
    return read_jsonl(
        path,
        hint="regenerate it with benchmarks/reliability_page.py or benchmarks/resume_matrix.py",
    )


def load_reliability_records(records_dir: str | Path) -> dict[str, Any]:
    """Read every record the page uses from ``records_dir`` (missing files are left out).

    Returns a dict with keys ``counts`` (part -> counts dict), ``soak``, ``defects`` and
    ``resume`` (lists of rows; ``None`` when the file is absent).
    """
    d = Path(records_dir)
    if not d.is_dir():
        raise FileNotFoundError(
            f"Records folder {d} does not exist; pass the folder holding "
            f"{COUNT_FILES['fast']} (docs/results/records)."
        )
    counts = {}
    for part, name in COUNT_FILES.items():
        if (d / name).is_file():
            counts[part] = json.loads((d / name).read_text(encoding="utf-8"))
    resume = _read_jsonl(d / RESUME_FILE) if (d / RESUME_FILE).is_file() else None
    if resume is not None:
        for i, row in enumerate(resume, 1):
            missing = [k for k in _RESUME_KEYS if k not in row]
            if missing:
                raise ValueError(f"{d / RESUME_FILE}, row {i}: missing keys {missing}.")
    return {
        "counts": counts,
        "soak": json.loads((d / SOAK_FILE).read_text("utf-8"))
        if (d / SOAK_FILE).is_file()
        else None,
        "defects": _read_jsonl(d / DEFECTS_FILE) if (d / DEFECTS_FILE).is_file() else [],
        "resume": resume,
    }


def _by_prefix(counts: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in counts.items() if k.startswith(p)}


def _fmt_ratio(x: Any) -> str:
    return "–" if x is None else f"{x:.4f}"


def _property_table(counts: Mapping[str, Any]) -> list[str]:
    tried = _by_prefix(counts, "property_inputs")
    valid = _by_prefix(counts, "property_valid")
    acc = _by_prefix(counts, "property_accepted")
    ref = _by_prefix(counts, "property_refused")
    bad = _by_prefix(counts, "property_inaccurate")
    rej = _by_prefix(counts, "property_rejected_invalid")
    worst = _by_prefix(counts, "property_worst_ratio")
    out = [
        "| factorizer | tried | valid | accepted within bound | valid refused | valid "
        "inaccurate | invalid rejected | worst ratio to optimum |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tot = [0] * 6
    learned = []
    for name in sorted(tried):
        if name not in valid:  # learned: no contract, refusals are documented errors
            learned.append(f"| {name} | {tried[name]} | {acc.get(name, 0)} | {ref.get(name, 0)} |")
            continue
        vals = [tried[name], valid[name], acc.get(name, 0), ref.get(name, 0)]
        vals += [bad.get(name, 0), rej.get(name, 0)]
        tot = [a + b for a, b in zip(tot, vals, strict=True)]
        cells = " | ".join(str(v) for v in vals)
        out.append(f"| {name} | {cells} | {_fmt_ratio(worst.get(name))} |")
    out.append("| **classical total** | " + " | ".join(f"**{v}**" for v in tot) + " | |")
    if learned:
        out += [
            "",
            "| learned factorizer (no contract) | tried | accepted | refused with a documented "
            "error |",
            "|---|---|---|---|",
            *learned,
        ]
    return out


def _contract_table(counts: Mapping[str, Any]) -> list[str]:
    pre = _by_prefix(counts, "contract_preconditions")
    acc = _by_prefix(counts, "contract_accuracy")
    out = ["| factorizer | valid inputs (preconditions) | accuracy bound |", "|---|---|---|"]
    out += [f"| {n} | {pre[n]} | {acc.get(n, '')} |" for n in sorted(pre)]
    return out


def _faults_table(parts: list[Mapping[str, Any]]) -> list[str]:
    def total(prefix: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in parts:
            for k, v in _by_prefix(c, prefix).items():
                out[k] = out.get(k, 0) + v
        return out

    compared, injected = total("runs_compared"), total("faults_injected")
    recovered = total("runs_recovered")
    out = [
        "| command | runs | killed mid-run | recovered bit-identical | finished before the "
        "kill (compared too) |",
        "|---|---|---|---|---|",
    ]
    sums = [0, 0, 0, 0]
    for cmd in sorted(compared):
        vals = [compared[cmd], injected.get(cmd, 0), recovered.get(cmd, 0)]
        vals.append(vals[0] - vals[1])
        sums = [a + b for a, b in zip(sums, vals, strict=True)]
        out.append(f"| {cmd} | " + " | ".join(str(v) for v in vals) + " |")
    out.append("| **total** | " + " | ".join(f"**{v}**" for v in sums) + " |")
    return out


def _soak_section(soak: Mapping[str, Any]) -> list[str]:
    out = [
        f"Command: `{soak['command']}` (record `records/{SOAK_FILE}`; threads "
        f"{soak.get('threads')}, torch {soak.get('torch')}).",
        "",
        "| method | frames | frames/s per block (min / median / max) | spread around the "
        "median | RSS per block, MiB (min – max) | RSS after block 1 → last | mean scaled loss "
        "(last block) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in soak["runs"]:
        blocks = run["blocks"]
        fps = [b["frames_per_second"] for b in blocks]
        rss = [b["rss_mib"] for b in blocks]
        med = statistics.median(fps)
        spread = max(med - min(fps), max(fps) - med) / med * 100
        out.append(
            f"| {run.get('method', '?')} | {blocks[-1]['frames_done']:,} | {min(fps):.0f} / "
            f"{med:.0f} / {max(fps):.0f} | ±{spread:.0f} % | {min(rss):.0f} – {max(rss):.0f} | "
            f"{rss[0]:.0f} → {rss[-1]:.0f} | {blocks[-1]['mean_scaled_loss']:.3g} |"
        )
    out += ["", f"Peak RSS of the whole process (`ru_maxrss`): **{soak['peak_rss_mib']:.0f} MiB**."]
    return out


def _resume_section(rows: list[Mapping[str, Any]]) -> list[str]:
    kinds: dict[str, list[int]] = {}
    for r in rows:
        k = kinds.setdefault(str(r["kind"]), [0, 0])
        k[0] += bool(r["identical"])
        k[1] += 1
    out = ["| kind | identical / total |", "|---|---|"]
    out += [f"| {k} | {v[0]} / {v[1]} |" for k, v in sorted(kinds.items())]
    ident = sum(v[0] for v in kinds.values())
    out += [f"| **total** | **{ident} / {len(rows)}** |", ""]
    out += [
        "| kind | case | kill at | identical | checksum uninterrupted | checksum resumed | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        secs = r["seconds"]
        secs = f"{secs:.1f}" if isinstance(secs, (int, float)) else str(secs)
        out.append(
            f"| {r['kind']} | {r['case']} | {r['kill_at']} | "
            f"{'yes' if r['identical'] else '**no**'} | `{str(r['checksum_uninterrupted'])[:16]}` | "
            f"`{str(r['checksum_resumed'])[:16]}` | {secs} |"
        )
    out += ["", "Checksums are shown to 16 hex digits; the record holds them whole."]
    return out


_HOW_TO_RERUN = """```bash
# everything (the three suites below, then this page): run in a quiet window
OMP_NUM_THREADS=1 python benchmarks/reliability_page.py
# or part by part; each writes its counts record, then rewrite the page from the records
NEURALFACTOR_RELIABILITY_COUNTS=docs/results/records/reliability-counts-fast.json \\
  OMP_NUM_THREADS=1 python -m pytest -q tests/reliability -m "not slow and not gpu"
NEURALFACTOR_RELIABILITY_COUNTS=docs/results/records/reliability-counts-slow.json \\
  OMP_NUM_THREADS=1 python -m pytest -q tests/reliability -m slow
HYPOTHESIS_PROFILE=thorough \\
  NEURALFACTOR_RELIABILITY_COUNTS=docs/results/records/reliability-counts-thorough.json \\
  OMP_NUM_THREADS=1 python -m pytest -q tests/reliability/test_properties.py
python benchmarks/reliability_page.py --from-records
# soak: 100,000 frames of 64x128 through warm-subspace and rsvd-gemm
OMP_NUM_THREADS=1 python benchmarks/soak.py --frames 100000 --out docs/results/records/soak.json
```

The CI profile of Hypothesis is derandomized (`ci`, registered in
`tests/reliability/conftest.py`), so CI sees the same inputs every run; `thorough` draws new
random ones."""

_WHAT_IS_CHECKED = """- **Property tests** (`test_properties.py`): shapes 1×1 to 12×12 with 0–2 batch dimensions,
  float32/float64, CPU (and CUDA when present), ranks mostly valid and sometimes −1, 0 or
  > min(m, n), kinds random / zero / constant / rank-deficient / one-hot / one non-finite
  entry, scales 10^e across the dtype's range including subnormals. Every classical
  factorizer states a `Contract` beside its code (`neuralfactor.core.factorizer.Contract`,
  table above): input inside it must be accepted (a refusal **fails** the test) with a
  finite `LowRank` of the right shape/dtype/device whose scaled loss is within the stated
  bound (else the test **fails**: "inaccurate"); input outside it must raise
  `ValueError`/`TypeError`/`FactorizationError` with a message. The learned `fork` and
  `fork+refine` (a tiny network fitted once on 8×8 frames) state no contract: they may
  refuse with a documented error, and with refinement never do worse than the zero matrix.
- **Untrusted files** (`test_untrusted_files.py`): tampered stores and partial markers,
  forged checkpoint `meta.json`s and weight files that are not safetensors, each with the
  stale checksum and with the checksum resealed; a damaged store through `neuralfactor
  train`; a scan of `src/` for unsafe deserialization.
- **CLI robustness** (`test_cli_robustness.py`): for each subcommand a tiny valid baseline is
  mutated per option; each argv must exit 2 with exactly one stderr line starting
  `error:`, no traceback, quickly (validation precedes work).
- **Fault injection** (`test_fault_injection.py`): commands are SIGKILLed at a delay drawn
  from the seed, then resumed; the output path must hold nothing or a complete result that
  passes its checksum, and the resumed result must equal an uninterrupted run bit for bit."""

_NOT_COVERED = """- GPU: the property tests add `cuda` to the devices only when one exists.
- Learned factorizers other than `fork`/`fork+refine` are not fuzzed (they need fitting; they
  share the `LearnedFactorizer.factorize` path that is).
- A flipped byte inside a chunk that still decompresses is found by `verify()` (and by
  training, which verifies), not by a plain read: reads do not hash.
- Contracts are stated bounds checked on the suite's small random inputs (sketches of the
  randomized methods often cover the whole range there); `tests/classical/` checks them on
  larger planted spectra."""


def render_reliability_page(records: Mapping[str, Any]) -> str:
    """The whole page (Markdown) from :func:`load_reliability_records`'s output."""
    counts = records["counts"]
    fast, slow, thorough = (counts.get(p, {}) for p in ("fast", "slow", "thorough"))
    files = ", ".join(f"`records/{COUNT_FILES[p]}` ({p})" for p in COUNT_FILES if p in counts)
    lines = [
        "# Reliability: faults, bad input and untrusted files",
        "",
        f"Generated by `{PAGE_COMMAND}` from the records in `docs/results/records/` (do not "
        "edit by hand); `python benchmarks/reliability_page.py` reruns the suites first.",
        "",
        "What the reliability suite (`tests/reliability/`) and the soak script "
        "(`benchmarks/soak.py`) tried, what they found, and how to rerun them. Every count "
        "below is read from a JSON record the tests wrote (`NEURALFACTOR_RELIABILITY_COUNTS`).",
        "",
        "## How to rerun",
        "",
        _HOW_TO_RERUN,
        "",
        "## Counts",
        "",
        f"Files: {files}.",
        "",
    ]
    for part, title in (("fast", "CI profile (fast part)"), ("thorough", "thorough profile")):
        c = counts.get(part, {})
        if any(k.startswith("property_inputs.") for k in c):
            lines += [
                f"**Property inputs per factorizer, {title}** (valid: inside the method's "
                "contract; a valid input refused or answered outside the bound fails the "
                "suite; worst ratio: scaled loss / optimum over inputs whose optimum "
                "exceeds 1e-6):",
                "",
                *_property_table(c),
                "",
            ]
    contract_src = thorough if any(k.startswith("contract_") for k in thorough) else fast
    if any(k.startswith("contract_") for k in contract_src):
        lines += ["**Contracts** (as recorded by the run):", "", *_contract_table(contract_src), ""]
    argv = _by_prefix(fast, "cli_argv")
    if argv:
        items = ", ".join(f"{k} {v}" for k, v in sorted(argv.items()))
        lines += [
            f"**CLI argument lists tried** (each exited 2 with one `error:` line, no "
            f"traceback): {items}; **total {sum(argv.values())}**.",
            "",
        ]
    refused = _by_prefix(fast, "files_refused")
    if refused:
        items = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(refused.items()))
        scanned = fast.get("source_files_scanned")
        scan = f" Source files scanned for unsafe deserialization: {scanned}." if scanned else ""
        lines += [
            f"**Files refused** (each with a message naming the file; nothing allocated or "
            f"executed): {items}; **total {sum(refused.values())}**.{scan}",
            "",
        ]
    fault_parts = [c for c in (fast, slow) if any(k.startswith("runs_compared.") for k in c)]
    if fault_parts:
        lines += [
            "**Faults injected (SIGKILL) and runs recovered** (CI + slow records; resumed "
            "result bit-identical to the uninterrupted run):",
            "",
            *_faults_table(fault_parts),
            "",
        ]
    if records.get("resume") is not None:
        lines += [
            f"## Resume matrix (`records/{RESUME_FILE}`)",
            "",
            *_resume_section(records["resume"]),
            "",
        ]
    if records.get("defects"):
        lines += [
            "## Defects found and fixed",
            "",
            f"Each is guarded by a test (`records/{DEFECTS_FILE}`).",
            "",
            "| # | Found by | Defect | Fix |",
            "|----|----------|--------|-----|",
        ]
        lines += [
            f"| {d['n']} | {d['found_by']} | {d['defect']} | {d['fix']} |"
            for d in records["defects"]
        ]
        lines.append("")
    lines += ["## What each part checks", "", _WHAT_IS_CHECKED, ""]
    if records.get("soak") is not None:
        lines += ["## Soak", "", *_soak_section(records["soak"]), ""]
    lines += ["## Not covered", "", _NOT_COVERED, ""]
    return "\n".join(lines)


def write_reliability_page(records_dir: str | Path, out: str | Path) -> Path:
    """Render the page from ``records_dir`` and write it atomically to ``out``."""
    return atomic_write_text(out, render_reliability_page(load_reliability_records(records_dir)))
