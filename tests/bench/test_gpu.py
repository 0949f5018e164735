"""CUDA paths against the CPU (marked ``gpu``: skipped without a CUDA device).

The GEMM-only kernels, a GEMM-only factorizer, a learned encoder and the harness itself run on
a CUDA device and must agree with the same computation on the CPU.
"""

import copy

import pytest
import torch
from tests.helpers import planted

from neuralfactor.bench.frames import matmul_mode
from neuralfactor.core.factorizer import make_factorizer
from neuralfactor.core.metrics import optimal_scaled_loss, scaled_loss
from neuralfactor.core.timing import measure_many

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def test_gemm_kernels_on_cuda_match_cpu():
    from neuralfactor.classical._kernels import gram_orthonormalize

    g = torch.Generator().manual_seed(0)
    Y = torch.randn(8, 64, 10, generator=g, dtype=torch.float64)
    Q_cpu = gram_orthonormalize(Y)
    Q_gpu = gram_orthonormalize(Y.to(CUDA))
    assert Q_gpu.device.type == "cuda"
    # float64 Cholesky-QR on both devices: the same basis to round-off (1e-10 leaves room for
    # different GEMM summation orders)
    torch.testing.assert_close(Q_gpu.cpu(), Q_cpu, rtol=1e-10, atol=1e-10)
    eye = torch.eye(10, dtype=torch.float64, device=CUDA).expand(8, 10, 10)
    torch.testing.assert_close(Q_gpu.mT @ Q_gpu, eye, rtol=0, atol=1e-12)


def test_rsvd_gemm_on_cuda_recovers_planted_rank():
    X = planted((4, 48, 64), 5).to(CUDA)  # exact rank 5, float64
    out = make_factorizer("rsvd-gemm", rank=5).factorize(X)
    assert out.U.device.type == "cuda" and out.U.dtype == torch.float64
    # exact rank: the residual is round-off (float64, Gram-based orthonormalization ~ eps^0.5)
    assert float(scaled_loss(X, out).max()) < 1e-14


def test_learned_encoder_cuda_matches_cpu():
    from neuralfactor.amortized.models import build_model

    model = build_model("convmf", 16, 32, 3).double()
    model_gpu = copy.deepcopy(model).to(CUDA)
    X = torch.randn(5, 16, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad(), matmul_mode("float32", CUDA):
        U, V = model(X)
        Ug, Vg = model_gpu(X.to(CUDA))
    # float64 on both devices, TF32 off: agreement to round-off of a few layers
    torch.testing.assert_close(Ug.cpu(), U, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(Vg.cpu(), V, rtol=1e-9, atol=1e-11)


def test_harness_times_cuda_methods_interleaved():
    X = planted((6, 32, 48), 4, decay=0.8).to(CUDA)
    opt = optimal_scaled_loss(X, 4)
    fs = {name: make_factorizer(name, rank=4) for name in ("svd", "rsvd-gemm", "warm-subspace")}
    results = {}
    recs = measure_many(
        fs, X, optimum=opt, device=CUDA, min_rounds=3, max_seconds=1.0, results=results
    )
    by = {r["label"]: r for r in recs}
    assert by["svd"]["ratio_max"] == pytest.approx(1.0, abs=1e-10)  # float64 exact SVD
    assert all(r["interleaved"] == ["svd", "rsvd-gemm", "warm-subspace"] for r in recs)
    assert all(res.U.device.type == "cuda" for res in results.values())
