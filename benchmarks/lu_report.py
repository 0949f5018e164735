"""Render the markdown tables of docs/results/learned-lu.md from the saved records.

python benchmarks/lu_report.py runs/lu_table.json runs/lu_extra.json \
    [--lm runs/lu_lm_a.json runs/lu_lm_b.json] > /tmp/tables.md
python benchmarks/lu_report.py --sym runs/lu_sym_rbf_b.json

``--lm``: records of ``lu_table.py --optimizer lm`` (any split of the operators), rendered as
the Levenberg-Marquardt table beside the L-BFGS rows of the main table.

``--sym``: records of ``lu_table.py --symmetric --precond-weight ...`` (the learned Cholesky
with the preconditioned term), rendered with left- and right-preconditioned GMRES.
"""

from __future__ import annotations

import argparse

from neuralfactor.io import read_json

TARGETS = {  # relative Frobenius operator error / Krylov iterations to 1e-8
    "laplacian-1d": (1e-5, 6),
    "convdiff-1d": (1e-4, 11),
    "convdiff-2d": (1e-6, 3),
    "laplacian-2d": (1e-6, 3),
    "biharmonic-1d": (5e-5, 25),
    "biharmonic-2d": (1e-6, 4),
    "rbf": (1e-4, 30),
}


def e(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.1e}"


def it(d: dict) -> str:
    if d["converged"]:
        return f"{int(d['iters'])}"
    return f"{int(d['iters'])}* (true res. {d['rel_residual']:.0e})"


def lm_table(t: dict, files: list[str]) -> None:
    """Levenberg-Marquardt rows beside the L-BFGS rows of the main table (same operators)."""
    lb = {r["operator"]: r for r in t["rows"]}
    rows = [r for f in files for r in read_json(f)["rows"]]
    order = list(TARGETS)
    rows.sort(
        key=lambda r: (
            order.index(r["operator"]),
            r.get("diag") == "unit",
            bool(r.get("symmetric")),
            r.get("precond_weight") or 0.0,
            r["steps"],
        )
    )
    print(
        "\n### Levenberg-Marquardt (steps of <= 100 CG iterations) vs L-BFGS (2,000 iterations),"
        " float64, same operators and evaluation\n"
    )
    print(
        "| operator | LM steps | L-BFGS rel. Frob. | **LM rel. Frob.** | target | met "
        "| LM cond(L U) | LM sol. err. median | LM + 1 refinement | GMRES L-BFGS | **GMRES LM** "
        "| ILU(0) | AMG | target | met | L-BFGS train s | LM train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        op = r["operator"]
        tf, ti = TARGETS[op]
        g, b = r["gmres"], lb.get(op)
        ok = "learned" in g and g["learned"]["converged"] and g["learned"]["iters"] <= ti
        bl = it(b["gmres"]["learned"]) if b and "learned" in b["gmres"] else "n/a"
        b_err = e(b["op_err_fro"]) if b else "-"
        b_sec = f"{b['train_seconds']:.0f}" if b else "-"
        variant = ", unit-diagonal L" if r.get("diag") == "unit" else ""
        variant += ", symmetric L L^T" if r.get("symmetric") else ""
        w = r.get("precond_weight") or 0.0
        variant += f", precond. weight {w:g}" if w else ""
        print(
            f"| {op} | {r['steps']} x {r['cg_iters']}{variant} | {b_err} | {e(r['op_err_fro'])} | {e(tf)} | "
            f"{'yes' if r['op_err_fro'] <= tf else '**no**'} | {e(r['cond_LU'])} | "
            f"{e(r['sol_err_median'])} | {e(r['refined_sol_err_median'])} | {bl} | "
            f"{it(g['learned']) if 'learned' in g else 'n/a'} | {it(g['ilu0'])} | "
            f"{it(g['amg'])} | {ti} | {'yes' if ok else '**no**'} | "
            f"{b_sec} | {r['train_seconds']:.0f} |"
        )
    loads = [tuple(round(v, 1) for v in r["loadavg_train"]) for r in rows]
    print(f"\nLoad averages at the start of each LM training: {loads}.")


def sym_table(files: list[str]) -> None:
    """Symmetric L L^T rows (precond. weight, stages) with left and right GMRES counts."""
    rows = [r for f in files for r in read_json(f)["rows"]]
    print(
        "\n| operator | LM steps (precond. weight) | rel. Frob. | target | met | cond(L U) "
        "| cond(A) | cond(L) | weights | GMRES left: learned / none / ILU(0) / AMG "
        "| GMRES right: learned / none / ILU(0) / AMG | target | met | plain CG | "
        "train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tf, ti = TARGETS[r["operator"]]
        stages = r.get("stages", [])
        sched = [(r["precond_weight"], r["steps"] - sum(s["steps"] for s in stages))]
        sched += [(s["precond_weight"], s["steps"]) for s in stages]
        steps = " + ".join(f"{k} ({w:g})" for w, k in sched)
        gl, gr = r["gmres"], r.get("gmres_right")
        g = gr or gl  # the first record has left GMRES only
        ok = g["learned"]["converged"] and g["learned"]["iters"] <= ti
        cg = it(r["cg"]["none"]) if "cg" in r else "-"
        print(
            f"| {r['operator']} | {steps} | {e(r['op_err_fro'])} | {e(tf)} | "
            f"{'yes' if r['op_err_fro'] <= tf else '**no**'} | {e(r['cond_LU'])} | "
            f"{e(r['cond_A'])} | {e(r['cond_L'])} | {r['params']} | "
            + " / ".join(it(gl[k]) for k in ("learned", "none", "ilu0", "amg"))
            + " | "
            + (" / ".join(it(gr[k]) for k in ("learned", "none", "ilu0", "amg")) if gr else "-")
            + f" | {ti} | {'yes' if ok else '**no**'} | {cg} | {r['train_seconds']:.0f} |"
        )
    loads = [tuple(round(v, 1) for v in r["loadavg_train"]) for r in rows]
    print(f"\nLoad averages at the start of each training: {loads}.")


def main(table: str, extra: str | None, lm: list[str] | None = None) -> None:
    t = read_json(table)
    x = read_json(extra) if extra else {"lapack": [], "float32": []}
    lap = {(r["operator"], r["dtype"]): r for r in x["lapack"]}
    print("### Operator error, conditioning, size (learned: L-BFGS float64, 2,000 iterations)\n")
    print(
        "| operator | rel. Frob. ‖A−LU‖_F/‖A‖_F | target | met | rel. spectral ‖A−LU‖₂/‖A‖₂ "
        "| cond(A) | cond(L U) | cond(L) | cond(U) | weights L+U | n² | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in t["rows"]:
        tf, _ = TARGETS[r["operator"]]
        print(
            f"| {r['operator']} | {e(r['op_err_fro'])} | {e(tf)} | "
            f"{'yes' if r['op_err_fro'] <= tf else '**no**'} | {e(r['op_err_2'])} | "
            f"{e(r['cond_A'])} | {e(r['cond_LU'])} | {e(r['cond_L'])} | {e(r['cond_U'])} | "
            f"{r['params']} | {r['dense_params']} | {r['train_seconds']:.0f} |"
        )
    print(
        "\n### Solves: per-sample relative solution error ‖x−x̂‖/‖x‖ and backward error "
        "‖b−Ax̂‖/(‖A‖‖x̂‖+‖b‖), median (max) over 100 random x, b = A x\n"
    )
    print(
        "| operator | learned | learned + 1 refinement | LAPACK float32 | LAPACK float64 "
        "| bwd learned | bwd LAPACK f32 | bwd LAPACK f64 | LAPACK ‖A−PLU‖_F/‖A‖_F f32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in t["rows"]:
        op = r["operator"]
        l32, l64 = lap.get((op, "float32"), {}), lap.get((op, "float64"), {})

        def se(d: dict, p: str = "") -> str:
            if not d:
                return "-"
            return f"{e(d[p + 'sol_err_median'])} ({e(d[p + 'sol_err_max'])})"

        def be(d: dict) -> str:
            return e(d["bwd_err_median"]) if d else "-"

        print(
            f"| {op} | {se(r)} | {se(r, 'refined_')} | {se(l32)} | {se(l64)} | {be(r)} | "
            f"{be(l32)} | {be(l64)} | {e(l32['op_err_fro']) if l32 else '-'} |"
        )
    print(
        "\n### GMRES iterations to relative residual 1e-8 (same run, same right-hand side; "
        "`*` = stopped without reaching 1e-8 in the true residual ‖b−Ax‖/‖b‖, shown in brackets)\n"
    )
    print(
        "| operator | none | Jacobi | ILU(0) | spilu(ff=1) | SA-AMG | **learned** | target "
        "| met | plain CG | CG+AMG |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in t["rows"]:
        g = r["gmres"]
        _, ti = TARGETS[r["operator"]]
        lv = it(g["learned"]) if "learned" in g else "n/a"
        ok = "learned" in g and g["learned"]["converged"] and g["learned"]["iters"] <= ti
        cg = r.get("cg", {})
        print(
            f"| {r['operator']} | {it(g['none'])} | {it(g['jacobi'])} | {it(g['ilu0'])} | "
            f"{it(g['spilu'])} | {it(g['amg'])} | {lv} | {ti} | {'yes' if ok else '**no**'} | "
            f"{it(cg['none']) if cg else '-'} | {it(cg['amg']) if cg else '-'} |"
        )
    for key, title in (
        ("ablation", "Ablation on the 1-D Laplacian (same 2,000-iteration budget)"),
        ("two_d", "2-D quad-tree variant (4x4 patches, P = 16, Morton order)"),
    ):
        if not t.get(key):
            continue
        print(f"\n### {title}\n")
        print(
            "| run | operator | rel. Frob. | cond(L U) | sol. err. median | GMRES learned "
            "| ILU(0) | AMG | weights | train s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in t[key]:
            g = r["gmres"]
            print(
                f"| {r['label']} | {r['operator']} | {e(r['op_err_fro'])} | {e(r['cond_LU'])} | "
                f"{e(r['sol_err_median'])} | {it(g['learned']) if 'learned' in g else 'n/a'} | "
                f"{it(g['ilu0'])} | {it(g['amg'])} | {r['params']} | {r['train_seconds']:.0f} |"
            )
    if x.get("float32"):
        print("\n### float32 training (2-D operators; target stated in float32)\n")
        print("| operator | rel. Frob. | target | met | cond(L U) | sol. err. median | weights |")
        print("|---|---|---|---|---|---|---|")
        for r in x["float32"]:
            tf, _ = TARGETS[r["operator"]]
            print(
                f"| {r['operator']} | {e(r['op_err_fro'])} | {e(tf)} | "
                f"{'yes' if r['op_err_fro'] <= tf else '**no**'} | {e(r['cond_LU'])} | "
                f"{e(r['sol_err_median'])} | {r['params']} |"
            )
    if t.get("regime"):
        print(
            "\n### Size regime (1-D, P = 32): weights of L + U vs the dense n², and the "
            "structured solve (16 right-hand sides) vs LAPACK `lu_solve`, same run\n"
        )
        print(
            "| n | weights L+U | n² | ratio | structured solve s | LAPACK lu_solve s "
            "| rel. difference |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in t["regime"]:
            print(
                f"| {r['n']} | {r['params_LU']} | {r['dense']} | {r['ratio']:.2f} | "
                f"{r['solve16_structured_s']:.2e} | {r['solve16_lapack_s']:.2e} | "
                f"{e(r['agree'])} |"
            )
    loads = [tuple(round(v, 1) for v in r["loadavg_train"]) for r in t["rows"]]
    print(
        f"\nLoad averages (1, 5, 15 min) at the start of each main training: {loads}; "
        f"threads: {t['threads']}; total {t.get('total_seconds', float('nan')):.0f} s."
    )
    if lm:
        lm_table(t, lm)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", nargs="?")
    ap.add_argument("extra", nargs="?")
    ap.add_argument("--lm", nargs="*", default=None)
    ap.add_argument("--sym", nargs="*", default=None)
    a = ap.parse_args()
    if a.sym:
        sym_table(a.sym)
    elif a.table is None:
        ap.error("give the main table's record (or --sym RECORDS)")
    else:
        main(a.table, a.extra, a.lm)
