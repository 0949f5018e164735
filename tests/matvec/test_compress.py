"""compress_linear: an nn.Linear replaced by its rank-r SVD factors."""

import pytest
import torch

from neuralfactor.matvec import compress_linear


def test_compress_linear_is_eckart_young_and_counts_parameters(gen):
    layer = torch.nn.Linear(40, 30, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(30, 40, generator=gen, dtype=torch.float64))
    module, rep = compress_linear(layer, 5)
    W = layer.weight.detach()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    Wr = (U[:, :5] * S[:5]) @ Vh[:5]
    x = torch.randn(7, 40, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(module(x), x @ Wr.T + layer.bias, rtol=1e-10, atol=1e-10)
    assert rep.params_before == 30 * 40 + 30
    assert rep.params_after == 5 * (30 + 40) + 30
    assert rep.params_saved == rep.params_before - rep.params_after
    assert rep.weight_rel_fro == pytest.approx(float(S[5:].norm() / S.norm()), rel=1e-10)
    assert rep.weight_rel_spectral == pytest.approx(float(S[5] / S[0]), rel=1e-10)
    assert 0 < rep.output_rel_error < 1
    with pytest.raises(TypeError, match="must be a torch.nn.Linear"):
        compress_linear(torch.nn.Conv1d(2, 2, 1), 1)
    with pytest.raises(
        ValueError, match=r"'rank' parameter of compress_linear must be an int in \[1"
    ):
        compress_linear(layer, 31)
