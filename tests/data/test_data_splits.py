"""Interpolation and extrapolation splits: sizes, disjointness, order, seeds, errors."""

import numpy as np
import pytest

from neuralfactor.data import extrapolation_split, interpolation_split


@pytest.mark.parametrize("n", [10, 101, 8149])
def test_interpolation_split_partitions_range(n, seed):
    sp = interpolation_split(n, seed=seed)
    allidx = np.concatenate([sp.train, sp.val, sp.test])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert sp.sizes()[0] == round(0.7 * n) and sp.sizes()[1] == round(0.2 * n)
    assert all(np.all(np.diff(a) > 0) for a in (sp.train, sp.val, sp.test))
    assert sp.train.dtype == np.int64


def test_interpolation_split_is_seeded_and_random(seed):
    a = interpolation_split(200, seed=seed)
    b = interpolation_split(200, seed=seed)
    c = interpolation_split(200, seed=seed + 1)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    # random: the test frames are spread over time, not a block at the end
    assert a.test.min() < 100 < a.test.max()


def test_smallest_splits_hold_one_frame_each():
    assert interpolation_split(3).sizes() == (1, 1, 1)
    assert extrapolation_split(4).sizes() == (2, 1, 1)


@pytest.mark.parametrize("n", [10, 8149])
def test_extrapolation_split_is_time_ordered(n):
    sp = extrapolation_split(n)
    assert sp.train.max() < sp.val.min() and sp.val.max() < sp.test.min()
    np.testing.assert_array_equal(np.concatenate([sp.train, sp.val, sp.test]), np.arange(n))
    assert len(sp.train) == round(0.7 * n)


def test_custom_fractions():
    sp = extrapolation_split(100, fractions=(0.5, 0.25, 0.25))
    assert sp.sizes() == (50, 25, 25)


@pytest.mark.parametrize("fn", [interpolation_split, extrapolation_split])
def test_split_errors(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"'n' parameter of {name} must be >= 3 .* Got 2"):
        fn(2)
    with pytest.raises(
        ValueError, match=rf"{name}: 4 frames split by .* give sizes .* \(0, 2, 2\)"
    ):
        fn(4, fractions=(0.01, 0.5, 0.49))
    with pytest.raises(ValueError, match=rf"'fractions' parameter of {name} must sum to 1"):
        fn(100, fractions=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match=rf"'fractions' parameter of {name} must be three numbers"):
        fn(100, fractions=(0.7, 0.3))
    with pytest.raises(ValueError, match=rf"'fractions' parameter of {name} must be three numbers"):
        fn(100, fractions=(1.1, -0.2, 0.1))
    with pytest.raises(TypeError, match=rf"'n' parameter of {name} must be an int"):
        fn(10.0)
    with pytest.raises(ValueError, match=r"each split has at least 5 frame"):
        fn(12, min_size=5)
