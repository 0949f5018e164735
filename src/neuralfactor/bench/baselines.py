"""The classical-baselines suite and its results page (a pure function of the records).

Every classical factorizer and library peer (peers at their documented defaults and at our
budget) on two synthetic families, two sizes, three ranks and two batch sizes, all rows of a
case timed interleaved by :func:`neuralfactor.core.timing.measure_many`. Records are JSON lines:
one ``{"kind": "run", ...}`` line with the command and run conditions, then one line per row.
:func:`baselines_page` writes the whole page from them; ``benchmarks/classical_baselines.py
--from-records`` reproduces the committed page byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralfactor.bench.peers import PEER_SETTINGS, peer_label, setting_of
from neuralfactor.bench.tables import fmt_number, is_warm, markdown_table
from neuralfactor.core.timing import SpeedRatio, Spread, loadavg, speed_ratio

if TYPE_CHECKING:
    from neuralfactor.bench.runner import BenchConfig

__all__ = [
    "BANDS",
    "BASELINE_METHODS",
    "baselines_config",
    "baselines_page",
    "read_records",
    "reproducibility",
    "run_classical_baselines",
    "write_records",
]

BASELINE_METHODS: tuple[str, ...] = (
    "svd",
    "scipy-gesdd",
    "svds-arpack",
    "svds-propack",
    "sklearn-rsvd",
    "torch-lowrank",
    "rsvd",
    "rsvd-gemm",
    "warm-subspace",
    "pod-basis",
)
#: Accuracy bands of the summary: speed is compared only between rows in the same band.
BANDS: tuple[float, ...] = (1.01, 1.05)
BASELINE = "scipy-gesdd"
#: The committed records of a second run of the suite (the page's "Reproducibility" section)
#: and of further runs (``...-rerun2.jsonl``, ...), which test the run-to-run term out of sample.
RERUN_RECORDS = "docs/results/records/classical-baselines-rerun.jsonl"


def rerun_path(i: int) -> str:
    """Records of the (i + 2)-th run: ``i = 0`` is :data:`RERUN_RECORDS`, then ``-rerun2``..."""
    return RERUN_RECORDS if i == 0 else RERUN_RECORDS.replace("-rerun", f"-rerun{i + 1}")


SIZES = ((128, 256), (256, 512))
FAMILIES = (
    ("evolving", "Smooth evolving frames (time-ordered, phase-space-like)"),
    ("planted", "Independent random matrices with s_i = 0.9^i"),
)


def baselines_config(**changes: Any) -> BenchConfig:
    """The suite's configuration (``data`` is set per family by the run); ``changes``
    replace single fields (device, dtype, batches, the timing caps)."""
    from neuralfactor.bench.runner import BenchConfig

    suite = {"methods": BASELINE_METHODS, "sizes": SIZES, "batches": (1, 256), "threads": 1}
    timing = {"max_call_seconds": 0.1, "max_case_seconds": 10.0}
    return BenchConfig(**{**suite, **timing, **changes})


def run_classical_baselines(
    config: BenchConfig | None = None,
    *,
    command: str = "",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure the suite (``config``: :func:`baselines_config` when None) on every family;
    returns the run line followed by one record per row."""
    from neuralfactor.bench.runner import run_bench

    config = baselines_config() if config is None else config
    t0 = time.perf_counter()  # the whole run's wall time, recorded on the run line
    load0 = loadavg()
    records: list[dict[str, Any]] = []
    for data, _ in FAMILIES:
        records += run_bench(dataclasses.replace(config, data=data), on_record=on_record)
    run = {
        "kind": "run",
        "suite": "classical-baselines",
        "harness": "interleaved",
        "command": command,
        "elapsed_seconds": round(time.perf_counter() - t0),
        "loadavg_start": load0,
        "loadavg_end": loadavg(),
        "max_call_seconds": config.max_call_seconds,
        "max_case_seconds": config.max_case_seconds,
    }
    return [run] + [{"kind": "row", **r} for r in records]


def write_records(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    from neuralfactor.io import atomic_write_text

    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    atomic_write_text(path, text)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    from neuralfactor.io import read_jsonl

    recs = read_jsonl(path)
    if not recs or recs[0].get("kind") != "run":
        raise ValueError(
            f"{path} is not a classical-baselines records file: its first line must be the "
            "run line ({'kind': 'run', ...}). Re-run benchmarks/classical_baselines.py."
        )
    return recs


def _label(r: dict[str, Any]) -> str:
    if "label" in r:
        return r["label"]
    if r["method"] in PEER_SETTINGS:  # records from before peers were labelled
        return peer_label(r["method"], setting_of(r["method"], r.get("params", {}), r["rank"]))
    return r["method"]


def _marks(r: dict[str, Any]) -> str:
    marks = []
    if is_warm(r):
        marks.append("warm")
    if r["method"] == "pod-basis" or r.get("trained"):
        marks.append("trained")
    return f" ({', '.join(marks)})" if marks else ""


def _us(r: dict[str, Any]) -> str:
    med = fmt_number(r["seconds_per_matrix"] * 1e6)
    if "seconds_per_matrix_q25" not in r:
        return med
    lo = fmt_number(r["seconds_per_matrix_q25"] * 1e6)
    hi = fmt_number(r["seconds_per_matrix_q75"] * 1e6)
    return f"{med} ({lo}-{hi})"


def widened(ratio: SpeedRatio, term: float) -> SpeedRatio:
    """``ratio`` with its range widened by the run-to-run term: ``[low / (1 + term),
    high * (1 + term)]``; a range that then contains 1 makes the verdict "within noise"."""
    if term <= 0 or ratio.verdict == "unknown":
        return ratio
    low, high = ratio.low / (1 + term), ratio.high * (1 + term)
    verdict = "within noise" if low <= 1 <= high else ratio.verdict
    return SpeedRatio(ratio.ratio, low, high, verdict, ratio.overlapping)


def run_to_run_term(one: dict[tuple, SpeedRatio], two: dict[tuple, SpeedRatio]) -> tuple:
    """``(term, needed)``: the smallest multiplicative widening ``needed`` of the quartile
    ranges under which every ratio measured in both runs agrees, and ``term``, that rounded up
    to a whole percent (0 when they agree already). Two ranges widened by ``f`` intersect when
    ``max(low) / min(high) <= (1 + f)^2``."""
    needed = 0.0
    for k in set(one) & set(two):
        a, b = one[k], two[k]
        if a.verdict == "unknown" or b.verdict == "unknown":
            continue
        needed = max(needed, math.sqrt(max(a.low, b.low) / min(a.high, b.high)) - 1)
    return (math.ceil(needed * 100 - 1e-9) / 100 if needed > 0 else 0.0), needed


def summary(rows: Sequence[dict[str, Any]], run_to_run: float = 0.0) -> list[str]:
    """Per case and accuracy band: the fastest row, the rows within noise of it, its speed
    (its range widened by the ``run_to_run`` term when one was measured)."""
    lines = [
        "## Summary (computed from the records)",
        "",
        "Per data family, size, rank and batch, and per accuracy band (worst-case ratio to the "
        f"optimum <= {' and <= '.join(str(b) for b in BANDS)}): the fastest row of the band "
        "(lowest median time), the rows whose timings are within noise of it, and its speed "
        f"against `{BASELINE}` timed in the same interleaved rounds. `~1x (within noise)`: the "
        "two interquartile ranges overlap by more than the medians differ; otherwise the ratio "
        "of medians with the range the quartiles allow"
        + (
            f", widened by ±{run_to_run:.0%}: the run-to-run drift measured between two runs "
            "of this suite (section Reproducibility), which one run's quartiles do not show. "
            if run_to_run > 0
            else ". "
        )
        + "Warm-started rows say `warm`, rows that learn a basis from training frames say "
        "`trained`.",
        "",
        "| data | size | rank | batch | band | fastest | us/matrix (IQR) | x scipy-gesdd "
        "| within noise of it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["data"], r["m"], r["n"], r["rank"], r["batch"]) for r in rows})
    for key in keys:
        sel = [
            r
            for r in rows
            if (r["data"], r["m"], r["n"], r["rank"], r["batch"]) == key and "error" not in r
        ]
        base = next((r for r in sel if r["method"] == BASELINE), None)
        for band in BANDS:
            ok = [r for r in sel if r["ratio_max"] <= band]
            cells = [key[0], f"{key[1]}x{key[2]}", str(key[3]), str(key[4]), f"<= {band}"]
            if not ok:
                lines.append("| " + " | ".join(cells + ["none", "-", "-", "-"]) + " |")
                continue
            best = min(ok, key=lambda r: r["seconds_per_matrix"])
            sb = Spread.from_record(best)
            ties = [
                _label(r) + _marks(r)
                for r in ok
                if r is not best
                and speed_ratio(sb, Spread.from_record(r)).verdict in ("within noise",)
            ]
            speed = (
                "1"
                if base is best
                else (
                    str(widened(speed_ratio(Spread.from_record(base), sb), run_to_run))
                    if base
                    else "-"
                )
            )
            cells += [
                _label(best) + _marks(best),
                _us(best),
                speed,
                ", ".join(ties) if ties else ("-" if sb.q25 == sb.q25 else "spread not recorded"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _row_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a records file (after its run line)."""
    return [r for r in records[1:] if r.get("kind", "row") == "row"]


def _case_key(r: dict[str, Any]) -> tuple:
    return (r["data"], r["m"], r["n"], r["rank"], r["batch"])


def _ratios(rows: Sequence[dict[str, Any]]) -> dict[tuple, SpeedRatio]:
    """``x scipy-gesdd`` of every row (not the baseline, not failed) by (case..., label)."""
    ok = [r for r in rows if "error" not in r]
    base = {_case_key(r): Spread.from_record(r) for r in ok if r["method"] == BASELINE}
    return {
        (*_case_key(r), _label(r)): speed_ratio(base[_case_key(r)], Spread.from_record(r))
        for r in ok
        if r["method"] != BASELINE and _case_key(r) in base
    }


def _agree(a: SpeedRatio, b: SpeedRatio) -> bool:
    """Two runs' ratios agree when their quartile ranges ``[low, high]`` intersect."""
    return max(a.low, b.low) <= min(a.high, b.high)


def _drift(one: dict, two: dict, apart: list[tuple]) -> list[str]:
    """How far the ratios that do not agree are apart (relative difference of the medians):
    the run-to-run drift that one run's quartiles do not show."""
    if not apart:
        return []
    rel = sorted(abs(two[k].ratio / one[k].ratio - 1) for k in apart)
    med = rel[len(rel) // 2] if len(rel) % 2 else (rel[len(rel) // 2 - 1] + rel[len(rel) // 2]) / 2
    cases = len({k[:5] for k in apart})
    return [
        f"The {len(apart)} ratios that do not agree lie in {cases} cases; their two medians "
        f"differ by {med:.1%} (median) and at most {rel[-1]:.1%}: a drift between the runs "
        "that the quartiles of one run's interleaved rounds do not capture.",
        "",
    ]


def _agree_within(a: SpeedRatio, b: SpeedRatio, term: float) -> bool:
    return _agree(widened(a, term), widened(b, term))


def reproducibility(
    rows: Sequence[dict[str, Any]],
    rerun: Sequence[dict[str, Any]],
    *,
    command: str = "",
    more: Sequence[Sequence[dict[str, Any]]] = (),
) -> list[str]:
    """The "Reproducibility" section: per case and row, both runs' speed against the baseline
    (ratio of medians, the range their quartiles allow), whether they agree (the two ranges
    intersect) and how many do; the run-to-run term (:func:`run_to_run_term`) calibrated on
    the two runs; and, for each further run in ``more``, how many of its ratios agree with the
    first run's within that term (an out-of-sample test of it). Rows of one run only are
    counted apart."""
    one, two = _ratios(rows), _ratios(rerun)
    common = sorted(set(one) & set(two))
    agree = [k for k in common if _agree(one[k], two[k])]
    term, needed = run_to_run_term(one, two)
    lines = [
        "## Reproducibility (computed from the records of two runs)",
        "",
        f"The suite was run twice; the second run's records: `{RERUN_RECORDS}`"
        + (f" (`{command}`)." if command else ".")
        + f" Per case and row, the speed against `{BASELINE}` measured in each run (ratio of "
        "medians, in brackets the range the two quartile ranges allow; `~1x` within noise); "
        "the two runs agree when those ranges intersect.",
        "",
        f"**{len(agree)} of {len(common)} speed ratios agree between the two runs**"
        + (
            f"; {len(set(one) ^ set(two))} rows were measured in one run only."
            if set(one) ^ set(two)
            else "."
        ),
        "",
        *_drift(one, two, [k for k in common if k not in agree]),
    ]
    if term > 0:
        lines += [
            f"Run-to-run term: every ratio of the two runs agrees once both ranges are widened by "
            f"±{needed:.1%}; the summary widens its ranges by ±{term:.0%} (that, rounded up to a "
            "whole percent). It is calibrated on these two runs, so they agree within it by "
            "construction; a further run tests it:",
            "",
        ]
        if not more:
            lines += ["- no further run recorded: the term is untested out of sample.", ""]
        for i, extra in enumerate(more):
            three = _ratios(extra)
            both = sorted(set(one) & set(three))
            raw = sum(_agree(one[k], three[k]) for k in both)
            ok = sum(_agree_within(one[k], three[k], term) for k in both)
            lines.append(
                f"- run {i + 3} (`{rerun_path(i + 1)}`) against run 1: **{ok} of {len(both)} "
                f"agree within ±{term:.0%}** ({raw} within the quartile ranges alone)."
            )
        lines += ["", "| data | size | rank | batch | row | run 1 x scipy-gesdd "
                  f"| run 2 x scipy-gesdd | agree | agree ±{term:.0%} |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    else:
        lines += [
            "| data | size | rank | batch | row | run 1 x scipy-gesdd | run 2 x scipy-gesdd "
            "| agree |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for k in common:
        cells = [k[0], f"{k[1]}x{k[2]}", str(k[3]), str(k[4]), k[5], str(one[k]), str(two[k])]
        cells.append("yes" if k in agree else "**no**")
        if term > 0:
            cells.append("yes" if _agree_within(one[k], two[k], term) else "**no**")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _conditions(run: dict[str, Any], rows: Sequence[dict[str, Any]], interleaved: bool) -> list:
    """The run-conditions bullets of the page: device, threads, load, batches, timing."""
    env = rows[0]
    loads = [r.get("loadavg_before", r.get("loadavg_1min")) for r in rows]
    loads += [r["loadavg_after"] for r in rows if "loadavg_after" in r]
    batches = ",".join(str(b) for b in sorted({r["batch"] for r in rows}))
    lines = [
        f"- device: {env['device']} ({env['cpu']}), dtype {env['dtype']}, "
        f"torch {env['torch_version']}, neuralfactor {env['version']}, Python {env['python']}",
        f"- threads: torch {env['torch_threads']}, BLAS/OpenMP pools {env['blas_threads']}",
        f"- 1-minute load average during the run: {min(loads):.2f} to {max(loads):.2f} "
        f"(start {run['loadavg_start']:.2f}, end {run['loadavg_end']:.2f})"
        if interleaved
        else f"- 1-minute load average during the run: {min(loads):.2f} to {max(loads):.2f}",
        f"- batches: {batches}",
    ]
    if interleaved:
        rounds = [r["rounds"] for r in rows if "rounds" in r]
        conv = sum(bool(r.get("timing_converged")) for r in rows)
        lines += [
            "- timing: every row of a case timed interleaved (rounds A B C ..., the order "
            "rotating), blocks of repeated calls of about 10 ms, at least 5 rounds and 0.1 s per "
            "row, until each row's IQR is within 10% of its median or "
            f"{run['max_case_seconds']:g} s have passed; rounds per case {min(rounds)} to "
            f"{max(rounds)}; the spread settled for {conv} of {len(rows)} rows.",
            "- `us/matrix`: median per matrix (interquartile range in brackets in the summary; "
            "`IQR us` in the tables). `timed`: matrices per call (a sub-batch when the batch "
            f"would take longer than {run['max_call_seconds']:g} s per call).",
        ]
    else:
        lines.append(
            "- `us/matrix`: median of repeats / timed matrices (one block per method; no spread "
            "recorded). `timed`: matrices actually timed."
        )
    return lines


def baselines_page(
    records: Sequence[dict[str, Any]],
    rerun: Sequence[dict[str, Any]] | None = None,
    more: Sequence[Sequence[dict[str, Any]]] = (),
) -> str:
    """The whole classical-baselines.md page from its records (run line first); with the
    records of a second run (``rerun``), a "Reproducibility" section compares the two and the
    summary's ranges carry the run-to-run term they measure; records of further runs
    (``more``) test that term out of sample."""
    run, rows = records[0], [r for r in records[1:] if r.get("kind", "row") == "row"]
    interleaved = run.get("harness") == "interleaved"
    lines = [
        "# Classical baselines",
        "",
        f"Generated by `{run['command']}` ({run['elapsed_seconds']} s). "
        "Regenerate: `python benchmarks/classical_baselines.py --from-records` "
        "(rewrites this page from the records, byte for byte, without measuring).",
        "Records: `docs/results/records/classical-baselines.jsonl` (a run line, then one flat "
        "record per row).",
        "",
    ]
    if not interleaved:
        lines += [
            "**These records predate the interleaved harness**: each method was timed in its "
            "own block (median of 3 calls, one call when slow), with no spread recorded, on a "
            "machine whose load varied during the run; peers were not run at both settings. "
            "The speed columns below therefore read `spread not recorded` and no ranking by "
            "speed should be drawn from them. Re-run the command above in a quiet window.",
            "",
        ]
    lines += _conditions(run, rows, interleaved)
    lines += [
        "- `x baseline`: scipy-gesdd time / row time in the same case (> 1 is faster); "
        "`~1x (within noise)` when the spreads cannot tell them apart.",
        "- `ratio`: scaled loss / Eckart-Young optimum at that rank (mean and max over the timed "
        "matrices). `fit s`: one-off training time of data-driven methods (pod-basis), not "
        "included in us/matrix.",
        "- Peers run twice where they have accuracy settings: `[defaults]` at the library's "
        "documented defaults, `[budget]` at neuralfactor's rsvd budget (sketch rank + 10, 2 "
        "power iterations, orthonormalized after every product: sklearn-rsvd's "
        "power_iteration_normalizer='QR', since its 'auto' normalizes nothing at n_iter=2). "
        + "; ".join(f"{name}: {p.source}" for name, p in PEER_SETTINGS.items())
        + ".",
        "- `warm-subspace` treats a batch as a time series (each frame warm-started from the "
        "previous one, the first cold), marked `warm`: meaningful on `evolving` frames, not on "
        "independent `planted` matrices, where its ratio shows what a wrong warm start costs.",
        "",
    ]
    term = 0.0
    if rerun is not None:
        rerun_rows = _row_records(rerun)
        term = run_to_run_term(_ratios(rows), _ratios(rerun_rows))[0]
    lines += summary(rows, run_to_run=term)
    if rerun is not None:
        lines += reproducibility(
            rows,
            rerun_rows,
            command=rerun[0].get("command", ""),
            more=[_row_records(x) for x in more],
        )
    for data, title in FAMILIES:
        lines += [f"## {title}", ""]
        for m, n in sorted({(r["m"], r["n"]) for r in rows}):
            sel = [dict(r, label=_label(r)) for r in rows if r["data"] == data and r["m"] == m]
            if sel:
                lines += [f"### {m}x{n}", "", markdown_table(sel)]
    cuda = [r for r in rows if r["device"].startswith("cuda")]
    lines += [
        "## Notes",
        "",
        "GPU: not run on a GPU (no record with a CUDA device)."
        if not cuda
        else f"GPU: {cuda[0].get('cuda_device')}.",
        "",
    ]
    return "\n".join(lines)
