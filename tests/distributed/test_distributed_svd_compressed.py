"""svd-compressed: dask.array.linalg.svd_compressed as a registered factorizer (contract tests
in tests/classical cover it too); an out-of-core matrix is factorized from its Zarr chunks."""

import pytest
import torch

import neuralfactor as nf
from neuralfactor.core.metrics import principal_angles, ratio_to_optimum
from tests.helpers import planted

da = pytest.importorskip("dask.array")


def test_registered_and_near_optimal(seed):
    assert "svd-compressed" in nf.available_factorizers()
    X = planted((2, 60, 40), rank=40, decay=0.8, generator=torch.Generator().manual_seed(seed))
    f = nf.make_factorizer("svd-compressed", rank=6)
    lr = f.factorize(X)
    assert lr.S is not None and lr.U.shape == (2, 60, 6)
    assert (ratio_to_optimum(X, lr) <= 1.001).all()
    again = f.factorize(X)  # the seed is explicit: reproducible
    assert torch.equal(lr.U, again.U)


def test_out_of_core_matrix_from_zarr_chunks(tmp_path, seed):
    zarr = pytest.importorskip("zarr")
    X = planted((1200, 50), rank=50, decay=0.7, generator=torch.Generator().manual_seed(seed))
    z = zarr.create_array(str(tmp_path / "A.zarr"), shape=X.shape, chunks=(150, 50), dtype="f8")
    z[...] = X.numpy()
    A = da.from_zarr(str(tmp_path / "A.zarr"))
    assert A.numblocks == (8, 1)  # eight row blocks, never one array in memory
    f = nf.make_factorizer("svd-compressed", rank=5, scheduler="threads")
    lr = f.factorize_dask(A)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    torch.testing.assert_close(lr.S, S[:5], rtol=1e-10, atol=0)
    assert principal_angles(lr.U, U[:, :5]).max() < 1e-6
    assert ratio_to_optimum(X, lr).item() == pytest.approx(1.0, abs=1e-10)


def test_bad_parameters():
    with pytest.raises(ValueError, match="'n_power_iter' parameter of svd-compressed"):
        nf.make_factorizer("svd-compressed", rank=3, n_power_iter=-1)
    f = nf.make_factorizer("svd-compressed", rank=3)
    with pytest.raises(ValueError, match="one \\(m, n\\) matrix"):
        f.factorize_dask(da.zeros((2, 4, 4)))


def test_factorize_store_with_svd_compressed(tmp_path):
    from neuralfactor.data import MatrixStoreWriter
    from neuralfactor.distributed import FactorStore, factorize_store

    X = planted((6, 20, 30), rank=20, decay=0.6)
    w = MatrixStoreWriter.create(
        tmp_path / "s.zarr", n_runs=1, n_frames=6, matrix_shape=(20, 30), chunk_frames=3
    )
    for i in range(6):
        w.append(X[i : i + 1], float(i))
    w.finalize()
    factorize_store(tmp_path / "s.zarr", "svd-compressed", tmp_path / "o.zarr", rank=4, workers=2)
    fs = FactorStore.open(tmp_path / "o.zarr")
    assert (fs.diagnostics(0)["ratio"] < 1.001).all()


def test_huge_and_subnormal_scales():
    """Entries whose squares overflow raised a raw LinAlgError from LAPACK inside Dask."""
    g = torch.Generator().manual_seed(0)
    Y = torch.randn(2, 20, 30, generator=g, dtype=torch.float64)
    f = nf.make_factorizer("svd-compressed", rank=3)
    ref = nf.make_factorizer("svd", rank=3).factorize(Y).reconstruct()
    for scale, dtype in ((2.0**660, torch.float64), (2.0**-140, torch.float32)):
        X = (Y * scale).to(dtype)
        lr = f.factorize(X)
        assert lr.dtype == dtype and bool(torch.isfinite(lr.U).all() and torch.isfinite(lr.V).all())
        rel = (lr.reconstruct().double() / scale - ref).norm() / ref.norm()
        assert rel < (1e-6 if dtype == torch.float64 else 2e-2), rel
