"""Render the markdown tables of docs/results/learned-lu.md from the saved records.

python benchmarks/lu_report.py runs/lu_table.json runs/lu_extra.json > /tmp/tables.md
"""

from __future__ import annotations

import sys

from neuralfactor.io import read_json

TARGETS = {  # issue 7: relative Frobenius operator error / Krylov iterations to 1e-8
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


def main(table: str, extra: str | None) -> None:
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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
