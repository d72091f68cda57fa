"""Number formats shared by every operator: fixed point now, posits later.

A format is a small immutable object that maps real numbers to the integer *codes* the hardware
sees and back. Codes are always NumPy ``int64`` arrays holding the value of the word as a
two's-complement (signed formats) or plain binary (unsigned formats) integer, so that
``decode(code) == code * 2**-frac_bits`` exactly.

The rounding helpers at the bottom are the only places where the project rounds; golden models
call them so that rounding and its tie cases are defined once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

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
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError(f"cannot encode NaN into {self}")
        # clamp first (one step beyond the range is enough to saturate or be reported) so
        # that huge values and infinities cannot overflow the scaling
        lo, hi = self.min_value - 1.0, self.max_value + 1.0
        scaled = np.rint(np.ldexp(np.clip(x, lo, hi), self.frac_bits))  # rint: half to even
        if not saturate:
            bad = (scaled < self.min_code) | (scaled > self.max_code)
            if bad.any():
                raise ValueError(
                    f"value {float(x[bad].flat[0])!r} is outside {self} "
                    f"[{self.min_value}, {self.max_value}]; use a wider format or saturate=True"
                )
        return np.clip(scaled, self.min_code, self.max_code).astype(np.int64)

    def decode(self, codes) -> np.ndarray:
        """Real values of codes (exact: every code of a format up to 48 bits is a float64)."""
        return np.ldexp(self.check_codes(codes).astype(np.float64), -self.frac_bits)

    def check_codes(self, codes, what: str = "code") -> np.ndarray:
        """Return ``codes`` as int64, raising a one-line error if any is outside the format."""
        arr = np.asarray(codes)
        integral = arr.dtype.kind in "iu" or (
            arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr) & (arr == np.rint(arr))))
        )
        if not integral:
            raise TypeError(
                f"{what}s must be integers (raw {self} codes), not {arr.dtype} values; "
                f"use {self!s}.encode() to quantize real numbers"
            )
        # range check in the array's own type, before any cast could wrap or overflow
        bad = (arr < self.min_code) | (arr > self.max_code)
        if bad.any():
            first = arr[bad].flat[0]
            raise ValueError(
                f"{what} {int(first) if arr.dtype.kind in 'iu' else float(first)!r} is outside "
                f"{self} ({self.min_code}..{self.max_code}); pass raw codes of that format"
            )
        return arr.astype(np.int64)

    def to_bits(self, codes) -> np.ndarray:
        """Codes as the unsigned bit patterns on the wire (two's complement for signed)."""
        return self.check_codes(codes) & ((1 << self.width) - 1)

    def from_bits(self, bits) -> np.ndarray:
        """Inverse of :meth:`to_bits`: read unsigned bit patterns of ``width`` bits as codes."""
        bits = np.asarray(bits)
        if bits.dtype.kind not in "iu" or ((bits < 0) | (bits >= 1 << self.width)).any():
            raise ValueError(f"bit patterns must be {self.width}-bit unsigned integers")
        bits = bits.astype(np.int64)
        if self.signed:
            bits = np.where(bits >> (self.width - 1) != 0, bits - (1 << self.width), bits)
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
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"posit codes must be integer bit patterns, not {arr.dtype} values")
        bad = (arr < 0) | (arr >= 1 << self.n)
        if bad.any():
            raise ValueError(
                f"code {int(arr[bad].flat[0])} is not a {self.n}-bit pattern of {self}; "
                f"pass 0 .. {(1 << self.n) - 1}"
            )
        return self._table()[arr.astype(np.int64)]

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
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError(f"cannot encode NaN into {self}; posit NaR is not a rounding result")
        values, bounds = self._rounding_points()
        mag = np.abs(x)
        # index of the positive pattern 1 .. nar-1: count boundaries below |x|
        idx = np.searchsorted(bounds, mag, side="left")  # bounds[i] separates i+1 and i+2
        code = idx + 1
        if len(bounds):
            tie = (idx < len(bounds)) & (mag == bounds[np.minimum(idx, len(bounds) - 1)])
        else:  # posit<2, es> has a single positive value: no boundaries, no ties
            tie = np.zeros(mag.shape, dtype=bool)
        # at a tie the lower neighbour is `code`, the upper `code + 1`: take the even pattern
        code = np.where(tie & (code % 2 == 1), code + 1, code)
        code = np.where(mag == 0, 0, code)
        negative = x < 0
        return np.where(negative, (-code) & ((1 << self.n) - 1), code).astype(np.int64)

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


def shift_round_half_up(v, shift) -> np.ndarray:
    """Divide integers by ``2**shift`` rounding to nearest, ties towards +infinity.

    This is "add half an LSB, then drop bits": one adder in hardware. ``shift <= 0`` is an
    exact left shift.

    >>> shift_round_half_up([5, 6, 7, -5, -6, -7], 2).tolist()   # /4: 1.25 1.5 1.75 ...
    [1, 2, 2, -1, -1, -2]

    ``shift`` may also be an array (one shift per element, broadcast against ``v``):

    >>> shift_round_half_up([6, 6, 6], [2, 0, -1]).tolist()
    [2, 6, 12]
    """
    v = np.asarray(v, dtype=np.int64)
    if np.ndim(shift) == 0:
        shift = int(shift)
        if shift <= 0:
            return v << -shift
        return (v + (1 << (shift - 1))) >> shift
    shift = np.asarray(shift, dtype=np.int64)
    right = np.maximum(shift, 1)
    return np.where(
        shift > 0, (v + (np.int64(1) << (right - 1))) >> right, v << np.maximum(-shift, 0)
    )


def shift_round_half_even(v, shift: int) -> np.ndarray:
    """Divide integers by ``2**shift`` rounding to nearest, ties to the even result.

    >>> shift_round_half_even([2, 6, 10, -2, -6, 5], 2).tolist()  # 0.5 1.5 2.5 -0.5 -1.5 1.25
    [0, 2, 2, 0, -2, 1]
    """
    v = np.asarray(v, dtype=np.int64)
    if shift <= 0:
        return v << -shift
    q = v >> shift
    rem = v - (q << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def saturate(v, fmt: FixFormat) -> np.ndarray:
    """Clamp integer codes into ``fmt``'s range.

    >>> saturate([-200, 5, 200], FixFormat(4, 4)).tolist()
    [-128, 5, 127]
    """
    return np.clip(np.asarray(v, dtype=np.int64), fmt.min_code, fmt.max_code)
