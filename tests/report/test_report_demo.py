"""The main job end to end: `neuralfactor demo --quick`, interruption and resume, the report."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from neuralfactor.cli import main
from neuralfactor.report.html import collect_records


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    import neuralfactor.amortized.study as study

    real = study.evaluate_run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    study.evaluate_run = interrupted  # Ctrl-C during the evaluation stage
    try:
        assert main(["-q", "demo", "--quick", "--out", str(out), "--device", "cpu"]) == 130
    finally:
        study.evaluate_run = real
    assert not (out / "report").exists()
    models = sorted(out.glob("*/model/weights.safetensors"))
    assert len(models) == 5  # 3 ConvMF + 2 sketch encoders, trained before the interruption, kept
    stamps = {p: p.stat().st_mtime_ns for p in models}
    assert main(["-q", "demo", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in models} == stamps  # resumed, not retrained
    return out


def test_report_tables_and_figures_agree_with_records(demo_dir):
    page = (demo_dir / "report" / "index.html").read_text()
    records = collect_records(demo_dir)
    main_rows = [r for r in records if r["kind"] != "analysis"]
    rows = re.findall(
        r"<tr><td>(\w+)</td><td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>"
        r"<td>([^<]+)</td>",
        page,
    )
    assert len(rows) == len(main_rows)
    table = {
        (s, int(k), m.replace("&#x27;", "'")): (float(loss), float(ratio))
        for s, k, m, loss, ratio in rows
    }
    for r in main_rows:
        loss, ratio = table[(r["split"], r["rank"], r["method"])]
        assert loss == pytest.approx(r["scaled_loss_mean"], rel=1e-3)
        assert ratio == pytest.approx(r["ratio_mean"], abs=1e-3)
    assert page.count("<img ") >= 8 and "data:image/png;base64," in page
    assert "Conclusion" in page and "Where learning fails" in page and "timed in" in page
    # figures first: accuracy against speed per split, the frames, the singular values; the
    # table follows, collapsed
    alts = re.findall(r'<img alt="([^"]*)"', page)
    assert alts[0].startswith("interpolation: accuracy against speed")
    assert alts[1].startswith("extrapolation: accuracy against speed")
    assert alts[2].startswith("interpolation: test frames f(x, v) at 3 times")
    assert alts[3].startswith("extrapolation: test frames f(x, v)")
    assert alts[4].startswith("interpolation: singular-value decay")
    assert page.index("<img ") < page.index("Conclusion") < page.index("<table")
    details = page.index("<details><summary>Results table")
    assert details < page.index("<table") < page.index("</details>", details)
    pngs = sorted((demo_dir / "report").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_demo_records_its_own_run_time(demo_dir):
    meta = json.loads((demo_dir / "demo.json").read_text())
    first, *later = meta["runs"]  # the interrupted run recorded nothing; each finished one did
    assert set(first["stages_seconds"]) == {"simulate", "train", "evaluate", "report"}
    assert first["seconds"] >= sum(first["stages_seconds"].values()) - 0.3  # rounding
    assert first["threads"] == 1 and first["cpu_count"] >= 1
    assert first["loadavg_before"] >= 0 and first["loadavg_after"] >= 0
    assert meta["last_run_seconds"] <= meta["runs"][-1]["seconds"]  # the report is after
    assert "loadavg_before" not in meta  # moved into its run's entry
    # the snapshots the report draws: the interpolation model at the largest rank and the
    # extrapolation model, each from its own test frames
    from neuralfactor.report.snapshots import load_snapshots

    for name in ("interpolation-convmf-r4", "extrapolation-convmf-r4"):
        s = load_snapshots(demo_dir / name / "snapshots.npz")
        assert s["frame"].shape == s["svd"].shape == s["learned"].shape == (3, 32, 64)
        assert str(s["method"]) == "convmf+refine" and int(s["rank"]) == 4
        # the SVD reconstruction is optimal (Eckart-Young): never worse than the learned one
        err_svd = ((s["svd"] - s["frame"]) ** 2).sum(axis=(1, 2))
        err_learned = ((s["learned"] - s["frame"]) ** 2).sum(axis=(1, 2))
        assert np.all(err_svd <= err_learned * (1 + 1e-9))
        sv = s["singular_values"]
        assert sv.shape == (len(s["test_t"]), 32) and np.all(np.diff(sv, axis=1) <= 1e-12)
        assert set(s["t"]) <= set(s["test_t"]) and s["t"][0] == s["test_t"].min()


def test_second_run_is_instant_and_identical(demo_dir, monkeypatch):
    """A finished demo does no work again: no evaluation is called, no file but the report and
    demo.json is rewritten (data, checkpoints, weights, records keep their mtimes)."""
    import neuralfactor.amortized.study as study

    def must_not_run(*a, **k):
        raise AssertionError("a finished demo re-evaluated a model")

    monkeypatch.setattr(study, "evaluate_run", must_not_run)
    before = collect_records(demo_dir)
    files = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("*") if p.is_file()}
    files = {p: t for p, t in files.items() if "report" not in p.parts and p.name != "demo.json"}
    assert main(["-q", "demo", "--quick", "--out", str(demo_dir), "--device", "cpu"]) == 0
    assert collect_records(demo_dir) == before
    assert {p: p.stat().st_mtime_ns for p in files} == files  # nothing rewritten
    assert len(files) > 10  # the check covered the store, models and records


def test_report_command_regenerates_from_records(demo_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo_dir, copy, ignore=shutil.ignore_patterns("data.zarr", "ckpt", "model"))
    shutil.rmtree(copy / "report")
    assert main(["-q", "report", str(copy)]) == 0  # no data, no models: records only
    # the report is a pure function of the records: the same page, byte for byte, except
    # for the directory it names in its "Regenerate with" line
    original = (demo_dir / "report" / "index.html").read_text(encoding="utf-8")
    new = (copy / "report" / "index.html").read_text(encoding="utf-8")
    assert new.count(str(copy)) == 1
    assert new.replace(str(copy), str(demo_dir)) == original


def test_report_names_corrupt_or_missing_records(demo_dir, tmp_path, capsys):
    assert main(["-q", "report", str(tmp_path)]) == 2
    assert "holds no records" in capsys.readouterr().err
    copy = tmp_path / "c"
    shutil.copytree(demo_dir, copy, ignore=shutil.ignore_patterns("data.zarr", "ckpt", "model"))
    rec = sorted(copy.glob("*/records*.jsonl"))[0]
    lines = rec.read_text().splitlines()
    rec.write_text("\n".join(lines[:2] + ["{not json"] + lines[2:]) + "\n")
    assert main(["-q", "report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert str(rec.relative_to(copy)) in err.replace(str(copy) + "/", "") and "line 3" in err
    rec.write_text('{"method": "svd"}\n')
    assert main(["-q", "report", str(copy)]) == 2
    assert "record 1: missing fields" in capsys.readouterr().err


def test_demo_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["-q", "demo", "--quick", "--out", str(blocker / "demo")]) == 2
    assert "is not writable" in capsys.readouterr().err


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(demo_dir, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium); the browser "
            "check of the report needs it"
        )
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            (demo_dir / "report" / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    console_errors = [
        l for l in proc.stderr.splitlines() if "CONSOLE" in l and "ERROR" in l.upper()
    ]
    assert not console_errors, console_errors


def _rec(method, kind, ratio, us, iqr=0.05, fit=0.0, warm=False):
    s = us * 1e-6
    return {
        "method": method,
        "kind": kind,
        "split": "interpolation",
        "rank": 4,
        "ratio_mean": ratio,
        "seconds_per_matrix": s,
        "seconds_per_matrix_q25": s * (1 - iqr),
        "seconds_per_matrix_q75": s * (1 + iqr),
        "fit_seconds": fit,
        "warm": warm,
        "_source": "a/records.jsonl",
    }


def test_conclusions_compare_speed_only_within_the_band():
    from neuralfactor.report.html import conclusions

    recs = [
        _rec("svd", "classical", 1.0, 100.0),
        _rec("rsvd", "classical", 1.001, 40.0),
        _rec("warm-subspace", "classical", 1.002, 41.0, warm=True),  # within noise of rsvd
        _rec("convmf", "learned", 1.03, 20.0, fit=100.0),
    ]
    (line,) = conclusions(recs)
    assert "The network alone (convmf) is 1.03x the optimum; its training" in line
    # the learned net is the fastest in the band; the warm method is named warm
    assert "fastest within 1.05x of the optimum is <b>convmf</b>" in line
    # break-even against the fastest other method in the band: 100 s / (40 - 20) us = 5,000,000
    assert "pays for its training after 5,000,000 matrices against rsvd" in line
    recs[3]["ratio_mean"] = 1.4  # outside the band: no speed comparison at all
    (line,) = conclusions(recs)
    assert "pays for" not in line and "is outside 1.05x of the optimum" in line
    assert "fastest within 1.05x of the optimum is <b>rsvd</b>" in line
    assert "within timing noise of warm-subspace (warm)" in line
    recs.append(_rec("convmf+refine", "learned", 1.0123, 30.0, fit=100.0))
    (line,) = conclusions(recs)
    assert "is 1.40x the optimum, with least-squares refinement (convmf+refine) <b>1.012x</b>" in (
        line
    )
