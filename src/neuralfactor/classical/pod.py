"""``pod-basis``: a data-driven classical baseline (proper orthogonal decomposition).

``fit`` learns global left/right bases from training frames (the leading eigenvectors of the
summed Gram matrices, i.e. the SVD of the stacked frames); ``factorize`` starts one subspace
iteration from the global right basis, so each frame costs two products with it. It is the fair
classical counterpart of a learned factorizer: both pay a training cost once and amortize it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from neuralfactor.classical._kernels import (
    Kernel,
    power_of_two_scale,
    rescale,
    resolve_kernel,
    scale_if_needed,
    subspace_step,
)
from neuralfactor.core.factorizer import BaseFactorizer, register_factorizer
from neuralfactor.core.lowrank import LowRank
from neuralfactor.core.validation import check_matrix, check_option, check_positive_int

__all__ = ["PODBasis", "pod_basis"]


def _as_frames(frames: Any) -> Tensor:
    """Accept a tensor/array (T, m, n) or anything with ``as_tensor()`` (e.g. a MatrixStore)."""
    if hasattr(frames, "as_tensor") and not isinstance(frames, Tensor):
        frames = frames.as_tensor()
    return check_matrix(frames, name="frames", caller="pod-basis.fit")


def pod_basis(frames: Tensor, width: int, *, chunk: int = 256) -> Tensor:
    """Leading ``width`` right singular vectors of the stacked frames, shape (n, width).

    Accumulates ``sum_t X_t^T X_t`` in float64 over chunks of frames (memory O(n^2)), then
    takes its top eigenvectors. Cost O(T m n^2).
    """
    F = frames.reshape(-1, *frames.shape[-2:])
    # One power of two for all frames (the basis does not depend on it): huge or subnormal
    # frames would otherwise overflow the Gram matrix or make its eigh fail.
    F = power_of_two_scale(F.reshape(1, -1, F.shape[-1]))[0].reshape(F.shape)
    n = F.shape[-1]
    G = torch.zeros(n, n, dtype=torch.float64, device=F.device)
    for i in range(0, F.shape[0], chunk):
        Fd = F[i : i + chunk].double()
        G += (Fd.mT @ Fd).sum(0)
    _, W = torch.linalg.eigh(G)
    return W[:, -width:].flip(-1).to(frames.dtype).contiguous()


class PODBasis(BaseFactorizer):
    """Global POD basis from training frames + one subspace iteration per frame.

    Parameters
    ----------
    rank : int
    extra : int, default 5 -- basis columns beyond ``rank``.
    n_iter : int, default 1 -- subspace iterations per frame from the global basis.
    kernel : {"auto", "lapack", "gemm"}, default "auto" -- the per-frame iteration's kernel:
        Householder QR and a small SVD (``"lapack"``, returns ``S``) or batched GEMMs and
        float64 Gram/eigh (``"gemm"``); ``"auto"`` is ``"lapack"`` on the CPU and ``"gemm"``
        elsewhere. ``fit`` is the same for both.
    """

    name = "pod-basis"
    requires_fit = True

    def __init__(
        self, rank: int, *, extra: int = 5, n_iter: int = 1, kernel: Kernel = "auto"
    ) -> None:
        super().__init__(rank)
        self.extra = check_positive_int(extra, name="extra", caller=self.name, minimum=0)
        self.n_iter = check_positive_int(n_iter, name="n_iter", caller=self.name)
        self.kernel = check_option(
            kernel, ("auto", "lapack", "gemm"), name="kernel", caller=self.name
        )
        self.basis: Tensor | None = None

    def fit(self, frames: Any = None) -> PODBasis:
        if frames is None:
            raise ValueError("pod-basis needs training frames: fit(frames) with frames (T, m, n).")
        F = _as_frames(frames)
        m, n = F.shape[-2:]
        if self.rank > min(m, n):
            raise ValueError(
                f"The 'rank' parameter of pod-basis must be an int in [1, min(m, n)={min(m, n)}]. "
                f"Got {self.rank}."
            )
        self.basis = pod_basis(F, min(self.rank + self.extra, m, n))
        self.frame_shape = (m, n)
        self._fitted = True
        return self

    def _factorize(self, X: Tensor) -> LowRank:
        if tuple(X.shape[-2:]) != self.frame_shape:
            raise ValueError(
                f"pod-basis was fitted on {self.frame_shape[0]}x{self.frame_shape[1]} frames; got "
                f"{X.shape[-2]}x{X.shape[-1]}."
            )
        basis = self.basis.to(device=X.device, dtype=X.dtype)
        kernel = resolve_kernel(self.kernel, X.device, caller=self.name)
        X, inv = scale_if_needed(X)
        lr = subspace_step(X, basis, self.rank, n_iter=self.n_iter, kernel=kernel)[0]
        return rescale(lr, inv)


register_factorizer("pod-basis", PODBasis)
