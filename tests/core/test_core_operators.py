"""The operator protocol: adapters agree with dense products; bad functions fail clearly."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuralfactor.core.operators import (
    DenseOperator,
    FunctionOperator,
    LinearOperator,
    SparseOperator,
    as_operator,
)


@pytest.fixture
def A(gen):
    return torch.randn(7, 5, generator=gen, dtype=torch.float64)


def _adapters(A):
    S = sp.random(7, 5, density=0.5, random_state=0, format="csr")
    Ad = torch.as_tensor(S.toarray())
    return [
        (DenseOperator(A), A),
        (SparseOperator(S), Ad),
        (FunctionOperator(lambda X: A @ X, (7, 5), rfn=lambda Y: A.mT @ Y), A),
    ]


def test_adapters_match_dense_products_and_count(A, gen):
    x = torch.randn(5, generator=gen, dtype=torch.float64)
    X = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    for op, M in _adapters(A):
        assert isinstance(op, LinearOperator)
        assert op.shape == (7, 5)
        # float64 products of identical data: agreement to round-off
        torch.testing.assert_close(op.matvec(x), M @ x, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(op.matvec(X), M @ X, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(op @ X, M @ X, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(op.rmatvec(y), M.mT @ y, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(op.as_matrix(), M, rtol=1e-12, atol=1e-12)
        assert op.matvec(x).shape == (7,)
        assert op.n_rmatvecs == 2
        # matvec(x) twice, matvec(X) and op @ X 3 columns each; as_matrix() of a function
        # operator applies it to the 5 unit vectors (dense/sparse hold the matrix: no products)
        assert op.n_matvecs == 2 + 3 + 3 + (5 if isinstance(op, FunctionOperator) else 0)
        op.reset_counts()
        assert op.n_matvecs == 0


def test_as_operator_dispatch(A):
    assert isinstance(as_operator(A), DenseOperator)
    assert isinstance(as_operator(A.numpy()), DenseOperator)
    assert isinstance(as_operator(sp.eye(4, format="csr")), SparseOperator)
    op = DenseOperator(A)
    assert as_operator(op) is op
    assert as_operator(np.arange(6).reshape(2, 3)).dtype == torch.float64
    with pytest.raises(TypeError, match="as_operator accepts a LinearOperator"):
        as_operator([[1.0]])


def test_function_operator_wrong_shape_is_named():
    def bad(X):
        return torch.zeros(3, X.shape[1], dtype=X.dtype)

    op = FunctionOperator(bad, (4, 4))
    with pytest.raises(ValueError, match=r"'bad' .* returned shape \(3, 2\) .* expected \(4, 2\)"):
        op.matvec(torch.ones(4, 2, dtype=torch.float64))


def test_function_operator_nan_and_inf():
    op = FunctionOperator(lambda X: X * float("nan"), (3, 3))
    with pytest.raises(ValueError, match="returned NaN"):
        op.matvec(torch.ones(3, dtype=torch.float64))
    op = FunctionOperator(lambda X: X * float("inf"), (3, 3))
    with pytest.raises(ValueError, match="returned Inf"):
        op.matvec(torch.ones(3, dtype=torch.float64))


def test_function_operator_bad_return_type_and_no_adjoint():
    op = FunctionOperator(lambda X: [1.0], (3, 3))
    with pytest.raises(TypeError, match="must return a tensor"):
        op.matvec(torch.ones(3, dtype=torch.float64))
    op = FunctionOperator(lambda X: X, (3, 3))
    with pytest.raises(NotImplementedError, match="pass rfn"):
        op.rmatvec(torch.ones(3, dtype=torch.float64))


def test_bad_inputs_to_products_and_constructors(A):
    op = DenseOperator(A)
    with pytest.raises(ValueError, match=r"shape \(5,\) or a block of shape \(5, k\).*Got \(4,\)"):
        op.matvec(torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        op.matvec([1.0] * 5)
    with pytest.raises(ValueError, match="one matrix of shape"):
        DenseOperator(torch.ones(2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="contains NaN"):
        DenseOperator(torch.tensor([[float("nan")]], dtype=torch.float64))
    with pytest.raises(TypeError, match="scipy.sparse"):
        SparseOperator(A)
    with pytest.raises(ValueError, match="NaN or Inf"):
        SparseOperator(sp.csr_array(np.array([[np.nan, 1.0]])))
    with pytest.raises(ValueError, match=r"'shape' parameter .* pair \(m, n\)"):
        FunctionOperator(lambda X: X, (3,))
    with pytest.raises(TypeError, match="'fn' parameter .* callable"):
        FunctionOperator(3, (3, 3))
    with pytest.raises(TypeError, match="float32 or float64"):
        FunctionOperator(lambda X: X, (3, 3), dtype=torch.int64)


def test_float32_operator_casts_inputs():
    op = FunctionOperator(lambda X: 2 * X, (3, 3), dtype=torch.float32)
    out = op.matvec(torch.ones(3, dtype=torch.float64))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((3,), 2.0))
