# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""Softmax baselines: golden-model accuracy, tables, divider, and the component in amaranth.sim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import softmax, softmax_base
from golden.formats import FixFormat
from golden.softmax_base import SoftmaxBaseKind, SoftmaxBaseParams
from hwgen import registry
from hwgen.cores.softmax import Softmax
from hwgen.cores.softmax_base import SoftmaxBase
from tests.streamsim import stream_sim

DIV = SoftmaxBaseParams()
LUT = SoftmaxBaseParams(kind="lut")
SWEEP = softmax_base.param_sweep()


def _softmax_math(x):
    """Softmax with the math module only (independent of the NumPy reference)."""
    top = max(x)
    e = [math.exp(v - top) for v in x]
    s = math.fsum(e)
    return [v / s for v in e]


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"kind": "exact"},
            ValueError,
            r"^softmax_base kind must be one of div, lut, not 'exact'$",
        ),
        ({"max_len": 1}, ValueError, r"^softmax_base max_len must be 2 to 4096, not 1$"),
        ({"exp_bits": 13}, ValueError, r"exp_bits must be 4 to 12, not 13"),
        ({"exp_bits": 3.0}, TypeError, r"exp_bits must be an integer, not 3\.0"),
        ({"out_fmt": FixFormat(1, 15)}, ValueError, r"out_fmt must be unsigned \(probabilities\)"),
        ({"out_fmt": FixFormat(0, 16, False)}, ValueError, r"needs an integer bit to hold 1\.0"),
        ({"exp_fmt": FixFormat(2, 16, False)}, ValueError, r"exp_fmt must have 1 integer bit"),
        ({"recip_fmt": "u1.17"}, TypeError, r"recip_fmt must be a FixFormat"),
        ({"diff_fmt": FixFormat(8, 6, False)}, ValueError, r"diff_fmt must be 4 to 12 bits wide"),
        ({"out_fmt": FixFormat(1, 23, False)}, ValueError, r"at most 22 fractional bits"),
        (
            {"kind": "lut", "inv_in_fmt": FixFormat(13, 0, False)},
            ValueError,
            r"inv_in_fmt must be 4 to 12 bits wide \(it addresses a table\), not u13\.0",
        ),
        (
            {
                "kind": "lut",
                "inv_in_fmt": FixFormat(0, 12, False),
                "exp_fmt": FixFormat(1, 10, False),
            },
            ValueError,
            r"inv_in_fmt keeps more fractional bits \(12\) than the row sum has \(10\)",
        ),
        (
            {"kind": "lut", "diff_fmt": FixFormat(0, 11, False)},
            ValueError,
            r"diff_fmt keeps more fractional bits \(11\) than in_fmt has \(10\)",
        ),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        SoftmaxBaseParams(**kwargs)


def test_names_sweep_and_baseline_link():
    assert DIV.name == "softmax_base_div_i16f10_ou16f15_n256"
    assert LUT.name == "softmax_base_lut_i16f10_ou16f15_n256"
    assert SWEEP[:2] == [DIV, LUT]  # the default of each kind first
    names = [p.name for p in SWEEP]
    assert len(set(names)) == len(names)
    assert registry.get("softmax_base").baseline_for == "softmax"
    assert registry.get("softmax_base").params is SoftmaxBaseParams
    # fields the kind does not use stay out of the name
    assert LUT.replace(exp_bits=9).name == LUT.name
    assert DIV.replace(inv_in_fmt=FixFormat(6, 4, False)).name == DIV.name


def test_parse_round_trip():
    p = SoftmaxBaseParams.parse("kind=lut, inv_in_fmt=u6.4")
    assert p.kind is SoftmaxBaseKind.LUT and p.inv_in_fmt == FixFormat(6, 4, False)
    assert SoftmaxBaseParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("p", [DIV, LUT], ids=["div", "lut"])
def test_same_interface_as_the_approximate_softmax(p):
    approx = softmax.SoftmaxParams()
    assert (p.in_fmt, p.out_fmt, p.max_len) == (approx.in_fmt, approx.out_fmt, approx.max_len)
    assert SoftmaxBase(p).signature == Softmax(approx).signature


def test_sum_word_holds_max_len_ones():
    for p in (DIV, LUT):
        assert p.sum_fmt.max_code >= p.max_len * (1 << p.exp_fmt.frac_bits)


# -- tables and the divider ------------------------------------------------------------------------


def test_div_exp_table_is_two_to_the_minus_fraction():
    tb = softmax_base.tables(DIV)
    assert len(tb.exp) == 2048
    j = np.arange(2048)
    ideal = np.array([2.0 ** (-k / 2048) for k in j.tolist()])
    assert np.abs(np.ldexp(tb.exp.astype(float), -17) - ideal).max() <= 2.0**-18
    assert tb.exp.max() < 2**18  # 18-bit words


def test_lut_tables_follow_the_index_formats():
    tb = softmax_base.tables(LUT)
    assert len(tb.exp) == 1024 and len(tb.recip) == 1024  # one 1024 x 18 block RAM each
    assert tb.exp.max() < 2**18 and tb.recip.max() < 2**18
    for j in (0, 1, 64, 640, 1023):  # d = j / 64
        assert abs(tb.exp[j] / 2**17 - math.exp(-j / 64)) <= 2.0**-18
    for j in (4, 5, 17, 1023):  # s = j / 4
        assert abs(tb.recip[j] / 2**17 - 4 / j) <= 2.0**-18
    assert tb.recip[0] == 2**18 - 1  # 1/0 saturates, as hls4ml's AP_SAT table does


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**25), st.data())
def test_divider_rounds_the_exact_quotient_half_up(s, data):
    e = data.draw(st.integers(0, s))
    got = int(softmax_base.divide(DIV, e, s))
    # round(e / s * 2^15) half up, in integers: floor((2 e 2^15 + s) / (2 s))
    assert got == (2 * e * 2**15 + s) // (2 * s)


def test_div_exp_relative_error():
    """e^-d for every d in [0, 8] against math.exp: table error plus log2(e) rounding."""
    p = DIV
    d = np.arange(0, 8 << 10)
    e = np.ldexp(softmax_base._exp(p, d).astype(float), -17)
    ideal = np.exp(-d / 1024.0)
    big = ideal > 2.0**-4  # where rounding to u1.17 is below 1e-4 relative
    rel = np.abs(e - ideal)[big] / ideal[big]
    # index rounding (half a step of 2^-11 in n), log2(e) rounded to u1.16 (2^-17 per unit of
    # d, d < 8), the table entry's and the shift's roundings (half an LSB each, e >= 2^-4)
    bound = math.log(2) * (2.0**-12 + 8 * 2.0**-17) + 2 * 2.0**-18 / 2.0**-4
    assert rel.max() <= bound
    assert softmax_base._exp(p, np.array([0]))[0] == 2**17  # the maximum gives exactly 1


# -- accuracy of emulate -------------------------------------------------------------------------


@pytest.mark.parametrize("p", [DIV, LUT], ids=["div", "lut"])
def test_default_meets_stated_error_bounds(p):
    for seed in (0, 3):
        stats = softmax_base.error_stats(p, n_rows=400, seed=seed)
        assert stats["max_abs"] <= softmax_base.ERROR_BOUNDS[p.kind] == stats["target"]
        assert stats["max_sum_err"] <= softmax_base.SUM_BOUNDS[p.kind]


def test_div_at_least_as_accurate_as_the_approximate_softmax():
    base = softmax_base.error_stats(DIV, n_rows=400, seed=5)
    approx = softmax.error_stats(softmax.SoftmaxParams(), n_rows=400, seed=5)
    assert base["max_abs"] <= approx["max_abs"]
    assert base["mean_abs"] <= approx["mean_abs"]


def test_lut_worst_case_is_a_row_sum_just_above_one():
    """hls4ml's fixed-point index: a sum of 1.12 reads 1/1, so the maximum comes out as 1.0."""
    p = LUT
    x = np.array([0, -2150])  # e^-2.1 = 0.122: S = 1.122 rounds to 1.0 at steps of 1/4
    got = p.out_fmt.decode(softmax_base.emulate(p, x))
    want = _softmax_math(p.in_fmt.decode(x).tolist())
    assert got[0] == 1.0
    assert 0.10 <= got[0] - want[0] <= softmax_base.ERROR_BOUNDS[p.kind]


@pytest.mark.parametrize("p", [DIV, LUT], ids=["div", "lut"])
def test_default_against_math_module_on_named_rows(p):
    for name, row in softmax_base.standard_cases(p).items():
        got = p.out_fmt.decode(softmax_base.emulate(p, row))
        want = _softmax_math(p.in_fmt.decode(row).tolist())
        assert np.abs(got - want).max() <= softmax_base.ERROR_BOUNDS[p.kind], name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=256))
def test_div_error_on_arbitrary_rows(codes):
    p = DIV
    row = np.array(codes)
    got = p.out_fmt.decode(softmax_base.emulate(p, row))
    want = _softmax_math(p.in_fmt.decode(row).tolist())
    assert np.abs(got - want).max() <= softmax_base.ERROR_BOUNDS[p.kind]
    assert abs(got.sum() - 1.0) <= softmax_base.SUM_BOUNDS[p.kind]


@pytest.mark.parametrize("p", [DIV, LUT], ids=["div", "lut"])
def test_shift_invariance_and_permutation(p):
    row = np.clip(softmax_base.random_rows(p, 1, seed=11)[0], -10000, 10000)
    base = softmax_base.emulate(p, row)
    assert np.array_equal(softmax_base.emulate(p, row + 1234), base)
    perm = np.random.default_rng(0).permutation(row.size)
    assert np.array_equal(softmax_base.emulate(p, row[perm]), base[perm])


def test_emulate_batches_rows_on_the_last_axis():
    rows = np.stack([softmax_base.random_rows(DIV, 1, seed=s)[0][:5] for s in (1, 2, 4)])
    out = softmax_base.emulate(LUT, rows.reshape(3, 1, -1))
    assert out.shape == (3, 1, 5)
    assert np.array_equal(out[1, 0], softmax_base.emulate(LUT, rows[1]))


def test_rejects_bad_rows():
    with pytest.raises(
        ValueError, match=r"rows must have length 1 to max_len=256 .* not length 300"
    ):
        softmax_base.emulate(DIV, np.zeros(300, dtype=np.int64))
    with pytest.raises(ValueError, match=r"softmax_base input code 40000 is outside s6\.10"):
        softmax_base.emulate(DIV, [0, 40000])


# -- the component in amaranth.sim ---------------------------------------------------------------


def _run(dut, rows, *, idle, backpressure, seed=0):
    payloads = [{"data": int(v), "last": k == len(r) - 1} for r in rows for k, v in enumerate(r)]
    got, ins, outs = stream_sim(
        dut, payloads, len(payloads), idle=idle, backpressure=backpressure, seed=seed
    )
    return np.array([(g.data, g.first, g.last) for g in got]), ins, outs


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    p = p.replace(max_len=min(p.max_len, 32))
    rows = softmax_base.random_rows(p, 25, seed=4) + list(softmax_base.standard_cases(p).values())
    got, _, _ = _run(SoftmaxBase(p), rows, idle=0.3, backpressure=0.4, seed=1)
    assert np.array_equal(got[:, 0], np.concatenate([softmax_base.emulate(p, r) for r in rows]))
    firsts = np.concatenate([[1] + [0] * (len(r) - 1) for r in rows])
    lasts = np.concatenate([[0] * (len(r) - 1) + [1] for r in rows])
    assert np.array_equal(got[:, 1], firsts) and np.array_equal(got[:, 2], lasts)


@pytest.mark.parametrize("kind, latency", [("div", 31), ("lut", 15)])
def test_component_full_rate_and_latency(kind, latency):
    p = SoftmaxBaseParams(kind=kind, max_len=64)
    dut = SoftmaxBase(p)
    assert dut.latency == latency
    n_rows, length = 4, 40
    rng = np.random.default_rng(0)
    rows = [p.in_fmt.encode(rng.normal(0, 2, length)) for _ in range(n_rows)]
    got, ins, outs = _run(dut, rows, idle=0.0, backpressure=0.0)
    assert np.array_equal(got[:, 0], np.concatenate([softmax_base.emulate(p, r) for r in rows]))
    assert np.all(np.diff(ins) == 1) and np.all(np.diff(outs) == 1)
    assert outs[0] - ins[length - 1] == length + dut.latency
    assert outs[-1] - ins[0] + 1 == (n_rows + 2) * length + dut.latency - 1


def test_row_longer_than_max_len_is_cut():
    """Without `last`, a row ends after max_len elements (documented framing rule)."""
    p = LUT.replace(max_len=8)
    row = np.arange(16) * 100
    got, _, _ = _run(SoftmaxBase(p), [row], idle=0.0, backpressure=0.0)
    expected = np.concatenate([softmax_base.emulate(p, row[:8]), softmax_base.emulate(p, row[8:])])
    assert np.array_equal(got[:, 0], expected)
    assert got[:, 2].tolist().count(1) == 2 and got[8, 1] == 1


def test_tables_are_block_ram_initialised_from_golden():
    text = registry.verilog_text(SoftmaxBase(LUT), LUT.name)
    assert f"module {LUT.name}(" in text
    # one memory of 1024 18-bit words per table, which Yosys maps to one block RAM each
    assert "reg [17:0] exp_rom [1023:0];" in text
    assert "reg [17:0] recip_rom [1023:0];" in text


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a SoftmaxBaseParams"):
        SoftmaxBase(softmax.SoftmaxParams())
