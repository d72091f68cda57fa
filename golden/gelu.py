"""Piecewise-linear GELU: parameters, fitted tables, bit-exact model and float64 reference.

Algorithm
---------
GELU(x) = x * Phi(x) = ReLU(x) - c(|x|), where c(a) = a * Phi(-a) is even in x, non-negative,
at most 0.170 (at a = 0.752) and below 5e-15 for a >= 8. The hardware computes ReLU(x) exactly
and approximates only the small correction c on a = |x| with ``segments`` linear pieces:

    k     = number of segment starts b_1 < ... < b_{K-1} that are <= a   (K - 1 comparators)
    c_hat = I_k * 2**(G - icpt_frac) + S_k * (a - b_k) * 2**(G - in_frac - slope_frac)
    y     = round_half_up(ReLU(x) * 2**(G - in_frac) - c_hat, G - out_frac), saturated

with every product exact in ``G = max(in_frac + slope_frac, icpt_frac)`` fractional bits and one
rounding at the end. The offset d = a - b_k is kept to ``offset_bits`` (enough for the longest
sloped segment). The last segment is exactly zero (slope and value 0): beyond its start GELU(x)
is computed as ReLU(x) with no bias, and inputs of any magnitude are handled.

In ``SlopeMode.MULT`` the slope S_k is any ``slope_fmt`` code (one small multiplier); in
``SlopeMode.SHIFT_ADD`` it is restricted to codes with at most ``slope_terms`` nonzero digits
in canonical signed-digit form, so S_k * d is a sum of shifted copies of d and needs no
multiplier. Both modes share this model; only the set of admissible slopes differs.

Fitting
-------
Segments are fitted on the input code grid (every code with |x| <= 8 or the format's limit) to
minimise the maximum error of c_hat, not as chords:

* for one segment and one slope S the best intercept is the midpoint of the range of
  c(a) - S * d, and the error is half that range; it is a convex function of S, so the best
  admissible slope is found by bisection over the sorted admissible codes, searching only
  between the smallest and largest derivative of c on the segment (where the minimax slope lies);
* for a target error eps the segments are placed greedily, each as long as it can be while its
  error stays <= eps; the greedy cover uses the fewest segments for that eps, so bisection on eps
  finds the smallest maximum error that ``segments`` pieces reach (discontinuous minimax PWL);
* intercepts are then rounded to ``icpt_fmt`` and the realised per-segment error measured.

Error bound (tested exhaustively)
---------------------------------
For every input code, ``|decode(emulate(x)) - clip(GELU(x))| <= tables(p).bound`` where
``bound = fit_error + 2**-(out_frac + 1)`` (``fit_error``: the measured maximum of
|c_hat - c| over the fitted grid and the tail; clip: saturation to ``out_fmt``). The default
configuration's bound is below 2**-8.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .formats import FixFormat, saturate, shift_round_half_up
from .params import ParamsBase, Workload, check_enum, check_fix, check_int

__all__ = [
    "SlopeMode",
    "GeluParams",
    "GeluTables",
    "tables",
    "emulate",
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


class SlopeMode(enum.Enum):
    """How segment slopes are represented in hardware."""

    #: Any ``slope_fmt`` code: one small multiplier (maps to a DSP block where one exists).
    MULT = "mult"
    #: At most ``slope_terms`` signed powers of two: shifts and adds, no multiplier.
    SHIFT_ADD = "shift_add"


@dataclass(frozen=True)
class GeluParams(ParamsBase):
    """Configuration of the piecewise-linear GELU.

    Parameters
    ----------
    in_fmt : FixFormat
        Input word. Default s6.10: 16 bits covering [-32, 32) in steps of 2**-10. DeiT's MLP
        pre-activations mostly lie in [-10, 10] with rare outliers beyond 20; 6 integer bits keep
        them unsaturated while 10 fractional bits put the input step (1e-3) well under the
        2**-8 error target.
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
        Word of a segment's value at its start (c <= 0.17). Default s1.16.
    """

    op = "gelu"

    in_fmt: FixFormat = FixFormat(6, 10)
    out_fmt: FixFormat = FixFormat(6, 10)
    segments: int = 16
    slope_mode: SlopeMode = SlopeMode.SHIFT_ADD
    slope_terms: int = 2
    slope_fmt: FixFormat = FixFormat(1, 12)
    icpt_fmt: FixFormat = FixFormat(1, 16)

    def __post_init__(self):
        check_fix("gelu", "in_fmt", self.in_fmt, signed=True, why=" (GELU takes both signs)")
        check_fix("gelu", "out_fmt", self.out_fmt, signed=True, why=" (GELU(x) < 0 for x < 0)")
        check_int("gelu", "segments", self.segments, 4, 64)
        object.__setattr__(
            self, "slope_mode", check_enum("gelu", "slope_mode", self.slope_mode, SlopeMode)
        )
        check_int("gelu", "slope_terms", self.slope_terms, 1, 4)
        check_fix("gelu", "slope_fmt", self.slope_fmt, signed=True, why=" (slopes change sign)")
        check_fix("gelu", "icpt_fmt", self.icpt_fmt, signed=True)
        if self.acc_frac + self.in_fmt.int_bits + self.slope_fmt.int_bits + 2 > 62:
            raise ValueError(
                f"gelu internal word would need more than 62 bits "
                f"(in_fmt {self.in_fmt}, slope_fmt {self.slope_fmt}, icpt_fmt {self.icpt_fmt}); "
                f"use fewer fractional bits"
            )

    @property
    def acc_frac(self) -> int:
        """Fractional bits G of the exact internal sum ReLU(x) - c_hat."""
        return max(self.in_fmt.frac_bits + self.slope_fmt.frac_bits, self.icpt_fmt.frac_bits)

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
        if self.icpt_fmt != FixFormat(1, 16):
            name += f"_ic{self.icpt_fmt.tag}"
        return name


@dataclass(frozen=True)
class GeluTables:
    """Everything the hardware bakes in, computed from :class:`GeluParams` alone.

    Members
    -------
    starts : ndarray of int64, shape (K,)
        First |x| code of each segment; ``starts[0] == 0``.
    slopes : ndarray of int64, shape (K,)
        Slope codes in ``slope_fmt``; the last is 0.
    icpts : ndarray of int64, shape (K,)
        Value of the correction at each segment start, codes in ``icpt_fmt``; the last is 0.
    terms : tuple of tuple of (int, int)
        Per segment, the canonical signed-digit terms ``(sign, shift)`` with
        ``slope == sum(sign << shift)``: what the shift-and-add datapath adds.
    offset_bits : int
        Width of the offset d = |x| - start: enough for every sloped segment. The flat last
        segment's offset may be truncated to it, since it is multiplied by 0.
    seg_error : ndarray of float64, shape (K,)
        Measured maximum |c_hat - c| in each segment (before output rounding).
    fit_error : float
        ``max(seg_error)``.
    bound : float
        Guaranteed maximum |emulate - GELU| (see the module docstring).
    """

    starts: np.ndarray
    slopes: np.ndarray
    icpts: np.ndarray
    terms: tuple
    offset_bits: int
    seg_error: np.ndarray
    fit_error: float
    bound: float


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


def _admissible_slopes(p: GeluParams) -> np.ndarray:
    codes = np.arange(p.slope_fmt.min_code, p.slope_fmt.max_code + 1, dtype=np.int64)
    if p.slope_mode is SlopeMode.MULT:
        return codes
    ok = np.array([len(naf_digits(c)) <= p.slope_terms for c in codes])
    return codes[ok]


# -- fitting -------------------------------------------------------------------------------------


class _Fitter:
    """Minimax placement of segments on the |x| code grid (see module docstring)."""

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
        """Admissible slope code minimising the segment's minimax error, and that error."""
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
        # the last segment is exactly zero (GELU(x) = ReLU(x) out there, no bias on large
        # inputs); its error is the largest correction it leaves out
        return float(self.c[lo:].max()) if lo <= self.a_cap else float(self.c[-1])

    def cover(self, eps: float) -> list[int] | None:
        """Greedy segment starts reaching error eps, or None if K segments cannot."""
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
                if self.best_slope(lo, mid)[1] <= eps:
                    good = mid
                else:
                    bad = mid
            lo = good + 1
        return None

    def fit(self) -> list[int]:
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
        # never increases a segment's error) so the hardware has exactly K entries
        ends = best[1:] + [self.a_cap + 1]
        while len(best) < self.k:
            lengths = [e - s for s, e in zip(best[:-1], ends[:-1], strict=True)]
            w = int(np.argmax(lengths)) if lengths else 0
            if not lengths or lengths[w] < 2:
                best.append(best[-1] + 1)  # degenerate tiny formats: an empty extra segment
            else:
                best.insert(w + 1, best[w] + lengths[w] // 2)
            ends = best[1:] + [self.a_cap + 1]
        return best


@functools.lru_cache(maxsize=64)
def tables(p: GeluParams) -> GeluTables:
    """Fit the segments for ``p`` (cached: a few seconds for 64 segments)."""
    fitter = _Fitter(p)
    starts = fitter.fit()
    k = len(starts)
    slopes = np.zeros(k, dtype=np.int64)
    icpts = np.zeros(k, dtype=np.int64)
    g = p.acc_frac
    seg_error = np.zeros(k)
    for i, lo in enumerate(starts):
        last = i == k - 1
        hi = fitter.a_cap if last else starts[i + 1] - 1
        lo_c = min(lo, fitter.a_cap)
        if last:
            s = 0
            vals = np.append(fitter.c[lo_c:], 0.0)
        else:
            s = fitter.best_slope(lo, hi)[0]
            vals = fitter.c[lo : hi + 1]
        d = np.arange(len(vals), dtype=np.float64)
        if last:
            d[:] = 0.0
        r = vals - s * d * fitter.unit
        icpt = 0 if last else p.icpt_fmt.encode((r.max() + r.min()) / 2, saturate=False)
        slopes[i], icpts[i] = s, int(icpt)
        # realised error, with the integer arithmetic of emulate
        c_hat = (int(icpt) << (g - p.icpt_fmt.frac_bits)) + (
            s * d.astype(np.int64) << (g - p.in_fmt.frac_bits - p.slope_fmt.frac_bits)
        )
        seg_error[i] = float(np.abs(np.ldexp(c_hat.astype(np.float64), -g) - vals).max())
    fit_error = float(seg_error.max())
    rounding = 2.0 ** -(p.out_fmt.frac_bits + 1) if p.out_fmt.frac_bits < g else 0.0
    terms = tuple(tuple(naf_digits(s)) for s in slopes)
    longest = max((b - a for a, b in zip(starts[:-1], starts[1:], strict=True)), default=1)
    return GeluTables(
        starts=np.array(starts, dtype=np.int64),
        slopes=slopes,
        icpts=icpts,
        terms=terms,
        offset_bits=max(1, (longest - 1).bit_length()),
        seg_error=seg_error,
        fit_error=fit_error,
        bound=fit_error + rounding,
    )


# -- the models ----------------------------------------------------------------------------------


def emulate(p: GeluParams, codes) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.gelu.GeluPWL`: ``in_fmt`` codes in, ``out_fmt`` out.

    Vectorised over any array shape. Raises ``ValueError`` for codes outside ``in_fmt``.
    """
    x = p.in_fmt.check_codes(codes, "gelu input code")
    if x.size > _LUT_THRESHOLD and p.in_fmt.width <= 20:
        # large arrays: every code's result evaluated once by the datapath below, then looked
        # up (the same function of one code; a DeiT forward pass has millions of elements)
        return _all_codes(p)[x - p.in_fmt.min_code]
    return _datapath(p, x)


_LUT_THRESHOLD = 1 << 16


@functools.lru_cache(maxsize=16)
def _all_codes(p: GeluParams) -> np.ndarray:
    out = _datapath(p, p.in_fmt.all_codes())
    out.setflags(write=False)
    return out


def _datapath(p: GeluParams, x: np.ndarray) -> np.ndarray:
    """The hardware's integer datapath on checked ``in_fmt`` codes."""
    t = tables(p)
    g = p.acc_frac
    a = np.abs(x)
    k = np.searchsorted(t.starts[1:], a, side="right")
    d = (a - t.starts[k]) & ((1 << t.offset_bits) - 1)  # wraps only in the flat last segment
    c_hat = (t.icpts[k] << (g - p.icpt_fmt.frac_bits)) + (
        t.slopes[k] * d << (g - p.in_fmt.frac_bits - p.slope_fmt.frac_bits)
    )
    y = (np.maximum(x, 0) << (g - p.in_fmt.frac_bits)) - c_hat
    return saturate(shift_round_half_up(y, g - p.out_fmt.frac_bits), p.out_fmt)


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
    """Named corner cases: format extremes, zero, one LSB, and both sides of every breakpoint."""
    f = p.in_fmt
    t = tables(p)
    b = t.starts[1:]
    around = np.concatenate([b - 1, b, b + 1])
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
    return {k: f.check_codes(np.unique(v), "case") for k, v in cases.items()}


def random_cases(p: GeluParams, n: int, seed: int = 0) -> np.ndarray:
    """Biased random inputs: half uniform over all codes, half like DeiT's (N(0, 3) values)."""
    rng = np.random.default_rng(seed)
    f = p.in_fmt
    uniform = rng.integers(f.min_code, f.max_code + 1, size=n - n // 2)
    gauss = f.encode(rng.normal(0.0, 3.0, size=n // 2))
    return np.concatenate([uniform, gauss]).astype(np.int64)


def param_sweep() -> list[GeluParams]:
    """Configurations worth verifying: segment counts, both slope modes, other formats."""
    d = GeluParams()
    return [
        d,
        d.replace(segments=8),
        d.replace(slope_mode=SlopeMode.MULT),
        d.replace(segments=4, in_fmt=FixFormat(5, 11), out_fmt=FixFormat(4, 12)),
        d.replace(segments=32, slope_terms=3),
        d.replace(segments=64, slope_mode=SlopeMode.MULT),
    ]


def workload(p: GeluParams, n: int, seed: int = 0) -> Workload:
    """``n`` inputs distributed like DeiT's MLP pre-activations (N(0, 3) values)."""
    codes = p.in_fmt.encode(np.random.default_rng(seed).normal(0.0, 3.0, n))
    return Workload(codes, "N(0, 3) values (DeiT MLP pre-activations)")
