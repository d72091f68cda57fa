"""Piecewise-linear GELU: parameters, fitted tables, bit-exact model and float64 reference.

Algorithm
---------
GELU(x) = x * Phi(x) = ReLU(x) - c(|x|), where c(a) = a * Phi(-a) is even in x, non-negative,
at most 0.170 (at a = 0.752) and below 5e-15 for a >= 8. The hardware computes ReLU(x) exactly
and approximates only the small correction c with ``segments`` linear pieces of |x|, the last
of which is exactly zero (large inputs come out as exactly ReLU(x)).

With m = |x| and G = ``icpt_fmt.frac_bits`` fractional bits:

    row   = the table row of m                           (see Breakpoints)
    d     = offset of m in its row                       (``offset_bits`` wide)
    N     = J[row] + sum_j u_j(d)                        (one small sum)
    y     = floor((ReLU(x) * 2**(G - in_frac) + N) / 2**(G - out_frac)), saturated

(when in_frac or out_frac exceed G the sum is formed at the largest of the three, with the
half-LSB added there).
J is the stored row constant: minus the piece's line at the row start, plus half an output
LSB, so the one shift at the end rounds half up. The slope product is folded into N negated:

* ``SlopeMode.SHIFT_ADD`` (default): slope S has at most ``slope_terms`` nonzero digits in
  canonical signed-digit form (``terms``); digit (s, k) adds the copy of d shifted to weight
  2**(k - slope_frac), truncated to G fractional bits (``m_j``): ``u_j = m_j`` for a negative
  digit, ``u_j = ~m_j = -m_j - 1`` (bitwise complement, no adder) for a positive one;
* ``SlopeMode.MULT``: ``u = floor(-S * d / 2**(slope_frac + in_frac - G))``, one multiplier.

Breakpoints
-----------
``Breakpoints.GRID`` (default): the pieces start on multiples of a block of ``2**offset_bits``
codes, and the table has one row per block below ``limit = 2**(offset_bits + grid_bits)``
(``grid_bits`` = min(6, bit length of (segments - 1) + 2): 64 rows from 16 segments on, one
6-input LUT per ROM bit on xc7). The limit is |x| = 4 (c(4) = 1.3e-4), or the largest power of
two the input format holds. The row is the bit-slice ``m[offset_bits:][:grid_bits]`` and d the
bits below it, so the lookup is a ROM of ``2**grid_bits`` words in LUTs: no comparator, no
subtraction. Rows of one piece store the same slope and the same line (J differs by the slope
times the block offset, rounded to G bits); the correction is zero from the flat piece on and
for every m >= limit. Pieces are unions of blocks, so a grid fit can never beat the free fit
with the same pieces; with 64 blocks on [0, 4) the grid also stops improving past about 32
pieces (blocks of 2**-4 cannot be split).

``Breakpoints.FREE``: the pieces start anywhere (``starts``); the row is the number of starts
<= m (one comparator per breakpoint) and d = m - start (one subtraction).

Fitting
-------
Each piece is fitted on the input code grid to minimise the maximum error, not as a chord:

* for one piece and one slope S the best intercept is the midpoint of the range of
  c(a) - S * d, and the error is half that range; it is convex in S, so the best admissible
  slope is found by bisection over the sorted admissible codes;
* free breakpoints: for a target error eps the pieces are placed greedily, each as long as it
  can be, and bisection on eps finds the smallest maximum error that ``segments`` pieces
  reach; grid: a dynamic programme over the blocks finds the minimax partition exactly;
* the realised integer datapath is then tuned per piece: the three admissible slopes nearest
  the best one and every intercept code within two output LSBs of the midpoint are tried,
  keeping the pair with the smallest error of the rounded output.

Error bound (tested exhaustively)
---------------------------------
For every input code, ``|decode(emulate(x)) - clip(GELU(x))| <= tables(p).bound``.
:func:`tables` evaluates the rounded output of every input code of every piece exactly, so
``bound`` is the realised maximum (saturation only moves a result closer); it is at most
``fit_error + 2**-(out_frac + 1)`` (``fit_error``: the largest |c_hat - c| before the output
rounding). The default configuration's bound is 1.531e-3, below 2**-9 = 1.95e-3 (free
breakpoints with the same 16 pieces: see README).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .arrays import clip as _clip
from .arrays import int64, lookup, namespace, on_device, size
from .formats import FixFormat, saturate
from .params import ParamsBase, Workload, check_enum, check_fix, check_int

__all__ = [
    "pareto_sweep",
    "SlopeMode",
    "Breakpoints",
    "GeluParams",
    "GeluTables",
    "tables",
    "emulate",
    "code_table",
    "reference",
    "reference_codes",
    "error_stats",
    "standard_cases",
    "random_cases",
    "workload",
    "param_sweep",
    "naf_digits",
]

# Beyond |x| = 8 the correction term is below 5e-15, far under any output LSB: the fit stops
# there and the last (flat) segment covers the rest.
_FIT_LIMIT = 8.0
# Widest ROM address (grid rows, without the sign bit): one 6-input LUT per bit on xc7 with it.
_MAX_GRID_BITS = 6


class SlopeMode(enum.Enum):
    """How segment slopes are represented in hardware."""

    #: Any ``slope_fmt`` code: one small multiplier (maps to a DSP block where one exists).
    MULT = "mult"
    #: At most ``slope_terms`` signed powers of two: shifts and adds, no multiplier.
    SHIFT_ADD = "shift_add"


class Breakpoints(enum.Enum):
    """Where pieces may start."""

    #: On multiples of a power-of-two block: the row is a bit-slice of |x| (a ROM in LUTs).
    GRID = "grid"
    #: Anywhere: one comparator per breakpoint and a subtraction for the offset.
    FREE = "free"


@dataclass(frozen=True)
class GeluParams(ParamsBase):
    """Configuration of the piecewise-linear GELU.

    Parameters
    ----------
    in_fmt : FixFormat
        Input word. Default s6.10: 16 bits covering [-32, 32) in steps of 2**-10. DeiT's MLP
        pre-activations mostly lie in [-10, 10] with rare outliers beyond 20; 6 integer bits keep
        them unsaturated while 10 fractional bits put the input step (1e-3) well under the
        2**-9 error target.
    out_fmt : FixFormat
        Output word (signed: GELU dips to -0.17). Default s6.10, the same as the input so that
        GELU(x) ~ x for large x is never saturated.
    segments : int
        Number of linear pieces, 4 to 64, the last one flat (the tail of the correction).
    slope_mode : SlopeMode
        ``shift_add`` (default, no multiplier) or ``mult``.
    slope_terms : int
        Signed power-of-two terms allowed per slope in ``shift_add`` mode, 1 to 4.
    slope_fmt : FixFormat
        Word of a segment slope of the correction term (|c'| <= 0.5). Default s1.12.
    icpt_fmt : FixFormat
        Word of a row constant J and of the correction sum N; its fractional bits G are those
        every slope term is truncated to. Default s1.12 (c <= 0.17; G = out_frac + 2: the
        truncation of the two slope terms costs about 1.2e-4 against s1.16, and every bit of G
        costs about 4 LUTs of ROM and adders).
    breakpoints : Breakpoints
        ``grid`` (default: bit-slice row index, ROM in LUTs) or ``free`` (comparators).
    """

    op = "gelu"

    in_fmt: FixFormat = FixFormat(6, 10)
    out_fmt: FixFormat = FixFormat(6, 10)
    segments: int = 16
    slope_mode: SlopeMode = SlopeMode.SHIFT_ADD
    slope_terms: int = 2
    slope_fmt: FixFormat = FixFormat(1, 12)
    icpt_fmt: FixFormat = FixFormat(1, 12)
    breakpoints: Breakpoints = Breakpoints.GRID

    def __post_init__(self):
        check_fix("gelu", "in_fmt", self.in_fmt, signed=True, why=" (GELU takes both signs)")
        check_fix("gelu", "out_fmt", self.out_fmt, signed=True, why=" (GELU(x) < 0 for x < 0)")
        check_int("gelu", "segments", self.segments, 4, 64)
        object.__setattr__(
            self, "slope_mode", check_enum("gelu", "slope_mode", self.slope_mode, SlopeMode)
        )
        object.__setattr__(
            self, "breakpoints", check_enum("gelu", "breakpoints", self.breakpoints, Breakpoints)
        )
        check_int("gelu", "slope_terms", self.slope_terms, 1, 4)
        check_fix("gelu", "slope_fmt", self.slope_fmt, signed=True, why=" (slopes change sign)")
        check_fix("gelu", "icpt_fmt", self.icpt_fmt, signed=True)
        # the widest word is the mult mode's product, summed in G fractional bits
        wide = max(self.in_fmt.frac_bits + self.slope_fmt.frac_bits, self.icpt_fmt.frac_bits)
        if wide + self.in_fmt.int_bits + self.slope_fmt.int_bits + 2 > 62:
            raise ValueError(
                f"gelu internal word would need more than 62 bits "
                f"(in_fmt {self.in_fmt}, slope_fmt {self.slope_fmt}, icpt_fmt {self.icpt_fmt}); "
                f"use fewer fractional bits"
            )

    @property
    def acc_frac(self) -> int:
        """Fractional bits G of the correction sum N (those of ``icpt_fmt``)."""
        return self.icpt_fmt.frac_bits

    @property
    def grid_bits(self) -> int:
        """Row address bits of the grid ROM."""
        return min(_MAX_GRID_BITS, (self.segments - 1).bit_length() + 2)

    @property
    def name(self) -> str:
        """Module and file name, e.g. ``gelu_i16f10_o16f10_s16``; non-default choices append."""
        name = f"gelu_i{self.in_fmt.tag}_o{self.out_fmt.tag}_s{self.segments}"
        if self.slope_mode is SlopeMode.MULT:
            name += "_mult"
        elif self.slope_terms != 2:
            name += f"_t{self.slope_terms}"
        if self.slope_fmt != FixFormat(1, 12):
            name += f"_sl{self.slope_fmt.tag}"
        if self.icpt_fmt != FixFormat(1, 12):
            name += f"_ic{self.icpt_fmt.tag}"
        if self.breakpoints is Breakpoints.FREE:
            name += "_free"
        return name


@dataclass(frozen=True)
class GeluTables:
    """Everything the hardware bakes in, computed from :class:`GeluParams` alone.

    Members
    -------
    breakpoints : Breakpoints
        How the row is found (see the module documentation).
    starts : ndarray of int64, shape (K,)
        First magnitude code of each piece; ``starts[0] == 0``; the last piece is flat.
    slopes : ndarray of int64, shape (K,)
        Slope codes in ``slope_fmt``; the last is 0.
    terms : tuple of tuple of (int, int)
        Per piece, the canonical signed-digit terms ``(sign, shift)`` with
        ``slope == sum(sign << shift)``: what the shift-and-add datapath adds.
    row_piece : ndarray of int64, shape (R,)
        The piece of each table row (grid: one row per block; free: row k is piece k).
    rom_icpt : ndarray of int64, shape (R,)
        The stored row constant J of each row, in G fractional bits: ``half`` minus the piece's
        line at the row start (see the module docs); ``half`` in flat rows.
    offset_bits : int
        Width of d. Grid: the block's bits. Free: enough for every sloped piece (the flat last
        piece's offset may be truncated to it, since it is multiplied by 0).
    grid_bits : int
        Grid: row address bits (``limit = 2**(offset_bits + grid_bits)``); free: 0.
    half : int
        Half an output LSB in G fractional bits (0 when G equals out_frac): J of a flat row.
    seg_error : ndarray of float64, shape (K,)
        Realised maximum output error in each piece (both signs, after rounding).
    fit_error : float
        Largest |c_hat - c| over every magnitude, before the output rounding.
    bound : float
        Maximum |emulate - GELU| over every input code (see the module docstring).
    saturates : bool
        Whether some input's result lies outside ``out_fmt`` before saturation (if not, the
        hardware needs no saturation logic).
    """

    breakpoints: Breakpoints
    starts: np.ndarray
    slopes: np.ndarray
    terms: tuple
    row_piece: np.ndarray
    rom_icpt: np.ndarray
    offset_bits: int
    grid_bits: int
    half: int
    seg_error: np.ndarray
    fit_error: float
    bound: float
    saturates: bool = True

    @property
    def limit(self) -> int:
        """First magnitude code past the grid ROM (grid); past every code (free)."""
        if self.breakpoints is Breakpoints.GRID:
            return 1 << (self.offset_bits + self.grid_bits)
        return 1 << 62


# -- canonical signed digits -------------------------------------------------------------------


def naf_digits(n: int) -> list[tuple[int, int]]:
    """Non-adjacent form of an integer: the fewest signed powers of two that sum to it.

    >>> naf_digits(7)          # 8 - 1
    [(-1, 0), (1, 3)]
    >>> naf_digits(-6)         # -8 + 2
    [(1, 1), (-1, 3)]
    """
    digits, shift = [], 0
    n = int(n)
    while n:
        if n & 1:
            d = 1 if n % 4 == 1 else -1
            digits.append((d, shift))
            n -= d
        n >>= 1
        shift += 1
    return digits


@functools.lru_cache(maxsize=16)
def _admissible_slopes(p: GeluParams) -> np.ndarray:
    # the most negative code is left out so that -S (what the hardware adds) fits slope_fmt
    codes = np.arange(p.slope_fmt.min_code + 1, p.slope_fmt.max_code + 1, dtype=np.int64)
    if p.slope_mode is SlopeMode.MULT:
        return codes
    ok = np.array([len(naf_digits(c)) <= p.slope_terms for c in codes])
    return codes[ok]


def _shift(v, k: int):
    """``v * 2**k`` rounded down (an arithmetic shift either way)."""
    return v << k if k >= 0 else v >> -k


def _slope_sum(p: GeluParams, slope: int, d):
    """sum of u_j (module docs): minus slope * d in G fractional bits, as the hardware adds."""
    d = np.asarray(d, dtype=np.int64)
    k0 = p.acc_frac - p.in_fmt.frac_bits - p.slope_fmt.frac_bits
    if p.slope_mode is SlopeMode.MULT:
        return _shift(-int(slope) * d, k0)
    total = np.zeros_like(d)
    for sign, shift in naf_digits(slope):
        m = _shift(d, shift + k0)
        total += ~m if sign > 0 else m
    return total


# -- fitting -------------------------------------------------------------------------------------


class _Fitter:
    """Continuous minimax of one piece on the |x| code grid (see module docstring)."""

    def __init__(self, p: GeluParams):
        f_in = p.in_fmt.frac_bits
        self.a_cap = int(min(-p.in_fmt.min_code, math.ceil(_FIT_LIMIT * 2**f_in)))
        a = np.arange(self.a_cap + 1, dtype=np.int64)
        ar = np.ldexp(a.astype(np.float64), -f_in)
        self.c = ar * ndtr(-ar)
        # derivative of c in real units per real unit, converted to slope codes
        dc = ndtr(-ar) - ar * np.exp(-0.5 * ar * ar) / math.sqrt(2 * math.pi)
        self.dc_codes = np.ldexp(dc, p.slope_fmt.frac_bits)
        self.unit = 2.0 ** -(f_in + p.slope_fmt.frac_bits)  # real value of slope code x d code
        self.slopes = _admissible_slopes(p)
        self.k = p.segments

    def _errors(self, lo: int, hi: int, cands: np.ndarray) -> np.ndarray:
        d = np.arange(hi - lo + 1, dtype=np.float64) * self.unit
        r = self.c[lo : hi + 1, None] - d[:, None] * cands[None, :].astype(np.float64)
        return (r.max(axis=0) - r.min(axis=0)) / 2

    def best_slope(self, lo: int, hi: int) -> tuple[int, float]:
        """Admissible slope code minimising the piece's minimax error, and that error."""
        hi = min(hi, self.a_cap)
        if lo >= hi:
            return 0, 0.0
        s = self.slopes
        i = max(int(np.searchsorted(s, math.floor(self.dc_codes[lo : hi + 1].min()))) - 1, 0)
        j = min(int(np.searchsorted(s, math.ceil(self.dc_codes[lo : hi + 1].max()))) + 1, len(s))
        while j - i > 8:  # convex in the slope: bisect on the sign of the forward difference
            m = (i + j) // 2
            e = self._errors(lo, hi, s[m - 1 : m + 1])
            if e[0] <= e[1]:
                j = m
            else:
                i = m
        e = self._errors(lo, hi, s[i:j])
        best = int(np.argmin(e))
        return int(s[i + best]), float(e[best])

    def tail_error(self, lo: int) -> float:
        # the last piece is exactly zero (GELU(x) = ReLU(x) out there, no bias on large
        # inputs); its error is the largest correction it leaves out
        return float(self.c[lo:].max()) if lo <= self.a_cap else float(self.c[-1])

    def cover(self, eps: float) -> list[int] | None:
        """Greedy piece starts reaching error eps, or None if K pieces cannot."""
        starts, lo = [], 0
        for k in range(self.k):
            starts.append(lo)
            if self.tail_error(lo) <= eps:
                return starts
            if k == self.k - 1 or lo > self.a_cap:
                return None
            good, bad = lo, self.a_cap + 1  # largest hi with error <= eps lies in [good, bad)
            while bad - good > 1:
                mid = (good + bad) // 2
                # a piece serves magnitudes lo..hi, and one code more for negative inputs
                if self.best_slope(lo, mid + 1)[1] <= eps:
                    good = mid
                else:
                    bad = mid
            lo = good + 1
        return None

    def fit_free(self) -> list[int]:
        lo_eps, hi_eps = 0.0, self.tail_error(0)
        best = self.cover(hi_eps)
        for _ in range(24):
            mid = (lo_eps + hi_eps) / 2
            starts = self.cover(mid)
            if starts is None:
                lo_eps = mid
            else:
                hi_eps, best = mid, starts
        # fewer pieces than asked for reach the same error: split the longest ones (splitting
        # never increases a piece's error) so the hardware has exactly K rows
        ends = best[1:] + [self.a_cap + 1]
        while len(best) < self.k:
            lengths = [e - s for s, e in zip(best[:-1], ends[:-1], strict=True)]
            w = int(np.argmax(lengths)) if lengths else 0
            if not lengths or lengths[w] < 2:
                best.append(best[-1] + 1)  # degenerate tiny formats: an empty extra piece
            else:
                best.insert(w + 1, best[w] + lengths[w] // 2)
            ends = best[1:] + [self.a_cap + 1]
        return best

    def fit_grid(self, block: int, blocks: int) -> tuple[list[int], float]:
        """Minimax partition of ``blocks`` blocks of ``block`` codes into at most K - 1 sloped
        pieces and the flat one (dynamic programme); the starts and the continuous error."""
        err = np.full((blocks + 1, blocks + 1), np.inf)
        for i in range(blocks):
            for j in range(i + 1, blocks + 1):
                err[i, j] = self.best_slope(i * block, j * block)[1]
        tail = [self.tail_error(j * block) for j in range(blocks + 1)]
        # g[j]: best error covering blocks [0, j) with the pieces used so far; back pointers
        g = np.full(blocks + 1, np.inf)
        g[0] = 0.0
        back = []
        best = (tail[0], 0, 0)  # (error, sloped pieces, end block)
        for n in range(1, self.k):
            cand = np.maximum(g[:, None], err)  # [i, j]: pieces up to i, then one over [i, j)
            prev = np.argmin(cand, axis=0)
            g = cand[prev, np.arange(blocks + 1)]
            back.append(prev)
            for j in range(1, blocks + 1):
                e = max(g[j], tail[j])
                if e < best[0] - 1e-15:
                    best = (e, n, j)
        _, n, j = best
        ends = [j]
        for level in range(n - 1, -1, -1):
            j = int(back[level][j])
            ends.append(j)
        starts = [e * block for e in reversed(ends)]  # 0, ..., start of the flat piece
        return starts, best[0]


def _round_shift(v, k: int):
    """``v / 2**k`` rounded half up (exact left shift when k <= 0); ints or int64 arrays."""
    return v << -k if k <= 0 else (v + (1 << (k - 1))) >> k


class _Realiser:
    """Integer tables for given piece starts: slope and intercept per piece by exhaustive
    search of the rounded output (module docstring, Fitting)."""

    def __init__(self, p: GeluParams, fitter: _Fitter, starts, rows):
        self.p, self.fitter = p, fitter
        self.starts = [int(s) for s in starts]
        self.row_starts = np.asarray(rows, dtype=np.int64)  # first magnitude of each row
        self.half = _halves(p)[0]
        self.shift_out = p.acc_frac - p.out_fmt.frac_bits
        self.k_line = p.slope_fmt.frac_bits + p.in_fmt.frac_bits - p.acc_frac

    def _codes(self, lo: int, hi: int):
        m = np.arange(lo, hi, dtype=np.int64)
        row = np.searchsorted(self.row_starts, m, side="right") - 1
        return m, row

    def _outputs(self, n, x):
        return np.ldexp(_combine(self.p, x, n).astype(np.float64), -self.p.out_fmt.frac_bits)

    def piece(self, k: int):
        """(slope, intercept, realised output error, realised |c_hat - c|) of sloped piece k."""
        p, fit = self.p, self.fitter
        g = p.acc_frac
        lo, hi = self.starts[k], self.starts[k + 1]
        s0, _ = fit.best_slope(lo, hi)
        pos = int(np.searchsorted(fit.slopes, s0))
        m, row = self._codes(lo, hi)
        rs = self.row_starts[row]
        sides = []
        for x in (m, -m):
            sides.append((x, reference(p, p.in_fmt.decode(x)), _correction(p, x)))
        best = None
        for slope in (int(s) for s in fit.slopes[max(pos - 1, 0) : pos + 2]):
            # N = base - I: everything but the piece's intercept I (G fractional bits)
            base = (
                self.half
                - _round_shift(slope * (rs - lo), self.k_line)
                + _slope_sum(p, slope, m - rs)
            )
            bases = [base, base]
            chat0 = np.concatenate([self.half - b for b in bases]).astype(np.float64)
            c = np.concatenate([side[2] for side in sides])
            r = np.ldexp(c, g) - chat0
            mid = int(round((r.max() + r.min()) / 2))
            span = 2 << max(self.shift_out, 0)
            icpts = np.arange(mid - span, mid + span + 1, dtype=np.int64)
            err = np.zeros(len(icpts))
            for (x, exact, _), base in zip(sides, bases, strict=True):
                y = self._outputs(base[None, :] - icpts[:, None], x[None, :])
                err = np.maximum(err, np.abs(y - exact[None, :]).max(axis=1))
            i = int(np.argmin(err))
            if best is None or err[i] < best[2]:
                chat = np.ldexp(chat0 + icpts[i], -g)
                best = (slope, int(icpts[i]), float(err[i]), float(np.abs(chat - c).max()))
        return best

    def flat(self, lo: int) -> tuple[float, float]:
        """Realised output error and |c| of the flat piece from magnitude ``lo`` on."""
        p = self.p
        err, fit = 0.0, 0.0
        for x in (np.arange(lo, p.in_fmt.max_code + 1), -np.arange(lo, -p.in_fmt.min_code + 1)):
            x = x.astype(np.int64)
            y = self._outputs(np.full(x.shape, self.half), x)
            err = max(err, float(np.abs(y - reference(p, p.in_fmt.decode(x))).max(initial=0)))
            fit = max(fit, float(_correction(p, x).max(initial=0)))
        return err, fit


def _correction(p: GeluParams, x) -> np.ndarray:
    """c(|x|) = |x| Phi(-|x|) of input codes x, float64."""
    a = np.abs(p.in_fmt.decode(x))
    return a * ndtr(-a)


def _halves(p: GeluParams) -> tuple[int, int]:
    """Half an output LSB for rounding: (folded into every row constant J, in G bits; added
    at the end, in H = max(G, in_frac, out_frac) bits when G < H). One of them is 0."""
    g, o = p.acc_frac, p.out_fmt.frac_bits
    h = max(g, p.in_fmt.frac_bits, o)
    if h <= o:
        return 0, 0
    return (1 << (g - o - 1), 0) if g == h else (0, 1 << (h - o - 1))


def _combine(p: GeluParams, x, n) -> np.ndarray:
    """The output before saturation: ReLU(x) plus N (G bits), rounded to out_frac."""
    g, h = p.acc_frac, max(p.acc_frac, p.in_fmt.frac_bits, p.out_fmt.frac_bits)
    relu = namespace(x).clip(x, 0, None) << (h - p.in_fmt.frac_bits)
    return (relu + (n << (h - g)) + _halves(p)[1]) >> (h - p.out_fmt.frac_bits)


def _realise(p: GeluParams, fitter: _Fitter, starts, row_starts, block) -> GeluTables:
    rz = _Realiser(p, fitter, starts, row_starts)
    k = len(starts)
    slopes = np.zeros(k, dtype=np.int64)
    icpts = np.zeros(k, dtype=np.int64)
    seg_error, fit_error = np.zeros(k), 0.0
    for i in range(k - 1):
        slopes[i], icpts[i], seg_error[i], fit = rz.piece(i)
        fit_error = max(fit_error, fit)
    seg_error[-1], fit = rz.flat(starts[-1])
    fit_error = max(fit_error, fit)
    row_starts = np.asarray(row_starts, dtype=np.int64)
    row_piece = np.searchsorted(np.asarray(starts), row_starts, side="right") - 1
    rom = np.full(len(row_starts), rz.half, dtype=np.int64)
    for r, (start, piece) in enumerate(zip(row_starts, row_piece, strict=True)):
        if piece < k - 1:
            line = _round_shift(int(slopes[piece]) * int(start - starts[piece]), rz.k_line)
            rom[r] = rz.half - int(icpts[piece]) - line
    p.icpt_fmt.check_codes(rom, "gelu row constant (widen icpt_fmt)")
    if block is None:
        longest = max((b - a for a, b in zip(starts[:-1], starts[1:], strict=True)), default=1)
        offset_bits, grid_bits = max(1, (longest - 1).bit_length()), 0
    else:
        offset_bits, grid_bits = block.bit_length() - 1, (len(row_starts) - 1).bit_length()
    return GeluTables(
        breakpoints=p.breakpoints,
        starts=np.array(starts, dtype=np.int64),
        slopes=slopes,
        terms=tuple(tuple(naf_digits(s)) for s in slopes),
        row_piece=row_piece.astype(np.int64),
        rom_icpt=rom,
        offset_bits=offset_bits,
        grid_bits=grid_bits,
        half=rz.half,
        seg_error=seg_error,
        fit_error=fit_error,
        bound=float(seg_error.max()),
    )


@functools.lru_cache(maxsize=64)
def tables(p: GeluParams) -> GeluTables:
    """Fit the pieces for ``p`` (cached: a few seconds)."""
    t = _fit(p)
    raw = datapath(p, p.in_fmt.all_codes(), t, clip=False)
    over = bool(((raw < p.out_fmt.min_code) | (raw > p.out_fmt.max_code)).any())
    return dataclasses.replace(t, saturates=over)


def _fit(p: GeluParams) -> GeluTables:
    fitter = _Fitter(p)
    if p.breakpoints is Breakpoints.FREE:
        starts = fitter.fit_free()
        return _realise(p, fitter, starts, starts, None)
    bits = p.grid_bits
    # the ROM ends at |x| = 4 (c(4) = 1.3e-4) or at the format's largest power of two
    limit_bits = min(p.in_fmt.frac_bits + 2, p.in_fmt.width - 1)
    block_bits = max(limit_bits - bits, 0)
    bits = limit_bits - block_bits
    starts, _ = fitter.fit_grid(1 << block_bits, 1 << bits)
    rows = np.arange(1 << bits, dtype=np.int64) << block_bits
    return _realise(p, fitter, starts, rows, 1 << block_bits)


def row_terms(p: GeluParams, t: GeluTables):
    """Per table row, what the slope datapath adds (the hardware's ROM fields).

    ``mult``: one array, minus the slope of each row. ``shift_add``: per term position j a
    tuple ``(nonzero, complement, shift)`` of arrays over rows: digit j of the row's slope is
    present, positive (its copy of d enters complemented), and the left shift of d (negative:
    right shift, truncating) that gives its weight in G fractional bits.
    """
    slopes = t.slopes[t.row_piece]
    if p.slope_mode is SlopeMode.MULT:
        return -slopes
    k0 = p.acc_frac - p.in_fmt.frac_bits - p.slope_fmt.frac_bits
    digits = [t.terms[k] for k in t.row_piece]
    n_terms = max((len(d) for d in digits), default=0)
    out = []
    for j in range(n_terms):
        present = [d[j] if j < len(d) else None for d in digits]
        out.append(
            (
                np.array([int(d is not None) for d in present], dtype=np.int64),
                np.array([int(d is not None and d[0] > 0) for d in present], dtype=np.int64),
                np.array([d[1] + k0 if d is not None else 0 for d in present], dtype=np.int64),
            )
        )
    return out


# -- the models ----------------------------------------------------------------------------------


def emulate(p: GeluParams, codes) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.gelu.GeluPWL`: ``in_fmt`` codes in, ``out_fmt`` out.

    Vectorised over any array shape. Raises ``ValueError`` for codes outside ``in_fmt``.
    """
    x = p.in_fmt.check_codes(codes, "gelu input code")
    if size(x) > _LUT_THRESHOLD and p.in_fmt.width <= TABLE_MAX_WIDTH:
        # large arrays: every code's result evaluated once by the datapath below, then looked
        # up (the same function of one code; a DeiT forward pass has millions of elements)
        return lookup(namespace(x), _all_codes(p), x - p.in_fmt.min_code)
    return datapath(p, x, tables(p))


_LUT_THRESHOLD = 1 << 16
#: widest input format :func:`code_table` tabulates (2**20 codes, 8 MiB)
TABLE_MAX_WIDTH = 20


def code_table(p: GeluParams) -> np.ndarray:
    """The model's result for every ``in_fmt`` code, in the order of ``in_fmt.all_codes()``
    (read-only int64 ``out_fmt`` codes, computed once by the datapath): entry
    ``c - in_fmt.min_code`` is ``emulate(p, c)``. For input formats up to
    :data:`TABLE_MAX_WIDTH` bits; a caller that reads it at ``in_fmt.encode_index(x)``
    gets ``emulate(p, in_fmt.encode(x))``.
    """
    if p.in_fmt.width > TABLE_MAX_WIDTH:
        raise ValueError(
            f"code_table tabulates input formats up to {TABLE_MAX_WIDTH} bits, not {p.in_fmt} "
            f"({p.in_fmt.width}); call emulate instead"
        )
    return _all_codes(p)


@functools.lru_cache(maxsize=16)
def _all_codes(p: GeluParams) -> np.ndarray:
    out = datapath(p, p.in_fmt.all_codes(), tables(p))
    out.setflags(write=False)
    return out


def _datapath(p: GeluParams, x: np.ndarray) -> np.ndarray:
    """The datapath with the fitted tables, bypassing the whole-array lookup (for tests)."""
    return datapath(p, x, tables(p))


def row_of(p: GeluParams, t: GeluTables, x) -> np.ndarray:
    """The table row each input code reads (-1: none, the grid's tail)."""
    xp = namespace(x)
    m = xp.abs(int64(xp, x))
    if t.breakpoints is Breakpoints.GRID:
        return xp.where(m < t.limit, m >> t.offset_bits, -1)
    bounds = on_device(xp, t.starts, m)[1:]
    return xp.astype(xp.searchsorted(bounds, m, side="right"), xp.int64)


def datapath(p: GeluParams, x: np.ndarray, t: GeluTables, *, clip: bool = True) -> np.ndarray:
    """The hardware's integer datapath on checked ``in_fmt`` codes with tables ``t`` (``clip``:
    saturate to ``out_fmt``, as the hardware does)."""
    xp = namespace(x)
    x = int64(xp, x)
    row = row_of(p, t, x)
    m = xp.abs(x)
    tail = row < 0
    row = _clip(xp, row, 0, None)
    if t.breakpoints is Breakpoints.GRID:
        d = m & ((1 << t.offset_bits) - 1)
    else:  # wraps only in the flat last piece, whose terms are zero
        d = (m - lookup(xp, t.starts, lookup(xp, t.row_piece, row))) & ((1 << t.offset_bits) - 1)
    n = lookup(xp, t.rom_icpt, row)
    fields = row_terms(p, t)
    k0 = p.acc_frac - p.in_fmt.frac_bits - p.slope_fmt.frac_bits
    if p.slope_mode is SlopeMode.MULT:
        n = n + _shift(lookup(xp, fields, row) * d, k0)
    else:
        for nonzero, complement, shift in fields:
            k = lookup(xp, shift, row)
            mag = xp.where(k >= 0, d << _clip(xp, k, 0, None), d >> _clip(xp, -k, 0, None))
            n = n + lookup(xp, nonzero, row) * xp.where(lookup(xp, complement, row) == 1, ~mag, mag)
    n = xp.where(tail, t.half, n)
    y = _combine(p, x, n)
    return saturate(y, p.out_fmt) if clip else y


def reference(p: GeluParams, x) -> np.ndarray:
    """Exact GELU, x * Phi(x), in float64 on real values (``p`` is accepted for symmetry)."""
    x = np.asarray(x, dtype=np.float64)
    return x * ndtr(x)


def reference_codes(p: GeluParams, codes) -> np.ndarray:
    """The ideal output for input codes: exact GELU of the decoded input, clipped to out_fmt."""
    y = reference(p, p.in_fmt.decode(codes))
    return np.clip(y, p.out_fmt.min_value, p.out_fmt.max_value)


def error_stats(p: GeluParams) -> dict[str, float]:
    """Error of :func:`emulate` against :func:`reference_codes` over every input code."""
    codes = p.in_fmt.all_codes()
    err = np.abs(p.out_fmt.decode(emulate(p, codes)) - reference_codes(p, codes))
    return {
        "inputs": int(codes.size),
        "max_abs": float(err.max()),
        "mean_abs": float(err.mean()),
        "rms": float(np.sqrt(np.mean(err**2))),
        "bound": tables(p).bound,
    }


# -- test vectors --------------------------------------------------------------------------------


def standard_cases(p: GeluParams) -> dict[str, np.ndarray]:
    """Named corner cases: format extremes, zero, one LSB, both sides of every breakpoint and
    of every table row (magnitudes, both signs), the correction's peak and the tail."""
    f = p.in_fmt
    t = tables(p)
    edges = np.unique(np.concatenate([t.starts[1:], _row_starts(t)[1:], [t.limit]]))
    around = np.concatenate([edges - 1, edges, edges + 1])
    around = around[(around >= 0) & (around <= f.max_code)]
    peak = int(f.encode(0.752))
    cases = {
        "zero": [0],
        "one_lsb": [1, -1],
        "extremes": [f.min_code, f.min_code + 1, f.max_code, f.max_code - 1],
        "breakpoints": np.concatenate([around, -around]),
        "correction_peak": [peak, -peak],
        "tail": [int(f.encode(_FIT_LIMIT)), -int(f.encode(_FIT_LIMIT))],
    }
    return {
        k: f.check_codes(np.unique(np.clip(v, f.min_code, f.max_code)), "case")
        for k, v in cases.items()
    }


def _row_starts(t: GeluTables) -> np.ndarray:
    if t.breakpoints is Breakpoints.GRID:
        return np.arange(len(t.row_piece), dtype=np.int64) << t.offset_bits
    return t.starts


def random_cases(p: GeluParams, n: int, seed: int = 0) -> np.ndarray:
    """Biased random inputs: half uniform over all codes, half like DeiT's (N(0, 3) values)."""
    rng = np.random.default_rng(seed)
    f = p.in_fmt
    uniform = rng.integers(f.min_code, f.max_code + 1, size=n - n // 2)
    gauss = f.encode(rng.normal(0.0, 3.0, size=n // 2))
    return np.concatenate([uniform, gauss]).astype(np.int64)


def param_sweep() -> list[GeluParams]:
    """Configurations worth verifying: segment counts, slope modes, breakpoints, formats."""
    d = GeluParams()
    return [
        d,
        d.replace(segments=8),
        d.replace(breakpoints=Breakpoints.FREE),
        d.replace(slope_mode=SlopeMode.MULT),
        d.replace(segments=4, in_fmt=FixFormat(5, 11), out_fmt=FixFormat(4, 12)),
        d.replace(segments=32, slope_terms=3),
        d.replace(segments=64, slope_mode=SlopeMode.MULT),
        d.replace(segments=24, breakpoints=Breakpoints.FREE, slope_mode=SlopeMode.MULT),
    ]


def workload(p: GeluParams, n: int, seed: int = 0) -> Workload:
    """``n`` inputs distributed like DeiT's MLP pre-activations (N(0, 3) values)."""
    codes = p.in_fmt.encode(np.random.default_rng(seed).normal(0.0, 3.0, n))
    return Workload(codes, "N(0, 3) values (DeiT MLP pre-activations)")


def pareto_sweep() -> list[GeluParams]:
    """Segments 4 to 64 in both slope modes (the report's error-against-LUT study)."""
    return [GeluParams(segments=s, slope_mode=m) for m in SlopeMode for s in (4, 8, 16, 32, 64)]
