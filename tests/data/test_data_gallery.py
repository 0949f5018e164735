"""Gallery matrices against their closed forms (spectra, structure, determinism)."""

import numpy as np
import pytest
import scipy.sparse as sp

from neuralfactor.data.gallery import GALLERY, available_matrices, get_matrix

SMALL = {
    "gaussian": {"n": 6},
    "symmetric": {"n": 6},
    "identity": {"n": 6},
    "diag": {"n": 6},
    "lowrank": {"n": 8, "rank": 3},
    "camera": {"size": 16},
    "astronaut": {"size": 10},
    "laplacian-1d": {"n": 8},
    "laplacian-2d": {"n": 4},
    "convection-diffusion-1d": {"n": 8},
    "convection-diffusion-2d": {"n": 4},
    "biharmonic-1d": {"n": 8},
    "biharmonic-2d": {"n": 4},
    "rbf-kernel": {"n": 12},
    "exponential-kernel": {"n": 12},
}


def test_every_name_builds_with_declared_kind():
    assert set(SMALL) == set(GALLERY), "test every gallery name"
    for name in available_matrices():
        A = get_matrix(name, **SMALL[name])
        kind = GALLERY[name].kind
        assert sp.issparse(A) if kind == "sparse" else isinstance(A, np.ndarray), name
        dense = A.toarray() if sp.issparse(A) else A
        assert dense.ndim == 2 and dense.dtype == np.float64 and np.isfinite(dense).all(), name


def test_unknown_name_and_parameter():
    with pytest.raises(
        ValueError, match=r"Unknown gallery matrix 'nope'; expected one of \[.*'camera'"
    ):
        get_matrix("nope")
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['size'\]; it accepts \['n'"):
        get_matrix("identity", size=3)
    with pytest.raises(ValueError, match="'n' parameter of gaussian must be an int >= 1. Got 0"):
        get_matrix("gaussian", n=0)
    with pytest.raises(ValueError, match="'channel' parameter of astronaut must be one of"):
        get_matrix("astronaut", channel="purple")
    with pytest.raises(ValueError, match="'length_scale' parameter of rbf-kernel"):
        get_matrix("rbf-kernel", length_scale=-1.0)


def test_random_matrices_are_seeded_and_symmetric(seed):
    A, B = get_matrix("gaussian", n=10, seed=seed), get_matrix("gaussian", n=10, seed=seed)
    np.testing.assert_array_equal(A, B)
    assert not np.array_equal(A, get_matrix("gaussian", n=10, seed=seed + 1))
    assert get_matrix("gaussian", n=4, m=7).shape == (7, 4)
    S = get_matrix("symmetric", n=10, seed=seed)
    np.testing.assert_array_equal(S, S.T)


def test_identity_diag_and_planted():
    np.testing.assert_array_equal(get_matrix("identity"), np.eye(50))
    np.testing.assert_array_equal(
        np.linalg.svd(get_matrix("diag"), compute_uv=False), np.arange(50.0, 0.0, -1.0)
    )
    L = get_matrix("lowrank", n=20, rank=4)
    s = np.linalg.svd(L, compute_uv=False)
    # planted singular values 4, 3, 2, 1 then zeros; float64 round-off ~1e-15 * ||L||
    np.testing.assert_allclose(s[:4], [4, 3, 2, 1], rtol=1e-12)
    assert s[4] < 1e-12


def test_images():
    cam = get_matrix("camera", size=400)
    assert cam.shape == (400, 400) and 0 <= cam.min() and cam.max() <= 1
    assert get_matrix("camera", size=256).shape == (256, 256)
    chans = [get_matrix("astronaut", size=10, channel=c) for c in ("red", "green", "blue")]
    assert all(c.shape == (10, 10) for c in chans)
    assert not np.allclose(chans[0], chans[2]), "channels differ"
    gray = get_matrix("astronaut", size=10, channel="gray")
    # rgb2gray weights 0.2125, 0.7154, 0.0721; resize is linear, so this holds to round-off
    np.testing.assert_allclose(
        gray, 0.2125 * chans[0] + 0.7154 * chans[1] + 0.0721 * chans[2], atol=1e-12
    )


@pytest.mark.parametrize("n", [5, 16])
def test_laplacian_spectrum_closed_form(n):
    h = 1.0 / (n + 1)
    lam = np.sort(4 / h**2 * np.sin(np.arange(1, n + 1) * np.pi * h / 2) ** 2)
    L1 = get_matrix("laplacian-1d", n=n).toarray()
    np.testing.assert_allclose(np.linalg.eigvalsh(L1), lam, rtol=1e-10)
    L2 = get_matrix("laplacian-2d", n=n).toarray()
    lam2 = np.sort((lam[:, None] + lam[None, :]).ravel())
    np.testing.assert_allclose(np.linalg.eigvalsh(L2), lam2, rtol=1e-10)
    B1 = get_matrix("biharmonic-1d", n=n).toarray()
    np.testing.assert_allclose(np.linalg.eigvalsh(B1), lam**2, rtol=1e-9)
    B2 = get_matrix("biharmonic-2d", n=n).toarray()
    np.testing.assert_allclose(np.linalg.eigvalsh(B2), lam2**2, rtol=1e-9)


def test_laplacian_second_derivative_of_quadratic():
    # -u'' of u = x (1 - x) is 2; the centered difference is exact for quadratics.
    n = 9
    x = np.arange(1, n + 1) / (n + 1)
    np.testing.assert_allclose(get_matrix("laplacian-1d", n=n) @ (x * (1 - x)), 2.0, rtol=1e-10)


@pytest.mark.parametrize("b", [3.0, -3.0])
def test_convection_diffusion_upwind_m_matrix(b):
    n, eps = 10, 0.01
    C = get_matrix("convection-diffusion-1d", n=n, eps=eps, b=b).toarray()
    h = 1.0 / (n + 1)
    off = C - np.diag(np.diag(C))
    assert (off <= 0).all() and (np.diag(C) > 0).all(), "upwinding gives an M-matrix"
    assert (np.diag(C) >= np.abs(off).sum(1) - 1e-9).all(), "weakly diagonally dominant"
    # upwind direction: for b > 0 the larger off-diagonal coupling is to the left neighbour
    lower, upper = C[1, 0], C[0, 1]
    np.testing.assert_allclose(lower if b > 0 else upper, -eps / h**2 - abs(b) / h)
    np.testing.assert_allclose(upper if b > 0 else lower, -eps / h**2)
    # b = 0 reduces to eps * Laplacian
    np.testing.assert_allclose(
        get_matrix("convection-diffusion-1d", n=n, eps=eps, b=0.0).toarray(),
        eps * get_matrix("laplacian-1d", n=n).toarray(),
    )
    # 2-D: constant along the flow is only annihilated in the interior by the convection part
    C2 = get_matrix("convection-diffusion-2d", n=4, eps=eps, bx=1.0, by=0.0).toarray()
    L2 = get_matrix("laplacian-2d", n=4).toarray()
    conv = C2 - eps * L2
    np.testing.assert_allclose(conv, np.kron(np.eye(4), conv[:4, :4]), atol=1e-12)


def test_kernels_spd_with_nugget_bound():
    K = get_matrix("rbf-kernel", n=30, length_scale=0.2, nugget=1e-3)
    np.testing.assert_array_equal(K, K.T)
    np.testing.assert_allclose(np.diag(K), 1.0 + 1e-3)
    # kernel part PSD, so every eigenvalue >= nugget (up to eigensolver round-off)
    assert np.linalg.eigvalsh(K).min() >= 1e-3 - 1e-10
    E = get_matrix("exponential-kernel", n=30, length_scale=0.5)
    x = np.linspace(0, 1, 30)
    np.testing.assert_allclose(E[0, 5], np.exp(-x[5] / 0.5))
    assert np.linalg.eigvalsh(E).min() > 0
