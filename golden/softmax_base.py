"""Softmax baselines: what a user builds without PEANO-ViT's approximations.

Two kinds, with the ports, row framing and word formats of :mod:`golden.softmax` (s6.10
logits in, u1.15 probabilities out, rows of 1 to ``max_len`` elements), so either one can
replace :class:`hwgen.cores.softmax.Softmax`:

``div`` -- table exponential and a real divider
-----------------------------------------------
1. Row maximum m; distance d_i = m - x_i >= 0 (exact, ``in_fmt`` units).
2. n_i = d_i * log2(e) (one constant multiply, log2 e rounded to ``log2e_fmt``), rounded to
   ``exp_bits`` fractional bits: n = z + j / 2**exp_bits. Then e^-d = 2^-z * 2^(-j/2**exp_bits)
   with the second factor from a table of 2**``exp_bits`` entries (``exp_fmt`` words; the
   default 2048 x 18 bits is one RAMB36 / two ECP5 DP16KD), and the power of two a right
   shift rounded half up. Entries with z > ``exp_fmt.frac_bits + 1`` are flushed to 0
   (below half an LSB).
3. S = sum e_i, exact in ``sum_fmt`` (wide enough for ``max_len`` ones).
4. p_i = e_i / S by a restoring divider with one quotient bit per pipeline stage
   (``out_fmt.frac_bits + 2`` stages, one element per clock), giving
   floor(e_i * 2**(out_frac + 1) / S); adding 1 and halving rounds the exact quotient
   e_i / S half up to ``out_fmt`` (nested floors: floor((floor(2q) + 1) / 2) = floor(q + 1/2)).

``lut`` -- hls4ml-style tables
------------------------------
Modelled on hls4ml's ``softmax_stable`` (nnet_activation.h): d = x_i - max is cast to
``inp_norm_t`` (rounded half up, saturated), the top bits of that word index a 1024-entry
table of e^d (``exp_table_t``), the exponentials are summed, the sum is cast to ``inv_inp_t``
(rounded, saturated) and its top bits index a 1024-entry table of 1/x (``inv_table_t``); the
output is exp * inverse, one multiplier. Here:

1. d_i = m - x_i rounded half up to ``diff_fmt`` (hls4ml ``inp_norm_t``) and saturated;
   that word is the index of the exp table (2**width entries, 1024 for the default u4.6),
   whose entry j is e^(-j * step) in ``exp_fmt`` (step = the word's LSB; the rounding puts
   each entry at the centre of the interval of d it serves).
2. S = sum e_i, exact in ``sum_fmt`` (hls4ml sums in ``exp_table_t`` or a widened accumulator).
3. S rounded half up to ``inv_in_fmt`` (hls4ml ``inv_inp_t``) and saturated; that word
   indexes a table of 1/s (2**width entries, 1024 for the default u8.2; ``recip_fmt`` words;
   entry j holds 1/(j * step), saturated; indices below s = 1 never occur because the row
   maximum contributes e = 1).
4. p_i = e_i * recip rounded half up to ``out_fmt`` (hls4ml truncates by default), one
   multiplier per element.

Differences from hls4ml, each in the baseline's favour: the difference d is non-negative by
construction, so its word is unsigned and every exp entry is used (hls4ml slices the top 10
bits of a signed word and leaves the positive half of the table unused); the table words are
unsigned u1.17 instead of ap_fixed<18,8> (seven idle integer bits in hls4ml's default); the
row sum is exact before the cast; the output is rounded, not truncated; each index word is
exactly as wide as its table is deep (hls4ml also slices the top bits of a wider word, which
truncates after the rounding; its HGQ flow asks for equal widths). The reciprocal index is a
fixed-point cast of the sum, as in hls4ml, so its resolution is uniform in s while 1/s varies
fastest at small s: a row sum just above 1 is off by up to half a step. The default
``inv_in_fmt`` u8.2 is hls4ml's default resolution (``inv_inp_t`` ap_fixed<18,8>: step 1/4)
and covers every sum of a 256-element row; a finer word (u6.4) cuts the worst error of
:func:`error_stats` from 0.108 to 0.031 but saturates sums above 64, so that a row of 256
equal logits sums to 4.
:func:`param_sweep` also holds hls4ml's default precisions throughout.

Error bounds (tests/test_softmax_base.py asserts them)
------------------------------------------------------
Measured with :func:`error_stats` (Gaussian rows, standard deviations 0.25 to 8, lengths 1 to
``max_len``, plus the adversarial rows of :func:`golden.softmax.standard_cases` and three
aimed at the baselines) against the float64 softmax:

* ``div`` default: the table's relative error is at most ln2 * 2^-(exp_bits+1) = 1.7e-4 (plus
  about 6e-5 from log2 e at d = 12) and the division is exact up to the output rounding
  2^-16, so max |p - softmax| <= 4e-4 and |sum - 1| <= 2^-8. The maximum, 3.89e-4, is the
  ``one_dominant`` row, where 255 entries e^-12 each round to one LSB of u1.17: the same
  worst case and value as the approximate softmax (whose u1.18 words round them to two LSBs).
  Over 2000 random rows the maximum is 6.0e-5 against the approximate's 7.9e-5 (1.0e-4 with
  ``exp_bits`` 10, hence the default 11), and the mean error is lower: at least as accurate
  as the approximate softmax.
* ``lut`` default: the exp step 2^-6 gives relative errors up to 0.8% and the reciprocal's
  index step 1/4 up to 11% near s = 1 (1/1.125 read as 1), so max |p - softmax| <= 0.12 and
  |sum - 1| <= 0.13 (measured 0.100 to 0.110 and 0.112 to 0.124 over four seeds). This is
  about 300 times less accurate than the approximate softmax: a 1024-entry reciprocal table
  indexed by a fixed-point cast of the sum cannot resolve 1/s over s in [1, 256]; that is the
  hls4ml design, modelled as such.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np

from . import softmax as approx
from .arrays import int64, lookup, namespace
from .formats import FixFormat, saturate, shift_round_half_up
from .params import ParamsBase, check_enum, check_fix, check_int

__all__ = [
    "random_cases",
    "workload",
    "SoftmaxBaseKind",
    "SoftmaxBaseParams",
    "SoftmaxBaseTables",
    "tables",
    "emulate",
    "reference",
    "divide",
    "error_stats",
    "standard_cases",
    "random_rows",
    "param_sweep",
]


class SoftmaxBaseKind(enum.Enum):
    """Which baseline design."""

    #: Table exponential (2^-z * table(fraction)), exact sum, pipelined restoring divider.
    DIV = "div"
    #: hls4ml-style: exp table on the clamped difference, reciprocal table on the sum's top bits.
    LUT = "lut"


@dataclass(frozen=True)
class SoftmaxBaseParams(ParamsBase):
    """Configuration of a softmax baseline.

    Parameters
    ----------
    kind : SoftmaxBaseKind
        ``div`` (default) or ``lut``.
    in_fmt : FixFormat
        Logits, as :class:`golden.softmax.SoftmaxParams` (default s6.10).
    out_fmt : FixFormat
        Probabilities, unsigned with an integer bit for 1.0 (default u1.15).
    max_len : int
        Longest row, 2 to 4096; default 256. Rows end at ``last`` or after ``max_len``.
    exp_fmt : FixFormat
        Exp table words and e_i, u1.F (e <= 1). Default u1.17: 18-bit words, one block RAM.
    exp_bits : int
        ``div``: log2 of the exp table size, 4 to 12. Default 11 (2048 entries, 36 kbit: one
        RAMB36 on xc7); 10 saves half the table and has 2.4 times the exp error.
    log2e_fmt : FixFormat
        ``div``: the constant log2(e) of the range reduction. Default u1.16.
    diff_fmt : FixFormat
        ``lut``: unsigned word of d = max - x, the exp table's index (hls4ml ``inp_norm_t``),
        4 to 12 bits. Default u4.6: 1024 entries over [0, 16) in steps of 2^-6 (e^-16 is
        below an output LSB).
    inv_in_fmt : FixFormat
        ``lut``: unsigned word of the row sum, the reciprocal table's index (hls4ml
        ``inv_inp_t``), 4 to 12 bits. Default u8.2: 1024 entries over [0, 256) in steps of 1/4.
    recip_fmt : FixFormat
        ``lut``: reciprocal table words, u1.F (1/s <= 1). Default u1.17 (18 bits).
    """

    op = "softmax_base"

    kind: SoftmaxBaseKind = SoftmaxBaseKind.DIV
    in_fmt: FixFormat = FixFormat(6, 10)
    out_fmt: FixFormat = FixFormat(1, 15, signed=False)
    max_len: int = 256
    exp_fmt: FixFormat = FixFormat(1, 17, signed=False)
    exp_bits: int = 11
    log2e_fmt: FixFormat = FixFormat(1, 16, signed=False)
    diff_fmt: FixFormat = FixFormat(4, 6, signed=False)
    inv_in_fmt: FixFormat = FixFormat(8, 2, signed=False)
    recip_fmt: FixFormat = FixFormat(1, 17, signed=False)

    def __post_init__(self):
        op = self.op
        object.__setattr__(self, "kind", check_enum(op, "kind", self.kind, SoftmaxBaseKind))
        check_fix(op, "in_fmt", self.in_fmt, signed=True, why=" (logits take both signs)")
        check_fix(op, "out_fmt", self.out_fmt, signed=False, why=" (probabilities)")
        if self.out_fmt.int_bits < 1:
            raise ValueError(f"{op} out_fmt needs an integer bit to hold 1.0, not {self.out_fmt}")
        check_int(op, "max_len", self.max_len, 2, 4096)
        check_int(op, "exp_bits", self.exp_bits, 4, 12)
        for name in ("exp_fmt", "log2e_fmt", "recip_fmt"):
            fmt = getattr(self, name)
            check_fix(op, name, fmt, signed=False)
            if fmt.int_bits != 1:
                raise ValueError(
                    f"{op} {name} must have 1 integer bit (it holds values in [0, 2)), not {fmt}"
                )
        for name in ("diff_fmt", "inv_in_fmt"):
            fmt = getattr(self, name)
            check_fix(op, name, fmt, signed=False)
            if not 4 <= fmt.width <= 12:
                raise ValueError(
                    f"{op} {name} must be 4 to 12 bits wide (it addresses a table), not {fmt}"
                )
        if self.kind is SoftmaxBaseKind.DIV:
            if self.exp_bits > self.in_fmt.frac_bits + self.log2e_fmt.frac_bits:
                raise ValueError(
                    f"{op} exp_bits ({self.exp_bits}) must not exceed the fractional bits of "
                    f"d * log2(e) ({self.in_fmt.frac_bits + self.log2e_fmt.frac_bits})"
                )
            if self.out_fmt.frac_bits + 2 > 24:
                raise ValueError(
                    f"{op} out_fmt may have at most 22 fractional bits for the divider "
                    f"(one stage per quotient bit), not {self.out_fmt.frac_bits}"
                )
        else:
            if self.diff_fmt.frac_bits > self.in_fmt.frac_bits:
                raise ValueError(
                    f"{op} diff_fmt keeps more fractional bits ({self.diff_fmt.frac_bits}) than "
                    f"in_fmt has ({self.in_fmt.frac_bits})"
                )
            if self.inv_in_fmt.frac_bits > self.exp_fmt.frac_bits:
                raise ValueError(
                    f"{op} inv_in_fmt keeps more fractional bits ({self.inv_in_fmt.frac_bits}) "
                    f"than the row sum has ({self.exp_fmt.frac_bits})"
                )
            if self.exp_fmt.frac_bits + self.recip_fmt.frac_bits - self.out_fmt.frac_bits < 1:
                raise ValueError(
                    f"{op} out_fmt keeps more fractional bits ({self.out_fmt.frac_bits}) than "
                    f"e * recip has ({self.exp_fmt.frac_bits + self.recip_fmt.frac_bits})"
                )

    @property
    def sum_fmt(self) -> FixFormat:
        """Exact row-sum word: exp_fmt plus log2(max_len) integer bits (derived, not set)."""
        return FixFormat(
            self.exp_fmt.int_bits + (self.max_len - 1).bit_length(),
            self.exp_fmt.frac_bits,
            signed=False,
        )

    @property
    def flush_shift(self) -> int:
        """``div``: entries with z greater than this are flushed to 0 (below half an LSB)."""
        return self.exp_fmt.frac_bits + 1

    @property
    def quotient_bits(self) -> int:
        """``div``: quotient bits of the divider, one pipeline stage each."""
        return self.out_fmt.frac_bits + 2

    @property
    def exp_step(self) -> float:
        """``lut``: the value of d per exp-table entry."""
        return self.diff_fmt.resolution

    @property
    def inv_in_step(self) -> float:
        """``lut``: the value of the row sum per reciprocal-table entry."""
        return self.inv_in_fmt.resolution

    @property
    def name(self) -> str:
        """Module and file name, e.g. ``softmax_base_div_i16f10_ou16f15_n256``; the
        non-default fields that the kind uses are appended."""
        kind = self.kind.value
        name = f"softmax_base_{kind}_i{self.in_fmt.tag}_o{self.out_fmt.tag}_n{self.max_len}"
        default = SoftmaxBaseParams()
        fields = [("exp_fmt", "exp")]
        if self.kind is SoftmaxBaseKind.DIV:
            fields += [("exp_bits", "eb"), ("log2e_fmt", "l2e")]
        else:
            fields += [("diff_fmt", "d"), ("inv_in_fmt", "s"), ("recip_fmt", "rcp")]
        for field, tag in fields:
            value = getattr(self, field)
            if value != getattr(default, field):
                name += f"_{tag}{value.tag if isinstance(value, FixFormat) else value}"
        return name


@dataclass(frozen=True)
class SoftmaxBaseTables:
    """Constants the hardware bakes in, computed from :class:`SoftmaxBaseParams` alone.

    Members
    -------
    exp : ndarray of int64
        ``exp_fmt`` codes: ``div`` 2^(-j / 2**exp_bits), 2**exp_bits entries; ``lut``
        e^(-j * exp_step), one per ``diff_fmt`` code.
    log2e : int
        ``div``: log2(e) as a ``log2e_fmt`` code.
    recip : ndarray of int64
        ``lut``: ``recip_fmt`` codes of 1 / (j * inv_in_step), one per ``inv_in_fmt`` code,
        saturated (entry 0 is the largest code).
    """

    exp: np.ndarray
    log2e: int
    recip: np.ndarray


@functools.lru_cache(maxsize=64)
def tables(p: SoftmaxBaseParams) -> SoftmaxBaseTables:
    if p.kind is SoftmaxBaseKind.DIV:
        j = np.arange(2**p.exp_bits, dtype=np.float64)
        exp = p.exp_fmt.encode(np.exp2(-j / 2**p.exp_bits))
    else:
        j = np.arange(2**p.diff_fmt.width, dtype=np.float64)
        exp = p.exp_fmt.encode(np.exp(-j * p.exp_step))
    k = np.arange(2**p.inv_in_fmt.width, dtype=np.float64)
    with np.errstate(divide="ignore"):
        recip = p.recip_fmt.encode(np.where(k == 0, np.inf, 1.0 / (k * p.inv_in_step)))
    return SoftmaxBaseTables(
        exp=exp,
        log2e=int(p.log2e_fmt.encode(math.log2(math.e), saturate=False)),
        recip=recip,
    )


def _round_to(v, from_frac: int, fmt: FixFormat) -> np.ndarray:
    """Non-negative codes with ``from_frac`` fractional bits rounded half up to ``fmt`` and
    saturated (hls4ml's AP_RND, AP_SAT cast)."""
    return saturate(shift_round_half_up(v, from_frac - fmt.frac_bits), fmt)


def _exp(p: SoftmaxBaseParams, d) -> np.ndarray:
    """exp(-d) for d = max - x >= 0 in ``in_fmt`` units, as ``exp_fmt`` codes."""
    tb = tables(p)
    xp = namespace(d)
    d = int64(xp, d)
    if p.kind is SoftmaxBaseKind.LUT:
        return lookup(xp, tb.exp, _round_to(d, p.in_fmt.frac_bits, p.diff_fmt))
    frac = p.in_fmt.frac_bits + p.log2e_fmt.frac_bits
    q = shift_round_half_up(d * tb.log2e, frac - p.exp_bits)  # n to exp_bits fractional bits
    z = q >> p.exp_bits
    t = lookup(xp, tb.exp, q & ((1 << p.exp_bits) - 1))
    flushed = z > p.flush_shift
    return xp.where(flushed, 0, shift_round_half_up(t, xp.where(flushed, 0, z)))


def divide(p: SoftmaxBaseParams, e, s) -> np.ndarray:
    """``div``: e / s rounded half up to ``out_fmt`` for 0 <= e <= s, s > 0 (same units).

    The divider's result floor(e * 2**(out_frac + 1) / s), plus 1, halved.

    >>> p = SoftmaxBaseParams(out_fmt=FixFormat(1, 2, signed=False))
    >>> divide(p, [1, 1, 3, 5], [8, 3, 8, 5]).tolist()   # 0.125 -> 0.25 (tie up), 1/3, 3/8, 1
    [1, 1, 2, 4]
    """
    xp = namespace(e, s)
    e, s = int64(xp, e, s), int64(xp, s, e)
    q = (e << (p.out_fmt.frac_bits + 1)) // s
    return (q + 1) >> 1


def emulate(p: SoftmaxBaseParams, codes) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.softmax_base.SoftmaxBase`: the last axis is one row.

    Rows of length 1 to ``max_len``; any leading shape. Returns ``out_fmt`` codes.
    """
    x = p.in_fmt.check_codes(codes, "softmax_base input code")
    if x.ndim == 0 or not 1 <= x.shape[-1] <= p.max_len:
        length = "a scalar" if x.ndim == 0 else f"length {x.shape[-1]}"
        raise ValueError(
            f"softmax_base rows must have length 1 to max_len={p.max_len} on the last axis, "
            f"not {length}; raise max_len or split the rows"
        )
    xp = namespace(x)
    e = _exp(p, xp.max(x, axis=-1, keepdims=True) - x)
    s = xp.sum(e, axis=-1, keepdims=True)
    if p.kind is SoftmaxBaseKind.DIV:
        return divide(p, e, s)
    y = lookup(xp, tables(p).recip, _round_to(s, p.exp_fmt.frac_bits, p.inv_in_fmt))
    shift = p.exp_fmt.frac_bits + p.recip_fmt.frac_bits - p.out_fmt.frac_bits
    return saturate(shift_round_half_up(e * y, shift), p.out_fmt)


def reference(p: SoftmaxBaseParams, x) -> np.ndarray:
    """Float64 softmax over the last axis of real logits."""
    return approx.reference(p, x)


# -- test vectors ----------------------------------------------------------------------------------


def random_rows(p: SoftmaxBaseParams, n_rows: int, seed: int = 0) -> list[np.ndarray]:
    """The approximate softmax's row generator (:func:`golden.softmax.random_rows`)."""
    return approx.random_rows(p, n_rows, seed)


def standard_cases(p: SoftmaxBaseParams) -> dict[str, np.ndarray]:
    """The approximate softmax's named rows plus rows aimed at the baselines' tables."""
    f = p.in_fmt
    n = p.max_len
    cases = dict(approx.standard_cases(p))
    # lut: the row sum lands just above an index boundary / just above 1 / saturates
    near_one = np.full(n, f.encode(-9.0))
    near_one[0] = f.encode(0.0)
    cases["sum_near_one"] = near_one
    cases["two_equal_max"] = np.array([300, 300, -700, 100], dtype=np.int64)[: min(4, n)]
    # div: the quotient's tie and top bit (e == S when every other entry is flushed)
    cases["one_survivor"] = np.array([f.max_code] + [f.min_code] * (n - 1), dtype=np.int64)
    return cases


def error_stats(p: SoftmaxBaseParams, n_rows: int = 400, seed: int = 0) -> dict[str, float]:
    """Max and mean |p - softmax| and max |sum - 1| over random and adversarial rows, as
    :func:`golden.softmax.error_stats` measures them.

    ``target`` is the stated bound of max |p - softmax| for the default configuration of the
    kind (:data:`ERROR_BOUNDS`); other configurations are measured, not bounded.
    """
    rows = random_rows(p, n_rows, seed) + list(standard_cases(p).values())
    max_abs, sum_abs, count, max_sum = 0.0, 0.0, 0, 0.0
    for row in rows:
        y = p.out_fmt.decode(emulate(p, row))
        err = np.abs(y - reference(p, p.in_fmt.decode(row)))
        max_abs = max(max_abs, float(err.max()))
        sum_abs += float(err.sum())
        count += err.size
        max_sum = max(max_sum, abs(float(y.sum()) - 1.0))
    return {
        "rows": len(rows),
        "inputs": count,
        "max_abs": max_abs,
        "mean_abs": sum_abs / count,
        "max_sum_err": max_sum,
        "target": ERROR_BOUNDS[p.kind],
    }


#: Stated bounds of max |p - softmax| for the default of each kind (see the module docstring).
ERROR_BOUNDS = {SoftmaxBaseKind.DIV: 4e-4, SoftmaxBaseKind.LUT: 0.12}
#: Stated bounds of max |sum - 1| for the default of each kind.
SUM_BOUNDS = {SoftmaxBaseKind.DIV: 2.0**-8, SoftmaxBaseKind.LUT: 0.13}


def param_sweep() -> list[SoftmaxBaseParams]:
    """The default of each kind first, then variants worth synthesizing."""
    d = SoftmaxBaseParams()
    lut = d.replace(kind=SoftmaxBaseKind.LUT)
    return [
        d,
        lut,
        d.replace(exp_bits=10),
        d.replace(exp_bits=8, out_fmt=FixFormat(1, 11, signed=False), max_len=32),
        # hls4ml's default precisions: the top 10 bits of a signed s6.10 difference (the 512
        # entries of step 1/16 over [-32, 0] that it uses), inv_inp_t ap_fixed<18,8> (step 1/4),
        # exp_table_t / inv_table_t with 10 fractional bits
        lut.replace(
            diff_fmt=FixFormat(5, 4, signed=False),
            exp_fmt=FixFormat(1, 10, signed=False),
            recip_fmt=FixFormat(1, 10, signed=False),
        ),
        # short rows: a sum word of 5 integer bits covers them with steps of 1/32
        lut.replace(inv_in_fmt=FixFormat(5, 5, signed=False), max_len=32),
    ]


def random_cases(p: SoftmaxBaseParams, n: int, seed: int = 0) -> list[np.ndarray]:
    """The approximate softmax's random rows (:func:`golden.softmax.random_cases`)."""
    return approx.random_cases(p, n, seed)


def workload(p: SoftmaxBaseParams, n: int, seed: int = 0):
    """The approximate softmax's workload (:func:`golden.softmax.workload`)."""
    return approx.workload(p, n, seed)
