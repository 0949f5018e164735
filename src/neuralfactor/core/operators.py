"""A small linear-operator protocol: a matrix seen only through its products.

Operator-style problems (low rank from matrix-vector products, learned LU, spectral methods)
never need the entries of ``A``; they need ``x -> A x`` (and sometimes ``y -> A^T y``). This
module defines that protocol and three adapters, all torch-based:

========================  ===========================================================
:class:`DenseOperator`    a dense ``(m, n)`` tensor or NumPy array
:class:`SparseOperator`   a ``scipy.sparse`` matrix (products in SciPy, returned as torch)
:class:`FunctionOperator` a Python function ``fn(X) -> A X`` (and optionally ``rfn``)
========================  ===========================================================

Products are **batched over columns**: ``matvec`` accepts a vector ``(n,)`` or a block
``(n, k)`` of ``k`` vectors and returns ``(m,)`` or ``(m, k)``; one call with a block is one
BLAS-3 product rather than ``k`` Python calls. Every adapter counts the vectors it has applied
(``n_matvecs``, ``n_rmatvecs``), so a method's product budget can be reported honestly.

>>> op = as_operator(torch.randn(5, 3, dtype=torch.float64))
>>> op.matvec(torch.ones(3, 2, dtype=torch.float64)).shape
torch.Size([5, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from neuralfactor.core.validation import FLOAT_DTYPES, check_matrix

__all__ = [
    "DenseOperator",
    "FunctionOperator",
    "LinearOperator",
    "SparseOperator",
    "as_operator",
]


@runtime_checkable
class LinearOperator(Protocol):
    """A linear map ``R^n -> R^m`` known through its products.

    Attributes
    ----------
    shape : tuple (m, n)
    dtype : torch.dtype of the products
    device : torch.device of the products
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def matvec(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` of shape ``(n,)`` or ``(n, k)``."""
        ...

    def rmatvec(self, y: Tensor) -> Tensor:
        """``A^T @ y`` for ``y`` of shape ``(m,)`` or ``(m, k)``."""
        ...

    def as_matrix(self) -> Tensor:
        """The dense ``(m, n)`` matrix (costs ``n`` products for function operators)."""
        ...


class _Base:
    """Shared input checks and product counters."""

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device
    name: str = "operator"

    def __init__(self) -> None:
        self.n_matvecs = 0
        self.n_rmatvecs = 0

    # -------------------------------------------------------------- checks
    def _check_in(self, x: Any, size: int, what: str) -> tuple[Tensor, bool]:
        if isinstance(x, np.ndarray):
            x = torch.as_tensor(x)
        if not isinstance(x, Tensor):
            raise TypeError(
                f"{self.name}.{what} expects a torch.Tensor of shape ({size},) or ({size}, k). "
                f"Got {type(x).__name__}."
            )
        if x.ndim not in (1, 2) or x.shape[0] != size:
            raise ValueError(
                f"{self.name}.{what} expects a vector of shape ({size},) or a block of shape "
                f"({size}, k) for an operator of shape {self.shape}. Got {tuple(x.shape)}."
            )
        vec = x.ndim == 1
        x = x.to(device=self.device, dtype=self.dtype)
        return (x.unsqueeze(1) if vec else x), vec

    def _count(self, k: int, adjoint: bool) -> None:
        if adjoint:
            self.n_rmatvecs += k
        else:
            self.n_matvecs += k

    def reset_counts(self) -> None:
        """Set ``n_matvecs`` and ``n_rmatvecs`` back to 0."""
        self.n_matvecs = 0
        self.n_rmatvecs = 0

    # -------------------------------------------------------------- public API
    def matvec(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` of shape ``(n,)`` or ``(n, k)``; costs ``k`` products."""
        X, vec = self._check_in(x, self.shape[1], "matvec")
        Y = self._apply(X)
        self._count(X.shape[1], adjoint=False)
        return Y[:, 0] if vec else Y

    def rmatvec(self, y: Tensor) -> Tensor:
        """``A^T @ y`` for ``y`` of shape ``(m,)`` or ``(m, k)``; costs ``k`` adjoint products."""
        Y, vec = self._check_in(y, self.shape[0], "rmatvec")
        X = self._apply_adjoint(Y)
        self._count(Y.shape[1], adjoint=True)
        return X[:, 0] if vec else X

    def as_matrix(self) -> Tensor:
        """The dense ``(m, n)`` matrix."""
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return self.matvec(eye)

    def __matmul__(self, x: Tensor) -> Tensor:
        return self.matvec(x)

    def _apply(self, X: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_adjoint(self, Y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        dt = str(self.dtype).removeprefix("torch.")
        return f"{type(self).__name__}(shape={self.shape}, dtype={dt}, device={self.device})"


class DenseOperator(_Base):
    """A dense matrix as an operator.

    Parameters
    ----------
    A : Tensor or ndarray of shape (m, n), float32 or float64 (other dtypes are refused).
    """

    name = "DenseOperator"

    def __init__(self, A: Tensor | np.ndarray) -> None:
        super().__init__()
        A = check_matrix(A, name="A", caller="DenseOperator")
        if A.ndim != 2:
            raise ValueError(
                f"The 'A' parameter of DenseOperator must be one matrix of shape (m, n). Got "
                f"shape {tuple(A.shape)}; wrap batches one matrix at a time."
            )
        self.A = A
        self.shape = (int(A.shape[0]), int(A.shape[1]))
        self.dtype = A.dtype
        self.device = A.device

    def _apply(self, X: Tensor) -> Tensor:
        return self.A @ X

    def _apply_adjoint(self, Y: Tensor) -> Tensor:
        return self.A.mT @ Y

    def as_matrix(self) -> Tensor:
        return self.A


class SparseOperator(_Base):
    """A ``scipy.sparse`` matrix as an operator; products run in SciPy, results are torch.

    Parameters
    ----------
    A : scipy.sparse matrix or array of shape (m, n); converted to CSR once.
    dtype : torch.float32 or torch.float64 (default float64)
    device : where returned products live (the product itself runs on the CPU).

    Notes
    -----
    A product with a block of ``k`` vectors costs ``O(nnz * k)``.
    """

    name = "SparseOperator"

    def __init__(
        self, A: Any, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
    ) -> None:
        import scipy.sparse as sp

        super().__init__()
        if not sp.issparse(A):
            raise TypeError(
                f"The 'A' parameter of SparseOperator must be a scipy.sparse matrix. Got "
                f"{type(A).__name__}; use DenseOperator for dense arrays."
            )
        if dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"The 'dtype' parameter of SparseOperator must be float32 or float64. Got {dtype}."
            )
        A = sp.csr_array(A)
        if not np.issubdtype(A.dtype, np.floating) and not np.issubdtype(A.dtype, np.integer):
            raise TypeError(
                f"The 'A' parameter of SparseOperator must be real. Got dtype {A.dtype}."
            )
        if not np.all(np.isfinite(A.data)):
            raise ValueError("The 'A' parameter of SparseOperator contains NaN or Inf entries.")
        self.np_dtype = np.float32 if dtype == torch.float32 else np.float64
        self.A = A.astype(self.np_dtype)
        self.shape = (int(A.shape[0]), int(A.shape[1]))
        self.dtype = dtype
        self.device = torch.device(device)

    def _apply(self, X: Tensor) -> Tensor:
        out = self.A @ X.detach().cpu().numpy()
        return torch.as_tensor(np.asarray(out), device=self.device)

    def _apply_adjoint(self, Y: Tensor) -> Tensor:
        out = self.A.T @ Y.detach().cpu().numpy()
        return torch.as_tensor(np.asarray(out), device=self.device)

    def as_matrix(self) -> Tensor:
        return torch.as_tensor(self.A.toarray(), device=self.device)


class FunctionOperator(_Base):
    """An operator defined by a Python function; every output is checked.

    Parameters
    ----------
    fn : callable mapping a block ``X`` of shape ``(n, k)`` to ``A X`` of shape ``(m, k)``.
        It must accept blocks (a function written for vectors can be wrapped with
        ``torch.vmap`` or a column loop by the caller).
    shape : (m, n)
    rfn : optional callable mapping ``Y`` of shape ``(m, k)`` to ``A^T Y`` of shape ``(n, k)``.
        Without it ``rmatvec`` raises ``NotImplementedError``.
    dtype, device : of the products (inputs are cast to them before calling ``fn``).

    Raises
    ------
    ValueError
        From ``matvec``/``rmatvec`` when ``fn`` returns a wrong shape or non-finite values
        (the message names the function, the expected and the returned shape).
    """

    name = "FunctionOperator"

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        shape: tuple[int, int],
        rfn: Callable[[Tensor], Tensor] | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(
                f"The 'fn' parameter of FunctionOperator must be callable. Got {type(fn).__name__}."
            )
        if rfn is not None and not callable(rfn):
            raise TypeError(
                "The 'rfn' parameter of FunctionOperator must be callable or None. Got "
                f"{type(rfn).__name__}."
            )
        ok = (
            isinstance(shape, (tuple, list))
            and len(shape) == 2
            and all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                for s in shape
            )
        )
        if not ok:
            raise ValueError(
                "The 'shape' parameter of FunctionOperator must be a pair (m, n) of ints >= 1. "
                f"Got {shape!r}."
            )
        if dtype not in FLOAT_DTYPES:
            raise TypeError(
                "The 'dtype' parameter of FunctionOperator must be float32 or float64. "
                f"Got {dtype}."
            )
        self.fn, self.rfn = fn, rfn
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self.device = torch.device(device)

    def _checked(self, f: Callable[[Tensor], Tensor], X: Tensor, rows: int, label: str) -> Tensor:
        out = f(X)
        fname = getattr(f, "__name__", type(f).__name__)
        if isinstance(out, np.ndarray):
            out = torch.as_tensor(out)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"The function {fname!r} of FunctionOperator ({label}) must return a tensor. Got "
                f"{type(out).__name__}."
            )
        expected = (rows, X.shape[1])
        if tuple(out.shape) != expected:
            raise ValueError(
                f"The function {fname!r} of FunctionOperator ({label}) returned shape "
                f"{tuple(out.shape)} for an input block of shape {tuple(X.shape)}; expected "
                f"{expected} for an operator of shape {self.shape}."
            )
        if not out.is_floating_point():
            out = out.to(self.dtype)
        if not bool(torch.isfinite(out).all()):
            kind = "NaN" if bool(torch.isnan(out).any()) else "Inf"
            raise ValueError(
                f"The function {fname!r} of FunctionOperator ({label}) returned {kind} for an "
                f"input block of shape {tuple(X.shape)}; every product must be finite."
            )
        return out.to(device=self.device, dtype=self.dtype)

    def _apply(self, X: Tensor) -> Tensor:
        return self._checked(self.fn, X, self.shape[0], "matvec")

    def _apply_adjoint(self, Y: Tensor) -> Tensor:
        if self.rfn is None:
            raise NotImplementedError(
                "This FunctionOperator has no adjoint: pass rfn=lambda Y: A^T Y to use rmatvec."
            )
        return self._checked(self.rfn, Y, self.shape[1], "rmatvec")


def as_operator(
    A: Any, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None
) -> LinearOperator:
    """Wrap ``A`` as an operator: operators pass through, sparse -> SparseOperator, arrays ->
    DenseOperator (optionally cast to ``dtype``/``device``).

    Raises ``TypeError`` for anything else, naming what is accepted.
    """
    import scipy.sparse as sp

    if isinstance(A, _Base) or (
        not isinstance(A, (Tensor, np.ndarray)) and isinstance(A, LinearOperator)
    ):
        return A
    if sp.issparse(A):
        return SparseOperator(A, dtype=dtype or torch.float64, device=device or "cpu")
    if isinstance(A, (Tensor, np.ndarray)):
        T = torch.as_tensor(A)
        if not T.is_floating_point():
            if isinstance(A, np.ndarray) and not np.issubdtype(A.dtype, np.number):
                raise TypeError(f"as_operator: the array must be numeric. Got dtype {A.dtype}.")
            T = T.to(dtype or torch.float64)
        if dtype is not None or device is not None:
            T = T.to(dtype=dtype or T.dtype, device=device or T.device)
        return DenseOperator(T)
    raise TypeError(
        "as_operator accepts a LinearOperator (shape, matvec, rmatvec, as_matrix), a "
        f"scipy.sparse matrix, a torch.Tensor or a numpy.ndarray. Got {type(A).__name__}."
    )
