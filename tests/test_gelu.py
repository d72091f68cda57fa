# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""GELU: golden-model properties, error bounds, and the Amaranth component in amaranth.sim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import gelu
from golden.formats import FixFormat
from golden.gelu import Breakpoints, GeluParams, SlopeMode
from hwgen import registry
from hwgen.cores.gelu import GeluPWL
from tests.streamsim import stream_sim

DEFAULT = GeluParams()
SWEEP = gelu.param_sweep()


def _gelu_float(x: float) -> float:
    """GELU from the math module alone, independent of scipy."""
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"segments": 3}, ValueError, r"^gelu segments must be 4 to 64, not 3$"),
        ({"segments": 65}, ValueError, r"^gelu segments must be 4 to 64, not 65$"),
        ({"segments": 16.0}, TypeError, r"^gelu segments must be an integer, not 16\.0$"),
        ({"slope_mode": "fast"}, ValueError, r"slope_mode must be one of mult, shift_add"),
        ({"breakpoints": "even"}, ValueError, r"breakpoints must be one of grid, free"),
        ({"slope_terms": 0}, ValueError, r"slope_terms must be 1 to 4, not 0"),
        ({"in_fmt": FixFormat(6, 10, signed=False)}, ValueError, r"in_fmt must be signed"),
        ({"out_fmt": FixFormat(6, 10, signed=False)}, ValueError, r"GELU\(x\) < 0"),
        ({"in_fmt": (6, 10)}, TypeError, r"in_fmt must be a FixFormat"),
        ({"slope_fmt": FixFormat(1, 47)}, ValueError, r"more than 62 bits"),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        GeluParams(**kwargs)


def test_slope_mode_accepts_text():
    assert GeluParams(slope_mode="mult").slope_mode is SlopeMode.MULT
    assert GeluParams(breakpoints="free").breakpoints is Breakpoints.FREE


def test_names_are_unique_across_the_sweep():
    names = [p.name for p in SWEEP]
    assert DEFAULT.name == "gelu_i16f10_o16f10_s16"
    assert len(set(names)) == len(names)


# -- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_tables_are_well_formed(p):
    t = gelu.tables(p)
    assert len(t.starts) == len(t.slopes) == len(t.terms) <= p.segments
    assert t.starts[0] == 0 and np.all(np.diff(t.starts) > 0)
    assert t.slopes[-1] == 0  # the tail is exactly ReLU
    p.slope_fmt.check_codes(t.slopes)
    p.icpt_fmt.check_codes(t.rom_icpt)
    for slope, digits in zip(t.slopes, t.terms, strict=True):
        assert sum(sign << shift for sign, shift in digits) == slope
        if p.slope_mode is SlopeMode.SHIFT_ADD:
            assert len(digits) <= p.slope_terms
    # rows map onto pieces in order; flat rows hold exactly the rounding half-LSB
    assert np.all(np.diff(t.row_piece) >= 0)
    flat = t.row_piece == len(t.starts) - 1
    assert np.all(t.rom_icpt[flat] == t.half)
    if t.breakpoints is Breakpoints.GRID:
        # one row per block below the limit; every piece starts on a block boundary
        assert len(t.rom_icpt) == 2**t.grid_bits <= 64
        assert np.all(t.starts % 2**t.offset_bits == 0) and t.starts[-1] <= t.limit
        assert t.limit == 2 ** (p.in_fmt.frac_bits + 2)  # |x| = 4
    else:
        assert len(t.rom_icpt) == len(t.starts) == p.segments
        # every sloped piece's offset fits offset_bits
        assert np.diff(t.starts).max() - 1 < 2**t.offset_bits


def test_grid_rows_are_a_bit_slice_of_the_magnitude():
    p = DEFAULT
    t = gelu.tables(p)
    codes = p.in_fmt.all_codes()
    row = gelu.row_of(p, t, codes)
    a = np.abs(codes)
    assert np.array_equal(row[a < t.limit], a[a < t.limit] >> t.offset_bits)
    assert np.all(row[a >= t.limit] == -1)


def test_bound_is_tight_and_within_fit_plus_half_lsb():
    for p in SWEEP:
        t = gelu.tables(p)
        stats = gelu.error_stats(p)
        assert stats["max_abs"] == pytest.approx(t.bound, abs=1e-12), p.name
        assert t.bound <= t.fit_error + 2.0 ** -(p.out_fmt.frac_bits + 1) + 1e-12, p.name


def test_free_breakpoints_beat_the_grid_at_equal_segments():
    """What the grid costs in accuracy (README): free pieces may start anywhere."""
    grid = gelu.tables(DEFAULT).bound
    free = gelu.tables(DEFAULT.replace(breakpoints=Breakpoints.FREE)).bound
    assert free < grid <= 2.0**-9


@pytest.mark.parametrize("n", [0, 1, 7, -7, 255, 0x555, -4096, 12345])
def test_naf_digits_sum_and_non_adjacency(n):
    digits = gelu.naf_digits(n)
    assert sum(s << k for s, k in digits) == n
    shifts = [k for _, k in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False))


def _uniform_chord_error(segments: int, limit: float, fmt: FixFormat) -> float:
    """Max error of the textbook alternative: K-1 uniform chords on [0, limit], zero beyond."""
    a = np.arange(0, -fmt.min_code + 1) * fmt.resolution
    c = np.array([v * 0.5 * math.erfc(v / math.sqrt(2.0)) for v in a])
    knots = np.linspace(0.0, limit, segments)
    ck = np.array([v * 0.5 * math.erfc(v / math.sqrt(2.0)) for v in knots])
    approx = np.where(a < limit, np.interp(a, knots, ck), 0.0)
    return float(np.abs(approx - c).max())


@pytest.mark.parametrize("segments", [8, 16, 32])
def test_minimax_fit_beats_uniform_chords(segments):
    p = DEFAULT.replace(segments=segments, slope_mode=SlopeMode.MULT)
    chords = min(_uniform_chord_error(segments, lim, p.in_fmt) for lim in (3.0, 3.5, 4.0))
    assert gelu.tables(p).fit_error < chords / 2


# -- error bounds (exhaustive over the input codes) ----------------------------------------------


def test_default_error_within_2_pow_minus_9_on_every_code():
    codes = DEFAULT.in_fmt.all_codes()
    assert codes.size == 65536
    y = DEFAULT.out_fmt.decode(gelu.emulate(DEFAULT, codes))
    x = DEFAULT.in_fmt.decode(codes)
    ideal = np.array([_gelu_float(v) for v in x])
    err = np.abs(y - ideal)
    assert err.max() <= gelu.tables(DEFAULT).bound <= 2.0**-9
    assert err.max() <= 2.0**-9


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_emulate_within_stated_bound(p):
    stats = gelu.error_stats(p)
    assert stats["inputs"] == 2**p.in_fmt.width
    assert stats["max_abs"] <= stats["bound"]


def test_more_segments_never_worse():
    for mode in SlopeMode:
        bounds = [
            gelu.tables(DEFAULT.replace(segments=k, slope_mode=mode)).fit_error
            for k in (4, 8, 16, 32)
        ]
        assert bounds == sorted(bounds, reverse=True), (mode, bounds)


def test_tail_is_exact_relu():
    p = DEFAULT
    start = int(gelu.tables(p).starts[-1])
    big = np.arange(start, p.in_fmt.max_code + 1)
    assert np.array_equal(gelu.emulate(p, big), big)
    assert not gelu.emulate(p, -big).any()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, DEFAULT.in_fmt.max_code))
def test_odd_part_is_exact(x):
    """GELU(x) - GELU(-x) = x holds exactly: ReLU is exact and c_hat is even in x."""
    y = gelu.emulate(DEFAULT, np.array([x, -x]))
    assert y[0] - y[1] == x


def test_saturates_when_output_is_narrower():
    p = DEFAULT.replace(in_fmt=FixFormat(5, 11), out_fmt=FixFormat(4, 12), segments=4)
    y = gelu.emulate(p, [p.in_fmt.max_code])
    assert y[0] == p.out_fmt.max_code


# -- bad input -----------------------------------------------------------------------------------


def test_emulate_rejects_codes_outside_the_format():
    with pytest.raises(ValueError, match=r"gelu input code 40000 is outside s6\.10"):
        gelu.emulate(DEFAULT, [0, 40000])


def test_emulate_rejects_real_values():
    with pytest.raises(TypeError, match=r"use s6\.10\.encode\(\) to quantize"):
        gelu.emulate(DEFAULT, [0.5])


def test_emulate_keeps_shape():
    codes = gelu.random_cases(DEFAULT, 24, seed=1).reshape(2, 3, 4)
    assert gelu.emulate(DEFAULT, codes).shape == (2, 3, 4)


def test_case_generators_stay_in_range():
    for p in SWEEP[:3]:
        for name, codes in gelu.standard_cases(p).items():
            assert codes.size, name
            p.in_fmt.check_codes(codes)
        r = gelu.random_cases(p, 1000, seed=5)
        assert r.size == 1000
        p.in_fmt.check_codes(r)


# -- the component in amaranth.sim ---------------------------------------------------------------


def _simulate(dut: GeluPWL, codes: np.ndarray, *, idle: float, backpressure: float, seed=0):
    """Stream codes through the component; return outputs and the handshake cycles."""
    payloads = [int(c) for c in codes]
    got, ins, outs = stream_sim(
        dut, payloads, len(payloads), idle=idle, backpressure=backpressure, seed=seed
    )
    return np.array(got), ins, outs


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    cases = np.concatenate([*gelu.standard_cases(p).values(), gelu.random_cases(p, 1500, 3)])
    got, _, _ = _simulate(GeluPWL(p), cases, idle=0.3, backpressure=0.4, seed=2)
    assert np.array_equal(got, gelu.emulate(p, cases))


def test_component_full_rate_and_stated_latency():
    dut = GeluPWL(DEFAULT)
    codes = gelu.random_cases(DEFAULT, 200, seed=9)
    got, ins, outs = _simulate(dut, codes, idle=0.0, backpressure=0.0)
    assert np.array_equal(got, gelu.emulate(DEFAULT, codes))
    assert np.all(np.diff(ins) == 1)  # one input per clock
    assert np.all(outs - ins == dut.latency)


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a GeluParams"):
        GeluPWL({"segments": 8})


# -- Verilog emission ------------------------------------------------------------------------------


def test_verilog_is_reproducible_and_named(tmp_path):
    first = registry.write_verilog("gelu", DEFAULT, tmp_path / "a").path.read_text()
    second = registry.write_verilog("gelu", DEFAULT, tmp_path / "b").path.read_text()
    assert first == second
    assert "module gelu_i16f10_o16f10_s16(" in first
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert port in first
    assert "/work" not in first and ".py:" not in first  # no source locations
