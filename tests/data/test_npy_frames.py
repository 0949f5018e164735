"""``neuralfactor.data.npy.load_npy_frames``: a user's frames (T, m, n) from a .npy file."""

import numpy as np
import pytest
import torch

from neuralfactor.data.npy import load_npy_frames


def test_reads_frames_exactly(tmp_path):
    X = np.random.default_rng(0).standard_normal((3, 4, 5))
    np.save(tmp_path / "f.npy", X)
    got = load_npy_frames(tmp_path / "f.npy")
    assert got.dtype == torch.float64 and torch.equal(got, torch.from_numpy(X))


def test_refuses_a_missing_file_another_shape_and_pickles(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data-file .*nope.npy does not exist\."):
        load_npy_frames(tmp_path / "nope.npy")
    np.save(tmp_path / "m.npy", np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"--data-file must hold frames of shape \(T, m, n\)\. "
                       r"Got \(4, 5\)\."):  # fmt: skip
        load_npy_frames(tmp_path / "m.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"frames .*o.npy is not a readable .npy array"):
        load_npy_frames(tmp_path / "o.npy", name="frames")
