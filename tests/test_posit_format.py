"""PositFormat against an independent reference written from the posit standard (2022).

Nothing expected here comes from golden/formats.py. Two decoders read patterns with exact
rationals (``fractions.Fraction``): one negates negative patterns and reads the magnitude
(sign, regime run, terminating bit, ``es`` exponent bits with missing bits taken as 0,
fraction), the other reads the raw bits with the standard's formula
``((1 - 3s) + f) * 2**((1 - 2s) * (r * 2**es + e + s))``. The encoder writes the exact bit
string of ``|x|`` (regime, exponent, as many fraction bits as needed), keeps the ``n - 1`` bits
after the sign and rounds to nearest, ties to even, with a guard bit and a sticky bit, after
saturating to minpos / maxpos. SoftPosit, where it can be imported, is a second opinion.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.formats import PositFormat

# (n, es) compared exhaustively
FORMATS = [(n, es) for n in (4, 8) for es in (0, 1, 2)]
# further small formats swept the same way, more cheaply (n = 2 apart: see test_encode_posit2)
OTHER_FORMATS = [(n, es) for n in (3, 5, 6) for es in range(5)]


def _ids(formats):
    return [f"p{n}e{es}" for n, es in formats]


# -- independent reference ---------------------------------------------------------------------


def _fields(body: str, es: int) -> tuple[int, int, Fraction]:
    """Regime ``k``, exponent ``e`` and fraction ``f`` of the bits after the sign bit."""
    first = body[0]
    run = len(body) - len(body.lstrip(first))
    k = run - 1 if first == "1" else -run
    rest = body[run + 1 :]  # past the terminating bit, which is absent when the run fills
    exp_bits = rest[:es].ljust(es, "0")  # exponent bits cut off at the end count as 0
    e = int(exp_bits, 2) if es else 0
    frac_bits = rest[es:]
    f = Fraction(int(frac_bits, 2), 2 ** len(frac_bits)) if frac_bits else Fraction(0)
    return k, e, f


def ref_decode(code: int, n: int, es: int) -> Fraction | None:
    """Value of an n-bit pattern (None for NaR): negate negative patterns, read the magnitude."""
    assert 0 <= code < 2**n
    if code == 0:
        return Fraction(0)
    if code == 2 ** (n - 1):
        return None
    negative = code >= 2 ** (n - 1)
    magnitude = 2**n - code if negative else code
    k, e, f = _fields(format(magnitude, f"0{n}b")[1:], es)
    value = Fraction(2) ** (k * 2**es + e) * (1 + f)
    return -value if negative else value


def ref_decode_raw(code: int, n: int, es: int) -> Fraction | None:
    """Value of an n-bit pattern from its raw bits: ((1-3s)+f) * 2**((1-2s)(r*2**es + e + s))."""
    assert 0 <= code < 2**n
    if code == 0:
        return Fraction(0)
    if code == 2 ** (n - 1):
        return None
    bits = format(code, f"0{n}b")
    s = int(bits[0])
    r, e, f = _fields(bits[1:], es)
    return ((1 - 3 * s) + f) * Fraction(2) ** ((1 - 2 * s) * (r * 2**es + e + s))


def ref_maxpos(n: int, es: int) -> Fraction:
    return Fraction(2) ** ((n - 2) * 2**es)  # useed ** (n - 2)


def _floor_log2(v: Fraction) -> int:
    scale = v.numerator.bit_length() - v.denominator.bit_length()
    return scale if Fraction(2) ** scale <= v else scale - 1


def ref_encode(x: float, n: int, es: int) -> int:
    """Round a finite float to an n-bit pattern by rounding the exact bit string of |x|."""
    if math.isnan(x):
        raise ValueError("NaN")
    if x == 0:
        return 0
    mag = abs(Fraction(x))
    maxpos = ref_maxpos(n, es)
    if mag >= maxpos:
        pattern = 2 ** (n - 1) - 1  # no overflow to NaR
    elif mag <= 1 / maxpos:
        pattern = 1  # no underflow to zero
    else:
        scale = _floor_log2(mag)
        k, e = divmod(scale, 2**es)
        regime = "1" * (k + 1) + "0" if k >= 0 else "0" * -k + "1"
        bits = regime + (format(e, f"0{es}b") if es else "")
        frac = mag / Fraction(2) ** scale - 1  # in [0, 1)
        while len(bits) < n:  # n - 1 kept bits and a guard bit
            frac *= 2
            bit = int(frac >= 1)
            frac -= bit
            bits += str(bit)
        kept = int(bits[: n - 1], 2)
        guard = bits[n - 1] == "1"
        sticky = "1" in bits[n:] or frac != 0
        if guard and (sticky or kept % 2 == 1):
            kept += 1  # carries ripple through fraction, exponent and regime alike
        pattern = kept
    return (2**n - pattern) % 2**n if x < 0 else pattern


def tie_points(n: int, es: int) -> list[float]:
    """Values of every (n+1)-bit pattern: the n-bit values and the boundaries between them."""
    values = [ref_decode(c, n + 1, es) for c in range(2 ** (n + 1))]
    return [float(v) for v in values if v is not None]


def probe_values(n: int, es: int) -> list[float]:
    """Every representable value, every tie point and the floats either side of them."""
    points = tie_points(n, es)
    near = [math.nextafter(p, d) for p in points for d in (-math.inf, math.inf)]
    maxpos = float(ref_maxpos(n, es))
    extremes = [
        0.0,
        -0.0,
        1e300,
        -1e300,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        5e-324,
        -5e-324,
        1e-300,
        -1e-300,
        maxpos * 2,
        -maxpos * 2,
        1 / maxpos / 2,
        -1 / maxpos / 2,
    ]
    return points + near + extremes


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# -- the reference checks itself ---------------------------------------------------------------


@pytest.mark.parametrize(("n", "es"), FORMATS + OTHER_FORMATS, ids=_ids(FORMATS + OTHER_FORMATS))
def test_reference_decoders_agree_and_negation_is_twos_complement(n, es):
    for code in range(2**n):
        v = ref_decode(code, n, es)
        assert v == ref_decode_raw(code, n, es), code
        if v is not None:
            assert ref_decode((2**n - code) % 2**n, n, es) == -v, code


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_reference_encoder_inverts_reference_decoder(n, es):
    for code in range(2**n):
        v = ref_decode(code, n, es)
        if v is not None:
            assert ref_encode(float(v), n, es) == code


# -- decode ------------------------------------------------------------------------------------

KNOWN_POSIT4 = {
    0: [Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), 1, Fraction(3, 2), 2, 4],
    1: [Fraction(1, 16), Fraction(1, 4), Fraction(1, 2), 1, 2, 4, 16],
    2: [Fraction(1, 256), Fraction(1, 16), Fraction(1, 4), 1, 4, 16, 256],
}


@pytest.mark.parametrize("es", [0, 1, 2])
def test_posit4_known_values(es):
    fmt = PositFormat(4, es)
    expected = [Fraction(v) for v in KNOWN_POSIT4[es]]
    assert fmt.decode(np.arange(1, 8)).tolist() == [float(v) for v in expected]
    # 1001 .. 1111 are the negatives of 0111 .. 0001
    assert fmt.decode(np.arange(9, 16)).tolist() == [-float(v) for v in reversed(expected)]
    assert [ref_decode(c, 4, es) for c in range(1, 8)] == expected
    assert fmt.minpos == float(expected[0])
    assert fmt.maxpos == float(expected[-1])


@pytest.mark.parametrize(("n", "es"), FORMATS + OTHER_FORMATS, ids=_ids(FORMATS + OTHER_FORMATS))
def test_decode_every_pattern(n, es):
    fmt = PositFormat(n, es)
    got = fmt.decode(np.arange(2**n))
    assert got.dtype == np.float64
    for code in range(2**n):
        v = ref_decode(code, n, es)
        if v is None:
            assert math.isnan(got[code]), code
        else:
            assert got[code] == float(v), code
            assert Fraction(got[code]) == v, code  # exact, not just close


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_nar_and_range(n, es):
    fmt = PositFormat(n, es)
    assert fmt.nar == 0b1 << (n - 1)
    assert math.isnan(fmt.decode(fmt.nar))
    assert math.isnan(fmt.decode(np.array([fmt.nar]))[0])
    assert fmt.decode(0) == 0.0
    assert fmt.maxpos == float(ref_maxpos(n, es))
    assert fmt.minpos == float(1 / ref_maxpos(n, es))
    assert fmt.decode(fmt.nar - 1) == fmt.maxpos
    assert fmt.decode(fmt.nar + 1) == -fmt.maxpos
    assert fmt.decode(1) == fmt.minpos
    assert fmt.decode(2**n - 1) == -fmt.minpos


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_negation_is_twos_complement(n, es):
    fmt = PositFormat(n, es)
    codes = np.array([c for c in range(2**n) if c != fmt.nar])
    negated = (-codes) & (2**n - 1)
    np.testing.assert_array_equal(fmt.decode(negated), -fmt.decode(codes))


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_order_follows_signed_integer_order(n, es):
    # reading patterns as two's-complement integers orders them by value (NaR aside)
    fmt = PositFormat(n, es)
    signed = np.arange(-(2 ** (n - 1)) + 1, 2 ** (n - 1))
    values = fmt.decode(signed & (2**n - 1))
    assert (np.diff(values) > 0).all()


def test_decode_accepts_integer_dtypes_and_shapes():
    fmt = PositFormat(8, 1)
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = fmt.decode(codes)
    assert got.shape == (16, 16)
    np.testing.assert_array_equal(got, fmt.decode(np.arange(256, dtype=np.int64)).reshape(16, 16))


# -- encode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "es"), FORMATS + OTHER_FORMATS, ids=_ids(FORMATS + OTHER_FORMATS))
def test_encode_matches_reference_on_ties_and_neighbours(n, es):
    fmt = PositFormat(n, es)
    xs = probe_values(n, es)
    got = fmt.encode(np.array(xs))
    assert got.dtype == np.int64
    expected = [ref_encode(x, n, es) for x in xs]
    mismatches = [(x, int(g), e) for x, g, e in zip(xs, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_encode_every_representable_value(n, es):
    fmt = PositFormat(n, es)
    for code in range(2**n):
        v = ref_decode(code, n, es)
        if v is not None:
            assert fmt.encode(float(v)) == code


@pytest.mark.parametrize("es", range(5))
def test_decode_posit2(es):
    # {0, 1, NaR, -1} whatever es is: the regime fills the word
    got = PositFormat(2, es).decode([0, 1, 2, 3])
    assert got[[0, 1, 3]].tolist() == [0.0, 1.0, -1.0]
    assert math.isnan(got[2])
    assert [ref_decode(c, 2, es) for c in (0, 1, 3)] == [0, 1, -1]


@pytest.mark.parametrize("es", range(5))
def test_encode_posit2(es):
    # one positive value: everything nonzero saturates to +-1, 0 stays 0
    xs = probe_values(2, es)
    expected = [ref_encode(x, 2, es) for x in xs]
    assert set(expected) == {0, 1, 3}
    assert PositFormat(2, es).encode(np.array(xs)).tolist() == expected


def test_encode_posit4_es1_by_hand():
    # p<4,1>: 0101 = 2, 0110 = 4, 0111 = 16. The boundary between 2 and 4 is 01011 = 3 and
    # between 4 and 16 it is 01101 = 8 (a power of two, not the midpoint 10); at both the
    # even pattern 0110 wins. Beyond maxpos saturate, below minpos = 1/16 never reach 0.
    fmt = PositFormat(4, 1)
    xs = [3.0, 2.999, 3.001, 5.0, 7.99, 8.0, 8.01, 10.0, 100.0, 1e-9, 0.0, -1.0, -3.0, -8.01]
    codes = [6, 5, 6, 6, 6, 6, 7, 7, 7, 1, 0, 0b1100, 0b1010, 0b1001]
    assert fmt.encode(xs).tolist() == codes
    assert [ref_encode(x, 4, 1) for x in xs] == codes


def test_encode_ties_to_even_pattern_posit8_es0():
    # p<8,0> between 1 and 2 holds 1 + j/32: 1 + 1/64 lies between 01000000 and 01000001
    fmt = PositFormat(8, 0)
    assert fmt.encode([1 + 1 / 64, 1 + 3 / 64, -(1 + 1 / 64), -(1 + 3 / 64)]).tolist() == [
        0x40,
        0x42,
        0xC0,
        0xBE,
    ]


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_encode_saturates_and_keeps_zero(n, es):
    fmt = PositFormat(n, es)
    xs = [0.0, -0.0, 1e300, -1e300, 5e-324, -5e-324, fmt.maxpos * 1e6, fmt.minpos / 1e6]
    expected = [0, 0, fmt.nar - 1, fmt.nar + 1, 1, 2**n - 1, fmt.nar - 1, 1]
    assert fmt.encode(xs).tolist() == expected
    assert fmt.encode(0.0).shape == ()


def wide_floats():
    """Finite floats of either sign spread over ~2**-100 .. 2**100, plus the full double range."""
    scaled = st.builds(
        lambda m, e, neg: (-1.0 if neg else 1.0) * math.ldexp(m, e),
        st.floats(1.0, 2.0, exclude_max=True),
        st.integers(-100, 100),
        st.booleans(),
    )
    return st.one_of(scaled, st.floats(allow_nan=False, allow_infinity=False))


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
@settings(max_examples=150, deadline=None)
@given(xs=st.lists(wide_floats(), min_size=1, max_size=40))
def test_encode_matches_reference_on_random_floats(n, es, xs):
    got = PositFormat(n, es).encode(np.array(xs)).tolist()
    assert got == [ref_encode(x, n, es) for x in xs]


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
@settings(max_examples=150, deadline=None)
@given(xs=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40))
def test_encode_matches_reference_near_one(n, es, xs):
    got = PositFormat(n, es).encode(np.array(xs)).tolist()
    assert got == [ref_encode(x, n, es) for x in xs]


# -- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(3, 13))
@pytest.mark.parametrize("es", range(5))
def test_encode_decode_round_trip(n, es):
    fmt = PositFormat(n, es)
    codes = np.array([c for c in range(2**n) if c != fmt.nar])
    np.testing.assert_array_equal(fmt.encode(fmt.decode(codes)), codes)


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
def test_encode_is_monotonic(n, es):
    fmt = PositFormat(n, es)
    rng = np.random.default_rng(n * 10 + es)
    randoms = rng.standard_normal(2000) * np.exp2(rng.uniform(-40, 40, 2000))
    xs = np.sort(np.concatenate([np.array(probe_values(n, es)), randoms]))
    rounded = fmt.decode(fmt.encode(xs))
    assert (np.diff(rounded) >= 0).all()
    # the rounded value is one of the two neighbours of x (saturation aside)
    inside = (np.abs(xs) >= fmt.minpos) & (np.abs(xs) <= fmt.maxpos)
    values = np.sort(fmt.decode(np.array([c for c in range(2**n) if c != fmt.nar])))
    below = values[np.searchsorted(values, xs[inside], side="right") - 1]
    above = values[np.searchsorted(values, xs[inside], side="left")]
    assert ((rounded[inside] == below) | (rounded[inside] == above)).all()


@pytest.mark.parametrize(("n", "es"), FORMATS, ids=_ids(FORMATS))
@settings(max_examples=150, deadline=None)
@given(a=wide_floats(), b=wide_floats())
def test_encode_is_monotonic_on_pairs(n, es, a, b):
    fmt = PositFormat(n, es)
    lo, hi = sorted((a, b))
    assert fmt.decode(fmt.encode(lo)) <= fmt.decode(fmt.encode(hi))
    # and symmetric: encode(-x) is the two's complement of encode(x)
    assert fmt.encode(-a) == (-fmt.encode(a)) & (2**n - 1)


# -- errors ------------------------------------------------------------------------------------


def test_decode_rejects_codes_outside_the_word():
    fmt = PositFormat(4, 1)
    with pytest.raises(ValueError, match=re.escape("code 16 is not a 4-bit pattern")):
        fmt.decode(16)
    with pytest.raises(ValueError, match=re.escape("code -1 is not a 4-bit pattern")):
        fmt.decode(np.array([3, -1]))
    with pytest.raises(ValueError, match=re.escape("pass 0 .. 15")):
        fmt.decode([0, 255])


@pytest.mark.parametrize("codes", [1.0, np.float64(3), [0.0, 1.0], np.array([1.5])])
def test_decode_rejects_floats(codes):
    with pytest.raises(TypeError, match="posit codes must be integer bit patterns"):
        PositFormat(4, 1).decode(codes)


@pytest.mark.parametrize("x", [math.nan, [1.0, math.nan], np.array([-math.nan])])
def test_encode_rejects_nan(x):
    with pytest.raises(ValueError, match=re.escape("cannot encode NaN into posit<4,1>")):
        PositFormat(4, 1).encode(x)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((1, 0), ValueError, "PositFormat n must be 2 to 16, not 1"),
        ((17, 0), ValueError, "PositFormat n must be 2 to 16, not 17"),
        ((4, 5), ValueError, "PositFormat es must be 0 to 4, not 5"),
        ((4, -1), ValueError, "PositFormat es must be 0 to 4, not -1"),
        ((4.0, 1), TypeError, "PositFormat n must be an integer, not 4.0"),
        ((4, 1.0), TypeError, "PositFormat es must be an integer, not 1.0"),
        ((True, 0), TypeError, "PositFormat n must be an integer, not True"),
    ],
)
def test_constructor_rejects_bad_parameters(args, error, message):
    with pytest.raises(error, match=re.escape(message)):
        PositFormat(*args)


def test_names():
    fmt = PositFormat(4, 1)
    assert str(fmt) == "posit<4,1>"
    assert fmt.tag == "p4e1"
    assert fmt.width == 4


# -- SoftPosit cross-check ---------------------------------------------------------------------

# (n, es) SoftPosit 0.3.4.4 implements: posit8 (es 0), posit16 (es 1), posit_2 (es 2, 2..32 bits)
SOFTPOSIT_FORMATS = [(8, 0), (16, 1)] + [(n, 2) for n in range(2, 17)]
SOFTPOSIT_ENCODE_FORMATS = [f for f in SOFTPOSIT_FORMATS if f[0] > 2]  # n = 2: test_encode_posit2


def _softposit_codec(n: int, es: int):
    """(pattern -> double, double -> pattern) from SoftPosit's C library."""
    sp = pytest.importorskip("softposit", exc_type=ImportError)  # also a broken build
    if (n, es) == (8, 0):

        def to_double(code):
            p = sp.posit8_t()
            p.v = code
            return sp.convertP8ToDouble(p)

        def to_code(x):
            return sp.convertDoubleToP8(x).v

    elif (n, es) == (16, 1):

        def to_double(code):
            p = sp.posit16_t()
            p.v = code
            return sp.convertP16ToDouble(p)

        def to_code(x):
            return sp.convertDoubleToP16(x).v

    else:
        assert es == 2

        def to_double(code):
            p = sp.posit_2_t()
            p.v = code << (32 - n)  # pX2 patterns are left-aligned in 32 bits
            return sp.convertPX2ToDouble(p)

        def to_code(x):
            return sp.convertDoubleToPX2(x, n).v >> (32 - n)

    return to_double, to_code


@pytest.mark.parametrize(("n", "es"), SOFTPOSIT_FORMATS, ids=_ids(SOFTPOSIT_FORMATS))
def test_softposit_decode_every_pattern(n, es):
    to_double, _ = _softposit_codec(n, es)
    fmt = PositFormat(n, es)
    got = fmt.decode(np.arange(2**n))
    expected = np.array([to_double(c) for c in range(2**n)])
    assert np.isinf(expected[fmt.nar])  # SoftPosit turns NaR into an infinity, we into NaN
    assert np.isnan(got[fmt.nar])
    keep = np.arange(2**n) != fmt.nar
    np.testing.assert_array_equal(got[keep], expected[keep])


@pytest.mark.parametrize(("n", "es"), SOFTPOSIT_ENCODE_FORMATS, ids=_ids(SOFTPOSIT_ENCODE_FORMATS))
def test_softposit_encode(n, es):
    _, to_code = _softposit_codec(n, es)
    fmt = PositFormat(n, es)
    rng = np.random.default_rng(n)
    randoms = rng.standard_normal(3000) * np.exp2(rng.uniform(-70, 70, 3000))
    points = probe_values(n, es) if n <= 12 else []
    xs = np.concatenate([np.array(points), randoms])
    if n == 16:  # the (n+1)-bit boundaries and their neighbours, for a sample of patterns
        ties = [float(ref_decode(c, 17, es)) for c in range(1, 2**16, 97)]
        near = [math.nextafter(t, d) for t in ties for d in (-math.inf, math.inf)]
        xs = np.concatenate([xs, ties, near, -np.array(ties)])
    got = fmt.encode(xs)
    expected = np.array([to_code(float(x)) for x in xs])
    bad = np.flatnonzero(got != expected)
    assert not bad.size, [(xs[i], int(got[i]), int(expected[i])) for i in bad[:10]]
