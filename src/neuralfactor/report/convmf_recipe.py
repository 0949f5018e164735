"""docs/results/convmf-recipe.md as a pure function of its records.

Two record files: the evaluation records ``docs/results/convmf-recipe.jsonl`` (one line per
(rank, seed, method), written by ``benchmarks/convmf_recipe.py``) and the run record
``docs/results/records/convmf-recipe-run.jsonl`` (one ``"kind": "run"`` line: the command's
arguments, the recipe, the run conditions; one ``"kind": "health"`` line per trained model:
best and final validation loss, the stuck flag). :func:`render_convmf_recipe` writes the page
from them; it measures and trains nothing.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralfactor.amortized.study_recipe import RecipeConfig, collect_recipe
from neuralfactor.amortized.study_runs import Log, silent
from neuralfactor.io import atomic_write_text, read_jsonl

__all__ = [
    "LEARNED",
    "PAGE_COMMAND",
    "TARGET",
    "load_jsonl",
    "render_convmf_recipe",
    "run_convmf_recipe",
    "write_convmf_recipe",
    "write_from_records",
]

PAGE_COMMAND = "python benchmarks/convmf_recipe.py --from-records"
LEARNED = ("convmf", "convmf+refine", "convmf+subspace")
#: The target: ConvMF+refine within this factor of the SVD optimum at every rank.
TARGET = 1.10
NOT_RECORDED = "not recorded"


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines records file (:func:`neuralfactor.io.read_jsonl`)."""
    return read_jsonl(path, hint="regenerate it with benchmarks/convmf_recipe.py")


def _command(run: dict) -> str:
    a = run["args"]
    return (
        f"OMP_NUM_THREADS=1 python benchmarks/convmf_recipe.py --ranks {a['ranks']} --seeds "
        f"{a['seeds']}"
        + (f" --seed-ranks {a['seed_ranks']}" if a.get("seed_ranks") is not None else "")
        + f" --epochs {a['epochs']} --lr {a['lr']:g} --clip-norm {a['clip_norm']:g} "
        f"--warmup-epochs {a['warmup_epochs']} --objective {a['objective']} --root {a['root']}"
        + (f" --lanes {a['lanes']}" if a.get("lanes", 1) > 1 else "")
        + (f' --note "{a["note"]}"' if a.get("note") else "")
    )


def _index(evals: Sequence[dict]) -> tuple[dict, list[tuple[int, int]]]:
    """Records by (rank, seed) and method; the (rank, seed) keys with all learned methods."""
    by: dict[tuple[int, int], dict[str, dict]] = {}
    for r in evals:
        by.setdefault((r["rank"], r["seed"]), {})[r["method"]] = r
    return by, [k for k in by if all(m in by[k] for m in LEARNED)]


def _summary(by: dict, keys: list) -> str:
    """The target's verdict over all models."""
    ref = [by[k]["convmf+refine"]["ratio_mean"] for k in keys]
    miss = [k for k in keys if by[k]["convmf+refine"]["ratio_mean"] > TARGET]
    ranks = list(dict.fromkeys(k[0] for k in keys))
    if not miss:
        return (
            f"**met by all {len(keys)} models** ({len(ranks)} ranks, seeds as listed; "
            f"ratios {min(ref):.3f}-{max(ref):.3f}x)"
        )
    return (
        f"**missed by {len(miss)} of {len(keys)} models**: "
        + ", ".join(
            f"rank {k[0]} seed {k[1]} ({by[k]['convmf+refine']['ratio_mean']:.3f}x)" for k in miss
        )
        + f"; all ratios {min(ref):.3f}-{max(ref):.3f}x"
    )


def _header(run: dict, first: dict, seed0: int, threads_s: str) -> list[str]:
    """Title, command and the setup section, from the run record and the first record."""
    a, minutes = run["args"], run.get("minutes")
    cores = run.get("cpu_count") or NOT_RECORDED
    lanes = a.get("lanes", 1)
    return [
        "# ConvMF training recipe across seeds (interpolation, "
        f"{first['m']}x{first['n']}, {str(first.get('device', NOT_RECORDED)).upper()})",
        "",
        f"Command: `{_command(run)}` ("
        + (NOT_RECORDED if minutes is None else f"{minutes:.1f} min")
        + " for this invocation; the script reuses trained models and evaluations under the "
        "root). Records (per-frame lists and frame times dropped): "
        "`docs/results/convmf-recipe.jsonl`; run record: "
        f"`docs/results/records/{run.get('records_file', NOT_RECORDED)}`"
        + (f" ({run['source']})" if run.get("source") else "")
        + f". Regenerate: `{PAGE_COMMAND}` (rewrites this page from those records, byte for "
        "byte, without training or measuring).",
        "",
        "## Setup",
        "",
        "- Data, split and test frames: those of `docs/results/convmf-study.md` (strong Landau "
        f"damping {first['m']}x{first['n']}, every {a['save_every']}th step saved, "
        f"{first['split']} split with {first['n_train']} training and {first['n_test']} test "
        "frames). The seed below changes the network's initialization and the batch order "
        "only. "
        + (
            f"Seeds {a['seeds']} at every rank."
            if a.get("seed_ranks") is None
            else f"Seeds {a['seeds']} at ranks {a['seed_ranks']}; the other ranks with seed "
            f"{seed0} only (CPU budget)."
        ),
        f"- Recipe: ConvMF as in the original; Adam lr {a['lr']:g}, batch "
        f"{run.get('batch_size', NOT_RECORDED)}, {a['epochs']} epochs, linear warmup over "
        f"{a['warmup_epochs']} epochs, then a cosine decay to 0, gradient norm clipped to "
        f"{a['clip_norm']:g}, training objective `{a['objective']}`"
        + (
            " (the original loss ||X - UV||^2 plus the least-squares refit's loss "
            "||X - QQ^T X||^2 with Q = orth(U): the network's U is trained for the +refine it is "
            "evaluated with; `neuralfactor train --objective factors+projection`)"
            if a["objective"] == "factors+projection"
            else ""
        )
        + ". The weights of the best validation epoch are kept. The same models without "
        "the projection term and the warmup (cosine+clip) are in "
        "`docs/results/convmf-study.md` (section 'Beyond the original' and its seed findings), "
        "on the same test frames.",
        f"- {str(first.get('dtype', NOT_RECORDED)).capitalize()}, "
        f"{str(first.get('device', NOT_RECORDED)).upper()}, {threads_s} thread per training, "
        f"{lanes} training{'s' if lanes > 1 else ''} at once on the {cores} cores; "
        f"evaluation: {threads_s} thread, batch = the whole test set ({first['batch']}), "
        f"{run.get('timing', NOT_RECORDED)}. Training seconds are wall time, summed over a "
        "resumed run's parts.",
        *([f"- {a['note']}"] if a.get("note") else []),
        "",
    ]


def _per_rank(by: dict, keys: list, health: dict, seed0: int) -> list[str]:
    """One line per rank, the r+2 finding and the stuck trainings."""
    lines = []
    ratio = lambda k, m: by[k][m]["ratio_mean"]  # noqa: E731
    ranks = list(dict.fromkeys(k[0] for k in keys))
    for k in ranks:
        rk = [key for key in keys if key[0] == k]
        vals = [ratio(key, "convmf+refine") for key in rk]
        lines.append(
            f"- rank {k}: convmf+refine median {statistics.median(vals):.3f}x, worst "
            f"{max(vals):.3f}x over seeds {[key[1] for key in rk]}; plain ConvMF "
            + "/".join(f"{ratio(key, 'convmf'):.3f}" for key in rk)
            + "x; +subspace "
            + "/".join(f"{ratio(key, 'convmf+subspace'):.3f}" for key in rk)
            + "x."
        )
    plain = {k[0]: by[k]["convmf"] for k in keys if k[1] == seed0}
    r_plus_2 = [
        f"r={k}: {plain[k + 2]['scaled_loss_mean']:.3e} vs {plain[k]['optimum_mean']:.3e} "
        f"({'yes' if plain[k + 2]['scaled_loss_mean'] <= plain[k]['optimum_mean'] else 'no'})"
        for k in ranks
        if k + 2 in plain
    ]
    if r_plus_2:
        lines.append(
            f"- The original's finding 'ConvMF at rank r+2 matches the SVD at rank r' (plain "
            f"ConvMF, seed {seed0}): " + "; ".join(r_plus_2) + "."
        )
    if len(health) == len(keys):
        stuck_s = ", ".join(f"rank {k[0]} seed {k[1]}" for k in keys if health[k]["stuck"])
    else:
        stuck_s = NOT_RECORDED
    return lines + [f"- Stuck trainings (training loss never halved): {stuck_s or 'none'}."]


def _model_rows(by: dict, keys: list, health: dict) -> list[str]:
    """The table of every model: ratios, validation losses, training seconds."""
    lines = [
        "| rank | seed | SVD optimum | convmf | convmf+refine | convmf+subspace | best validation "
        "(step) | final validation | training s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        rec = by[k]
        cells = [str(k[0]), str(k[1]), f"{rec['convmf']['optimum_mean']:.3e}"]
        for m in LEARNED:
            flag = "**" if m == "convmf+refine" and rec[m]["ratio_mean"] > TARGET else ""
            cells.append(
                f"{flag}{rec[m]['scaled_loss_mean']:.3e} ({rec[m]['ratio_mean']:.3f}x){flag}"
            )
        h = health.get(k)
        cells += (
            [
                f"{h['best']:.3e} ({h['best_step']})" + (" stuck" if h["stuck"] else ""),
                f"{h['final']:.3e}",
            ]
            if h
            else [NOT_RECORDED, NOT_RECORDED]
        )
        cells.append(f"{rec['convmf']['fit_seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _timing_table(evals: Sequence[dict], by: dict, keys: list, seed0: int, threads_s: str):
    """Time per matrix of the seed-0 model and the classical peers of the same evaluation."""
    timing = {k[0]: by[k] for k in keys if k[1] == seed0}
    # the refined networks, then the classical peers in the records' order
    classical = [r["method"] for r in evals if r.get("kind") == "classical"]
    cols = [
        m
        for m in dict.fromkeys(["convmf+refine", "convmf+subspace", *classical])
        if any(m in t for t in timing.values())
    ]
    ranks = list(dict.fromkeys(k[0] for k in keys))
    return [
        f"Time per matrix in µs (ratio to the optimum); seed-{seed0} model, every method in "
        f"one evaluation, same test batch, {threads_s} thread (pod-basis: global POD basis of "
        "the training frames + one subspace step; warm-subspace streams the test frames in time "
        "order):",
        "",
        "| rank | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
        *(
            f"| {k} | "
            + " | ".join(
                f"{timing[k][m]['seconds_per_matrix'] * 1e6:.0f} "
                f"({timing[k][m]['ratio_mean']:.3f}x)"
                for m in cols
            )
            + " |"
            for k in ranks
            if k in timing
        ),
        "",
    ]


def render_convmf_recipe(evals: Sequence[dict], run_records: Sequence[dict]) -> str:
    """The whole page from the evaluation records and the run record (see the module doc)."""
    runs = [r for r in run_records if r.get("kind") == "run"]
    if not runs:
        raise ValueError(
            'convmf-recipe run records hold no "kind": "run" line (the command and run '
            "conditions); regenerate them with benchmarks/convmf_recipe.py."
        )
    run = runs[0]
    health = {(h["rank"], h["seed"]): h for h in run_records if h.get("kind") == "health"}
    by, keys = _index(evals)
    seed0 = list(dict.fromkeys(k[1] for k in keys))[0]
    threads = sorted({r.get("torch_threads") for r in evals if r.get("torch_threads")})
    threads_s = "/".join(str(t) for t in threads) or NOT_RECORDED
    lines = _header(run, by[keys[0]]["convmf"], seed0, threads_s)
    lines += [
        "## Result",
        "",
        f"- Target 'ConvMF+refine within {TARGET:.2f}x of the SVD optimum at every rank': "
        + _summary(by, keys)
        + ".",
    ]
    lines += _per_rank(by, keys, health, seed0)
    lines += ["", *_model_rows(by, keys, health), ""]
    lines += [
        "The validation loss is the training objective's value scaled by ||X||^2 "
        + (
            "(here the sum of the two losses, so about twice plain ConvMF's)."
            if run["args"]["objective"] == "factors+projection"
            else "(plain ConvMF's scaled loss)."
        ),
        "",
    ]
    lines += _timing_table(evals, by, keys, seed0, threads_s)
    return "\n".join(lines) + "\n"


def write_convmf_recipe(evals_path: str | Path, run_path: str | Path, out: str | Path) -> Path:
    """Render the page from the two record files and write it atomically to ``out``."""
    return atomic_write_text(
        out, render_convmf_recipe(load_jsonl(evals_path), load_jsonl(run_path))
    )


#: The run record's file name under ``docs/results/records/`` (a fresh run writes it).
RUN_FILE = "convmf-recipe-run.jsonl"
#: The run record of the earlier page (command, note, health), converted from that page.
LEGACY_FILE = "convmf-recipe-legacy.jsonl"
#: How :func:`neuralfactor.amortized.study.evaluate_run` times the methods.
TIMING = "every method timed in the same interleaved rounds (median of at least 3)"


def write_from_records(results_dir: str | Path) -> Path:
    """Rewrite ``results_dir/convmf-recipe.md`` from the committed records (the fresh run
    record if there is one, else the converted legacy one)."""
    d = Path(results_dir)
    run_path = d / "records" / RUN_FILE
    if not run_path.exists():
        run_path = d / "records" / LEGACY_FILE
    return write_convmf_recipe(d / "convmf-recipe.jsonl", run_path, d / "convmf-recipe.md")


def run_convmf_recipe(config: RecipeConfig, out_dir: str | Path, log: Log = silent) -> Path:
    """Train and evaluate the recipe (resumable), write its records and the page.

    Evaluation records go to ``out_dir/convmf-recipe.jsonl``, the run record to
    ``out_dir/records/convmf-recipe-run.jsonl``, the page to ``out_dir/convmf-recipe.md``.
    """
    out_dir = Path(out_dir)
    evals, run_records = collect_recipe(config, log)
    run_records[0] = {**run_records[0], "timing": TIMING, "records_file": RUN_FILE}
    rows = lambda recs: "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs)  # noqa: E731
    atomic_write_text(out_dir / "convmf-recipe.jsonl", rows(evals))
    run_path = atomic_write_text(out_dir / "records" / RUN_FILE, rows(run_records))
    return write_convmf_recipe(
        out_dir / "convmf-recipe.jsonl", run_path, out_dir / "convmf-recipe.md"
    )
