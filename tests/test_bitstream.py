# amaranth: UnusedElaboratable=no
"""Self-test models (LFSR, MISR), the self-test top in amaranth.sim, boards and bitstreams."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen import registry
from hwgen.cli import main
from hwgen.flows import bist, bitstream
from hwgen.lib import selftest

# -- LFSR and MISR models ----------------------------------------------------------------------


def _gf2_mulmod(a: int, b: int, poly: int, degree: int) -> int:
    """a * b mod poly over GF(2) (poly includes its x^degree term), bit by bit."""
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a >> degree & 1:
            a ^= poly
    return r


def _gf2_powmod_x(e: int, poly: int, degree: int) -> int:
    result, base = 1, 2
    while e:
        if e & 1:
            result = _gf2_mulmod(result, base, poly, degree)
        base = _gf2_mulmod(base, base, poly, degree)
        e >>= 1
    return result


def test_lfsr_polynomial_is_primitive():
    """x^31 + x^28 + 1: x has order 2^31 - 1 (a prime), so every nonzero seed runs the full
    period."""
    poly = (1 << 31) | (1 << 28) | 1
    order = (1 << 31) - 1
    assert _gf2_powmod_x(order, poly, 31) == 1
    assert _gf2_powmod_x(1, poly, 31) != 1


def test_misr_polynomial_is_primitive():
    """x^32 + x^22 + x^2 + x + 1: x has order exactly 2^32 - 1 = 3 * 5 * 17 * 257 * 65537."""
    poly = (1 << 32) | selftest.MISR_POLY
    order = (1 << 32) - 1
    assert _gf2_powmod_x(order, poly, 32) == 1
    for q in (3, 5, 17, 257, 65537):
        assert _gf2_powmod_x(order // q, poly, 32) != 1


def test_lfsr_bits_follow_the_recurrence():
    seed = 0x1234_5678
    s = selftest.lfsr_bits(seed, 2000).astype(int)
    assert [int(b) for b in s[:31]] == [(seed >> i) & 1 for i in range(31)]
    n = np.arange(31, 2000)
    assert np.array_equal(s[n], s[n - 31] ^ s[n - 28])
    assert 900 < s.sum() < 1100  # balanced


def _misr_steps(words, width):
    """The hardware's Galois register, one output at a time (wide words folded)."""
    m = selftest.MISR_INIT
    for w in words:
        d = 0
        for lo in range(0, width, 32):
            d ^= (int(w) >> lo) & 0xFFFF_FFFF
        top = m >> 31
        m = ((m << 1) & 0xFFFF_FFFF) ^ (selftest.MISR_POLY if top else 0) ^ d
    return m


@pytest.mark.parametrize("width", [1, 16, 32, 45])
def test_misr_closed_form_equals_step_by_step(width):
    rng = np.random.default_rng(width)
    words = [int(v) for v in rng.integers(0, 1 << width, 3000, dtype=np.int64)]
    assert selftest.misr_signature(words, width) == _misr_steps(words, width)


def test_misr_sees_every_single_bit_error():
    words = list(range(500))
    good = selftest.misr_signature(words, 16)
    for k in (0, 250, 499):
        for bit in (0, 15):
            bad = list(words)
            bad[k] ^= 1 << bit
            assert selftest.misr_signature(bad, 16) != good


# -- parameters and prediction ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"op": "gelux"}, ValueError, "unknown operator 'gelux'; known operators: gelu"),
        ({"op": "gelu", "beats": 0}, ValueError, "bist beats must be 1 to 16777216, not 0"),
        ({"op": "gelu", "seed": 0}, ValueError, "bist seed must be 1 to 2147483647, not 0"),
        ({"op": "gelu", "beats": 2.5}, TypeError, "bist beats must be an integer, not 2.5"),
        (
            {"op": "softmax", "row_max": 300},
            ValueError,
            "bist row_max must be at most the softmax max_len 256, not 300",
        ),
        (
            {"op": "posit_mac", "row_max": 1000},
            ValueError,
            "bist row_max \\* lanes must be at most the posit_mac max_terms 4096, not 8000",
        ),
    ],
)
def test_bad_bist_params(kwargs, error, message):
    with pytest.raises(error, match=message):
        bist.BistParams(**kwargs)


def test_bist_params_type_is_checked():
    from golden.softmax import SoftmaxParams

    with pytest.raises(TypeError, match="bist params must be a GeluParams for gelu"):
        bist.BistParams("gelu", SoftmaxParams())


def test_row_framing_model():
    """Rows end on a zero frame field, at row_max, and at the last beat."""
    stim = bist.stimulus(bist.BistParams("softmax", beats=400, row_max=8))
    bits = selftest.lfsr_bits(1, 400 * stim.beat_bits).reshape(400, stim.beat_bits)
    rows = stim.rows(bits)
    lengths = [r.stop - r.start for r in rows]
    assert sum(lengths) == 400 and max(lengths) == 8 and min(lengths) >= 1
    assert len(set(lengths)) > 4


def test_prediction_uses_emulate():
    """GELU: the predicted words are emulate() of codes read from the LFSR bits."""
    from golden import gelu

    p = bist.BistParams("gelu", beats=300)
    stim = bist.stimulus(p)
    bits = selftest.lfsr_bits(p.seed, 300 * stim.beat_bits).reshape(300, stim.beat_bits)
    raw = bits[:, :16].astype(np.int64) @ (1 << np.arange(16))
    narrow = raw & 0x1FFF
    narrow = np.where(narrow >= 0x1000, narrow - 0x2000, narrow)
    codes = np.where(bits[:, 16] == 1, np.where(raw >= 0x8000, raw - 0x10000, raw), narrow)
    expected = gelu.emulate(p.params, codes) & 0xFFFF
    pred = bist.predict(p)
    assert np.array_equal(pred.words, expected)
    assert pred.signature == _misr_steps(expected, 16)


# -- the self-test top in amaranth.sim ----------------------------------------------------------


def _run_selftest(top, clocks):
    sim = Simulator(top)
    sim.add_clock(1e-8)
    seen = {}

    async def testbench(ctx):
        for _ in range(clocks):
            await ctx.tick()
            if ctx.get(top.done):
                break
        await ctx.tick()
        for name in ("done", "passed", "failed", "hang", "misr", "cycles"):
            seen[name] = ctx.get(getattr(top, name))

    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize("wrong", [False, True], ids=["right", "wrong"])
def test_selftest_verdict_in_amaranth_sim(wrong):
    p = bist.BistParams("gelu", beats=64)
    predicted = bist.predict(p).signature
    top = bist.SelfTest(p, expected=predicted ^ (1 << 31) if wrong else None)
    seen = _run_selftest(top, 200)
    assert seen["done"] == 1 and seen["hang"] == 0
    assert seen["misr"] == predicted
    assert (seen["passed"], seen["failed"]) == ((0, 1) if wrong else (1, 0))
    # one code per clock, then the stated latency
    assert seen["cycles"] == 64 + registry.get("gelu").inspect().latency


def test_selftest_rejects_bad_expected():
    with pytest.raises(ValueError, match="expected signature must be a 32-bit value"):
        bist.SelfTest(bist.BistParams("gelu", beats=8), expected=1 << 32)


def test_report_text():
    line = bist.report_text("PASS", "bist_x", 0xDEADBEEF, 0xDEADBEEF, 2058)
    assert line == "PASS bist_x signature=DEADBEEF expected=DEADBEEF cycles=0000080A\r\n"


# -- boards -------------------------------------------------------------------------------------


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown board 'de0'; known boards: ulx3s .*icebreaker"):
        bitstream.get_board("de0")


def test_cli_unknown_board_is_one_line(capsys):
    rc = main(["bitstream", "gelu", "--board", "arty"])
    _, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("hwgen: error: unknown board 'arty'; known boards: ulx3s")


@pytest.mark.parametrize("board", list(bitstream.BOARDS))
def test_board_top_elaborates_with_pins(board):
    """Every board's platform accepts the top: LEDs (and UART) constrained to real pins."""
    b = bitstream.get_board(board)
    top = bitstream.BoardTop(bist.BistParams("gelu", beats=16), b)
    plan = b.platform_class()().prepare(top, "t", emit_src=False)
    constraints = next(v for k, v in plan.files.items() if k.endswith((".lpf", ".pcf")))
    n_out = len(b.leds) + int(b.uart)
    assert constraints.count("LOCATE COMP" if b.family == "ecp5" else "set_io") >= n_out + 1


def test_utilisation_parse_and_fit_message():
    log = (
        "Info: Device utilisation:\n"
        "Info: \t          TRELLIS_IO:     5/  197     2%\n"
        "Info: \t        TRELLIS_COMB: 30000/24288   123%\n"
    )
    util = bitstream._utilisation_from_log(log)
    assert util["TRELLIS_COMB"] == {"used": 30000, "available": 24288}
    assert util["TRELLIS_IO"]["used"] == 5


# -- one real bitstream -------------------------------------------------------------------------


@pytest.mark.synth
def test_ulx3s_gelu_bitstream(tmp_path):
    """``make bitstream BOARD=ulx3s OP=gelu`` in small: a .bit, utilisation and Fmax."""
    result = bitstream.build("ulx3s", "gelu", beats=4096, out_root=tmp_path)
    bit = tmp_path / "ulx3s" / "bist_gelu_i16f10_o16f10_s16_b4096_r32" / "gelu_ulx3s.bit"
    assert result["bitstream"] == str(bit)
    assert bit.stat().st_size > 50_000
    assert result["fmax_mhz"] >= result["clock_mhz"] == 25.0
    comb = result["utilisation"]["TRELLIS_COMB"]
    assert 500 < comb["used"] < comb["available"] == 24288
    assert "Fmax" in bitstream.format_result(result)


def test_lfsr_and_misr_gateware_follow_their_models():
    """amaranth.sim of the reusable Lfsr (with idle clocks) and Misr against lfsr_bits and
    misr_signature."""
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    width, seed, steps = 37, 12345, 40
    rng = np.random.default_rng(2)
    words = rng.integers(0, 1 << 40, steps).tolist()
    m = Module()
    m.submodules.lfsr = lfsr = selftest.Lfsr(width, seed)
    m.submodules.misr = misr = selftest.Misr(40)
    seen, sig = [], []

    async def testbench(ctx):
        for t in range(steps):
            ctx.set(lfsr.advance, 0)
            await ctx.tick()  # an idle clock must not move the sequence
            seen.append(ctx.get(lfsr.bits))
            ctx.set(lfsr.advance, 1)
            ctx.set(misr.en, 1)
            ctx.set(misr.data, words[t])
            await ctx.tick()
            ctx.set(misr.en, 0)
        sig.append(ctx.get(misr.value))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    bits = selftest.lfsr_bits(seed, steps * width).reshape(steps, width)
    want = [int(sum(int(b) << j for j, b in enumerate(row))) for row in bits]
    assert seen == want
    assert sig == [selftest.misr_signature(words, 40)]
