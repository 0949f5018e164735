import numpy as np
import pytest
import torch

from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import (
    as_generator,
    check_matrix,
    check_option,
    check_positive_float,
    check_positive_int,
    check_rank,
    resolve_device,
)


def test_lowrank_reconstruct_with_and_without_S():
    U = torch.linalg.qr(torch.randn(2, 6, 3, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(2, 5, 3, dtype=torch.float64)).Q.mT
    S = torch.tensor([[3.0, 2.0, 1.0], [4.0, 1.0, 0.5]], dtype=torch.float64)
    lr = LowRank(U, V, S)
    torch.testing.assert_close(lr.reconstruct(), U @ torch.diag_embed(S) @ V)
    A, B = lr.factors()
    torch.testing.assert_close(A @ B, lr.reconstruct())
    assert lr.rank == 3 and lr.shape == (2, 6, 5) and lr.batch_shape == (2,)
    t = lr.truncate(1)
    assert t.rank == 1 and t.S.shape == (2, 1)
    torch.testing.assert_close(lr[1].reconstruct(), lr.reconstruct()[1])
    assert lr.to(torch.float32).dtype == torch.float32
    assert "rank=3" in repr(lr)


@pytest.mark.parametrize(
    "U,V,S,msg",
    [
        (torch.ones(4, 2), torch.ones(3, 5), None, "U has 2 columns but V has 3 rows"),
        (torch.ones(2, 4, 2), torch.ones(3, 2, 5), None, "same batch shape"),
        (torch.ones(4), torch.ones(3, 5), None, r"U of shape \(\*, m, r\)"),
        (torch.ones(4, 2), torch.ones(2, 5, dtype=torch.float64), None, "share dtype and device"),
        (torch.ones(4, 2), torch.ones(2, 5), torch.ones(3), r"S must have shape \(2,\)"),
    ],
)
def test_lowrank_rejects_inconsistent_shapes(U, V, S, msg):
    with pytest.raises(ValueError, match=msg):
        LowRank(U, V, S)


def test_lowrank_truncate_and_index_errors():
    lr = LowRank(torch.ones(4, 2), torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"must be in \[1, 2\]. Got 3"):
        lr.truncate(3)
    with pytest.raises(IndexError, match="no batch dimension"):
        lr[0]


def test_check_matrix_accepts_numpy_and_reports_batch_index_of_nan():
    X = check_matrix(np.ones((2, 3)))
    assert isinstance(X, torch.Tensor)
    bad = torch.ones(2, 3, 4, 4)
    bad[1, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"contains NaN \(first at batch index \(1, 2\)\)"):
        check_matrix(bad, caller="demo")


def test_check_matrix_device_and_complex():
    with pytest.raises(ValueError, match="is on device cpu, expected meta"):
        check_matrix(torch.ones(2, 2), device="meta")
    with pytest.raises(TypeError, match="real floating array"):
        check_matrix(np.ones((2, 2), dtype=complex))
    with pytest.raises(TypeError, match="floating dtype in \\[float32, float64\\]"):
        check_matrix(torch.ones(2, 2, dtype=torch.float16))


def test_check_rank_messages():
    assert check_rank(3, (10, 4)) == 3
    with pytest.raises(ValueError, match=r"int in \[1, min\(m, n\)=4\] for 10x4 matrices. Got 5"):
        check_rank(5, (10, 4), caller="x")
    with pytest.raises(TypeError, match="Got 2.0 of type float"):
        check_rank(2.0, (10, 4))
    with pytest.raises(TypeError, match="Got True"):
        check_rank(True, (10, 4))


def test_small_checks():
    assert check_positive_int(3, name="n") == 3
    with pytest.raises(ValueError, match="'n' parameter must be an int >= 1. Got 0"):
        check_positive_int(0, name="n")
    assert check_positive_float(0.5, name="dt") == 0.5
    with pytest.raises(ValueError, match="must be > 0. Got -1.0"):
        check_positive_float(-1.0, name="dt")
    with pytest.raises(TypeError, match="finite number"):
        check_positive_float(float("nan"), name="dt")
    with pytest.raises(ValueError, match=r"must be one of \['a', 'b'\]. Got 'c'"):
        check_option("c", ["a", "b"], name="mode")


def test_generators_are_explicit_and_reproducible():
    a = torch.randn(3, generator=as_generator(5))
    b = torch.randn(3, generator=as_generator(5))
    torch.testing.assert_close(a, b)
    g = torch.Generator()
    assert as_generator(g) is g
    with pytest.raises(TypeError, match="seed must be an int"):
        as_generator("x")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="must be 'auto', 'cpu' or 'cuda'"):
        resolve_device("meta")
