"""GELU baselines without PEANO-ViT's approximations: a lookup table and a polynomial.

These are the blocks an engineer would build without the piecewise-linear correction of
:mod:`golden.gelu`, with the same input and output formats and the same stream ports, so that
the report can put their cost next to it. Two kinds (:class:`GeluBaseKind`):

Table (``kind=table``)
----------------------
A block-RAM lookup table addressed by bits of the input code. ``addr_fmt`` is the address
word: the input code shifted right by ``d = in_frac - addr_frac`` (dropped bits truncated),
which is an index i in ``addr_fmt`` when x lies in its range. Entry i holds

    round(GELU(x_i) * 2**out_frac), saturated to ``out_fmt``   (float64 math, see _gelu_code)

with x_i the centre of the 2**d input codes that share the index, so truncating the index
costs no more than rounding it would. Outside the table's range GELU takes its asymptotes:
x itself above the range, 0 below it (|GELU(x) - asymptote| = |x| Phi(-|x|), below 5e-15 at
|x| = 8). ``addr_fmt = in_fmt`` is the direct table on the whole code (no asymptotes); a
narrower ``addr_fmt`` with fewer integer bits spends its entries where GELU is not yet one of
its asymptotes. The default s3.9 covers [-4, 4) in steps of 2**-9 (every other input
code): 4,096 entries of 16 bits (64 Kbit, four 18-Kbit block RAMs), the smallest table that is
at least as accurate as the piecewise-linear default. s3.10 (8,192 entries) is exact up to
the output rounding and the asymptotes' 1.3e-4 at |x| = 4.

Polynomial (``kind=poly``)
--------------------------
GELU(x) = x * Phi(x), with Phi from a piecewise polynomial and one real multiplier for the
product, the textbook design (the erf/Phi symmetry as in I-BERT, Horner as in FloPoCo):

    a     = |x|;  segment k = floor(a / w) with w = limit / segments;  t = a - k w
    q(a)  ~ Phi(-a) = c_k0 + t (c_k1 + t (c_k2 + ...))   Horner in ``coef_fmt``, segment k's
                                                         minimax fit (degree ``degree``)
    q     = 0 for a >= limit                              (one more, all-zero row)
    Phi   = q for x < 0, 1 - q for x >= 0, rounded to ``phi_fmt``
    y     = round(x * Phi) to ``out_fmt``, saturated

Every Horner step is one multiplication t * h, rounded to ``coef_fmt`` by :func:`mul_round`
(half up), and one addition; so are the final product and the Phi rounding. Segments are
selected by the bits of |x| (``segments`` and ``limit`` are powers of two): no comparators.
The coefficients are the discrete minimax polynomial of Phi(-a) on each segment's input codes
(a linear programme in float64), rounded to ``coef_fmt``; nothing in the fit knows about the
integer arithmetic. Degree 2 needs three multipliers (two Horner steps and x * Phi).

Error bound (tested exhaustively)
---------------------------------
For every input code, ``|decode(emulate(x)) - clip(GELU(x))| <= tables(p).bound`` where
``bound = fit_error + 2**-(out_frac + 1)``: ``fit_error`` is the measured maximum, over every
input code, of |v(x) - GELU(x)| for the value v the output is rounded from (the table entry's
real value GELU(x_i) or the asymptote; the exact product x * Phi), and the output rounding adds
at most half an LSB (clip: saturation to ``out_fmt``, which only moves the result closer).

Default bounds: table 1.040e-3 (measured 1.036e-3), poly 7.36e-4 (measured 6.84e-4). Both
are more accurate than the piecewise-linear default (bound and measured maximum 1.531e-3).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.special import ndtr

from . import gelu as pwl
from .arrays import clip, int64, lookup, namespace
from .formats import FixFormat, saturate, shift_round_half_up
from .params import ParamsBase, check_enum, check_fix, check_int

__all__ = [
    "workload",
    "GeluBaseKind",
    "GeluBaseParams",
    "TableROM",
    "PolyTables",
    "tables",
    "mul_round",
    "emulate",
    "reference",
    "reference_codes",
    "error_stats",
    "standard_cases",
    "random_cases",
    "param_sweep",
]


class GeluBaseKind(enum.Enum):
    """Which baseline."""

    #: Block-RAM lookup table of GELU on the input code's top bits (``addr_fmt``).
    TABLE = "table"
    #: x * Phi(x), Phi from a piecewise polynomial evaluated by Horner with multipliers.
    POLY = "poly"


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class GeluBaseParams(ParamsBase):
    """Configuration of a GELU baseline.

    Parameters
    ----------
    kind : GeluBaseKind
        ``table`` (default) or ``poly``.
    in_fmt : FixFormat
        Input word, as :class:`golden.gelu.GeluParams` (default s6.10).
    out_fmt : FixFormat
        Output word, as :class:`golden.gelu.GeluParams` (default s6.10).
    addr_fmt : FixFormat
        ``table``: the table's address word, a signed format with at most as many integer
        and fractional bits as ``in_fmt`` and at most 16 bits (2**16 entries). Default s3.9:
        [-4, 4) in steps of 2**-9, 4,096 entries.
    segments : int
        ``poly``: polynomial pieces on |x| < ``limit``, a power of two, 1 to 64.
    degree : int
        ``poly``: polynomial degree, 1 to 3 (Horner steps; each one multiplier).
    limit : int
        ``poly``: |x| beyond which Phi is taken as exactly 0 or 1, a power of two up to the
        input range (error at most limit * Phi(-limit): 1.3e-4 for the default 4).
    coef_fmt : FixFormat
        ``poly``: word of every coefficient and of every Horner partial sum. Default s1.17
        (18 bits: one DSP operand).
    phi_fmt : FixFormat
        ``poly``: unsigned word of Phi(x) in [0, 1] before the final product. Default u1.16
        (17 bits, so x * Phi is one 18 x 18 multiplier).
    """

    op = "gelu_base"

    kind: GeluBaseKind = GeluBaseKind.TABLE
    in_fmt: FixFormat = FixFormat(6, 10)
    out_fmt: FixFormat = FixFormat(6, 10)
    addr_fmt: FixFormat = FixFormat(3, 9)
    segments: int = 8
    degree: int = 2
    limit: int = 4
    coef_fmt: FixFormat = FixFormat(1, 17)
    phi_fmt: FixFormat = FixFormat(1, 16, signed=False)

    def __post_init__(self):
        op = "gelu_base"
        object.__setattr__(self, "kind", check_enum(op, "kind", self.kind, GeluBaseKind))
        check_fix(op, "in_fmt", self.in_fmt, signed=True, why=" (GELU takes both signs)")
        check_fix(op, "out_fmt", self.out_fmt, signed=True, why=" (GELU(x) < 0 for x < 0)")
        check_fix(op, "addr_fmt", self.addr_fmt, signed=True, why=" (it indexes signed codes)")
        a, i = self.addr_fmt, self.in_fmt
        if a.int_bits > i.int_bits or a.frac_bits > i.frac_bits or a.width > 16:
            raise ValueError(
                f"gelu_base addr_fmt must have at most {i.int_bits} integer and {i.frac_bits} "
                f"fractional bits (in_fmt {i}) and at most 16 bits, not {a}"
            )
        check_int(op, "segments", self.segments, 1, 64)
        if not _is_pow2(self.segments):
            raise ValueError(f"gelu_base segments must be a power of two, not {self.segments}")
        check_int(op, "degree", self.degree, 1, 3)
        top = 1 << (i.int_bits - 1)
        check_int(op, "limit", self.limit, 1, top)
        if not _is_pow2(self.limit):
            raise ValueError(f"gelu_base limit must be a power of two, not {self.limit}")
        if self.limit << i.frac_bits < self.segments:
            raise ValueError(
                f"gelu_base segments ({self.segments}) must not exceed limit * 2**in_frac "
                f"({self.limit << i.frac_bits} input codes)"
            )
        check_fix(op, "coef_fmt", self.coef_fmt, signed=True, why=" (Phi's slopes are < 0)")
        check_fix(op, "phi_fmt", self.phi_fmt, signed=False, why=" (Phi is in [0, 1])")
        if self.phi_fmt.int_bits < 1:
            raise ValueError(f"gelu_base phi_fmt must hold 1.0 (int_bits >= 1), not {self.phi_fmt}")
        if self.coef_fmt.int_bits < 1 or self.coef_fmt.frac_bits < self.phi_fmt.frac_bits:
            raise ValueError(
                f"gelu_base coef_fmt must have int_bits >= 1 and at least phi_fmt's "
                f"{self.phi_fmt.frac_bits} fractional bits, not {self.coef_fmt}"
            )

    @property
    def seg_shift(self) -> int:
        """``poly``: log2 of the input codes per segment (t is the low ``seg_shift`` bits)."""
        return ((self.limit << self.in_fmt.frac_bits) // self.segments).bit_length() - 1

    @property
    def addr_shift(self) -> int:
        """``table``: input bits dropped below the address, d = in_frac - addr_frac."""
        return self.in_fmt.frac_bits - self.addr_fmt.frac_bits

    @property
    def name(self) -> str:
        """Module and file name, e.g. ``gelu_base_table_i16f10_o16f10_a12f9`` or
        ``gelu_base_poly_i16f10_o16f10_s8_d2_l4``; non-default internal formats append."""
        head = f"gelu_base_{self.kind.value}_i{self.in_fmt.tag}_o{self.out_fmt.tag}"
        if self.kind is GeluBaseKind.TABLE:
            return f"{head}_a{self.addr_fmt.tag}"
        name = f"{head}_s{self.segments}_d{self.degree}_l{self.limit}"
        if self.coef_fmt != FixFormat(1, 17):
            name += f"_c{self.coef_fmt.tag}"
        if self.phi_fmt != FixFormat(1, 16, signed=False):
            name += f"_p{self.phi_fmt.tag}"
        return name


@dataclass(frozen=True)
class TableROM:
    """The ``table`` kind's block-RAM contents.

    Members
    -------
    entries : ndarray of int64, shape (2**addr_width,)
        ``out_fmt`` codes in address order: address ``i & (2**addr_width - 1)`` holds the
        entry of index code i (two's complement bits of the index as the address).
    fit_error : float
        Maximum |v - GELU(x)| over every input code, v = GELU(x_i) or the asymptote.
    bound : float
        Guaranteed maximum |emulate - clip(GELU)| (see the module docstring).
    """

    entries: np.ndarray
    fit_error: float
    bound: float


@dataclass(frozen=True)
class PolyTables:
    """The ``poly`` kind's coefficient ROM.

    Members
    -------
    coefs : ndarray of int64, shape (segments + 1, degree + 1)
        ``coef_fmt`` codes; row k is segment k, column j the coefficient of t**j; the last
        row (|x| >= limit) is zero.
    fit_error : float
        Maximum |x * Phi_hat - GELU(x)| over every input code (Phi_hat in ``phi_fmt``).
    bound : float
        Guaranteed maximum |emulate - clip(GELU)| (see the module docstring).
    """

    coefs: np.ndarray
    fit_error: float
    bound: float


# -- arithmetic ----------------------------------------------------------------------------------


def mul_round(a, b, shift: int) -> np.ndarray:
    """Exact integer product ``a * b`` divided by ``2**shift``, rounded half up.

    The hardware adds half an LSB to the product and drops ``shift`` bits (the half can be
    folded into a constant that is added anyway).

    >>> mul_round([3, 3, -3, -3, 5], [1, 2, 1, 2, 1], 2).tolist()  # .75 1.5 -.75 -1.5 1.25
    [1, 2, -1, -1, 1]
    """
    xp = namespace(a, b)
    return shift_round_half_up(int64(xp, a, b) * int64(xp, b, a), shift)


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * ndtr(x)


def _fit_error(p: GeluBaseParams, v_of_code) -> float:
    codes = p.in_fmt.all_codes()
    return float(np.abs(v_of_code(codes) - _gelu(p.in_fmt.decode(codes))).max())


def _bound(p: GeluBaseParams, fit_error: float, rounded: bool) -> float:
    return fit_error + (2.0 ** -(p.out_fmt.frac_bits + 1) if rounded else 0.0)


# -- table -------------------------------------------------------------------------------------


def _table_index(p: GeluBaseParams, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, in_range, above) of input codes: the index truncated to ``addr_fmt``."""
    idx = x >> p.addr_shift
    in_range = (idx >= p.addr_fmt.min_code) & (idx <= p.addr_fmt.max_code)
    return idx, in_range, ~in_range & (x >= 0)


def _centre(p: GeluBaseParams, idx: np.ndarray) -> np.ndarray:
    """Real value of the centre of the input codes that share index ``idx``."""
    d = p.addr_shift
    return np.ldexp((idx << d).astype(np.float64) + ((1 << d) - 1) / 2, -p.in_fmt.frac_bits)


def _asymptote(p: GeluBaseParams, x: np.ndarray) -> np.ndarray:
    """x in ``out_fmt`` (rounded half up when out_fmt has fewer fractional bits), saturated."""
    return saturate(shift_round_half_up(x, p.in_fmt.frac_bits - p.out_fmt.frac_bits), p.out_fmt)


def _gelu_code(x: np.ndarray, frac: int) -> np.ndarray:
    """round(GELU(x) * 2**frac), to nearest, also where float64 cannot tell GELU(x) from x.

    GELU(x) = ReLU(x) - k with k = |x| Phi(-|x|) > 0 (an exact identity), so the scaled value
    is ReLU(x) * 2**frac (exact in float64) minus a small positive k * 2**frac that float64
    keeps to full relative precision. When ReLU(x) * 2**frac is a half-integer, GELU lies
    just below that tie and must round down, however small k is; x * ndtr(x) alone rounds to
    the tie for x beyond about 8.3 and would then round half to even.

    >>> x = np.array([8455.5, 20000.5, 0.0]) / 1024    # centres of 16-code buckets: ties
    >>> _gelu_code(x, 10).tolist()
    [8455, 20000, 0]
    """
    a = np.abs(x)
    k = np.ldexp(a * ndtr(-a), frac)
    v = np.ldexp(np.maximum(x, 0.0), frac)
    whole = np.floor(v)
    return (whole + np.ceil((v - whole) - k - 0.5)).astype(np.int64)  # nearest, half down


def _table_rom(p: GeluBaseParams) -> TableROM:
    n = 1 << p.addr_fmt.width
    idx = p.addr_fmt.from_bits(np.arange(n, dtype=np.int64))
    entries = saturate(_gelu_code(_centre(p, idx), p.out_fmt.frac_bits), p.out_fmt)

    def v_of_code(x):
        idx, in_range, above = _table_index(p, x)
        xr = p.in_fmt.decode(x)
        return np.where(in_range, _gelu(_centre(p, idx)), np.where(above, xr, 0.0))

    fit = _fit_error(p, v_of_code)
    return TableROM(entries=entries, fit_error=fit, bound=_bound(p, fit, True))


def _emulate_table(p: GeluBaseParams, x: np.ndarray) -> np.ndarray:
    rom = tables(p)
    idx, in_range, above = _table_index(p, x)
    addr = idx & ((1 << p.addr_fmt.width) - 1)
    xp = namespace(x)
    return xp.where(in_range, lookup(xp, rom.entries, addr), xp.where(above, _asymptote(p, x), 0))


# -- polynomial ------------------------------------------------------------------------------


def _minimax(t: np.ndarray, f: np.ndarray, degree: int) -> np.ndarray:
    """Coefficients (increasing powers) of the polynomial minimising max |P(t) - f| on the
    points t: the linear programme min e subject to -e <= V c - f <= e."""
    v = np.vander(t, degree + 1, increasing=True)
    ones = np.ones((len(t), 1))
    a_ub = np.vstack([np.hstack([v, -ones]), np.hstack([-v, -ones])])
    b_ub = np.concatenate([f, -f])
    cost = np.zeros(degree + 2)
    cost[-1] = 1.0
    bounds = [(None, None)] * (degree + 1) + [(0, None)]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if not res.success:  # pragma: no cover - a feasible LP with a free polynomial
        raise RuntimeError(f"minimax fit failed: {res.message}")
    return res.x[:-1]


def _horner(p: GeluBaseParams, coefs: np.ndarray, x: np.ndarray):
    """Integer Horner evaluation: (phi codes, every partial sum h) of input codes x."""
    xp = namespace(x)
    a = xp.abs(x)
    k = p.seg_shift
    seg = clip(xp, a >> k, None, p.segments)
    t = a & ((1 << k) - 1)
    # coefficient j of each element's segment: column j of the table, looked up
    h = lookup(xp, np.ascontiguousarray(coefs[:, p.degree]), seg)
    partial = [h]
    for j in range(p.degree - 1, -1, -1):
        h = lookup(xp, np.ascontiguousarray(coefs[:, j]), seg) + mul_round(t, h, p.in_fmt.frac_bits)
        partial.append(h)
    one = 1 << p.coef_fmt.frac_bits
    phi_wide = xp.where(x < 0, h, one - h)
    phi = saturate(
        shift_round_half_up(phi_wide, p.coef_fmt.frac_bits - p.phi_fmt.frac_bits), p.phi_fmt
    )
    return phi, partial


def _poly_tables(p: GeluBaseParams) -> PolyTables:
    f_in = p.in_fmt.frac_bits
    n = 1 << p.seg_shift
    t = np.ldexp(np.arange(n, dtype=np.float64), -f_in)
    coefs = np.zeros((p.segments + 1, p.degree + 1), dtype=np.int64)
    for k in range(p.segments):
        real = _minimax(t, ndtr(-(k * n * 2.0**-f_in + t)), p.degree)
        try:
            coefs[k] = p.coef_fmt.encode(real, saturate=False)
        except ValueError:
            raise ValueError(
                f"gelu_base coef_fmt {p.coef_fmt} cannot hold segment {k}'s coefficients "
                f"{real.tolist()}; use more integer bits"
            ) from None
    codes = p.in_fmt.all_codes()
    phi, partial = _horner(p, coefs, codes)
    for h in partial:
        if h.min() < p.coef_fmt.min_code or h.max() > p.coef_fmt.max_code:
            raise ValueError(
                f"gelu_base Horner partial sums overflow coef_fmt {p.coef_fmt}; "
                f"use more integer bits"
            )
    scale = -(f_in + p.phi_fmt.frac_bits)
    fit = _fit_error(p, lambda x: np.ldexp((x * _horner(p, coefs, x)[0]).astype(np.float64), scale))
    rounded = f_in + p.phi_fmt.frac_bits > p.out_fmt.frac_bits
    return PolyTables(coefs=coefs, fit_error=fit, bound=_bound(p, fit, rounded))


def _emulate_poly(p: GeluBaseParams, x: np.ndarray) -> np.ndarray:
    phi, _ = _horner(p, tables(p).coefs, x)
    shift = p.in_fmt.frac_bits + p.phi_fmt.frac_bits - p.out_fmt.frac_bits
    return saturate(mul_round(x, phi, shift), p.out_fmt)


_TABLES = {GeluBaseKind.TABLE: _table_rom, GeluBaseKind.POLY: _poly_tables}
_EMULATE = {GeluBaseKind.TABLE: _emulate_table, GeluBaseKind.POLY: _emulate_poly}


@functools.lru_cache(maxsize=32)
def tables(p: GeluBaseParams) -> TableROM | PolyTables:
    """What the hardware bakes in for ``p`` (cached): a :class:`TableROM` or
    :class:`PolyTables`, with the measured error bound."""
    return _TABLES[p.kind](p)


# -- the models ----------------------------------------------------------------------------------


def emulate(p: GeluBaseParams, codes) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.gelu_base.GeluBase`: ``in_fmt`` codes in, ``out_fmt``
    codes out. Vectorised over any array shape; ``ValueError`` for codes outside ``in_fmt``."""
    x = p.in_fmt.check_codes(codes, "gelu_base input code")
    return _EMULATE[p.kind](p, x)


def reference(p: GeluBaseParams, x) -> np.ndarray:
    """Exact GELU, x * Phi(x), in float64 on real values (``p`` is accepted for symmetry)."""
    return _gelu(np.asarray(x, dtype=np.float64))


def reference_codes(p: GeluBaseParams, codes) -> np.ndarray:
    """The ideal output for input codes: exact GELU of the decoded input, clipped to out_fmt."""
    y = reference(p, p.in_fmt.decode(codes))
    return np.clip(y, p.out_fmt.min_value, p.out_fmt.max_value)


def error_stats(p: GeluBaseParams) -> dict[str, float]:
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


def standard_cases(p: GeluBaseParams) -> dict[str, np.ndarray]:
    """Named corner cases: format extremes, zero, one LSB, and both sides of every place
    where the datapath changes (table range ends; segment boundaries and ``limit``)."""
    f = p.in_fmt
    if p.kind is GeluBaseKind.TABLE:
        d = p.addr_shift
        edges = [(p.addr_fmt.max_code + 1) << d, p.addr_fmt.min_code << d]
        edges += [1 << d, -(1 << d)]  # the buckets next to zero
    else:
        w = 1 << p.seg_shift
        edges = [k * w for k in range(1, p.segments + 1)]
    around = np.array([e + o for e in edges for o in (-1, 0, 1)], dtype=np.int64)
    around = np.concatenate([around, -around])
    around = around[(around >= f.min_code) & (around <= f.max_code)]
    peak = int(f.encode(-0.752))  # GELU's minimum
    cases = {
        "zero": [0],
        "one_lsb": [1, -1],
        "extremes": [f.min_code, f.min_code + 1, f.max_code, f.max_code - 1],
        "edges": around,
        "minimum": [peak, peak - 1, peak + 1],
    }
    return {k: f.check_codes(np.unique(v), "case") for k, v in cases.items()}


def random_cases(p: GeluBaseParams, n: int, seed: int = 0) -> np.ndarray:
    """Biased random inputs: half uniform over all codes, half like DeiT's (N(0, 3) values)."""
    rng = np.random.default_rng(seed)
    f = p.in_fmt
    uniform = rng.integers(f.min_code, f.max_code + 1, size=n - n // 2)
    gauss = f.encode(rng.normal(0.0, 3.0, size=n // 2))
    return np.concatenate([uniform, gauss]).astype(np.int64)


def param_sweep() -> list[GeluBaseParams]:
    """The default of each kind first, then variants worth synthesizing: the 13-bit table
    exact up to the output rounding, the literal top-12-bit table (s6.6 on the whole range),
    and polynomials of degree 3 and 1."""
    table = GeluBaseParams()
    poly = GeluBaseParams(kind=GeluBaseKind.POLY)
    return [
        table,
        poly,
        table.replace(addr_fmt=FixFormat(3, 10)),
        table.replace(addr_fmt=FixFormat(6, 6)),
        poly.replace(segments=4, degree=3),
        poly.replace(segments=16, degree=1),
    ]


def workload(p: GeluBaseParams, n: int, seed: int = 0):
    """The PWL GELU's workload (:func:`golden.gelu.workload`)."""
    return pwl.workload(p, n, seed)
