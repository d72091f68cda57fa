"""Softmax with a Padé exponential and a multi-scale reciprocal: no divider anywhere.

Algorithm (one row x_0 .. x_{L-1}, integer arithmetic throughout)
-----------------------------------------------------------------
1. Row maximum m; t_i = x_i - m <= 0.
2. Range reduction: n_i = -t_i * log2(e) >= 0 (one constant multiply, log2 e rounded to
   ``log2e_fmt``), split into an integer z_i and a fraction r_i in [0, 1) kept to
   ``red_fmt`` bits, so that e^t = 2^-z * e^p with p = -r ln2 in (-ln2, 0].
3. Padé: e^p ~ P(p) / Q(p), written in r with the constants folded in,
   [1/1]: P = 1 - a1 r,          Q = 1 + a1 r,          a1 = ln2 / 2
   [2/2]: P = 1 - a1 r + a2 r^2, Q = 1 + a1 r + a2 r^2, a2 = ln2^2 / 12
   evaluated in ``poly_fmt``. Q lies in [1, 1.39), already normalised.
4. The quotient P / Q is P * recip(Q) (step 6's unit); then the power of two is a right
   shift by z: e_i = P * recip(Q) * 2^-z rounded to ``exp_fmt``. Rows entries with
   z > exp_fmt.frac_bits + 1 are far below the maximum and flushed to 0 without computing.
5. S = sum e_i, exact in ``sum_fmt`` (wide enough for ``max_len`` ones).
6. Multi-scale reciprocal: a leading-one detector writes S = 2^k * m with m in [1, 2)
   (kept to ``poly_fmt`` bits); a table of 2^``recip_bits`` entries indexed by the top bits of
   m's fraction gives y0 ~ 1/m (each entry 2 / (lo + hi) of its interval, which halves the
   worst relative error of a left-end table); ``newton_steps`` iterations
   y <- y (2 - m y) square the relative error each. 1/S = 2^-k * y.
7. p_i = e_i * (1/S), one multiply and a shift, rounded half up to ``out_fmt``.

The default (1024-entry table, no Newton step) needs no multiplier in the reciprocal: the
hardware keeps the table in one block RAM whose two read ports serve 1/Q for every element and
1/S once per row. The constants log2(e) (``log2e_fmt``, u1.10) and a1, a2 (``coef_bits``
fractional bits, then shifted to ``poly_fmt``) are short enough in canonical signed digits (5, 5
and 3 non-zero digits) to be adder trees, so the only multipliers left are r^2, P * (1/Q) and
e * (1/S).

Error analysis
--------------
Padé [2/2] has relative error <= 2.3e-4 on (-ln2, 0] (5.5e-2 over [-3, 0] without range
reduction), [1/1] <= 3.0e-2; truncating r to ``red_fmt`` and the intermediate roundings add
about 6e-5, so the exp unit is within 3.0e-4 with 16-bit constants and a near-exact reciprocal
(measured over x - max in [-8, 0], tests/test_softmax.py). log2(e) to 10 fractional bits is
off by 2.2e-4 relative, which moves e^-d by d * 2.2e-4 relative (at most 8e-5 absolute, at
d = 1); a1 and a2 to 10 bits by 3e-4 and 3e-5. The reciprocal table's relative error is at
most 2^-(recip_bits+1) (4.9e-4 for 1024 entries, 7.8e-3 for 64); each Newton step squares it,
plus the rounding of ``recip_fmt``. The row maximum has r = 0, where Padé is exact, and a
common relative error of all e_i cancels in the normalisation, so the probability error is
about (Padé error + 1/Q error) * p (1 - p) + (1/S error) * p plus the output rounding
2^-(out_frac + 1). e_i keeps 17 fractional bits: at 16, a row of one maximum and 255 entries
near 2^-17 loses 1.6e-3 of its sum to rounding. The default configuration is measured
(tests/test_softmax.py) to stay within 2^-10 of float64 softmax on every output (4.98e-4) and
within 2^-8 of 1 on every row sum (1.95e-3), over Gaussian rows with standard deviations 0.25
to 8 and lengths 1 to 256 and over adversarial rows.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, fields

import numpy as np

from .arrays import (
    bit_length,
    clip,
    extrema,
    from_rows,
    int64,
    lookup,
    namespace,
    row_namespace,
    size,
    to_rows,
)
from .formats import FixFormat, saturate, saturate_, shift_round_half_up
from .params import ParamsBase, Workload, check_enum, check_fix, check_int

__all__ = [
    "pareto_sweep",
    "random_cases",
    "workload",
    "PadeOrder",
    "SoftmaxParams",
    "SoftmaxTables",
    "tables",
    "emulate",
    "reference",
    "recip",
    "error_stats",
    "standard_cases",
    "random_rows",
    "param_sweep",
]


class PadeOrder(enum.Enum):
    """Order [m/n] of the Padé approximant of e^p on (-ln2, 0]."""

    P11 = "1/1"
    P22 = "2/2"


@dataclass(frozen=True)
class SoftmaxParams(ParamsBase):
    """Configuration of the softmax.

    Parameters
    ----------
    in_fmt : FixFormat
        Logits. Default s6.10: ±32 in steps of 2^-10; DeiT's scaled attention scores stay
        within about ±20, and only differences to the row maximum matter.
    out_fmt : FixFormat
        Probabilities, unsigned. Default u1.15 (16 bits; 1.0 is representable).
    max_len : int
        Longest row, 2 to 4096; default 256 (DeiT has 197 tokens). The actual length of each
        row is set at run time by the stream's framing.
    pade : PadeOrder
        ``2/2`` (default) or ``1/1``.
    log2e_fmt : FixFormat
        The constant log2(e) of the range reduction. Default u1.10 (five signed digits).
    red_fmt : FixFormat
        The reduced argument r in [0, 1). Default u0.14.
    poly_fmt : FixFormat
        P, Q and the normalised sum mantissa m (all in [0, 2)). Default u1.16.
    coef_bits : int
        Fractional bits of the Padé coefficients a1 = ln2/2 and a2 = ln2^2/12 (rounded there,
        then shifted to ``poly_fmt``), 4 to ``poly_fmt``'s. Default 10.
    recip_fmt : FixFormat
        Output of the reciprocal unit, 1/m in (0.5, 1]. Default u1.16.
    recip_bits : int
        log2 of the reciprocal table size, 2 to 10. Default 10 (1024 entries: one block RAM).
    newton_steps : int
        Newton iterations after the table, 0 to 2. Default 0.
    exp_fmt : FixFormat
        e_i = exp(x_i - max). Default u1.17 (18 bits, one block-RAM word): 256 entries each
        rounded by at most 2^-18 keep the row sum within 1e-3.
    exp_table_bits : int
        0 (default): the Padé exponential. 4 to 10: the base-2 option instead, 2^-r read from
        a table of 2^exp_table_bits fractional powers of two (the top bits of r index it, each
        entry is 2^-r at the middle of its interval, rounded to exp_fmt's fractional bits
        plus two), then shifted by z; ``pade`` and ``coef_bits`` must stay at their
        defaults. 10 is one block RAM of 1024 x 18 bits and two multipliers fewer.
    """

    op = "softmax"

    in_fmt: FixFormat = FixFormat(6, 10)
    out_fmt: FixFormat = FixFormat(1, 15, signed=False)
    max_len: int = 256
    pade: PadeOrder = PadeOrder.P22
    log2e_fmt: FixFormat = FixFormat(1, 10, signed=False)
    red_fmt: FixFormat = FixFormat(0, 14, signed=False)
    poly_fmt: FixFormat = FixFormat(1, 16, signed=False)
    coef_bits: int = 10
    recip_fmt: FixFormat = FixFormat(1, 16, signed=False)
    recip_bits: int = 10
    newton_steps: int = 0
    exp_fmt: FixFormat = FixFormat(1, 17, signed=False)
    exp_table_bits: int = 0

    def __post_init__(self):
        op = "softmax"
        check_fix(op, "in_fmt", self.in_fmt, signed=True, why=" (logits take both signs)")
        check_fix(op, "out_fmt", self.out_fmt, signed=False, why=" (probabilities)")
        check_int(op, "max_len", self.max_len, 2, 4096)
        object.__setattr__(self, "pade", check_enum(op, "pade", self.pade, PadeOrder))
        for name, int_bits in (
            ("log2e_fmt", 1),
            ("red_fmt", 0),
            ("poly_fmt", 1),
            ("recip_fmt", 1),
            ("exp_fmt", 1),
        ):
            fmt = getattr(self, name)
            check_fix(op, name, fmt, signed=False)
            if fmt.int_bits != int_bits:
                raise ValueError(
                    f"{op} {name} must have {int_bits} integer bit{'s' * (int_bits != 1)} "
                    f"(it holds values in [0, {2**int_bits})), not {fmt}"
                )
        if self.out_fmt.int_bits < 1:
            raise ValueError(f"{op} out_fmt needs an integer bit to hold 1.0, not {self.out_fmt}")
        check_int(op, "recip_bits", self.recip_bits, 2, 10)
        if self.recip_bits > self.poly_fmt.frac_bits:
            raise ValueError(
                f"{op} recip_bits ({self.recip_bits}) must not exceed poly_fmt's fractional "
                f"bits ({self.poly_fmt.frac_bits})"
            )
        check_int(op, "newton_steps", self.newton_steps, 0, 2)
        check_int(op, "coef_bits", self.coef_bits, 4, self.poly_fmt.frac_bits)
        if self.exp_table_bits != 0:
            check_int(op, "exp_table_bits", self.exp_table_bits, 4, 10)
            if self.exp_table_bits > self.red_fmt.frac_bits:
                raise ValueError(
                    f"{op} exp_table_bits ({self.exp_table_bits}) must not exceed red_fmt's "
                    f"fractional bits ({self.red_fmt.frac_bits})"
                )
            default = {f.name: f.default for f in fields(self)}
            if self.pade is not default["pade"] or self.coef_bits != default["coef_bits"]:
                raise ValueError(
                    f"{op} pade and coef_bits set the Padé exponential, which exp_table_bits="
                    f"{self.exp_table_bits} replaces; leave them at their defaults"
                )
        fp, fy, fe = self.poly_fmt.frac_bits, self.recip_fmt.frac_bits, self.exp_fmt.frac_bits
        if fp + fy - fe < 1:
            raise ValueError(
                f"{op} exp_fmt keeps more fractional bits ({fe}) than P * (1/Q) has ({fp + fy})"
            )
        if fy + fe - 1 - self.out_fmt.frac_bits < 1:
            raise ValueError(
                f"{op} out_fmt keeps more fractional bits ({self.out_fmt.frac_bits}) than "
                f"e * (1/S) has for a row sum of 1/2 ({fy + fe - 1})"
            )
        if self.red_fmt.frac_bits > self.in_fmt.frac_bits + self.log2e_fmt.frac_bits:
            raise ValueError(
                f"{op} red_fmt keeps more fractional bits than t * log2(e) has "
                f"({self.in_fmt.frac_bits + self.log2e_fmt.frac_bits})"
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
        """Entries with z greater than this are flushed to 0 (their e is below half an LSB)."""
        return self.exp_fmt.frac_bits + 1

    @property
    def name(self) -> str:
        """Module and file name, e.g. ``softmax_i16f10_ou16f15_n256``; non-defaults append."""
        name = f"softmax_i{self.in_fmt.tag}_o{self.out_fmt.tag}_n{self.max_len}"
        default = SoftmaxParams()
        if self.pade is not default.pade:
            name += f"_pade{self.pade.value.replace('/', '')}"
        if self.recip_bits != default.recip_bits:
            name += f"_rb{self.recip_bits}"
        if self.newton_steps != default.newton_steps:
            name += f"_nt{self.newton_steps}"
        if self.coef_bits != default.coef_bits:
            name += f"_cb{self.coef_bits}"
        if self.exp_table_bits:
            name += f"_t{self.exp_table_bits}"
        for field, tag in (
            ("log2e_fmt", "l2e"),
            ("red_fmt", "red"),
            ("poly_fmt", "poly"),
            ("recip_fmt", "rcp"),
            ("exp_fmt", "exp"),
        ):
            if getattr(self, field) != getattr(default, field):
                name += f"_{tag}{getattr(self, field).tag}"
        return name


@dataclass(frozen=True)
class SoftmaxTables:
    """Constants the hardware bakes in, computed from :class:`SoftmaxParams` alone.

    Members
    -------
    log2e : int
        log2(e) as a ``log2e_fmt`` code.
    a1, a2 : int
        Padé coefficients ln2/2 and ln2^2/12 rounded to ``coef_bits`` fractional bits, as
        ``poly_fmt`` codes (a2 = 0 for [1/1]).
    recip : ndarray of int64
        The reciprocal seed table, ``recip_fmt`` codes, 2**recip_bits entries.
    exp2 : ndarray of int64
        With ``exp_table_bits`` k > 0: entry j is 2^-((j + 1/2) / 2^k) in (1/2, 1), rounded
        to ``exp_fmt.frac_bits + 2`` fractional bits; its leading one (the 1/2 bit) is not
        stored. Empty for the Padé exponential.
    """

    log2e: int
    a1: int
    a2: int
    recip: np.ndarray
    exp2: np.ndarray


@functools.lru_cache(maxsize=64)
def tables(p: SoftmaxParams) -> SoftmaxTables:
    k = p.recip_bits
    lo = 1.0 + np.arange(2**k) / 2**k
    hi = lo + 1.0 / 2**k
    seed = p.recip_fmt.encode(2.0 / (lo + hi), saturate=False)
    fp, cb = p.poly_fmt.frac_bits, p.coef_bits
    return SoftmaxTables(
        log2e=int(p.log2e_fmt.encode(math.log2(math.e), saturate=False)),
        a1=int(round(math.log(2) / 2 * 2**cb)) << (fp - cb),
        a2=(int(round(math.log(2) ** 2 / 12 * 2**cb)) << (fp - cb))
        if p.pade is PadeOrder.P22
        else 0,
        recip=seed,
        exp2=_exp2_table(p),
    )


def _exp2_table(p: SoftmaxParams) -> np.ndarray:
    k, f = p.exp_table_bits, p.exp_fmt.frac_bits + 2
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    full = np.round(2.0 ** (-(np.arange(2**k) + 0.5) / 2**k) * 2**f).astype(np.int64)
    assert ((full > 1 << (f - 1)) & (full < 1 << f)).all()
    return full - (1 << (f - 1))


def recip(p: SoftmaxParams, m) -> np.ndarray:
    """The reciprocal unit: 1/m for m in [1, 2) given as ``poly_fmt`` codes.

    Table seed indexed by the top ``recip_bits`` bits of m's fraction, then ``newton_steps``
    iterations y <- y (2 - m y), each product rounded half up. Returns ``recip_fmt`` codes.
    """
    xp = namespace(m)
    m = int64(xp, m)
    fm = p.poly_fmt.frac_bits
    one_m = 1 << fm
    lo, hi = extrema(xp, m) if size(m) else (one_m, one_m)
    if lo < one_m or hi >= 2 * one_m:
        raise ValueError("recip takes mantissas in [1, 2)")
    return _recip(p, m)


def _recip(p: SoftmaxParams, m):
    """:func:`recip` of int64 mantissas known to lie in [1, 2) (the datapath's own Q and m)."""
    xp = namespace(m)
    fm, fy = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits
    idx = (m - (1 << fm)) >> (fm - p.recip_bits)
    y = lookup(xp, tables(p).recip, idx)
    for _ in range(p.newton_steps):
        my = shift_round_half_up(m * y, fm)  # m * y in recip_fmt, close to 1
        y = shift_round_half_up(y * ((2 << fy) - my), fy)
    return y


def _exp(p: SoftmaxParams, t) -> np.ndarray:
    """exp(t) for t = x - max <= 0 in ``in_fmt`` units, as ``exp_fmt`` codes."""
    xp = namespace(t)
    tb = tables(p)
    fin, fl, fr = p.in_fmt.frac_bits, p.log2e_fmt.frac_bits, p.red_fmt.frac_bits
    fp, fy, fe = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits, p.exp_fmt.frac_bits
    n = -t * tb.log2e  # >= 0, fin + fl fractional bits
    z = n >> (fin + fl)
    if p.exp_table_bits:
        # 2^-r from the table (leading one put back), fe + 2 fractional bits
        k = p.exp_table_bits
        row = (n >> (fin + fl - k)) & ((1 << k) - 1)
        value, frac = lookup(xp, tb.exp2, row) + (1 << (fe + 1)), fe + 2
    else:  # P(r) * (1/Q(r)), fp + fy fractional bits
        r = (n >> (fin + fl - fr)) & ((1 << fr) - 1)  # fraction kept to fr bits (truncated)
        t1 = shift_round_half_up(tb.a1 * r, fr)
        if p.pade is PadeOrder.P22:
            r2 = shift_round_half_up(r * r, fr)
            t2 = shift_round_half_up(tb.a2 * r2, fr)
        else:
            t2 = xp.zeros_like(t1)
        num = (1 << fp) - t1 + t2
        den = (1 << fp) + t1 + t2
        value, frac = num * _recip(p, den), fp + fy  # den = Q in [1, 1.39)
    # 2^-z times that, rounded once to exp_fmt; entries past the flush limit are 0
    flushed = z > p.flush_shift
    e = saturate(shift_round_half_up(value, frac - fe + xp.where(flushed, 0, z)), p.exp_fmt)
    return xp.where(flushed, 0, e)


_LUT_THRESHOLD = 1 << 16


@functools.lru_cache(maxsize=16)
def _exp_all(p: SoftmaxParams) -> np.ndarray:
    """``_exp(p, -d)`` for every difference d = 0 .. max_code - min_code."""
    span = p.in_fmt.max_code - p.in_fmt.min_code
    out = _exp(p, -np.arange(span + 1, dtype=np.int64))
    out.setflags(write=False)
    return out


def emulate(p: SoftmaxParams, codes, *, checked: bool = False) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.softmax.Softmax`: the last axis is one row.

    Rows of length 1 to ``max_len``; any leading shape. Returns ``out_fmt`` codes.
    ``checked``: ``codes`` is an int64 array known to lie in ``in_fmt`` (``in_fmt.encode``'s
    result), so the pass that checks the range is skipped.
    """
    x = codes if checked else p.in_fmt.check_codes(codes, "softmax input code")
    if x.ndim == 0 or not 1 <= x.shape[-1] <= p.max_len:
        length = "a scalar" if x.ndim == 0 else f"length {x.shape[-1]}"
        raise ValueError(
            f"softmax rows must have length 1 to max_len={p.max_len} on the last axis, "
            f"not {length}; raise max_len or split the rows"
        )
    xp = namespace(x)
    d = xp.max(x, axis=-1, keepdims=True) - x  # max - x >= 0
    if size(d) > _LUT_THRESHOLD and p.in_fmt.width <= 20:
        # large arrays: exp of every possible difference evaluated once by _exp, then looked
        # up (the same function of d alone; a DeiT forward pass has millions of elements)
        e = lookup(xp, _exp_all(p), d)
    else:
        e = _exp(p, -d)
    # the per-row unit, on one value per row (in NumPy for a CPU tensor: row_namespace)
    rx = row_namespace(xp, x)
    s = to_rows(rx, xp.sum(e, axis=-1, keepdims=True))
    # leading one: s = 2^k * m, m in [1, 2) with poly_fmt fractional bits (truncated)
    fm = p.poly_fmt.frac_bits
    k = bit_length(rx, s) - 1
    m = rx.where(k >= fm, s >> clip(rx, k - fm, 0, None), s << clip(rx, fm - k, 0, None))
    y = _recip(p, m)  # m in [1, 2) by construction
    shift = k + (p.recip_fmt.frac_bits - p.out_fmt.frac_bits)
    e *= from_rows(xp, y)  # e (a new array) becomes e * y, then the output, in place
    return saturate_(shift_round_half_up(e, shift, overwrite=True), p.out_fmt)


def reference(p: SoftmaxParams, x) -> np.ndarray:
    """Float64 softmax over the last axis of real logits."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- test vectors ----------------------------------------------------------------------------------


def random_rows(p: SoftmaxParams, n_rows: int, seed: int = 0) -> list[np.ndarray]:
    """Rows of Gaussian logits, standard deviations 0.25 to 8, lengths 1 to max_len."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_rows):
        length = int(rng.integers(1, p.max_len + 1))
        sigma = float(np.exp(rng.uniform(np.log(0.25), np.log(8.0))))
        mean = float(rng.uniform(-8, 8))
        rows.append(p.in_fmt.encode(rng.normal(mean, sigma, size=length)))
    return rows


def standard_cases(p: SoftmaxParams) -> dict[str, np.ndarray]:
    """Named adversarial rows (each a 1-D code array)."""
    f = p.in_fmt
    n = p.max_len
    ramp = f.encode(np.linspace(-1.0, 1.0, n))
    one_big = np.zeros(n, dtype=np.int64)
    one_big[n // 3] = f.encode(12.0)
    tail = f.encode(np.concatenate([[0.0], np.full(n - 1, -25.0)]))
    return {
        "single": np.array([123], dtype=np.int64),
        "pair_equal": np.array([5, 5], dtype=np.int64),
        "all_equal_full": np.full(n, 77, dtype=np.int64),
        "all_min": np.full(n, f.min_code, dtype=np.int64),
        "all_max": np.full(n, f.max_code, dtype=np.int64),
        "min_and_max": np.array([f.min_code, f.max_code] * (n // 2), dtype=np.int64),
        "one_dominant": one_big,
        "very_negative_tail": tail,
        "ramp": ramp,
        "far_pair": np.array([0, -1024], dtype=np.int64),
    }


def error_stats(p: SoftmaxParams, n_rows: int = 400, seed: int = 0) -> dict[str, float]:
    """Max and mean |p - softmax| and max |sum - 1| over random and adversarial rows."""
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
        "target": 2.0**-10,
    }


def param_sweep() -> list[SoftmaxParams]:
    """Configurations worth verifying."""
    d = SoftmaxParams()
    return [
        d,
        d.replace(pade=PadeOrder.P11, recip_bits=4, newton_steps=2, max_len=64),
        d.replace(recip_bits=8, max_len=32, in_fmt=FixFormat(5, 11), exp_table_bits=10),
        d.replace(newton_steps=2, recip_bits=5),
    ]


def random_cases(p: SoftmaxParams, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random rows (:func:`random_rows`): the contract's name for them."""
    return random_rows(p, n, seed)


def workload(p: SoftmaxParams, n: int, seed: int = 0) -> Workload:
    """Rows of 197 logits (DeiT's token count, or ``max_len``) with Gaussian values, mean
    U(-8, 8) and sigma 0.25 to 8, about ``n`` elements in whole rows."""
    rng = np.random.default_rng(seed)
    length = min(197, p.max_len)
    rows = []
    for _ in range(max(1, -(-n // length))):
        sigma = float(np.exp(rng.uniform(np.log(0.25), np.log(8.0))))
        rows.append(p.in_fmt.encode(rng.normal(rng.uniform(-8, 8), sigma, length)))
    return Workload(rows, f"rows of {length} Gaussian logits (mean U(-8, 8), sigma 0.25 to 8)")


def pareto_sweep() -> list[SoftmaxParams]:
    """Padé order x reciprocal (table size, Newton steps): the table-only points keep the
    multipliers at three, a Newton step adds two per reciprocal and shrinks the table. Then
    the base-2 table exponential at 1024, 256 and 64 entries (one multiplier, e * (1/S))."""
    return [
        SoftmaxParams(pade=o, recip_bits=b, newton_steps=n)
        for o in PadeOrder
        for b, n in ((10, 0), (8, 0), (6, 1), (4, 1))
    ] + [SoftmaxParams(exp_table_bits=k) for k in (10, 8, 6)]


def options() -> list[SoftmaxParams]:
    """Alternatives reported beside the default (every unit, against the baselines): the
    base-2 exponential from a 1024-entry table of fractional powers of two."""
    return [SoftmaxParams(exp_table_bits=10)]
