"""golden.nn drop-ins: same results as the integer models, torch signatures and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden import gelu, nn, softmax


def test_softmax_equals_emulate_on_tensors():
    p = softmax.SoftmaxParams()
    x = torch.randn(2, 3, 5, 197, generator=torch.Generator().manual_seed(0)) * 4
    y = nn.Softmax(dim=-1)(x)
    codes = p.in_fmt.encode(x.double().numpy())
    expected = p.out_fmt.decode(softmax.emulate(p, codes))
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(y.double().numpy(), expected.astype(np.float32).astype(np.float64))


def test_softmax_other_dim_and_closeness_to_torch():
    x = torch.randn(4, 50, 7, generator=torch.Generator().manual_seed(1)) * 2
    y = nn.Softmax(dim=1)(x)
    ref = torch.nn.Softmax(dim=1)(x)
    assert torch.allclose(y.sum(dim=1), torch.ones(4, 7), atol=2.0**-8)
    assert (y - ref).abs().max().item() <= 2.0**-10 + 2.0**-11  # plus input quantization


def test_softmax_rejects_rows_longer_than_max_len():
    with pytest.raises(ValueError, match=r"max_len=256"):
        nn.Softmax(dim=-1)(torch.zeros(1, 300))


def test_gelu_equals_emulate_on_tensors():
    p = gelu.GeluParams()
    x = torch.linspace(-40, 40, 10001, dtype=torch.float64).reshape(1, 10001)
    y = nn.GELU()(x)
    expected = p.out_fmt.decode(gelu.emulate(p, p.in_fmt.encode(x.numpy())))
    assert np.array_equal(y.numpy(), expected)
    assert "gelu_i16f10_o16f10_s16" in repr(nn.GELU())
