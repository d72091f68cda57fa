"""The golden models on PyTorch tensors: the same integers as on NumPy, on CPU and CUDA.

The NumPy results are the ones the RTL is verified against (sim/), so each test computes a
model on NumPy and on a tensor and asserts the tensor result is bit for bit the same, of
dtype int64, on the tensor's device. CUDA runs where a GPU is present.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from golden import (  # noqa: E402
    gelu,
    gelu_base,
    layernorm,
    layernorm_base,
    posit_mac,
    softmax,
    softmax_base,
)
from golden.arrays import bit_length, namespace, row_namespace  # noqa: E402
from golden.formats import (  # noqa: E402
    FixFormat,
    PositFormat,
    saturate,
    shift_round_half_even,
    shift_round_half_up,
)
from hwtorch import nn  # noqa: E402

_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the GPU half of these checks needs one"
)
DEVICES = ["cpu", pytest.param("cuda", marks=_CUDA)]


@pytest.fixture(params=DEVICES)
def dev(request):
    return torch.device(request.param)


def _same(numpy_result, tensor_result, dev):
    """The tensor result is an int64 tensor on ``dev`` holding the NumPy result."""
    assert isinstance(tensor_result, torch.Tensor), type(tensor_result)
    assert tensor_result.device.type == dev.type
    assert tensor_result.dtype == torch.int64
    assert tuple(tensor_result.shape) == np.shape(numpy_result)
    return np.array_equal(tensor_result.cpu().numpy(), numpy_result)


def _t(a, dev):
    return torch.from_numpy(np.asarray(a)).to(dev)


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fmt", [FixFormat(6, 10), FixFormat(1, 15, signed=False), FixFormat(8, 8)])
def test_encode_decode_equal_numpy(dev, dtype, fmt):
    """Quantizing float32 or float64 tensors gives NumPy's codes: ties to even, saturation,
    infinities, subnormals; decoding gives NumPy's float64 values (and float32 rounded once)."""
    rng = np.random.default_rng(1)
    grid = (np.arange(-600, 600) / 2 + 0.5) * fmt.resolution  # every tie around zero
    x = np.concatenate(
        [
            rng.normal(0.0, 8.0, 20000),
            grid,
            [fmt.max_value + fmt.resolution / 2, fmt.min_value - fmt.resolution / 2],
            [np.inf, -np.inf, 1e38, -1e38, 1e-40, -1e-45, 0.0, -0.0],
        ]
    ).astype(np.float32 if dtype == torch.float32 else np.float64)
    codes = fmt.encode(x)
    # float32 values are encoded in float32 where that is exact: the float64 codes
    assert np.array_equal(codes, fmt.encode(x.astype(np.float64)))
    assert _same(codes, fmt.encode(_t(x, dev)), dev)
    decoded = fmt.decode(_t(codes, dev))
    assert decoded.dtype == torch.float64 and np.array_equal(
        decoded.cpu().numpy(), fmt.decode(codes)
    )
    single = fmt.decode(_t(codes, dev), dtype=torch.float32)
    assert np.array_equal(single.cpu().numpy(), fmt.decode(codes).astype(np.float32))


def test_format_errors_are_the_same_on_tensors():
    f = FixFormat(4, 4)
    with pytest.raises(ValueError, match=r"^code 200 is outside s4\.4 \(-128\.\.127\)"):
        f.check_codes(torch.tensor([3, 200]))
    with pytest.raises(TypeError, match=r"codes must be integers .* not torch\.float32 values"):
        f.check_codes(torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"^cannot encode NaN into s4\.4$"):
        f.encode(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match=r"^value 9\.0 is outside s4\.4"):
        f.encode(torch.tensor([1.0, 9.0]), saturate=False)


def test_rounding_helpers_equal_numpy(dev):
    rng = np.random.default_rng(2)
    v = rng.integers(-(2**40), 2**40, size=(50, 40))
    shifts = rng.integers(-6, 20, size=(50, 1))
    for s in (0, 1, 7, -3):
        assert _same(shift_round_half_up(v, s), shift_round_half_up(_t(v, dev), s), dev)
        assert _same(shift_round_half_even(v, s), shift_round_half_even(_t(v, dev), s), dev)
    assert _same(
        shift_round_half_up(v, shifts), shift_round_half_up(_t(v, dev), _t(shifts, dev)), dev
    )
    assert _same(saturate(v, FixFormat(30, 4)), saturate(_t(v, dev), FixFormat(30, 4)), dev)
    # in place on an array of the caller's, with its own row shifts
    assert _same(
        shift_round_half_up(v, shifts),
        shift_round_half_up(_t(v, dev), _t(shifts, dev), overwrite=True),
        dev,
    )


def test_rows_worked_out_in_numpy_for_cpu_tensors():
    """A CPU tensor's per-row shifts may come as NumPy (the models' per-row units run in
    NumPy there: row_namespace); the result is the tensor NumPy's shifts give. Any other
    mix of libraries is an error."""
    rng = np.random.default_rng(3)
    v = rng.integers(-(2**40), 2**40, size=(50, 40))
    shifts = rng.integers(-6, 20, size=(50, 1))
    cpu = torch.device("cpu")
    assert row_namespace(namespace(_t(v, cpu)), _t(v, cpu)).__name__ == "array_api_compat.numpy"
    want = shift_round_half_up(v, shifts)
    assert _same(want, shift_round_half_up(_t(v, cpu), shifts), cpu)
    assert _same(want, shift_round_half_up(_t(v, cpu), shifts, overwrite=True), cpu)
    with pytest.raises(TypeError, match="two libraries"):
        shift_round_half_up(v, _t(shifts, cpu))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_index_equals_numpy(dev, dtype):
    fmt = FixFormat(6, 10)
    x = np.concatenate(
        [np.random.default_rng(4).normal(0, 20, 5000), [np.inf, -np.inf, 0.5 / 1024, 1e38]]
    ).astype(np.float32 if dtype == torch.float32 else np.float64)
    got = fmt.encode_index(_t(x, dev))
    assert got.dtype == torch.int32 and got.device.type == dev.type
    assert np.array_equal(got.cpu().numpy(), fmt.encode(x) - fmt.min_code)


@pytest.mark.parametrize("fmt", [PositFormat(4, 0), PositFormat(4, 1), PositFormat(8, 2)])
def test_posit_format_equals_numpy(dev, fmt):
    x = np.concatenate(
        [np.random.default_rng(3).normal(0.0, 4.0, 5000), fmt.decode(fmt.all_codes()[1:-1])]
    )
    x = x[np.isfinite(x)]
    assert _same(fmt.encode(x), fmt.encode(_t(x, dev)), dev)
    values = fmt.decode(_t(fmt.all_codes(), dev))
    assert np.array_equal(values.cpu().numpy(), fmt.decode(fmt.all_codes()), equal_nan=True)


def test_bit_length_is_exact(dev):
    rng = np.random.default_rng(8)
    v = np.concatenate(
        [rng.integers(0, 2**63 - 1, 20000), 2 ** np.arange(63), 2 ** np.arange(1, 63) - 1, [0]]
    ).astype(np.int64)
    expected = np.array([int(x).bit_length() for x in v.tolist()])
    assert np.array_equal(bit_length(namespace(v), v), expected)
    assert _same(expected, bit_length(namespace(_t(v, dev)), _t(v, dev)), dev)


# -- the operators -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", gelu.param_sweep(), ids=lambda p: p.name)
def test_gelu_every_code(dev, p):
    """Every input code through the datapath, and twice over through the whole-array table."""
    codes = p.in_fmt.all_codes()
    assert _same(gelu.emulate(p, codes), gelu.emulate(p, _t(codes, dev)), dev)
    both = np.stack([codes, codes[::-1]])
    assert both.size > gelu._LUT_THRESHOLD
    assert _same(gelu.emulate(p, both), gelu.emulate(p, _t(both, dev)), dev)


@pytest.mark.parametrize("p", gelu_base.param_sweep(), ids=lambda p: p.name)
def test_gelu_base_every_code(dev, p):
    codes = p.in_fmt.all_codes()
    assert _same(gelu_base.emulate(p, codes), gelu_base.emulate(p, _t(codes, dev)), dev)


def _softmax_rows(mod, p):
    rows = mod.random_rows(p, 30, seed=4) + list(mod.standard_cases(p).values())
    batch = np.random.default_rng(5).integers(-3000, 3000, size=(2, 200, min(p.max_len, 197)))
    return rows + [batch]  # the batch takes the whole-array exp table


@pytest.mark.parametrize(
    ("mod", "p"),
    [(softmax, p) for p in softmax.param_sweep()]
    + [(softmax_base, p) for p in softmax_base.param_sweep()],
    ids=lambda v: getattr(v, "name", ""),
)
def test_softmax_random_and_named_rows(dev, mod, p):
    for row in _softmax_rows(mod, p):
        assert _same(mod.emulate(p, row), mod.emulate(p, _t(row, dev)), dev)


def _layernorm_rows(mod, p):
    rows = [mod.random_rows(p, 6, d, seed=d) for d in (192, 384, 768) if d <= p.max_len]
    return rows + [r[None, :] for r in mod.standard_cases(p).values()]


@pytest.mark.parametrize(
    ("mod", "p"),
    [(layernorm, p) for p in layernorm.param_sweep()]
    + [(layernorm, layernorm.LayerNormParams(eps=1e-12, eps_extra_bits=30))]
    + [(layernorm_base, p) for p in layernorm_base.param_sweep()],
    ids=lambda v: getattr(v, "name", ""),
)
def test_layernorm_random_and_named_rows(dev, mod, p):
    for i, rows in enumerate(_layernorm_rows(mod, p)):
        assert _same(mod.emulate(p, rows), mod.emulate(p, _t(rows, dev)), dev)
        affine = layernorm.row_params(p, rows.shape[-1], seed=i)
        expected = mod.emulate(p, rows, affine["gamma"], affine["beta"])
        got = mod.emulate(p, _t(rows, dev), _t(affine["gamma"], dev), _t(affine["beta"], dev))
        assert _same(expected, got, dev)


@pytest.mark.parametrize("p", posit_mac.param_sweep(), ids=lambda p: p.name)
def test_mac_dot_products(dev, p):
    cases = posit_mac.random_cases(p, 60, seed=6) + list(posit_mac.standard_cases(p).values())
    for w, a, fmt in cases:
        expected = posit_mac.emulate(p, w, a, fmt if p.mode is posit_mac.MacMode.MIXED else None)
        got = posit_mac.emulate(
            p, _t(w, dev), _t(a, dev), _t(fmt, dev) if p.mode is posit_mac.MacMode.MIXED else None
        )
        assert _same(np.asarray(expected), got, dev)


@pytest.mark.parametrize("mode", list(posit_mac.MacMode))
def test_mac_matmul_form(dev, mode):
    p = posit_mac.MacParams(mode=mode)
    rng = np.random.default_rng(7)
    w = rng.integers(0, 16, size=(24, 300))
    mask = rng.random(w.shape) < 0.3 if mode is posit_mac.MacMode.MIXED else None
    if mode is posit_mac.MacMode.POSIT:
        a = rng.integers(0, 16, size=(3, 50, 300))
    else:
        a = rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, size=(3, 50, 300))
    expected = posit_mac.emulate_matmul(p, w, a, mask)
    got = posit_mac.emulate_matmul(
        p, _t(w, dev), _t(a, dev), None if mask is None else _t(mask, dev)
    )
    assert _same(expected, got, dev)


# -- hwtorch.nn on the input's device ------------------------------------------------------------


def test_drop_ins_stay_on_the_device(dev, monkeypatch):
    """Softmax, GELU, LayerNorm (every scale policy) and MacLinear compute on the input's
    device and dtype: with Tensor.tolist disabled, and Tensor.numpy disabled for every device
    but the CPU (where it is a view of the same memory), they still run, and they give what
    the NumPy path gives."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(48, 16)
    mods = [
        (nn.Softmax(dim=-1), torch.randn(2, 3, 7, 7) * 4),
        (nn.GELU(), torch.randn(2, 300, 130) * 3),
        (nn.LayerNorm(48, eps=1e-6), torch.randn(4, 48) * 2),
        (nn.LayerNorm(48, eps=1e-12, scale="dynamic"), torch.randn(4, 48) * 300),
        (nn.LayerNorm(48, scale="static").calibrate(torch.randn(4, 48) * 300), torch.randn(4, 48)),
        (nn.MacLinear.from_linear(lin, act_scale="row"), torch.randn(5, 48)),
        (nn.MacLinear.from_linear(lin, mode="fixp4"), torch.randn(5, 48, dtype=torch.float64)),
    ]
    expected = [m(x) for m, x in mods]  # CPU tensors
    for m, _ in mods:
        m.to(dev)

    def no_host(*args, **kwargs):
        raise AssertionError("the forward pass copied a tensor to the host")

    view = torch.Tensor.numpy

    def cpu_view_only(tensor, *args, **kwargs):
        # a CPU tensor's NumPy view shares its memory (the per-row units run in NumPy on a
        # CPU: golden.arrays.row_namespace); any other device's would be a copy
        if tensor.device.type != "cpu":
            no_host()
        out = view(tensor, *args, **kwargs)
        assert np.shares_memory(out, view(tensor)), "a NumPy copy, not a view"
        return out

    monkeypatch.setattr(torch.Tensor, "numpy", cpu_view_only)
    monkeypatch.setattr(torch.Tensor, "tolist", no_host)
    got = [m(x.to(dev)) for m, x in mods]
    monkeypatch.undo()
    for (m, x), want, y in zip(mods, expected, got, strict=True):
        assert y.device.type == dev.type and y.dtype == x.dtype, m
        assert torch.equal(y.cpu(), want), m
