"""LayerNorm baselines: golden model arithmetic, error bounds, and the component in amaranth.sim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import layernorm_base as lb
from golden.formats import FixFormat
from golden.layernorm_base import LayerNormBaseKind, LayerNormBaseParams
from hwgen import registry
from hwgen.cores.layernorm_base import LayerNormBase, SeqDivider, SeqMultiplier, SeqSqrt
from tests.streamsim import stream_sim

DIV = LayerNormBaseParams()
LUT = LayerNormBaseParams(kind="lut")
SWEEP = lb.param_sweep()


def _layernorm_math(x, eps):
    """LayerNorm with the math module (independent of the NumPy reference)."""
    d = len(x)
    mean = math.fsum(x) / d
    var = math.fsum((v - mean) ** 2 for v in x) / d
    return [(v - mean) / math.sqrt(var + eps) for v in x]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"kind": "fast"},
            ValueError,
            r"^layernorm_base kind must be one of div, lut, not 'fast'$",
        ),
        ({"max_len": 1}, ValueError, r"max_len must be 2 to 4096, not 1$"),
        ({"eps": 0.0}, ValueError, r"eps must be in \(0, 1\), not 0\.0"),
        ({"mean_fmt": FixFormat(8, 6)}, ValueError, r"mean_fmt must hold every in_fmt value"),
        ({"var_fmt": FixFormat(8, 34, False)}, ValueError, r"var_fmt needs at least 14 integer"),
        ({"var_fmt": FixFormat(14, 12, False)}, ValueError, r"var_fmt's fractional bits must be"),
        ({"std_fmt": FixFormat(7, 12, False)}, ValueError, r"std_fmt's fractional bits must be"),
        ({"table_size": 1000}, ValueError, r"table_size must be a power of two, not 1000"),
        ({"table_fmt": FixFormat(8, 14, False)}, ValueError, r"cannot hold 1/sqrt\(eps\) = 1000"),
        ({"diff_fmt": FixFormat(8, 12)}, ValueError, r"diff_fmt must have at least 9 integer"),
        ({"table_range_log2": 15}, ValueError, r"table_range_log2 must be -16 to 14, not 15"),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        LayerNormBaseParams(**kwargs)


def test_names_and_sweep():
    assert DIV.name == "layernorm_base_div_i16f8_o16f10_n1024"
    assert LUT.name == "layernorm_base_lut_i16f8_o16f10_n1024"
    assert LUT.replace(table_range_log2=-2).name.endswith("_rm2")
    assert SWEEP[0] == DIV and SWEEP[1] == LUT
    assert len({p.name for p in SWEEP}) == len(SWEEP)
    assert registry.get("layernorm_base").baseline_for == "layernorm"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**15) * 1024, 2**15 * 1024),
    st.integers(0, 2**30 * 1024),
    st.integers(1, 1024),
)
def test_row_constants_against_fractions(s1, s2, d):
    """mean, var and std equal the exact rational math rounded as documented."""
    from fractions import Fraction

    p = DIV
    c = lb.row_constants(p, s1, s2, d)
    fi, fm, fv = 8, p.mean_fmt.frac_bits, p.var_fmt.frac_bits
    mean = Fraction(s1, d * 2**fi)
    assert abs(Fraction(c.mean, 2**fm) - mean) <= Fraction(1, 2 ** (fm + 1))
    e2 = Fraction(s2, d * 2 ** (2 * fi))
    var = e2 - Fraction(c.mean, 2**fm) ** 2
    assert abs(Fraction(c.var, 2**fv) - max(var, 0)) <= Fraction(1, 2**fv)
    std = math.sqrt(c.var / 2**fv + p.eps_code / 2**fv)
    assert abs(c.scale / 2**p.std_fmt.frac_bits - std) <= 2.0 ** -(p.std_fmt.frac_bits + 1) * 1.01


def test_lut_table_entries_and_index():
    p = LUT
    t = p.table_fmt.decode(lb.tables(p))
    step = 2.0**p.table_range_log2 / p.table_size
    mid = p.eps + (np.arange(p.table_size) + 0.5) * step
    assert np.abs(t - 1 / np.sqrt(mid)).max() <= p.table_fmt.resolution / 2
    # index = floor(var * table_size / R), clipped
    fv = p.var_fmt.frac_bits
    for var, idx in (
        (0.0, 0),
        (step * 7.5, 7),
        (0.9999, p.table_size - 1),
        (5.0, p.table_size - 1),
    ):
        code = round(var * 2**fv)
        assert min(code >> p.index_shift, p.table_size - 1) == idx


def test_div_error_bound_is_met_and_beats_the_approximate():
    from golden import layernorm

    stats = lb.error_stats(DIV)
    assert stats["max_abs"] <= lb.ERROR_BOUNDS[LayerNormBaseKind.DIV] == stats["bound"]
    assert stats["max_abs"] < layernorm.error_stats(layernorm.LayerNormParams())["max_abs"] / 4


def test_div_close_to_correct_rounding_on_named_rows():
    """Within 2^-11 (correct rounding) plus the double rounding through s6.12 and 2^-14."""
    p = DIV
    for name, row in lb.standard_cases(p).items():
        got = p.out_fmt.decode(lb.emulate(p, row))
        want = np.clip(
            _layernorm_math(p.in_fmt.decode(row).tolist(), p.eps),
            p.out_fmt.min_value,
            p.out_fmt.max_value,
        )
        assert np.abs(got - want).max() <= 2.0**-11 + 2.0**-13 + 2.0**-14, name


def test_lut_error_as_stated():
    """The hls4ml-style table: the stated bounds hold, and they are far from the div's."""
    stats = lb.error_stats(LUT)
    assert stats["max_abs"] <= lb.ERROR_BOUNDS[LayerNormBaseKind.LUT]
    assert stats["mean_abs"] <= 0.33
    assert stats["random_max_abs"] > 1.0  # var >= 1 reads the last entry: this can fail
    wide = lb.error_stats(LUT.replace(table_range_log2=6))
    assert wide["mean_abs"] <= 0.07


def test_lut_rows_inside_the_table_range_are_accurate():
    """Rows whose variance lies in the table's upper half: relative error <= 1/(2 i) + LSBs."""
    p = LUT
    rng = np.random.default_rng(3)
    for _ in range(20):
        row = p.in_fmt.encode(rng.normal(0.0, rng.uniform(0.72, 0.98), 384))
        x = p.in_fmt.decode(row)
        if not 0.5 <= x.var() < 1.0:
            continue
        got = p.out_fmt.decode(lb.emulate(p, row))
        want = lb.reference(p, x)
        assert np.abs(got - want).max() <= 4.0 / 2048 * np.abs(want).max() + 2.0**-9


def test_constant_rows_give_exact_zeros():
    for p in (DIV, LUT):
        for value in (0, 77, p.in_fmt.min_code, p.in_fmt.max_code):
            assert not lb.emulate(p, np.full(300, value)).any()


def test_affine_against_reference():
    p = DIV
    rows = lb.random_rows(p, 8, 384, seed=2)
    rng = np.random.default_rng(3)
    gamma = p.gamma_fmt.encode(rng.uniform(0.2, 2.0, 384))
    beta = p.beta_fmt.encode(rng.normal(0, 0.5, 384))
    one = np.full(384, 1 << p.gamma_fmt.frac_bits)
    zero = np.zeros(384, dtype=np.int64)
    assert np.array_equal(lb.emulate(p, rows, one, zero), lb.emulate(p, rows))
    got = p.out_fmt.decode(lb.emulate(p, rows, gamma, beta))
    ref = lb.reference(p, p.in_fmt.decode(rows), p.gamma_fmt.decode(gamma), p.beta_fmt.decode(beta))
    ref = np.clip(ref, p.out_fmt.min_value, p.out_fmt.max_value)
    assert np.abs(got - ref).max() <= 2.0**-11 + 2 * 2.0**-13 + 2.0**-12


def test_bad_input():
    with pytest.raises(ValueError, match=r"rows must have length 1 to max_len=1024 .* 2000"):
        lb.emulate(DIV, np.zeros(2000, dtype=np.int64))
    with pytest.raises(ValueError, match=r"gamma must have one code per channel \(4\)"):
        lb.emulate(DIV, np.zeros(4, dtype=np.int64), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"layernorm_base input code 40000 is outside s8\.8"):
        lb.emulate(DIV, [0, 40000])
    with pytest.raises(TypeError, match=r"params must be a LayerNormBaseParams"):
        LayerNormBase("default")


# -- the sequential units and the component in amaranth.sim ---------------------------------------


def _run_unit(unit, cases, set_inputs, read):
    out = []

    async def testbench(ctx):
        for case in cases:
            set_inputs(ctx, *case)
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            clocks = 1
            while not ctx.get(unit.done):
                await ctx.tick()
                clocks += 1
            assert clocks == unit.clocks
            out.append(read(ctx))

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def test_sequential_units_against_python_integers():
    rng = np.random.default_rng(0)
    div = SeqDivider(22, 8, 14, "t")
    cases = [(int(rng.integers(1, 256)),) for _ in range(30)]
    cases = [(int(rng.integers(0, d << 14)), d) for (d,) in cases] + [((255 << 14) - 1, 255)]

    def set_div(ctx, n, d):
        ctx.set(div.num, n)
        ctx.set(div.den, d)

    got = _run_unit(div, cases, set_div, lambda ctx: ctx.get(div.q))
    assert got == [n // d for n, d in cases]

    mul = SeqMultiplier(12, 9, "t")
    cases = [(int(rng.integers(0, 4096)), int(rng.integers(0, 512))) for _ in range(20)]
    cases += [(4095, 511)]

    def set_mul(ctx, a, b):
        ctx.set(mul.a, a)
        ctx.set(mul.b, b)

    assert _run_unit(mul, cases, set_mul, lambda ctx: ctx.get(mul.p)) == [a * b for a, b in cases]

    sq = SeqSqrt(9, "t")
    cases = [(int(v),) for v in rng.integers(0, 1 << 18, 30)] + [((1 << 18) - 1,), (0,)]
    got = _run_unit(sq, cases, lambda ctx, v: ctx.set(sq.v, v), lambda ctx: ctx.get(sq.root))
    assert got == [math.isqrt(v) for (v,) in cases]


def _payloads(rows):
    return [{"data": int(v), "last": k == len(r) - 1} for r in rows for k, v in enumerate(r)]


@pytest.mark.parametrize("p", SWEEP[:3], ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    rows = list(lb.random_rows(p, 3, min(64, p.max_len), seed=7))
    rows += [r for k, r in lb.standard_cases(p).items() if k != "max_len"]
    payloads = _payloads(rows)
    got, _, _ = stream_sim(LayerNormBase(p), payloads, len(payloads), idle=0.3, backpressure=0.4)
    assert np.array_equal([g.data for g in got], np.concatenate([lb.emulate(p, r) for r in rows]))
    firsts = np.concatenate([[1] + [0] * (len(r) - 1) for r in rows])
    lasts = np.concatenate([[0] * (len(r) - 1) + [1] for r in rows])
    assert np.array_equal([g.first for g in got], firsts)
    assert np.array_equal([g.last for g in got], lasts)


@pytest.mark.parametrize("kind", ["div", "lut"])
def test_component_full_rate_and_latency(kind):
    p = LayerNormBaseParams(kind=kind, max_len=256)
    dut = LayerNormBase(p)
    length = 192
    assert dut.row_clocks < length  # DeiT-T's width streams at full rate
    rows = list(lb.random_rows(p, 4, length, seed=1))
    payloads = _payloads(rows)
    got, ins, outs = stream_sim(dut, payloads, len(payloads), idle=0.0, backpressure=0.0)
    assert np.array_equal([g.data for g in got], np.concatenate([lb.emulate(p, r) for r in rows]))
    assert np.all(np.diff(ins) == 1) and np.all(np.diff(outs) == 1)
    assert outs[0] - ins[length - 1] == dut.latency
    assert outs[-1] - ins[0] + 1 == 5 * length + dut.latency - 1


@pytest.mark.parametrize("kind", ["div", "lut"])
def test_affine_port_loads_gamma_and_beta_between_rows(kind):
    p = LayerNormBaseParams(kind=kind, max_len=32)
    dut = LayerNormBase(p)
    rng = np.random.default_rng(4)
    rows = list(lb.random_rows(p, 2, 32, seed=3))
    params = [
        (p.gamma_fmt.encode(rng.uniform(0.2, 2, 32)), p.beta_fmt.encode(rng.normal(0, 1, 32)))
        for _ in rows
    ]
    got = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for row, (gamma, beta) in zip(rows, params, strict=True):
            for addr in range(32):
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
        assert out == lb.emulate(p, row, gamma, beta).tolist()
