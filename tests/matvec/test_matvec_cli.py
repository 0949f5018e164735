"""``neuralfactor approx``: inputs, methods, rank selection and the bad inputs of issue 6."""

import json

import numpy as np
import pytest

from neuralfactor.approx import BUILTIN_METHODS, load_input, run_approx
from neuralfactor.cli import main


def _run(args, capsys):
    rc = main(["--quiet", "approx", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def mat(tmp_path):
    A = np.random.default_rng(0).random((12, 9))
    np.save(tmp_path / "a.npy", A)
    np.savetxt(tmp_path / "a.csv", A, delimiter=",")
    return A


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_every_builtin_method_reports_errors(method, mat, tmp_path, capsys):
    rc, out, err = _run(
        [
            str(tmp_path / "a.npy"),
            "--rank",
            "3",
            "--method",
            method,
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert rc == 0, err
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["rank"] == 3 and rec["method"] == method
    # nothing beats Eckart-Young; exact/randomized SVD and the network reach it
    assert rec["ratio_to_optimum"] >= 1 - 1e-10
    if method == "matvec-ae":
        assert rec["optimality_check"] is True and rec["n_matvecs"] == 9
    if method in ("svd", "rsvd", "matvec-ae"):
        assert rec["ratio_to_optimum"] < 1 + 1e-6
        assert abs(rec["rel_2"] - rec["svd_rel_2"]) < 1e-6
    assert "rel. Frobenius" in out and "svd (optimum)" in out


def test_csv_gallery_auto_rank_and_plot(mat, tmp_path, capsys):
    rc, out, _ = _run([str(tmp_path / "a.csv"), "--rank", "2"], capsys)
    assert rc == 0 and "12x9" in out
    rc, out, _ = _run(
        [
            "lowrank",
            "--param",
            "n=30",
            "--param",
            "rank=4",
            "--param",
            "noise=0.001",
            "--rank",
            "auto",
            "--plot",
            str(tmp_path / "p.png"),
        ],
        capsys,
    )
    assert rc == 0 and "rank 4 (chosen by gavish-donoho)" in out
    assert (tmp_path / "p.png").stat().st_size > 1000
    for rm in ("aic", "gap"):
        rc, out, _ = _run(
            [
                "lowrank",
                "--param",
                "n=30",
                "--param",
                "rank=4",
                "--param",
                "noise=0.001",
                "--rank",
                "auto",
                "--rank-method",
                rm,
            ],
            capsys,
        )
        assert rc == 0 and f"rank 4 (chosen by {rm})" in out


def test_color_image_needs_a_channel(tmp_path, capsys):
    from skimage import io

    img = (np.random.default_rng(1).random((16, 20, 3)) * 255).astype(np.uint8)
    io.imsave(tmp_path / "c.png", img, check_contrast=False)
    rc, _, err = _run([str(tmp_path / "c.png"), "--rank", "2"], capsys)
    assert rc == 2
    assert "is a color image (16x20x3)" in err and "--channel red|green|blue|gray" in err
    rc, out, _ = _run([str(tmp_path / "c.png"), "--rank", "2", "--channel", "green"], capsys)
    assert rc == 0 and "16x20" in out
    np.testing.assert_allclose(
        load_input(str(tmp_path / "c.png"), channel="green"), img[..., 1] / 255.0
    )


BAD_FILES = [
    ("bad.csv", "1,2,3\n4,abc,6\n", "could not be read as numbers"),
    ("bad.npy", b"this is not an npy file", "could not be read"),
    ("bad.png", b"\x89PNG garbage", "could not be read"),
    ("bad.xyz", "1 2\n", "unsupported extension '.xyz'"),
]


@pytest.mark.parametrize("name,content,msg", BAD_FILES)
def test_unreadable_or_non_numeric_files_are_named(name, content, msg, tmp_path, capsys):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, _, err = _run([str(p), "--rank", "1"], capsys)
    assert rc == 2 and msg in err and name in err


def test_other_bad_inputs(mat, tmp_path, capsys):
    rc, _, err = _run([str(tmp_path / "a.npy"), "--rank", "9"], capsys)
    assert rc == 2 and "must be 'auto' or an int in [1, min(m, n) - 1=8]" in err
    rc, _, err = _run([str(tmp_path / "a.npy"), "--rank", "three"], capsys)
    assert rc == 2 and "'--rank' option" in err
    rc, _, err = _run([str(tmp_path / "a.npy"), "--rank", "2", "--method", "magic"], capsys)
    assert rc == 2 and "'--method' option must be one of" in err
    rc, _, err = _run(["nothere.npy", "--rank", "2"], capsys)
    assert rc == 2 and "neither an existing file nor a gallery matrix" in err
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    rc, _, err = _run([str(tmp_path / "s.npy"), "--rank", "1"], capsys)
    assert rc == 2 and "is not numeric" in err
    np.save(tmp_path / "v.npy", np.ones(5))
    rc, _, err = _run([str(tmp_path / "v.npy"), "--rank", "1"], capsys)
    assert rc == 2 and "must hold one matrix (2-D)" in err
    np.save(tmp_path / "n.npy", np.full((3, 3), np.nan))
    rc, _, err = _run([str(tmp_path / "n.npy"), "--rank", "1"], capsys)
    assert rc == 2 and "NaN or Inf" in err
    rc, _, err = _run(["gaussian", "--rank", "2", "--method", "nmf"], capsys)
    assert rc == 2 and "must be nonnegative" in err
    rc, _, err = _run(["gaussian", "--rank", "2", "--param", "n"], capsys)
    assert rc == 2 and "key=value" in err
    rc, _, err = _run(["gaussian", "--rank", "auto", "--rank-method", "bic"], capsys)
    assert rc == 2 and "'--rank-method' parameter of approx must be one of" in err


def test_run_approx_svt_uses_next_singular_value(mat):
    rec, lr, ref = run_approx(mat, 3, "svt")
    s = np.linalg.svd(mat, compute_uv=False)
    assert rec["tau"] == pytest.approx(s[3])
    np.testing.assert_allclose(lr.S.numpy(), s[:3] - s[3], rtol=1e-10)


def test_approx_run_is_the_library_pipeline(mat, tmp_path):
    from neuralfactor.approx import ApproxConfig, approx_run

    cfg = ApproxConfig(str(tmp_path / "a.npy"), 3, "svd", json_out=tmp_path / "r.json")
    res = approx_run(cfg)
    assert res.record["input"] == str(tmp_path / "a.npy") and res.record["rank"] == 3
    assert json.loads((tmp_path / "r.json").read_text()) == res.record
    np.testing.assert_array_equal(res.matrix, mat)
    # the rank-3 SVD of the planted matrix, exactly the optimum
    U, S, Vt = np.linalg.svd(mat, full_matrices=False)
    np.testing.assert_allclose(res.optimum.reconstruct().numpy(), (U[:, :3] * S[:3]) @ Vt[:3],
                               atol=1e-12)  # fmt: skip
    assert res.record["ratio_to_optimum"] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="'--rank-method' parameter of approx must be one of"):
        approx_run(ApproxConfig(str(tmp_path / "a.npy"), rank_method="bic"))
    with pytest.raises(ValueError, match=r"'--rank' option must be 'auto' or an int in \[1, "):
        approx_run(ApproxConfig(str(tmp_path / "a.npy"), rank=9))


def test_approx_times_method_and_svd_interleaved_and_a_training_once():
    import numpy as np

    from neuralfactor.approx import run_approx

    A = np.random.default_rng(0).standard_normal((40, 30))
    rec, _, _ = run_approx(A, 5, "rsvd")
    assert rec["timing"].startswith("interleaved with the SVD")
    assert rec["seconds_q25"] <= rec["seconds"] <= rec["seconds_q75"]
    assert rec["svd_seconds_q25"] <= rec["svd_seconds"] <= rec["svd_seconds_q75"]
    rec, _, _ = run_approx(A, 5, "svd")
    assert rec["seconds"] == rec["svd_seconds"]
