"""Number formats shared by every operator: fixed point now, posits later.

A format is a small immutable object that maps real numbers to the integer *codes* the hardware
sees and back. Codes are always ``int64`` arrays holding the value of the word as a
two's-complement (signed formats) or plain binary (unsigned formats) integer, so that
``decode(code) == code * 2**-frac_bits`` exactly.

Every conversion and helper here takes NumPy arrays (and lists, numbers) or PyTorch tensors on
any device and answers in the same library on the same device (:mod:`golden.arrays`); the
results are the same integers and the same float64 values either way.

The rounding helpers at the bottom are the only places where the project rounds; golden models
call them so that rounding and its tie cases are defined once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import array_api_compat
import numpy as np

from .arrays import (
    clip,
    clip_,
    extrema,
    from_rows,
    int64,
    is_numpy,
    lookup,
    namespace,
    on_device,
    round_,
    row_namespace,
    size,
)

__all__ = [
    "FixFormat",
    "PositFormat",
    "shift_round_half_up",
    "shift_round_half_even",
    "saturate",
]

# int64 holds every intermediate value of a golden model; words wider than this cannot be
# emulated exactly, so formats are capped well below it.
_MAX_WIDTH = 48


@dataclass(frozen=True)
class FixFormat:
    """A binary fixed-point format.

    The word is ``width = int_bits + frac_bits`` bits wide. As in ``ap_fixed<W, I>``, the
    sign bit of a signed format counts as one of its ``int_bits``: ``FixFormat(6, 10)`` is a
    16-bit two's-complement word covering ``[-32, 32 - 2**-10]`` in steps of ``2**-10``.

    Parameters
    ----------
    int_bits : int
        Integer bits, sign bit included for signed formats (at least 1 when signed).
    frac_bits : int
        Fractional bits (at least 0).
    signed : bool
        Two's complement when true, plain binary when false.

    Members
    -------
    width : int
        Word width in bits.
    min_code, max_code : int
        The smallest and largest code.
    resolution : float
        Value of one least significant bit, ``2**-frac_bits``.
    """

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self):
        for field in ("int_bits", "frac_bits"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"FixFormat {field} must be an integer, not {value!r}")
        if not isinstance(self.signed, bool):
            raise TypeError(f"FixFormat signed must be a bool, not {self.signed!r}")
        if self.frac_bits < 0:
            raise ValueError(f"FixFormat frac_bits must be at least 0, not {self.frac_bits}")
        if self.int_bits < (1 if self.signed else 0):
            raise ValueError(
                f"FixFormat int_bits must be at least {1 if self.signed else 0} "
                f"({'the sign bit' if self.signed else 'non-negative'}), not {self.int_bits}"
            )
        if not 1 <= self.width <= _MAX_WIDTH:
            raise ValueError(
                f"FixFormat width (int_bits + frac_bits) must be 1 to {_MAX_WIDTH} bits, "
                f"not {self.width}"
            )

    # -- construction from text -------------------------------------------------------------

    @classmethod
    def from_width(cls, width: int, frac_bits: int, signed: bool = True) -> FixFormat:
        """Build a format from its total width, as hardware people usually state it.

        >>> FixFormat.from_width(16, 10)
        FixFormat(int_bits=6, frac_bits=10, signed=True)
        """
        if isinstance(width, int) and isinstance(frac_bits, int) and 0 <= width < frac_bits:
            raise ValueError(
                f"fractional bits ({frac_bits}) must not exceed the word width ({width})"
            )
        return cls(width - frac_bits, frac_bits, signed)

    @classmethod
    def parse(cls, text: str) -> FixFormat:
        """Read a format written as ``s6.10`` / ``u1.15`` (int.frac) or ``16f10`` / ``u16f10``.

        >>> FixFormat.parse("s6.10") == FixFormat.parse("16f10") == FixFormat(6, 10)
        True
        """
        text = text.strip()
        if m := re.fullmatch(r"([su])(\d+)\.(\d+)", text):
            return cls(int(m[2]), int(m[3]), m[1] == "s")
        if m := re.fullmatch(r"(u?)(\d+)f(\d+)", text):
            return cls.from_width(int(m[2]), int(m[3]), m[1] != "u")
        raise ValueError(
            f"cannot read {text!r} as a fixed-point format; write s<int>.<frac> or u<int>.<frac> "
            f"(e.g. s6.10), or <width>f<frac> / u<width>f<frac> (e.g. 16f10)"
        )

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.int_bits}.{self.frac_bits}"

    @property
    def tag(self) -> str:
        """Short name used in module and file names: ``16f10`` (signed) or ``u16f10``."""
        return f"{'' if self.signed else 'u'}{self.width}f{self.frac_bits}"

    # -- ranges -----------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def resolution(self) -> float:
        return 2.0**-self.frac_bits

    @property
    def min_value(self) -> float:
        return self.min_code * self.resolution

    @property
    def max_value(self) -> float:
        return self.max_code * self.resolution

    def all_codes(self) -> np.ndarray:
        """Every code of the format in increasing order (only sensible for narrow words)."""
        return np.arange(self.min_code, self.max_code + 1, dtype=np.int64)

    # -- conversions ------------------------------------------------------------------------

    def encode(self, x, *, saturate: bool = True) -> np.ndarray:
        """Quantize real values to codes: round half to even, then saturate.

        Values outside the representable range become ``min_code`` / ``max_code`` (the
        saturation is the contract of a quantizer); with ``saturate=False`` they raise instead.
        NaN always raises.

        >>> f = FixFormat(3, 1)            # steps of 0.5, range [-4, 3.5]
        >>> f.encode([0.25, 0.75, -0.25, 1.25]).tolist()    # ties go to the even code
        [0, 2, 0, 2]
        >>> f.encode([100.0, -100.0]).tolist()
        [7, -8]
        """
        xp = namespace(x)
        return xp.astype(self._scaled(xp, x, saturate), xp.int64)

    def encode_index(self, x) -> np.ndarray:
        """``encode(x) - min_code``: the position of each value's code in :meth:`all_codes`,
        as int32 (int64 for formats wider than 31 bits), saturating as :meth:`encode` does.

        For table lookups: a table holding a model's result for every code, read at these
        positions, gives what the model gives on ``encode(x)``, in fewer passes over the data.

        >>> FixFormat(3, 1).encode_index([-100.0, -4.0, 0.25, 0.75, 3.5]).tolist()
        [0, 0, 8, 10, 15]
        """
        xp = namespace(x)
        scaled = self._scaled(xp, x, True)
        scaled -= float(self.min_code)  # integers below 2**width: exact in either float type
        return xp.astype(scaled, xp.int32 if self.width <= 31 else xp.int64)

    def _scaled(self, xp, x, saturate: bool):
        """Real values times 2**frac_bits, rounded half to even and (``saturate``) clamped to
        the code range, as a new floating array of integral values (float32 for a float32
        input and a format up to 23 bits, float64 otherwise)."""
        # float32 values of a format up to 23 bits wide are encoded in float32: the range
        # bounds and every code are float32 numbers, so clipping, scaling by a power of two
        # and rounding are exact there as in float64 (the same codes, half the memory traffic)
        if not (self.width <= 23 and _is_float32(xp, x)):
            x = _float64(xp, x)
        # clamp first, so that huge values and infinities cannot overflow the scaling: to the
        # range when saturating (rounding a value in range stays in range), one step beyond
        # it otherwise (enough to be reported); scaling by a power of two is exact, round()
        # is half to even in NumPy and torch alike. The clamp makes a new array; the scaling
        # and the rounding then work in place on it.
        if saturate:
            lo, hi = self.min_value, self.max_value
        else:
            lo, hi = self.min_value - 1.0, self.max_value + 1.0
        scaled = clip(xp, x, lo, hi)
        scaled *= 2.0**self.frac_bits
        scaled = round_(xp, scaled)
        if xp.isnan(xp.sum(scaled)):  # finite after the clamp unless NaN
            raise ValueError(f"cannot encode NaN into {self}")
        if not saturate:
            bad = (scaled < self.min_code) | (scaled > self.max_code)
            if xp.any(bad):
                raise ValueError(
                    f"value {float(xp.reshape(x[bad], (-1,))[0])!r} is outside {self} "
                    f"[{self.min_value}, {self.max_value}]; use a wider format or saturate=True"
                )
        return scaled

    def decode(self, codes, dtype=None, *, checked: bool = False) -> np.ndarray:
        """Real values of codes (exact: every code of a format up to 48 bits is a float64).

        ``dtype`` (a floating dtype of the codes' library, default float64): the float64
        values cast to it (float32 directly, with the same single rounding). ``checked``:
        the codes are an int64 array already known to lie in the format (a model's output),
        so the range check is skipped.
        """
        xp = namespace(codes)
        if not checked:
            codes = self.check_codes(codes)
        if dtype is None or dtype == xp.float64 or dtype == xp.float32:
            # an integer rounded to float32 and then scaled by a power of two is exact there
            # (no overflow, no underflow: codes are below 2**48, multiples of 2**-48)
            real = xp.astype(codes, xp.float64 if dtype is None else dtype, copy=True)
            real *= 2.0**-self.frac_bits  # in place: a new array, one pass less to allocate
            return real
        return xp.astype(xp.astype(codes, xp.float64) * 2.0**-self.frac_bits, dtype)

    def check_codes(self, codes, what: str = "code") -> np.ndarray:
        """Return ``codes`` as int64, raising a one-line error if any is outside the format."""
        xp = namespace(codes)
        arr = codes if not is_numpy(xp) else np.asarray(codes)
        is_int = xp.isdtype(arr.dtype, "integral")
        integral = is_int or (
            xp.isdtype(arr.dtype, "real floating")
            and bool(xp.all(xp.isfinite(arr) & (arr == xp.round(arr))))
        )
        if not integral:
            raise TypeError(
                f"{what}s must be integers (raw {self} codes), not {arr.dtype} values; "
                f"use {self!s}.encode() to quantize real numbers"
            )
        # range check in the array's own type, before any cast could wrap or overflow
        lo, hi = extrema(xp, arr) if size(arr) else (0, 0)
        if lo < self.min_code or hi > self.max_code:
            bad = (arr < self.min_code) | (arr > self.max_code)
            first = xp.reshape(arr[bad], (-1,))[0]
            raise ValueError(
                f"{what} {int(first) if is_int else float(first)!r} is outside "
                f"{self} ({self.min_code}..{self.max_code}); pass raw codes of that format"
            )
        return xp.astype(arr, xp.int64, copy=is_numpy(xp))

    def to_bits(self, codes) -> np.ndarray:
        """Codes as the unsigned bit patterns on the wire (two's complement for signed)."""
        return self.check_codes(codes) & ((1 << self.width) - 1)

    def from_bits(self, bits) -> np.ndarray:
        """Inverse of :meth:`to_bits`: read unsigned bit patterns of ``width`` bits as codes."""
        xp = namespace(bits)
        bits = bits if not is_numpy(xp) else np.asarray(bits)
        if not xp.isdtype(bits.dtype, "integral") or xp.any((bits < 0) | (bits >= 1 << self.width)):
            raise ValueError(f"bit patterns must be {self.width}-bit unsigned integers")
        bits = xp.astype(bits, xp.int64)
        if self.signed:
            bits = xp.where(bits >> (self.width - 1) != 0, bits - (1 << self.width), bits)
        return bits


@dataclass(frozen=True)
class PositFormat:
    """An n-bit posit with ``es`` exponent bits (posit standard, 2022).

    Codes are the raw n-bit patterns 0 .. 2**n - 1 as int64; ``1 << (n - 1)`` is NaR (decodes
    to NaN), negative values are the two's complement of their magnitude's pattern.

    Parameters
    ----------
    n : int
        Width, 2 to 16 bits.
    es : int
        Exponent bits, 0 to 4; ``useed = 2**(2**es)``.

    Members
    -------
    nar : int
        The NaR pattern.
    minpos, maxpos : float
        Smallest and largest positive values.
    """

    n: int
    es: int

    def __post_init__(self):
        for field, lo, hi in (("n", 2, 16), ("es", 0, 4)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"PositFormat {field} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"PositFormat {field} must be {lo} to {hi}, not {value!r}")

    def __str__(self) -> str:
        return f"posit<{self.n},{self.es}>"

    @property
    def tag(self) -> str:
        """Short name for module names: ``p4e1``."""
        return f"p{self.n}e{self.es}"

    @property
    def nar(self) -> int:
        return 1 << (self.n - 1)

    @property
    def width(self) -> int:
        return self.n

    @property
    def minpos(self) -> float:
        return float(self._table()[1])

    @property
    def maxpos(self) -> float:
        return float(self._table()[self.nar - 1])

    def all_codes(self) -> np.ndarray:
        return np.arange(1 << self.n, dtype=np.int64)

    def _table(self) -> np.ndarray:
        return _posit_table(self.n, self.es)

    def decode(self, codes) -> np.ndarray:
        """Real values of patterns (NaR -> NaN); raises for codes outside 0 .. 2**n - 1."""
        xp = namespace(codes)
        arr = codes if not is_numpy(xp) else np.asarray(codes)
        if not xp.isdtype(arr.dtype, "integral"):
            raise TypeError(f"posit codes must be integer bit patterns, not {arr.dtype} values")
        bad = (arr < 0) | (arr >= 1 << self.n)
        if xp.any(bad):
            raise ValueError(
                f"code {int(xp.reshape(arr[bad], (-1,))[0])} is not a {self.n}-bit pattern of "
                f"{self}; pass 0 .. {(1 << self.n) - 1}"
            )
        return lookup(xp, self._table(), xp.astype(arr, xp.int64))

    def encode(self, x) -> np.ndarray:
        """Round reals to patterns: nearest, ties to the even pattern, in the standard's sense.

        The boundary between two neighbouring posits is the value of the (n+1)-bit posit
        whose pattern lies between theirs, so where exponent bits are cut off the boundary is
        a power of two rather than the arithmetic midpoint. No underflow to zero and no
        overflow to NaR: magnitudes beyond the range (infinities included) saturate to
        minpos / maxpos; 0 stays 0; NaN raises.

        >>> PositFormat(4, 1).encode([3.0, 5.0, 8.0, 9.0, 100.0, 1e-9, -1.0]).tolist()
        [6, 6, 6, 7, 7, 1, 12]
        """
        xp = namespace(x)
        x = _float64(xp, x)
        if xp.any(xp.isnan(x)):
            raise ValueError(f"cannot encode NaN into {self}; posit NaR is not a rounding result")
        values, bounds = self._rounding_points()
        mag = xp.abs(x)
        if len(bounds):
            # index of the positive pattern 1 .. nar-1: count boundaries below |x|
            on = on_device(xp, bounds, x)
            idx = xp.astype(xp.searchsorted(on, mag, side="left"), xp.int64)
            code = idx + 1  # bounds[i] separates i+1 and i+2
            tie = (idx < len(bounds)) & (
                mag == lookup(xp, bounds, clip(xp, idx, None, len(bounds) - 1))
            )
        else:  # posit<2, es> has a single positive value: no boundaries, no ties
            code = xp.ones(mag.shape, dtype=xp.int64, device=array_api_compat.device(mag))
            tie = code == 0
        # at a tie the lower neighbour is `code`, the upper `code + 1`: take the even pattern
        code = xp.where(tie & (code % 2 == 1), code + 1, code)
        code = xp.where(mag == 0, 0, code)
        negative = x < 0
        return xp.astype(xp.where(negative, (-code) & ((1 << self.n) - 1), code), xp.int64)

    def _rounding_points(self) -> tuple[np.ndarray, np.ndarray]:
        return _posit_rounding_points(self.n, self.es)


@functools.cache
def _posit_table(n: int, es: int) -> np.ndarray:
    """Value of every pattern, by the standard's definition (sign, regime, exponent, fraction;
    bits missing at the end are zeros)."""
    return np.array([_posit_value(c, n, es) for c in range(1 << n)])


@functools.cache
def _posit_rounding_points(n: int, es: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive values and the boundaries between neighbours (the (n+1)-bit midpoints)."""
    nar = 1 << (n - 1)
    positives = _posit_table(n, es)[1:nar]
    bounds = np.array([_posit_value((c << 1) | 1, n + 1, es) for c in range(1, nar - 1)])
    return positives, bounds


def _posit_value(code: int, n: int, es: int) -> float:
    """Value of one n-bit posit pattern, straight from the definition."""
    mask = (1 << n) - 1
    code &= mask
    if code == 0:
        return 0.0
    if code == 1 << (n - 1):
        return float("nan")
    sign = code >> (n - 1)
    if sign:
        code = (-code) & mask
    bits = [(code >> k) & 1 for k in range(n - 2, -1, -1)]  # after the sign bit
    run = 1
    while run < len(bits) and bits[run] == bits[0]:
        run += 1
    regime = run - 1 if bits[0] == 1 else -run
    rest = bits[run + 1 :]  # skip the terminating bit (absent when the run fills the word)
    exp_bits = (rest[:es] + [0] * es)[:es]
    exponent = int("".join(map(str, exp_bits)) or "0", 2)
    frac_bits = rest[es:]
    fraction = int("".join(map(str, frac_bits)) or "0", 2) / (1 << len(frac_bits))
    value = 2.0 ** (regime * (1 << es) + exponent) * (1.0 + fraction)
    return -value if sign else value


# -- rounding and saturation helpers ----------------------------------------------------------


def shift_round_half_up(v, shift, *, overwrite: bool = False) -> np.ndarray:
    """Divide integers by ``2**shift`` rounding to nearest, ties towards +infinity.

    This is "add half an LSB, then drop bits": one adder in hardware. ``shift <= 0`` is an
    exact left shift.

    >>> shift_round_half_up([5, 6, 7, -5, -6, -7], 2).tolist()   # /4: 1.25 1.5 1.75 ...
    [1, 2, 2, -1, -1, -2]

    ``shift`` may also be an array (one shift per element, broadcast against ``v``):

    >>> shift_round_half_up([6, 6, 6], [2, 0, -1]).tolist()
    [2, 6, 12]

    ``overwrite``: ``v`` is an int64 array of the caller's own that it no longer needs, of
    the result's shape; the result is written into it (one allocation less per call).

    An array ``shift`` may be a NumPy array with a CPU tensor ``v`` (a model's per-row shifts,
    worked out in NumPy: :func:`golden.arrays.row_namespace`); the result is a tensor.
    """
    shift_array = array_api_compat.is_array_api_obj(shift)
    if not shift_array and np.ndim(shift) == 0:
        xp = namespace(v)
        v = int64(xp, v)
        shift = int(shift)
        if shift <= 0:
            if overwrite:
                v <<= -shift
                return v
            return v << -shift
        if overwrite:
            v += 1 << (shift - 1)
            out = v
        else:
            out = v + (1 << (shift - 1))
        out >>= shift  # in place on the new array
        return out
    # per-element shifts: a left shift by max(-shift, 0), then half an LSB added and a right
    # shift by max(shift, 0); the shift-sized terms are formed once (often one per row), in
    # the shift's own library (NumPy for a CPU tensor's row shifts), then brought to v's
    xs = namespace(shift) if shift_array else namespace(v)
    xp = namespace(v) if array_api_compat.is_array_api_obj(v) else xs
    if xs is not xp and not (is_numpy(xs) and row_namespace(xp, v) is xs):
        raise TypeError(f"arrays of two libraries, {xp.__name__} and {xs.__name__}")
    v = int64(xp, v)
    shift = int64(xs, shift, v if xs is xp else None)
    right = clip(xs, shift, 0, None)
    half = from_rows(xp, (1 << right) >> 1)  # 2**(shift - 1), 0 where shift <= 0
    if xs.any(shift < 0):  # (a pass over the shifts, saving one over the elements)
        v = v << from_rows(xp, clip(xs, -shift, 0, None))
        overwrite = True  # a new array now, of the broadcast shape
    right = from_rows(xp, right)
    if overwrite and _fits(half.shape, v.shape):
        v += half
        out = v
    else:
        out = v + half
    out >>= right  # in place on the new array
    return out


def _fits(small: tuple, big: tuple) -> bool:
    """Whether an array of shape ``small`` broadcasts to ``big`` without enlarging it."""
    return len(small) <= len(big) and all(
        a in (1, b) for a, b in zip(reversed(small), reversed(big), strict=False)
    )


def shift_round_half_even(v, shift: int) -> np.ndarray:
    """Divide integers by ``2**shift`` rounding to nearest, ties to the even result.

    >>> shift_round_half_even([2, 6, 10, -2, -6, 5], 2).tolist()  # 0.5 1.5 2.5 -0.5 -1.5 1.25
    [0, 2, 2, 0, -2, 1]
    """
    xp = namespace(v)
    v = int64(xp, v)
    if shift <= 0:
        return v << -shift
    q = v >> shift
    rem = v - (q << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + xp.astype(up, xp.int64)


def saturate(v, fmt: FixFormat) -> np.ndarray:
    """Clamp integer codes into ``fmt``'s range.

    >>> saturate([-200, 5, 200], FixFormat(4, 4)).tolist()
    [-128, 5, 127]
    """
    xp = namespace(v)
    return clip(xp, int64(xp, v), fmt.min_code, fmt.max_code)


def saturate_(v, fmt: FixFormat):
    """:func:`saturate` written into ``v``, an int64 array of the caller's own that it no
    longer needs (one allocation less); returns it."""
    return clip_(namespace(v), v, fmt.min_code, fmt.max_code)


def _is_float32(xp, x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and dtype == (np.float32 if is_numpy(xp) else xp.float32)


def _float64(xp, x):
    """Real values as a float64 array of ``xp`` (float32 and integers convert exactly)."""
    if is_numpy(xp):
        return np.asarray(x, dtype=np.float64)
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)
