# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""LayerNorm golden model: exact statistics, the 1/sqrt unit, error targets, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import layernorm
from golden.formats import FixFormat
from golden.layernorm import LayerNormParams
from hwgen.cores.layernorm import LayerNorm
from tests.streamsim import stream_sim

DEFAULT = LayerNormParams()
SWEEP = layernorm.param_sweep()


def _layernorm_math(x, eps):
    """LayerNorm with the math module (independent of the NumPy reference)."""
    d = len(x)
    mean = math.fsum(x) / d
    var = math.fsum((v - mean) ** 2 for v in x) / d
    return [(v - mean) / math.sqrt(var + eps) for v in x]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_len": 1}, ValueError, r"^layernorm max_len must be 2 to 4096, not 1$"),
        ({"eps": 0.0}, ValueError, r"eps must be a positive finite number, not 0\.0"),
        ({"eps": 1e-12}, ValueError, r"eps=1e-12 rounds to 0 .* raise eps_extra_bits"),
        ({"eps_extra_bits": 15}, ValueError, r"eps_extra_bits must be even"),
        ({"newton_steps": 4}, ValueError, r"newton_steps must be 0 to 3, not 4"),
        ({"rsqrt_fmt": FixFormat(1, 15, False)}, ValueError, r"rsqrt_fmt must have 2 integer"),
        ({"out_fmt": FixFormat(6, 10, False)}, ValueError, r"out_fmt must be signed"),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        LayerNormParams(**kwargs)


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_rsqrt_unit_on_every_mantissa(p):
    f = p.rsqrt_fmt.frac_bits
    m = np.arange(1 << f, 4 << f)
    y = np.ldexp(layernorm.rsqrt(p, m).astype(float), -f)
    rel = np.abs(y * np.sqrt(np.ldexp(m.astype(float), -f)) - 1.0)
    seed = 1.0 / (1 << (p.rsqrt_bits + 1))  # the 2/(sqrt(lo)+sqrt(hi)) seed near m = 1
    bound = seed
    for _ in range(p.newton_steps):
        bound = 1.5 * bound * bound
    assert rel.max() <= bound + 4 * 2.0**-f


def test_default_meets_2_pow_minus_7():
    stats = layernorm.error_stats(DEFAULT, n_rows=40, seed=5)
    assert stats["max_abs"] <= 2.0**-7


def test_named_rows_against_math_module():
    p = DEFAULT
    for name, row in layernorm.standard_cases(p).items():
        got = p.out_fmt.decode(layernorm.emulate(p, row))
        want = np.clip(
            _layernorm_math(p.in_fmt.decode(row).tolist(), p.eps),
            p.out_fmt.min_value,
            p.out_fmt.max_value,
        )
        assert np.abs(got - want).max() <= 2.0**-7, name


def test_constant_rows_give_exact_zeros():
    for value in (0, 77, DEFAULT.in_fmt.min_code, DEFAULT.in_fmt.max_code):
        assert not layernorm.emulate(DEFAULT, np.full(300, value)).any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 768), st.integers(0, 2**32 - 1), st.integers(-3000, 3000))
def test_shift_and_permutation_invariance(length, seed, offset):
    """Statistics are exact, so adding a constant changes nothing and permuting permutes."""
    rng = np.random.default_rng(seed)
    row = np.clip(rng.normal(0, 400, length).astype(np.int64), -20000, 20000)
    base = layernorm.emulate(DEFAULT, row)
    assert np.array_equal(layernorm.emulate(DEFAULT, row + offset), base)
    perm = rng.permutation(length)
    assert np.array_equal(layernorm.emulate(DEFAULT, row[perm]), base[perm])


def test_affine_identity_and_error():
    p = DEFAULT
    rows = layernorm.random_rows(p, 8, 384, seed=2)
    one = np.full(384, 1 << p.gamma_fmt.frac_bits)
    zero = np.zeros(384, dtype=np.int64)
    assert np.array_equal(layernorm.emulate(p, rows, one, zero), layernorm.emulate(p, rows))
    rng = np.random.default_rng(3)
    gamma = p.gamma_fmt.encode(rng.uniform(0.2, 2.0, 384))
    beta = p.beta_fmt.encode(rng.normal(0, 0.5, 384))
    got = p.out_fmt.decode(layernorm.emulate(p, rows, gamma, beta))
    ref = layernorm.reference(
        p, p.in_fmt.decode(rows), p.gamma_fmt.decode(gamma), p.beta_fmt.decode(beta)
    )
    ref = np.clip(ref, p.out_fmt.min_value, p.out_fmt.max_value)
    assert np.abs(got - ref).max() <= 2.0**-6  # gamma up to 2 doubles the normalised error


def test_bad_input():
    with pytest.raises(ValueError, match=r"rows must have length 1 to max_len=1024 .* 2000"):
        layernorm.emulate(DEFAULT, np.zeros(2000, dtype=np.int64))
    with pytest.raises(ValueError, match=r"gamma must have one code per channel \(4\)"):
        layernorm.emulate(DEFAULT, np.zeros(4, dtype=np.int64), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"layernorm input code 40000 is outside s8\.8"):
        layernorm.emulate(DEFAULT, [0, 40000])


# -- the component in amaranth.sim ---------------------------------------------------------------


def _payloads(rows):
    return [{"data": int(v), "last": k == len(r) - 1} for r in rows for k, v in enumerate(r)]


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    rows = list(layernorm.random_rows(p, 4, min(96, p.max_len), seed=7))
    rows += [r[: p.max_len] for r in layernorm.standard_cases(p).values()]
    payloads = _payloads(rows)
    got, _, _ = stream_sim(LayerNorm(p), payloads, len(payloads), idle=0.3, backpressure=0.4)
    data = np.array([g.data for g in got])
    assert np.array_equal(data, np.concatenate([layernorm.emulate(p, r) for r in rows]))
    firsts = np.concatenate([[1] + [0] * (len(r) - 1) for r in rows])
    lasts = np.concatenate([[0] * (len(r) - 1) + [1] for r in rows])
    assert np.array_equal([g.first for g in got], firsts)
    assert np.array_equal([g.last for g in got], lasts)


@pytest.mark.parametrize(("max_len", "length"), [(1024, 87), (256, 192)])
def test_component_full_rate_and_latency(max_len, length):
    # the default's shortest full-rate rows (its per-row unit takes 86 clocks) and DeiT-T's
    # 192 stream at one element per clock
    p = DEFAULT.replace(max_len=max_len)
    dut = LayerNorm(p)
    assert dut.row_clocks < length
    rows = list(layernorm.random_rows(p, 5, length, seed=1))
    payloads = _payloads(rows)
    got, ins, outs = stream_sim(dut, payloads, len(payloads), idle=0.0, backpressure=0.0)
    assert np.array_equal(
        [g.data for g in got], np.concatenate([layernorm.emulate(p, r) for r in rows])
    )
    assert np.all(np.diff(ins) == 1) and np.all(np.diff(outs) == 1)
    assert outs[0] - ins[length - 1] == dut.latency


def test_affine_port_loads_gamma_and_beta_between_rows():
    from amaranth.sim import Simulator

    p = DEFAULT.replace(max_len=32)
    dut = LayerNorm(p)
    rng = np.random.default_rng(4)
    rows = list(layernorm.random_rows(p, 3, 32, seed=3))
    params = [
        (p.gamma_fmt.encode(rng.uniform(0.2, 2, 32)), p.beta_fmt.encode(rng.normal(0, 1, 32)))
        for _ in rows
    ]
    got = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for row, (gamma, beta) in zip(rows, params, strict=True):
            for addr in range(32):  # load this row's gamma and beta while the block is idle
                ctx.set(dut.affine.valid, 1)
                ctx.set(
                    dut.affine.payload,
                    {"addr": addr, "gamma": int(gamma[addr]), "beta": int(beta[addr])},
                )
                await ctx.tick()
            ctx.set(dut.affine.valid, 0)
            sent, out = 0, []
            while len(out) < len(row):
                ctx.set(dut.i.valid, sent < len(row))
                if sent < len(row):
                    ctx.set(dut.i.payload, {"data": int(row[sent]), "last": sent == len(row) - 1})
                _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                    dut.i.ready, dut.o.valid, dut.o.payload
                )
                sent += int(sent < len(row) and i_ready)
                if o_valid:
                    out.append(o_payload.data)
            ctx.set(dut.i.valid, 0)
            got.append(out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for out, row, (gamma, beta) in zip(got, rows, params, strict=True):
        assert out == layernorm.emulate(p, row, gamma, beta).tolist()


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a LayerNormParams"):
        LayerNorm("default")


def _row_mantissa_python(p, row):
    """W = (D S2 - S1^2) 2^G + D^2 eps_code and its split 2^(2k) m, in Python integers (W can
    exceed 64 bits): the definition the int64 two-word form must equal."""
    d = len(row)
    s1, s2 = sum(row), sum(v * v for v in row)
    w = (d * s2 - s1 * s1) * (1 << p.eps_extra_bits) + d * d * p.eps_code
    k = (w.bit_length() - 1) // 2
    shift = 2 * k - p.rsqrt_fmt.frac_bits
    return (w >> shift if shift >= 0 else w << -shift), k


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 1024),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.5, 20.0, 400.0, 30000.0]),
    st.sampled_from([(1e-6, 16), (1e-12, 30), (1e-5, 0), (3e-15, 32), (1.0, 32), (0.01, 2)]),
)
def test_row_statistics_in_two_words_equal_python_integers(length, seed, sigma, eps_g):
    """The per-row W, whose top bits feed the 1/sqrt unit, is exact in int64 words: the same
    m and k as Python's unbounded integers, from constant rows (W = D^2 eps alone) to the widest
    variances, with 0 to 32 guard bits."""
    eps, g = eps_g
    p = DEFAULT.replace(eps=eps, eps_extra_bits=g)
    rng = np.random.default_rng(seed)
    row = p.in_fmt.encode(
        rng.normal(0.0, sigma, length) if sigma < 30000 else rng.choice([-1e9, 1e9], length)
    )
    if seed % 5 == 0:
        row[:] = row[0]  # constant row
    a, b, k = layernorm._row_constants(p, row[None, :])
    m, k_py = _row_mantissa_python(p, row.tolist())
    y = int(layernorm.rsqrt(p, m))
    assert (int(k[0, 0]), int(a[0, 0]), int(b[0, 0])) == (k_py, length * y, int(row.sum()) * y)
