"""`neuralfactor.lu.study`: the rows of the learned-LU records, on tiny operators."""

import pytest

from neuralfactor.lu.run import LURunConfig
from neuralfactor.lu.study import SPD_OPERATORS, environment, size_regime, table_row
from neuralfactor.lu.train import LUTrainConfig


def test_table_row_records_settings_result_and_iterations():
    train = LUTrainConfig(steps=2, cg_iters=5, precond_weight=0.1, precond_stages=((0.01, 1),))
    cfg = LURunConfig("laplacian-1d", 32, 8, symmetric=True, train=train)
    r = table_row(cfg, "tiny", samples=4)
    assert (r["operator"], r["n"], r["leaf"], r["dim"], r["label"]) == (
        "laplacian-1d", 32, 8, 1, "tiny",
    )  # fmt: skip
    assert (r["optimizer"], r["iterations"], r["steps"], r["cg_iters"]) == ("lm", 2, 3, 5)
    assert r["symmetric"] is True and r["precond_weight"] == 0.1
    assert [(s["precond_weight"], s["steps"]) for s in r["stages"]] == [(0.01, 1)]
    assert r["stages"][-1]["rel_fro"] == r["train_rel_fro"]
    assert r["op_err_fro"] == pytest.approx(r["train_rel_fro"], rel=1e-9)
    pcs = {"none", "jacobi", "ilu0", "spilu", "amg", "learned"}
    assert set(r["gmres"]) == pcs and set(r["gmres_right"]) == pcs
    assert r["gmres"]["ilu0"]["iters"] == 1  # ILU(0) of a tridiagonal matrix is its exact LU
    assert set(r["cg"]) == {"none", "jacobi", "amg"} and "laplacian-1d" in SPD_OPERATORS
    assert len(r["loadavg_train"]) == len(r["loadavg_end"]) == 3
    lbfgs = LUTrainConfig(optimizer="lbfgs", steps=1, inner=3)
    r = table_row(LURunConfig("convdiff-1d", 32, 8, train=lbfgs), samples=4)
    assert (r["iterations"], r["cg_iters"], r["label"]) == (3, None, "main")
    assert "cg" not in r  # not symmetric: no CG


def test_size_regime_exact_factors_agree_with_lapack():
    r = size_regime(64, 8)
    assert (r["n"], r["leaf"], r["dense"]) == (64, 8, 64 * 64)
    assert r["ratio"] == r["params_LU"] / 64**2
    assert r["agree"] < 1e-12  # the exact Cholesky factors in the near field, float64
    assert set(environment()) >= {"device", "torch", "numpy", "scipy", "python", "env_threads"}
