# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""GELU baselines: parameters, table contents, error bounds, and the component in amaranth.sim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import gelu, gelu_base
from golden.formats import FixFormat
from golden.gelu_base import GeluBaseKind, GeluBaseParams
from hwgen import registry
from hwgen.cores.gelu_base import GeluBase
from tests.streamsim import stream_sim

TABLE = GeluBaseParams()
POLY = GeluBaseParams(kind="poly")
SWEEP = gelu_base.param_sweep()

#: The piecewise-linear default's stated bound (README: 1.531e-3, its measured maximum).
PWL_BOUND = 1.531e-3


def _gelu_float(x: float) -> float:
    """GELU from the math module alone, independent of scipy."""
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


_gelu_vec = np.vectorize(_gelu_float, otypes=[np.float64])


def _phi_tail(a: np.ndarray) -> np.ndarray:
    """Phi(-a) from the math module alone."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in np.ravel(a)])


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "rom"}, ValueError, r"^gelu_base kind must be one of table, poly, not 'rom'$"),
        ({"addr_fmt": FixFormat(7, 10)}, ValueError, r"addr_fmt must have at most 6 integer"),
        ({"addr_fmt": FixFormat(4, 12)}, ValueError, r"and 10 fractional bits"),
        ({"addr_fmt": FixFormat(5, 10, signed=False)}, ValueError, r"addr_fmt must be signed"),
        ({"segments": 6}, ValueError, r"^gelu_base segments must be a power of two, not 6$"),
        ({"segments": 128}, ValueError, r"^gelu_base segments must be 1 to 64, not 128$"),
        ({"degree": 4}, ValueError, r"^gelu_base degree must be 1 to 3, not 4$"),
        ({"degree": 2.0}, TypeError, r"^gelu_base degree must be an integer, not 2\.0$"),
        ({"limit": 3}, ValueError, r"^gelu_base limit must be a power of two, not 3$"),
        ({"limit": 64}, ValueError, r"^gelu_base limit must be 1 to 32, not 64$"),
        ({"phi_fmt": FixFormat(1, 16)}, ValueError, r"phi_fmt must be unsigned"),
        ({"phi_fmt": FixFormat(0, 16, signed=False)}, ValueError, r"phi_fmt must hold 1\.0"),
        ({"coef_fmt": FixFormat(1, 12)}, ValueError, r"at least phi_fmt's 16 fractional bits"),
        ({"in_fmt": (6, 10)}, TypeError, r"in_fmt must be a FixFormat"),
        ({"out_fmt": FixFormat(6, 10, signed=False)}, ValueError, r"GELU\(x\) < 0"),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        GeluBaseParams(**kwargs)


def test_names_defaults_and_sweep():
    assert TABLE.kind is GeluBaseKind.TABLE
    assert TABLE.name == "gelu_base_table_i16f10_o16f10_a12f9"
    assert POLY.name == "gelu_base_poly_i16f10_o16f10_s8_d2_l4"
    names = [p.name for p in SWEEP]
    assert len(set(names)) == len(names)
    assert SWEEP[0] == TABLE and SWEEP[1] == POLY  # the default of each kind first


def test_same_formats_and_ports_as_the_approximate_operator():
    assert registry.get("gelu_base").baseline_for == "gelu"
    pwl = registry.get("gelu").params()
    assert (TABLE.in_fmt, TABLE.out_fmt) == (pwl.in_fmt, pwl.out_fmt)
    assert GeluBase(TABLE).signature == registry.component("gelu").signature
    assert GeluBase(POLY).signature == registry.component("gelu").signature


# -- table contents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p", [TABLE, TABLE.replace(addr_fmt=FixFormat(6, 6))], ids=lambda p: p.name
)
def test_table_entries_are_rounded_gelu_of_bucket_centres(p):
    rom = gelu_base.tables(p)
    assert rom.entries.size == 2**p.addr_fmt.width
    d, f = p.addr_shift, p.out_fmt.frac_bits
    # every address, as the index code its bits spell and the input codes it covers
    addr = np.arange(rom.entries.size)
    idx = np.where(addr >= rom.entries.size // 2, addr - rom.entries.size, addr)
    centre = (idx * 2**d + (2**d - 1) / 2) * 2.0**-p.in_fmt.frac_bits
    scaled = _gelu_vec(centre) * 2**f
    expected = np.round(scaled)
    # where erf has rounded GELU(c) up to c and c sits on a tie of the output grid: GELU(c)
    # is below c for c > 0, so the nearest code is the one below
    tie = (centre > 0) & (scaled % 1 == 0.5)
    expected[tie] = np.floor(scaled[tie])
    # (elsewhere for c > 0 the scaled centre is a half-integer minus c Phi(-c) 2**f, and erf's
    # rounding cannot push a value across that representable tie; for c < 0 no value is near
    # a tie, so erf's 1e-16 error cannot flip a rounding)
    assert not (np.abs(scaled[centre < 0] % 1 - 0.5) < 1e-9).any()
    expected = np.clip(expected, p.out_fmt.min_code, p.out_fmt.max_code)
    assert np.array_equal(rom.entries, expected.astype(np.int64))
    assert tie.any() == (p.addr_fmt == FixFormat(6, 6))  # centres beyond 8.3: the rule is used


@settings(max_examples=300, deadline=None)
@given(st.integers(TABLE.in_fmt.min_code, TABLE.in_fmt.max_code))
def test_table_outside_its_range_is_the_asymptote(x):
    y = int(gelu_base.emulate(TABLE, [x])[0])
    if x >= 4 * 1024:
        assert y == x
    elif x < -4 * 1024:
        assert y == 0
    else:
        assert abs(y / 1024 - _gelu_float(x / 1024)) <= gelu_base.tables(TABLE).bound


# -- polynomial coefficients -----------------------------------------------------------------------


@pytest.mark.parametrize("p", [POLY, POLY.replace(segments=4, degree=3)], ids=str)
def test_poly_fit_is_minimax_not_least_squares(p):
    """Each segment's (quantized) fit of Phi(-a) is no worse than numpy's least squares."""
    coefs = gelu_base.tables(p).coefs
    assert coefs.shape == (p.segments + 1, p.degree + 1)
    assert not coefs[-1].any()  # |x| >= limit: Phi exactly 0 or 1
    n = 2**p.seg_shift
    t = np.arange(n) / 2**p.in_fmt.frac_bits
    quant = 2.0**-p.coef_fmt.frac_bits * sum(t**j for j in range(p.degree + 1))
    for k in range(p.segments):
        f = _phi_tail(k * n / 2**p.in_fmt.frac_bits + t)
        ours = np.polynomial.polynomial.polyval(t, coefs[k] * 2.0**-p.coef_fmt.frac_bits)
        lsq = np.polynomial.polynomial.polyval(t, np.polynomial.polynomial.polyfit(t, f, p.degree))
        assert np.abs(ours - f).max() <= np.abs(lsq - f).max() + quant.max() / 2, k


@settings(max_examples=200, deadline=None)
@given(st.integers(4 * 1024, POLY.in_fmt.max_code))
def test_poly_beyond_limit_is_exact(x):
    """|x| >= limit: Phi is exactly 1 or 0, so the product gives x or 0 with no error."""
    y = gelu_base.emulate(POLY, [x, -x])
    assert y.tolist() == [x, 0]


def test_mul_round_ties_go_up():
    assert gelu_base.mul_round([1, -1, 3, -3], [2, 2, 2, 2], 2).tolist() == [1, 0, 2, -1]


# -- error bounds (exhaustive over the input codes) ----------------------------------------------


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_emulate_within_stated_bound_of_math_erf(p):
    codes = p.in_fmt.all_codes()
    assert codes.size == 65536
    y = p.out_fmt.decode(gelu_base.emulate(p, codes))
    ideal = np.clip(_gelu_vec(p.in_fmt.decode(codes)), p.out_fmt.min_value, p.out_fmt.max_value)
    err = np.abs(y - ideal)
    bound = gelu_base.tables(p).bound
    assert err.max() <= bound
    assert err.max() > bound - 2.0**-p.out_fmt.frac_bits  # the bound is not loose
    assert gelu_base.error_stats(p)["max_abs"] == pytest.approx(err.max(), abs=1e-12)


def test_defaults_are_more_accurate_than_the_pwl_default():
    assert gelu.tables(gelu.GeluParams()).bound == pytest.approx(PWL_BOUND, abs=1e-6)
    assert gelu_base.tables(TABLE).bound <= 1.04e-3
    assert gelu_base.tables(TABLE.replace(addr_fmt=FixFormat(3, 10))).bound <= 6.2e-4
    assert gelu_base.tables(POLY).bound <= 7.4e-4
    for p in (TABLE, POLY):
        assert gelu_base.error_stats(p)["max_abs"] < gelu.error_stats(gelu.GeluParams())["max_abs"]


# -- bad input -----------------------------------------------------------------------------------


def test_emulate_rejects_codes_outside_the_format():
    with pytest.raises(ValueError, match=r"gelu_base input code 40000 is outside s6\.10"):
        gelu_base.emulate(TABLE, [0, 40000])


def test_emulate_rejects_real_values():
    with pytest.raises(TypeError, match=r"use s6\.10\.encode\(\) to quantize"):
        gelu_base.emulate(POLY, [0.5])


def test_emulate_keeps_shape():
    codes = gelu_base.random_cases(POLY, 24, seed=1).reshape(2, 3, 4)
    assert gelu_base.emulate(POLY, codes).shape == (2, 3, 4)


def test_case_generators_stay_in_range():
    for p in SWEEP:
        for name, codes in gelu_base.standard_cases(p).items():
            assert codes.size, name
            p.in_fmt.check_codes(codes)
        r = gelu_base.random_cases(p, 1000, seed=5)
        assert r.size == 1000
        p.in_fmt.check_codes(r)


# -- the component in amaranth.sim ---------------------------------------------------------------


def _simulate(dut, codes, *, idle: float, backpressure: float, seed=0):
    got, ins, outs = stream_sim(
        dut, [int(c) for c in codes], len(codes), idle=idle, backpressure=backpressure, seed=seed
    )
    return np.array(got), ins, outs


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    cases = np.concatenate(
        [*gelu_base.standard_cases(p).values(), gelu_base.random_cases(p, 1000, 3)]
    )
    got, _, _ = _simulate(GeluBase(p), cases, idle=0.3, backpressure=0.4, seed=2)
    assert np.array_equal(got, gelu_base.emulate(p, cases))


@pytest.mark.parametrize("p, latency", [(TABLE, 4), (POLY, 10)], ids=["table", "poly"])
def test_component_full_rate_and_stated_latency(p, latency):
    dut = GeluBase(p)
    assert dut.latency == latency
    codes = gelu_base.random_cases(p, 200, seed=9)
    got, ins, outs = _simulate(dut, codes, idle=0.0, backpressure=0.0)
    assert np.array_equal(got, gelu_base.emulate(p, codes))
    assert np.all(np.diff(ins) == 1)  # one input per clock
    assert np.all(outs - ins == latency)


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a GeluBaseParams"):
        GeluBase(gelu.GeluParams())
    with pytest.raises(TypeError, match=r"tables for kind poly must be a PolyTables"):
        GeluBase(POLY, tables=gelu_base.tables(TABLE))


# -- Verilog emission ------------------------------------------------------------------------------


def test_verilog_is_reproducible_named_and_holds_the_table(tmp_path):
    first = registry.write_verilog("gelu_base", TABLE, tmp_path / "a").path.read_text()
    second = registry.write_verilog("gelu_base", TABLE, tmp_path / "b").path.read_text()
    assert first == second
    assert f"module {TABLE.name}(" in first
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert port in first
    assert "[4095:0]" in first  # one 4,096-word memory, not logic
    assert "/work" not in first and ".py:" not in first  # no source locations


# -- synthesis -------------------------------------------------------------------------------------


@pytest.mark.synth
@pytest.mark.parametrize("p", [TABLE, POLY], ids=["table", "poly"])
def test_synthesis_maps_table_to_block_ram_and_poly_to_dsps(p, tmp_path):
    """xc7: the table is block RAM (not LUTs) with no DSP; the polynomial is three DSP48s
    (two Horner steps and x * Phi) with no block RAM."""
    from hwgen.flows import synth

    src = registry.write_verilog("gelu_base", p, tmp_path).path
    xc7 = synth.synthesize(src, p.name, tmp_path, families=("xc7",), place_route=False)
    xc7 = xc7["families"]["xc7"]
    if p.kind is GeluBaseKind.TABLE:
        assert xc7["bram"] >= 2 and xc7["dsp"] == 0
        assert xc7["lut"] < 100  # 64 Kbit as LUTs would take thousands
    else:
        assert xc7["dsp"] == 3 and xc7["bram"] == 0
