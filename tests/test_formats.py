"""Properties of golden.formats: FixFormat and the rounding / saturation helpers.

Every expected value is computed independently of the implementation: exact rationals
(``fractions.Fraction``), Python's ``round`` (half to even on a Fraction), ``math.floor`` and
explicit enumeration of codes and bit patterns.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.formats import FixFormat, saturate, shift_round_half_even, shift_round_half_up

# -- independent references --------------------------------------------------------------------


def ref_range(int_bits: int, frac_bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest code, by counting: 2**width codes, half negative when signed."""
    width = int_bits + frac_bits
    if signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2**width - 1


def ref_encode(x: float, fmt: FixFormat) -> int:
    """Round x * 2**frac half to even on exact rationals, then clip."""
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    if math.isinf(x):
        return hi if x > 0 else lo
    code = round(Fraction(x) * 2**fmt.frac_bits)  # Fraction.__round__ is half to even
    return min(max(code, lo), hi)


def ref_round_half_up(v: int, shift: int) -> int:
    return math.floor(Fraction(v, 2**shift) + Fraction(1, 2))


def ref_round_half_even(v: int, shift: int) -> int:
    return round(Fraction(v, 2**shift))


def ref_to_bits(code: int, width: int) -> int:
    """Two's complement (or plain binary) word of ``code`` as a non-negative integer."""
    return code + 2**width if code < 0 else code


# -- strategies --------------------------------------------------------------------------------


@st.composite
def formats(draw, max_width: int = 24, signed=None):
    """Random FixFormat, signed or unsigned, 1..max_width bits."""
    is_signed = draw(st.booleans()) if signed is None else signed
    width = draw(st.integers(1, max_width))
    int_bits = draw(st.integers(1 if is_signed else 0, width))
    return FixFormat(int_bits, width - int_bits, is_signed)


def codes_of(fmt: FixFormat, data) -> list[int]:
    """Every code for narrow formats, otherwise the extremes plus a random sample."""
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    if hi - lo < 4096:
        return list(range(lo, hi + 1))
    sample = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=200))
    return sorted({lo, lo + 1, hi - 1, hi, 0, *sample})


SETTINGS = settings(max_examples=150, deadline=None)


# -- construction ------------------------------------------------------------------------------


WIDTH_RANGE = "width (int_bits + frac_bits) must be 1 to 48 bits"


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ((4, -1), ValueError, "frac_bits must be at least 0, not -1"),
        ((0, 8), ValueError, "int_bits must be at least 1 (the sign bit), not 0"),
        ((-1, 8, False), ValueError, "int_bits must be at least 0 (non-negative), not -1"),
        ((0, 0, False), ValueError, f"{WIDTH_RANGE}, not 0"),
        ((40, 9), ValueError, f"{WIDTH_RANGE}, not 49"),
        ((49, 0, False), ValueError, f"{WIDTH_RANGE}, not 49"),
        ((3.0, 1), TypeError, "int_bits must be an integer, not 3.0"),
        ((3, "1"), TypeError, "frac_bits must be an integer, not '1'"),
        ((True, 1), TypeError, "int_bits must be an integer, not True"),
        ((3, 1, 1), TypeError, "signed must be a bool, not 1"),
    ],
)
def test_constructor_validation(args, exc, message):
    with pytest.raises(exc, match="^" + re.escape("FixFormat " + message) + "$"):
        FixFormat(*args)


def test_widest_and_narrowest_formats_are_accepted():
    assert FixFormat(24, 24).width == 48
    assert FixFormat(0, 48, False).width == 48
    assert FixFormat(1, 0).width == 1
    assert FixFormat(0, 1, False).width == 1


def test_formats_are_frozen():
    fmt = FixFormat(6, 10)
    with pytest.raises(AttributeError):
        fmt.int_bits = 3


@pytest.mark.parametrize(
    ("fmt", "min_code", "max_code", "min_value", "max_value"),
    [
        (FixFormat(6, 10), -32768, 32767, -32.0, 32.0 - 1 / 1024),
        (FixFormat(1, 15, False), 0, 65535, 0.0, 2.0 - 1 / 32768),
        (FixFormat(3, 1), -8, 7, -4.0, 3.5),
        (FixFormat(1, 0), -1, 0, -1.0, 0.0),
        (FixFormat(1, 0, False), 0, 1, 0.0, 1.0),
        (FixFormat(0, 1, False), 0, 1, 0.0, 0.5),
        (FixFormat(8, 0, False), 0, 255, 0.0, 255.0),
        (FixFormat(1, 12), -4096, 4095, -1.0, 1.0 - 1 / 4096),
        (FixFormat(24, 24), -(2**47), 2**47 - 1, -(2.0**23), 2.0**23 - 2.0**-24),
    ],
)
def test_ranges_by_hand(fmt, min_code, max_code, min_value, max_value):
    assert (fmt.min_code, fmt.max_code) == (min_code, max_code)
    assert (fmt.min_value, fmt.max_value) == (min_value, max_value)
    assert fmt.resolution == 2.0**-fmt.frac_bits


@SETTINGS
@given(fmt=formats(max_width=48))
def test_ranges_match_counting(fmt):
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    assert (fmt.min_code, fmt.max_code) == (lo, hi)
    assert fmt.width == fmt.int_bits + fmt.frac_bits
    assert Fraction(fmt.min_value) == Fraction(lo, 2**fmt.frac_bits)
    assert Fraction(fmt.max_value) == Fraction(hi, 2**fmt.frac_bits)
    assert Fraction(fmt.resolution) == Fraction(1, 2**fmt.frac_bits)


def test_all_codes_enumerates_the_range():
    assert FixFormat(2, 1).all_codes().tolist() == list(range(-4, 4))
    assert FixFormat(1, 2, False).all_codes().tolist() == list(range(8))
    assert FixFormat(2, 1).all_codes().dtype == np.int64


# -- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s6.10", FixFormat(6, 10)),
        ("u1.15", FixFormat(1, 15, False)),
        ("16f10", FixFormat(6, 10)),
        ("u16f10", FixFormat(6, 10, False)),
        ("u8f8", FixFormat(0, 8, False)),
        ("u0.8", FixFormat(0, 8, False)),
        ("8f0", FixFormat(8, 0)),
        ("  s1.12 ", FixFormat(1, 12)),
        ("s24.24", FixFormat(24, 24)),
    ],
)
def test_parse_accepts(text, expected):
    assert FixFormat.parse(text) == expected


def test_parse_rejects_fraction_wider_than_word():
    message = "fractional bits (20) must not exceed the word width (16)"
    with pytest.raises(ValueError, match=re.escape(message)):
        FixFormat.parse("16f20")
    with pytest.raises(ValueError, match=re.escape(message)):
        FixFormat.from_width(16, 20)


@pytest.mark.parametrize("text", ["", "abc", "6.10", "s6", "s6.", "x6.10", "s-1.4", "16f", "f10"])
def test_parse_rejects_garbage(text):
    message = f"cannot read {text.strip()!r} as a fixed-point format; write s<int>.<frac>"
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        FixFormat.parse(text)
    assert "e.g. s6.10" in str(info.value) and "16f10" in str(info.value)


def test_parse_signed_full_fraction_has_no_sign_bit():
    with pytest.raises(ValueError, match=re.escape("at least 1 (the sign bit), not 0")):
        FixFormat.parse("16f16")


def test_from_width():
    assert FixFormat.from_width(16, 10) == FixFormat(6, 10)
    assert FixFormat.from_width(16, 16, signed=False) == FixFormat(0, 16, False)
    assert FixFormat.from_width(8, 0) == FixFormat(8, 0)


@pytest.mark.parametrize(
    ("fmt", "text", "tag"),
    [
        (FixFormat(6, 10), "s6.10", "16f10"),
        (FixFormat(1, 15, False), "u1.15", "u16f15"),
        (FixFormat(0, 8, False), "u0.8", "u8f8"),
        (FixFormat(12, 0), "s12.0", "12f0"),
    ],
)
def test_str_and_tag(fmt, text, tag):
    assert str(fmt) == text
    assert fmt.tag == tag


@SETTINGS
@given(fmt=formats(max_width=48))
def test_str_and_tag_parse_back(fmt):
    assert FixFormat.parse(str(fmt)) == fmt
    assert FixFormat.parse(fmt.tag) == fmt
    sign = "s" if fmt.signed else "u"
    assert str(fmt) == f"{sign}{fmt.int_bits}.{fmt.frac_bits}"
    assert fmt.tag == f"{'' if fmt.signed else 'u'}{fmt.int_bits + fmt.frac_bits}f{fmt.frac_bits}"


# -- encode / decode ---------------------------------------------------------------------------


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_decode_is_exact_and_round_trips(fmt, data):
    codes = codes_of(fmt, data)
    values = fmt.decode(codes)
    assert values.dtype == np.float64
    assert [Fraction(v) for v in values.tolist()] == [Fraction(c, 2**fmt.frac_bits) for c in codes]
    back = fmt.encode(values)
    assert back.dtype == np.int64
    assert back.tolist() == codes
    assert fmt.decode(back).tolist() == values.tolist()


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_encode_matches_fraction_reference(fmt, data):
    span = 2.0 * max(abs(fmt.min_value), abs(fmt.max_value), 1.0)
    xs = data.draw(
        st.lists(
            st.one_of(
                st.floats(-span, span),
                # |x| * 2**frac stays finite: overflow: test_encode_huge_finite_value_saturates
                st.floats(-(2.0**1000), 2.0**1000),
                st.sampled_from([0.0, -0.0, 5e-324, -5e-324, fmt.max_value, fmt.min_value]),
                st.sampled_from([math.inf, -math.inf, 1e300, -1e300]),
            ),
            min_size=1,
            max_size=50,
        )
    )
    got = fmt.encode(xs)
    assert got.dtype == np.int64
    assert got.tolist() == [ref_encode(x, fmt) for x in xs]
    # scalar input gives the same code as a 0-d array
    assert int(fmt.encode(xs[0])) == ref_encode(xs[0], fmt)


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_encode_is_monotonic(fmt, data):
    span = 1.5 * max(abs(fmt.min_value), abs(fmt.max_value), 1.0)
    xs = sorted(data.draw(st.lists(st.floats(-span, span), min_size=2, max_size=100)))
    codes = fmt.encode(xs)
    assert (np.diff(codes) >= 0).all()


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_encode_ties_go_to_even(fmt, data):
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    # midpoint between c and c + 1, for c one below the range up to the last code
    c = data.draw(st.integers(lo - 1, hi))
    mid = Fraction(2 * c + 1, 2 ** (fmt.frac_bits + 1))
    x = float(mid)
    assert Fraction(x) == mid  # exactly representable: width <= 24
    even = c if c % 2 == 0 else c + 1
    assert fmt.encode(x).tolist() == min(max(even, lo), hi)
    assert fmt.encode([x]).tolist() == [min(max(even, lo), hi)]
    # just off the midpoint the rounding direction is decided by distance
    below, above = np.nextafter(x, -np.inf), np.nextafter(x, np.inf)
    assert int(fmt.encode(below)) == min(max(c, lo), hi)
    assert int(fmt.encode(above)) == min(max(c + 1, lo), hi)


@pytest.mark.parametrize(
    ("fmt", "xs", "codes"),
    [
        # steps of 0.5: 0.25 is halfway between codes 0 and 1, 0.75 between 1 and 2, ...
        (FixFormat(3, 1), [0.25, 0.75, 1.25, 1.75, -0.25, -0.75, -1.25], [0, 2, 2, 4, 0, -2, -2]),
        (
            FixFormat(4, 0),
            [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 7.5, -8.5],
            [0, 2, 2, 0, -2, -2, 7, -8],
        ),
        (FixFormat(0, 2, False), [0.125, 0.375, 0.625, 0.875, 1.0], [0, 2, 2, 3, 3]),
    ],
)
def test_encode_ties_by_hand(fmt, xs, codes):
    assert fmt.encode(xs).tolist() == codes


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_out_of_range_saturates_or_raises(fmt, data):
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    step = Fraction(1, 2**fmt.frac_bits)
    k = data.draw(st.integers(1, 2**30))
    over = float(hi * step + k * step)
    under = float(lo * step - k * step)
    lo_text, hi_text = repr(float(lo * step)), repr(float(hi * step))
    tail = f"is outside {fmt} [{lo_text}, {hi_text}]; use a wider format or saturate=True"
    for x, code in [(over, hi), (under, lo), (math.inf, hi), (-math.inf, lo), (1e300, hi)]:
        assert int(fmt.encode(x)) == code
        assert fmt.encode([x, 0.0]).tolist() == [code, 0]
        with pytest.raises(ValueError, match=re.escape(tail)):
            fmt.encode(x, saturate=False)
        with pytest.raises(ValueError, match=re.escape(tail)):
            fmt.encode([0.0, x], saturate=False)
    # values that round into the range are fine without saturation
    edge = [float(hi * step + step / 4), float(lo * step - step / 4)]
    assert fmt.encode(edge, saturate=False).tolist() == [hi, lo]


def test_encode_without_saturation_names_the_value():
    with pytest.raises(
        ValueError, match=r"value (np\.float64\()?3\.75\)? is outside s3\.1 \[-4\.0, 3\.5\]"
    ):
        FixFormat(3, 1).encode([1.0, 3.75], saturate=False)
    with pytest.raises(ValueError, match=r"value (np\.float64\()?-5\.0\)? is outside s3\.1"):
        FixFormat(3, 1).encode(-5.0, saturate=False)
    # -0.5 rounds (half to even) to 0, inside an unsigned format; -0.51 rounds to -1, outside
    assert FixFormat(2, 0, False).encode(-0.5, saturate=False).tolist() == 0
    with pytest.raises(ValueError, match=r"-0\.51\)? is outside u2\.0 \[0\.0, 3\.0\]"):
        FixFormat(2, 0, False).encode(-0.51, saturate=False)


def test_encode_error_message_shows_plain_value():
    with pytest.raises(ValueError) as info:
        FixFormat(3, 1).encode(3.75, saturate=False)
    assert str(info.value).startswith("value 3.75 is outside s3.1")


@pytest.mark.parametrize("x", [1.7e308, -1.7e308, 2.0**1023])
def test_encode_huge_finite_value_saturates(x):
    fmt = FixFormat(0, 1, False)
    assert int(fmt.encode(x)) == (1 if x > 0 else 0)


@pytest.mark.parametrize("saturate_", [True, False])
@pytest.mark.parametrize("xs", [math.nan, [0.0, math.nan], [[1.0], [-math.nan]]])
def test_nan_raises(xs, saturate_):
    fmt = FixFormat(6, 10)
    with pytest.raises(ValueError, match=re.escape("cannot encode NaN into s6.10")):
        fmt.encode(xs, saturate=saturate_)


# -- check_codes -------------------------------------------------------------------------------


@SETTINGS
@given(fmt=formats(max_width=48), data=st.data())
def test_check_codes_range(fmt, data):
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    good = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20))
    out = fmt.check_codes(good)
    assert out.dtype == np.int64 and out.tolist() == good
    bad = data.draw(st.one_of(st.integers(hi + 1, 2**62), st.integers(-(2**62), lo - 1)))
    message = f"code {bad} is outside {fmt} ({lo}..{hi}); pass raw codes of that format"
    with pytest.raises(ValueError, match=re.escape(message)):
        fmt.check_codes(good + [bad])
    with pytest.raises(ValueError, match=re.escape(message.replace("code", "input", 1))):
        fmt.check_codes(np.array([bad]), what="input")
    # integer-valued floats are accepted as codes
    assert fmt.check_codes(np.array(good, dtype=np.float64)).tolist() == good


def test_check_codes_rejects_first_bad_code_by_position():
    with pytest.raises(ValueError, match=re.escape("code -9 is outside s3.1 (-8..7)")):
        FixFormat(3, 1).check_codes([0, -9, 8])


@pytest.mark.parametrize("codes", [[0.5], [1.0, 2.25], np.array([-0.75]), [math.inf], [math.nan]])
def test_check_codes_rejects_non_integer_floats(codes):
    message = (
        "codes must be integers (raw s3.1 codes), not float64 values; "
        "use s3.1.encode() to quantize real numbers"
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        FixFormat(3, 1).check_codes(codes)
    with pytest.raises(TypeError, match=re.escape(message)):
        FixFormat(3, 1).decode(codes)


def test_check_codes_rejects_strings():
    with pytest.raises(TypeError, match=re.escape("codes must be integers (raw s3.1 codes)")):
        FixFormat(3, 1).check_codes(["1"])


def test_check_codes_rejects_huge_unsigned_codes():
    with pytest.raises(ValueError, match="is outside s3.1"):
        FixFormat(3, 1).check_codes(np.array([2**64 - 1], dtype=np.uint64))


def test_check_codes_reports_huge_code_exactly():
    with pytest.raises(ValueError, match=re.escape(f"code {2**63} is outside s3.1")):
        FixFormat(3, 1).check_codes([2**63])


def test_check_codes_rejects_huge_float_code():
    with pytest.raises(ValueError, match="is outside s3.1"):
        FixFormat(3, 1).check_codes([1e30])


# -- bits --------------------------------------------------------------------------------------


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_to_bits_is_twos_complement_and_round_trips(fmt, data):
    codes = codes_of(fmt, data)
    bits = fmt.to_bits(codes)
    assert bits.tolist() == [ref_to_bits(c, fmt.width) for c in codes]
    assert all(0 <= b < 2**fmt.width for b in bits.tolist())
    assert fmt.from_bits(bits).tolist() == codes


@SETTINGS
@given(fmt=formats(), data=st.data())
def test_from_bits_covers_every_pattern(fmt, data):
    if fmt.width <= 12:
        patterns = list(range(2**fmt.width))
    else:
        patterns = data.draw(st.lists(st.integers(0, 2**fmt.width - 1), min_size=1, max_size=200))
    codes = fmt.from_bits(patterns)
    expected = [
        b - 2**fmt.width if fmt.signed and b >= 2 ** (fmt.width - 1) else b for b in patterns
    ]
    assert codes.tolist() == expected
    assert fmt.to_bits(codes).tolist() == patterns
    if fmt.width <= 12:  # a bijection onto the codes
        lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
        assert sorted(codes.tolist()) == list(range(lo, hi + 1))


def test_to_bits_by_hand():
    assert FixFormat(3, 1).to_bits([-8, -1, 0, 7]).tolist() == [0b1000, 0b1111, 0, 0b0111]
    assert FixFormat(2, 0, False).to_bits([0, 3]).tolist() == [0, 3]
    with pytest.raises(ValueError, match=re.escape("code 8 is outside s3.1")):
        FixFormat(3, 1).to_bits([8])


@pytest.mark.parametrize("bits", [[16], [-1], [0, 1 << 40]])
def test_from_bits_rejects_wide_or_negative_patterns(bits):
    with pytest.raises(ValueError, match=re.escape("bit patterns must be 4-bit unsigned integers")):
        FixFormat(3, 1).from_bits(bits)


def test_from_bits_rejects_non_integer_patterns():
    with pytest.raises((TypeError, ValueError)):
        FixFormat(3, 1).from_bits([1.5])


# -- rounding and saturation helpers -----------------------------------------------------------

ints = st.integers(-(2**40), 2**40)


@settings(max_examples=300, deadline=None)
@given(vs=st.lists(ints, min_size=1, max_size=30), shift=st.integers(0, 20))
def test_shift_round_half_up_matches_reference(vs, shift):
    got = shift_round_half_up(vs, shift)
    assert got.dtype == np.int64
    assert got.tolist() == [ref_round_half_up(v, shift) for v in vs]


@settings(max_examples=300, deadline=None)
@given(vs=st.lists(ints, min_size=1, max_size=30), shift=st.integers(0, 20))
def test_shift_round_half_even_matches_reference(vs, shift):
    got = shift_round_half_even(vs, shift)
    assert got.dtype == np.int64
    assert got.tolist() == [ref_round_half_even(v, shift) for v in vs]


@settings(max_examples=200, deadline=None)
@given(q=st.integers(-(2**30), 2**30), shift=st.integers(1, 20))
def test_rounding_helpers_on_exact_ties(q, shift):
    v = q * 2**shift + 2 ** (shift - 1)  # exactly q + 1/2
    assert Fraction(v, 2**shift) == q + Fraction(1, 2)
    assert int(shift_round_half_up(v, shift)) == q + 1
    assert int(shift_round_half_even(v, shift)) == (q if q % 2 == 0 else q + 1)
    # one below / above the tie goes to the nearer neighbour in both helpers
    for helper in (shift_round_half_up, shift_round_half_even):
        if shift > 1:
            assert int(helper(v - 1, shift)) == q
        assert int(helper(v + 1, shift)) == q + 1


def test_rounding_helpers_by_hand():
    vs = [5, 6, 7, -5, -6, -7, 2, 10, -2, -10]  # /4: 1.25 1.5 1.75 ... 0.5 2.5 -0.5 -2.5
    assert shift_round_half_up(vs, 2).tolist() == [1, 2, 2, -1, -1, -2, 1, 3, 0, -2]
    assert shift_round_half_even(vs, 2).tolist() == [1, 2, 2, -1, -2, -2, 0, 2, 0, -2]


@pytest.mark.parametrize("helper", [shift_round_half_up, shift_round_half_even])
@pytest.mark.parametrize("shift", [0, -1, -5])
def test_non_positive_shift_is_exact_left_shift(helper, shift):
    vs = [0, 1, -1, 12345, -777]
    assert helper(vs, shift).tolist() == [v * 2**-shift for v in vs]


@SETTINGS
@given(fmt=formats(max_width=48), vs=st.lists(st.integers(-(2**60), 2**60), max_size=30))
def test_saturate_matches_clip(fmt, vs):
    lo, hi = ref_range(fmt.int_bits, fmt.frac_bits, fmt.signed)
    got = saturate(vs, fmt)
    assert got.dtype == np.int64
    assert got.tolist() == [min(max(v, lo), hi) for v in vs]


def test_saturate_by_hand():
    assert saturate([-200, -128, 5, 127, 200], FixFormat(4, 4)).tolist() == [
        -128,
        -128,
        5,
        127,
        127,
    ]
    assert saturate([-3, 0, 300], FixFormat(8, 0, False)).tolist() == [0, 0, 255]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(ints, min_size=3, max_size=3), min_size=1, max_size=8),
    data=st.data(),
)
def test_shift_round_half_up_per_row_and_in_place(rows, data):
    """Per-row shifts (any sign), with and without overwrite: each element against the
    reference; with overwrite the result is written into the array it was given."""
    shifts = data.draw(st.lists(st.integers(-8, 20), min_size=len(rows), max_size=len(rows)))
    v = np.array(rows, dtype=np.int64)
    s = np.array(shifts, dtype=np.int64)[:, None]

    def ref(x: int, k: int) -> int:  # x / 2**k to nearest, ties up, for any sign of k
        return math.floor(Fraction(x) / Fraction(2) ** k + Fraction(1, 2))

    want = [[ref(x, k) for x in row] for row, k in zip(rows, shifts, strict=True)]
    assert shift_round_half_up(v, s).tolist() == want
    assert v.tolist() == rows  # not overwritten unless asked
    mine = v.copy()
    out = shift_round_half_up(mine, s, overwrite=True)
    assert out.tolist() == want
    if (s >= 0).all():  # a left shift makes a new array first; otherwise in place
        assert out is mine
    scalar = shifts[0]
    mine = v.copy()
    out = shift_round_half_up(mine, scalar, overwrite=True)
    assert out.tolist() == [[ref(x, scalar) for x in row] for row in rows]
    assert out is mine


@SETTINGS
@given(fmt=formats(max_width=24), vs=st.lists(st.floats(allow_nan=False), max_size=40))
def test_encode_index_is_the_code_position(fmt, vs):
    """encode_index(x) is encode(x) - min_code, int32: each value's position in all_codes()."""
    idx = fmt.encode_index(vs)
    assert idx.dtype == np.int32
    assert np.array_equal(idx, fmt.encode(vs) - fmt.min_code)
    assert ((idx >= 0) & (idx < 2**fmt.width)).all()


def test_encode_index_rejects_nan():
    with pytest.raises(ValueError, match=r"^cannot encode NaN into s4\.4$"):
        FixFormat(4, 4).encode_index([1.0, float("nan")])
