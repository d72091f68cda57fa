"""golden.nn drop-ins: same results as the integer models, torch signatures and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden import gelu, layernorm, nn, softmax


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


def test_layernorm_loads_torch_state_dict_and_equals_emulate():
    ref = torch.nn.LayerNorm(384, eps=1e-6)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
        ref.bias.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    ours = nn.LayerNorm(384, eps=1e-6)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 197, 384, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = ours(x)
    p = ours.params
    gamma = p.gamma_fmt.encode(ref.weight.detach().double().numpy())
    beta = p.beta_fmt.encode(ref.bias.detach().double().numpy())
    expected = p.out_fmt.decode(layernorm.emulate(p, p.in_fmt.encode(x.numpy()), gamma, beta))
    assert np.array_equal(y.numpy(), expected)
    assert (y - ref(x.float()).double()).abs().max().item() <= 2.0**-6  # gamma/beta rounded


def test_layernorm_rejects_multi_axis_shapes():
    with pytest.raises(ValueError, match=r"normalized_shape must be one int"):
        nn.LayerNorm((4, 8))
