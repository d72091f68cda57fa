"""hwtorch.nn drop-ins: same results as the integer models, torch signatures and shapes."""

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gelu_table_path_equals_emulate_on_every_code(dtype):
    """Large inputs read a decoded table of every code's result: the values of decoding
    emulate's codes (each rounded once to the dtype), for every code, beyond the range and
    at the infinities."""
    p = gelu.GeluParams()
    codes = p.in_fmt.all_codes()
    x = np.concatenate([p.in_fmt.decode(codes), [-1e6, 1e6, -np.inf, np.inf, 31.9999, -32.0001]])
    t = torch.from_numpy(x).to(dtype)
    y = nn.GELU()(t)
    want = p.out_fmt.decode(gelu.emulate(p, p.in_fmt.encode(t.double().numpy())))
    assert y.dtype == dtype and y.shape == t.shape
    assert torch.equal(y, torch.from_numpy(want).to(dtype))
    with pytest.raises(ValueError, match="NaN"):
        nn.GELU()(torch.tensor([0.0, float("nan")], dtype=dtype))


def test_checked_codes_give_the_same_results():
    """``checked=True`` (what the drop-ins pass for encode's codes) only skips the range
    checks: the same codes out; unchecked, bad codes are still refused."""
    rng = np.random.default_rng(5)
    s = softmax.SoftmaxParams()
    rows = s.in_fmt.encode(rng.normal(0, 3, (40, 197)))
    assert np.array_equal(softmax.emulate(s, rows, checked=True), softmax.emulate(s, rows))
    p = layernorm.LayerNormParams()
    x = p.in_fmt.encode(rng.normal(0, 2, (30, 384)))
    g = p.gamma_fmt.encode(rng.uniform(0.5, 1.5, 384))
    b = p.beta_fmt.encode(rng.normal(0, 0.2, 384))
    assert np.array_equal(
        layernorm.emulate(p, x, g, b, checked=True), layernorm.emulate(p, x, g, b)
    )
    with pytest.raises(ValueError, match="outside"):
        softmax.emulate(s, rows + 2**20)
    with pytest.raises(ValueError, match="outside"):
        layernorm.emulate(p, x, g + 2**20, b)


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


# -- scale policies ------------------------------------------------------------------------------


def test_layernorm_dynamic_scale_is_exactly_invariant_to_power_of_two_row_scaling():
    """Dynamic prescale: a row times 2**j (for any j the shift range covers) gives the same
    codes, because the prescaled input codes are identical; the format policy saturates."""
    x = torch.randn(3, 7, 96, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x[..., 5] *= 40  # an outlier channel
    ln = nn.LayerNorm(96, eps=1e-6, scale="dynamic")
    y = ln(x)
    for j in (-6, 3, 9):
        assert torch.equal(ln(x * 2.0**j), y)
    big = x * 2.0**9  # values past 10,000: s8.8 saturates them under the format policy
    ref = torch.nn.functional.layer_norm(big, (96,), eps=1e-6)
    assert (ln(big) - ref).abs().max().item() <= 2.0**-7
    assert (nn.LayerNorm(96, eps=1e-6)(big) - ref).abs().max().item() > 0.1


def test_layernorm_static_scale_needs_and_uses_calibration():
    ln = nn.LayerNorm(64, eps=1e-6, scale="static")
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 300
    with pytest.raises(ValueError, match=r"not calibrated; call \.calibrate\(x\)"):
        ln(x)
    model = torch.nn.Sequential(ln)
    nn.calibrate(model, [x])
    top = x.abs().max().item()
    assert ln.shift >= 1 and top * 2.0**-ln.shift <= 127.99609375 < top * 2.0 ** (1 - ln.shift)
    ref = torch.nn.functional.layer_norm(x, (64,), eps=1e-6)
    assert (ln(x) - ref).abs().max().item() <= 2.0**-7
    with pytest.raises(ValueError, match=r"scale must be one of format, static, dynamic"):
        nn.LayerNorm(64, scale="per-tensor")


# -- MacLinear's matmul path ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["mixed", "fixp", "posit"])
def test_emulate_matmul_equals_emulate(mode):
    from golden import posit_mac

    p = posit_mac.MacParams(mode=mode)
    rng = np.random.default_rng(5)
    w = rng.integers(0, 16, size=(9, 40))
    mask = rng.random((9, 40)) < 0.3 if mode == "mixed" else None
    if mode == "posit":
        a = rng.integers(0, 16, size=(2, 6, 40))
    else:
        a = rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, size=(2, 6, 40))
    expected = posit_mac.emulate(p, w, a[..., None, :], mask)
    assert np.array_equal(posit_mac.emulate_matmul(p, w, a, mask), expected)


def test_maclinear_row_scale_does_not_depend_on_the_batch():
    lin = torch.nn.Linear(32, 8)
    mac = nn.MacLinear.from_linear(lin, mode="mixed", act_scale=None)
    mac.act_scale = "row"
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(6))
    alone = mac(x[:1])
    with_big = mac(torch.cat([x[:1], 100 * x[1:]]))[:1]
    assert torch.equal(alone, with_big)
    assert (alone - lin(x[:1])).abs().max().item() < 0.25 * lin(x[:1]).abs().max().item()


# -- patch_model ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deit_tiny():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    for m in model.modules():  # the reference: timm's own unfused attention path
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return model, x, model(x)


def test_patch_deit_tiny_with_exact_standins_changes_nothing(deit_tiny):
    import copy

    model, x, ref = deit_tiny
    patched = copy.deepcopy(model)
    summary = nn.patch_model(patched, gelu=nn.EXACT, softmax=nn.EXACT, layernorm=nn.EXACT)
    assert summary.counts() == {"gelu": 12, "softmax": 12, "layernorm": 25, "linear": 0}
    assert str(summary) == "replaced 12 gelu, 12 softmax, 25 layernorm"
    assert patched.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(patched(x), ref)


def test_patch_deit_tiny_with_the_hardware(deit_tiny):
    import copy

    model, x, ref = deit_tiny
    patched = copy.deepcopy(model)
    summary = nn.patch_model(
        patched, gelu=True, softmax=True, layernorm=True, weights=nn.WeightSpec(mode="fixp4")
    )
    assert summary.counts() == {"gelu": 12, "softmax": 12, "layernorm": 25, "linear": 48}
    assert summary.skipped == [("head", "kept in float")]
    assert isinstance(patched.blocks[3].attn.softmax, nn.Softmax)
    assert isinstance(patched.blocks[3].mlp.fc2, nn.MacLinear)
    with torch.no_grad():
        y = patched(x)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    assert not torch.equal(y, ref)  # the approximations are really in the forward pass
    # each operator alone stays close to the float model (random weights, small logits;
    # the randomly initialised residual stream is ~0.02, below s8.8's resolution, so
    # LayerNorm gets the dynamic prescale)
    for kw in (
        {"gelu": True},
        {"softmax": True},
        {"layernorm": True, "layernorm_scale": "dynamic"},
    ):
        one = copy.deepcopy(model)
        nn.patch_model(one, **kw)
        with torch.no_grad():
            assert (one(x) - ref).abs().max().item() < 0.05, kw


def test_patch_model_rejects_bad_arguments():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    with pytest.raises(TypeError, match=r"gelu= takes None, True, 'exact' or a GeluParams"):
        nn.patch_model(model, gelu=softmax.SoftmaxParams())
    with pytest.raises(ValueError, match=r"weights mode must be 'fixp4', 'posit4' or 'mixed'"):
        nn.patch_model(model, weights="int4")
    with pytest.raises(ValueError, match=r"layernorm_scale must be one of"):
        nn.patch_model(model, layernorm=True, layernorm_scale="auto")


def test_patch_plain_torch_model():
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.LayerNorm(32), torch.nn.Linear(32, 3)
    )
    summary = nn.patch_model(model, gelu=True, layernorm=True, weights="posit4")
    assert summary.counts() == {"gelu": 1, "softmax": 0, "layernorm": 1, "linear": 2}
    assert model(torch.randn(2, 16)).shape == (2, 3)


@pytest.mark.perf
def test_emulated_deit_small_forward_costs_at_most_2x():
    """The PyTorch-backend issue's budget: DeiT-Small with all three operators emulated, one
    thread, best of five, at most 2x the exact forward pass.

    A ratio of wall times, so it depends on the machine: the NumPy models read 2.31 when first
    written and 3.18 to 3.88 on a later machine of the same kind; the tensor models with
    in-place element passes, NumPy per-row units and the decoded GELU table read 1.78 to 1.89
    (the models before them 2.06 to 2.13, measured alternately). It therefore runs with
    ``make perf`` rather than gating ``make test``."""
    from hwtorch.accuracy import forward_overhead

    # one torch thread: the emulations run on one core, and on a shared 2-core machine two
    # torch threads make the exact forward pass erratic (spin-waiting on a busy core)
    t = forward_overhead("deit_small_patch16_224", batch=1, repeats=5, threads=1)
    assert t["ratio"] <= 2.0, t


def test_whole_array_lookup_paths_equal_the_datapaths():
    """Large inputs take a table of every code's result (GELU) or every difference's exp
    (softmax); the table must be what the datapath computes, element for element."""
    g = gelu.GeluParams(segments=8)
    codes = np.random.default_rng(8).integers(g.in_fmt.min_code, g.in_fmt.max_code + 1, 70000)
    assert np.array_equal(gelu.emulate(g, codes), gelu._datapath(g, codes))
    s = softmax.SoftmaxParams(pade="1/1")
    rows = np.random.default_rng(9).integers(-3000, 3000, size=(300, 256))
    rows[0, :] = s.in_fmt.min_code
    rows[0, 0] = s.in_fmt.max_code  # the largest difference the table holds
    small = np.concatenate([softmax.emulate(s, r[None, :]) for r in rows])
    assert rows.size > softmax._LUT_THRESHOLD
    assert np.array_equal(softmax.emulate(s, rows), small)
