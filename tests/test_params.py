"""golden.params through a real user (golden.gelu.GeluParams) and a small local parameter set."""

import dataclasses
import enum
import json
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.formats import FixFormat
from golden.gelu import GeluParams, SlopeMode
from golden.params import ParamsBase, check_enum, check_fix, check_int

KNOWN = "in_fmt, out_fmt, segments, slope_mode, slope_terms, slope_fmt, icpt_fmt, breakpoints"

DEFAULTS = {
    "in_fmt": "s6.10",
    "out_fmt": "s6.10",
    "segments": 16,
    "slope_mode": "shift_add",
    "slope_terms": 2,
    "slope_fmt": "s1.12",
    "icpt_fmt": "s1.12",
    "breakpoints": "grid",
}

# signed formats small enough for GeluParams' 62-bit internal word
IO_FORMATS = [FixFormat(6, 10), FixFormat(4, 12), FixFormat(8, 8), FixFormat(3, 5), FixFormat(1, 7)]
SLOPE_FORMATS = [FixFormat(1, 12), FixFormat(1, 8), FixFormat(2, 14), FixFormat(1, 4)]
ICPT_FORMATS = [FixFormat(1, 16), FixFormat(1, 10), FixFormat(2, 20)]


@st.composite
def gelu_params(draw):
    return GeluParams(
        in_fmt=draw(st.sampled_from(IO_FORMATS)),
        out_fmt=draw(st.sampled_from(IO_FORMATS)),
        segments=draw(st.integers(4, 64)),
        slope_mode=draw(st.sampled_from(list(SlopeMode))),
        slope_terms=draw(st.integers(1, 4)),
        slope_fmt=draw(st.sampled_from(SLOPE_FORMATS)),
        icpt_fmt=draw(st.sampled_from(ICPT_FORMATS)),
    )


def fields_of(p) -> dict[str, object]:
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


# -- defaults and round trips ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", ",", " , ,, "])
def test_empty_text_is_the_default(text):
    assert GeluParams.parse(text) == GeluParams()


def test_default_values():
    p = GeluParams()
    assert p.to_dict() == DEFAULTS
    assert p.in_fmt == FixFormat(6, 10) and p.slope_mode is SlopeMode.SHIFT_ADD
    assert GeluParams.field_names() == KNOWN.split(", ")
    assert GeluParams.from_dict({}) == p
    assert p.changed_fields() == {}


@settings(max_examples=200, deadline=None)
@given(p=gelu_params(), sep=st.sampled_from([",", " ", ", ", " ,  "]))
def test_text_and_dict_round_trips(p, sep):
    d = p.to_dict()
    # JSON-able: formats as text, enums as their values, ints as ints
    assert json.loads(json.dumps(d)) == d
    assert d["in_fmt"] == str(p.in_fmt) and d["slope_mode"] == p.slope_mode.value
    assert d["segments"] == p.segments and type(d["segments"]) is int
    assert GeluParams.from_dict(d) == p
    assert GeluParams.from_dict(json.loads(json.dumps(d))) == p
    text = sep.join(f"{k}={v}" for k, v in d.items())
    assert GeluParams.parse(text) == p
    # the parsed object is normalised: enum members, FixFormat objects
    q = GeluParams.parse(text)
    assert isinstance(q.slope_mode, SlopeMode) and isinstance(q.in_fmt, FixFormat)


@settings(max_examples=150, deadline=None)
@given(p=gelu_params())
def test_changed_fields_lists_exactly_the_non_defaults(p):
    defaults = fields_of(GeluParams())
    expected = {k for k, v in fields_of(p).items() if v != defaults[k]}
    changed = p.changed_fields()
    assert set(changed) == expected
    assert changed == {k: p.to_dict()[k] for k in expected}
    # the changed fields alone rebuild the same parameters
    assert GeluParams.from_dict(changed) == p
    assert GeluParams.parse(",".join(f"{k}={v}" for k, v in changed.items())) == p


def test_changed_fields_by_hand():
    assert GeluParams(segments=8).changed_fields() == {"segments": 8}
    assert GeluParams.parse("slope_mode=mult").changed_fields() == {"slope_mode": "mult"}
    assert GeluParams.parse("in_fmt=12f8,segments=16").changed_fields() == {"in_fmt": "s4.8"}
    # stating a default explicitly is not a change
    assert GeluParams.parse("segments=16,slope_mode=shift_add").changed_fields() == {}


def test_parse_by_hand():
    p = GeluParams.parse(" segments=8, slope_mode=mult in_fmt=s8.8 ")
    assert (p.segments, p.slope_mode, p.in_fmt) == (8, SlopeMode.MULT, FixFormat(8, 8))
    assert GeluParams.parse("segments=0x10").segments == 16
    assert GeluParams.parse("slope_fmt=16f14").slope_fmt == FixFormat(2, 14)
    # a later duplicate wins
    assert GeluParams.parse("segments=8,segments=9").segments == 9


def test_from_dict_accepts_objects_and_format_tuples():
    p = GeluParams.from_dict(
        {"in_fmt": [8, 8], "out_fmt": (4, 12), "slope_mode": SlopeMode.MULT, "segments": 5}
    )
    assert p.in_fmt == FixFormat(8, 8) and p.out_fmt == FixFormat(4, 12)
    assert p.slope_mode is SlopeMode.MULT and p.segments == 5
    assert GeluParams.from_dict({"slope_mode": "mult"}).slope_mode is SlopeMode.MULT
    assert GeluParams(slope_mode="mult").slope_mode is SlopeMode.MULT


# -- errors ------------------------------------------------------------------------------------


def test_unknown_name_lists_known_names():
    message = f"unknown gelu parameter 'foo'; known: {KNOWN}"
    with pytest.raises(ValueError, match=re.escape(message)):
        GeluParams.parse("segments=8,foo=1")
    with pytest.raises(ValueError, match=re.escape(message)):
        GeluParams.from_dict({"foo": 1})


@pytest.mark.parametrize("item", ["segments", "=8", "segments=", "segments:8"])
def test_malformed_item(item):
    message = f"cannot read {item!r} as a gelu parameter; write name=value (known names: {KNOWN})"
    with pytest.raises(ValueError, match=re.escape(message)):
        GeluParams.parse(f"slope_terms=3,{item}")


def test_spaces_around_equals_are_malformed():
    with pytest.raises(ValueError, match=re.escape("cannot read 'segments' as a gelu parameter")):
        GeluParams.parse("segments = 8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segments=3", "gelu segments must be 4 to 64, not 3"),
        ("segments=65", "gelu segments must be 4 to 64, not 65"),
        ("segments=-4", "gelu segments must be 4 to 64, not -4"),
        ("slope_terms=0", "gelu slope_terms must be 1 to 4, not 0"),
        ("slope_terms=5", "gelu slope_terms must be 1 to 4, not 5"),
        (
            "slope_mode=fast",
            "gelu parameter slope_mode cannot be 'fast': expected one of the SlopeMode values; "
            "allowed: mult, shift_add",
        ),
        (
            "slope_mode=MULT",
            "gelu parameter slope_mode cannot be 'MULT': expected one of the SlopeMode values; "
            "allowed: mult, shift_add",
        ),
        (
            "in_fmt=16f20",
            "gelu parameter in_fmt cannot be '16f20': expected a fixed-point format like s6.10 "
            "(fractional bits (20) must not exceed the word width (16))",
        ),
        (
            "in_fmt=xyz",
            "gelu parameter in_fmt cannot be 'xyz': expected a fixed-point format like s6.10 "
            "(cannot read 'xyz' as a fixed-point format",
        ),
        ("in_fmt=u6.10", "gelu in_fmt must be signed (GELU takes both signs), not u6.10"),
        ("out_fmt=u16f10", "gelu out_fmt must be signed (GELU(x) < 0 for x < 0), not u6.10"),
        ("slope_fmt=u1.12", "gelu slope_fmt must be signed (slopes change sign), not u1.12"),
        ("icpt_fmt=u1.16", "gelu icpt_fmt must be signed, not u1.16"),
    ],
)
def test_bad_values(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GeluParams.parse(text)


@pytest.mark.parametrize("value", ["eight", "8.0", "true", "1e1"])
def test_non_integer_text_for_int_field(value):
    # the article is checked loosely: "a int" reads badly and may be fixed to "an int"
    pattern = re.escape(f"gelu parameter segments cannot be {value!r}: expected ") + "an? int"
    with pytest.raises(ValueError, match=pattern):
        GeluParams.parse(f"segments={value}")


def test_internal_word_limit():
    with pytest.raises(ValueError, match=re.escape("gelu internal word would need more than 62")):
        GeluParams(in_fmt=FixFormat(20, 28), slope_fmt=FixFormat(1, 30))


@pytest.mark.parametrize("field", ["segments", "slope_terms"])
@pytest.mark.parametrize("value", [True, False])
def test_booleans_rejected_for_int_fields(field, value):
    message = f"gelu {field} must be an integer, not {value!r}"
    with pytest.raises(TypeError, match=re.escape(message)):
        GeluParams(**{field: value})
    with pytest.raises(TypeError, match=re.escape(message)):
        GeluParams.from_dict({field: value})


@pytest.mark.parametrize("value", [8.0, "8", None])
def test_other_non_ints_rejected_for_int_fields(value):
    message = f"gelu segments must be an integer, not {value!r}"
    with pytest.raises(TypeError, match=re.escape(message)):
        GeluParams(segments=value)


def test_non_format_rejected_for_format_fields():
    message = "gelu in_fmt must be a FixFormat (e.g. FixFormat(6, 10)), not 's6.10'"
    with pytest.raises(TypeError, match=re.escape(message)):
        GeluParams(in_fmt="s6.10")


def test_frozen_and_replace_validates():
    p = GeluParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.segments = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.slope_mode = SlopeMode.MULT
    assert p.replace(segments=8) == GeluParams(segments=8)
    assert p.segments == 16
    with pytest.raises(ValueError, match=re.escape("gelu segments must be 4 to 64, not 3")):
        p.replace(segments=3)
    assert hash(p) == hash(GeluParams())


# -- text conversion of the other field kinds, through a local parameter set -------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Demo(ParamsBase):
    op = "demo"

    flag: bool = False
    gain: float = 1.0
    label: str = "x"
    n: int = 3
    fmt: FixFormat = FixFormat(4, 4)
    colour: Colour = Colour.RED


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("YES", True), ("True", True)]
    + [("0", False), ("false", False), ("no", False), ("NO", False)],
)
def test_bool_text(text, expected):
    assert Demo.parse(f"flag={text}").flag is expected


def test_bad_bool_text():
    message = "demo parameter flag cannot be 'maybe': expected true or false"
    with pytest.raises(ValueError, match=re.escape(message)):
        Demo.parse("flag=maybe")


def test_other_kinds_from_text():
    d = Demo.parse("gain=-2.5e-3 label=hello n=-7 fmt=u3.5 colour=blue")
    assert d == Demo(False, -2.5e-3, "hello", -7, FixFormat(3, 5, False), Colour.BLUE)
    assert d.to_dict() == {
        "flag": False,
        "gain": -2.5e-3,
        "label": "hello",
        "n": -7,
        "fmt": "u3.5",
        "colour": "blue",
    }
    assert Demo.from_dict(d.to_dict()) == d
    changed = {"gain": -2.5e-3, "label": "hello", "n": -7, "fmt": "u3.5", "colour": "blue"}
    assert d.changed_fields() == changed
    with pytest.raises(ValueError, match=re.escape("demo parameter gain cannot be 'x': expected")):
        Demo.parse("gain=x")
    with pytest.raises(ValueError, match=re.escape("allowed: red, blue")):
        Demo.parse("colour=green")


# -- validation helpers ------------------------------------------------------------------------


def test_check_int():
    check_int("op", "n", 4, 1, 4)
    check_int("op", "n", 1, 1, 4)
    with pytest.raises(ValueError, match=re.escape("op n must be 1 to 4, not 5")):
        check_int("op", "n", 5, 1, 4)
    with pytest.raises(ValueError, match=re.escape("op n must be 1 to 4, not 0")):
        check_int("op", "n", 0, 1, 4)
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=re.escape(f"op n must be an integer, not {bad!r}")):
            check_int("op", "n", bad, 1, 4)


def test_check_fix():
    check_fix("op", "f", FixFormat(6, 10))
    check_fix("op", "f", FixFormat(6, 10), signed=True)
    check_fix("op", "f", FixFormat(6, 10, False), signed=False)
    with pytest.raises(
        TypeError, match=re.escape("op f must be a FixFormat (e.g. FixFormat(6, 10)), not None")
    ):
        check_fix("op", "f", None)
    with pytest.raises(ValueError, match=re.escape("op f must be unsigned (why), not s6.10")):
        check_fix("op", "f", FixFormat(6, 10), signed=False, why=" (why)")
    with pytest.raises(ValueError, match=re.escape("op f must be signed, not u6.10")):
        check_fix("op", "f", FixFormat(6, 10, False), signed=True)


def test_check_enum():
    assert check_enum("op", "m", "mult", SlopeMode) is SlopeMode.MULT
    assert check_enum("op", "m", SlopeMode.SHIFT_ADD, SlopeMode) is SlopeMode.SHIFT_ADD
    for bad in ("fast", 3, None):
        message = f"op m must be one of mult, shift_add, not {bad!r}"
        with pytest.raises(ValueError, match=re.escape(message)):
            check_enum("op", "m", bad, SlopeMode)
