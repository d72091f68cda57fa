"""LayerNorm baselines: what a user builds without PEANO-ViT's division-free 1/sqrt.

Two kinds with the ports, row framing, word formats, eps and ``max_len`` of
:mod:`golden.layernorm` (s8.8 in, s6.10 out, s5.11 gamma and beta loaded through the same
``affine`` write stream, the normalised value in s6.12 before the affine step), so either
can replace :class:`hwgen.cores.layernorm.LayerNorm`. Both share the textbook statistics (one
pass, exact integers S1 = sum x and S2 = sum x^2 over the row of D elements, F = ``in_fmt``
fractional bits):

1. mean = S1 / D, rounded (half away from zero) to ``mean_fmt``, by a real divider;
2. var = S2 / D - mean^2: S2 / D rounded half up to ``var_fmt`` by a second divider, mean^2
   exact and rounded half up to ``var_fmt``, the difference clamped at 0.

``div`` -- real divider and square root
---------------------------------------
3. std = sqrt(var + eps) rounded half up to ``std_fmt``: an integer square root of
   (var + eps) * 2^(2 fs - fv + 2) (fs, fv: fractional bits of std_fmt, var_fmt), then +1 and
   halved; eps is rounded to ``var_fmt``.
4. per element: d = x - mean rounded to fs fractional bits (x - round(mean to fs bits), exact
   since fs >= F), z = |d| / std by a restoring divider giving floor(|d| 2^(fz+1) / std)
   (fz = ``norm_fmt`` fractional bits), +1 and halved (round half away from zero), the sign
   put back, saturated to ``norm_fmt``.

``lut`` -- hls4ml-style 1/sqrt table
------------------------------------
Modelled on hls4ml's ``layernorm_1d`` (nnet_layernorm.h): a ``table_size``-entry table of
1/sqrt(v + eps) over v in [0, R) with R = 2^``table_range_log2`` (hls4ml's
``table_range_power2`` with the opposite sign, default R = 1 as there), indexed by
floor(var * table_size / R) clipped to the last entry: with var in ``var_fmt`` that index is the
word's bits from weight R / 2 down to R / table_size, i.e. its top bits below R (a var of R or
more reads the last entry). Entry 0 is 1/sqrt(eps) (hls4ml's value; it keeps constant rows
exact) and entry i >= 1 is 1/sqrt(eps + (i + 1/2) R / table_size), the interval's midpoint
(hls4ml uses the left end, which doubles the error: in the baseline's favour), in
``table_fmt``. Per element z = d * inv_std with d = x - mean rounded to ``diff_fmt`` (hls4ml's
``accum_t`` data_diff), rounded half up and saturated to ``norm_fmt``: one multiplier. The mean
comes from the sequential divider, since the row length is known only at run time (hls4ml
multiplies by the constant 1/dim), and the variance from S2 / D - mean^2 rather than hls4ml's
second pass over the row.

Affine (both kinds, as :mod:`golden.layernorm`): z * gamma + beta rounded half up to ``out_fmt``
and saturated.

Error bounds (tests/test_layernorm_base.py asserts them)
--------------------------------------------------------
Measured with :func:`error_stats` (the rows of :func:`golden.layernorm.error_stats`: 40 DeiT-like
rows each of 192, 384 and 768 channels, plus the named rows) against float64
``(x - mean) / sqrt(var + eps)`` clipped to ``out_fmt``:

* ``div`` default: max 6.10e-4 (mean 2.56e-4), bound 2^-11 + 2^-13 + 2^-14 = 6.7e-4. The
  output step alone costs 2^-11 = 4.9e-4 (correct rounding); the double rounding through
  s6.12 adds at most 2^-13 and the statistics (mean to 40 fractional bits, var to 34, std to
  26) leave below 2^-14 on these rows: close to correctly rounded and 5 times closer than the
  approximate LayerNorm's 3.04e-3. The textbook var = S2/D - mean^2 loses |mean| 2^-40 to
  cancellation, which matters only for rows whose variance is below about 2^-20 (eps) with
  |mean| near 128.
* ``lut`` default: max 31.0 (bound 31.5; the ``extremes`` row, variance 2^14, reads the last
  entry 1/sqrt(1) and saturates at the format's end where the answer is 1), mean 0.32 (asserted
  <= 0.33), 25.5 over the random rows alone. A linear table of 4096 entries over [0, 1) cannot
  cover variances from 1e-3 to 150: rows with var >= 1 come out sqrt(var) times too large,
  and small variances have few entries (relative step 1 / (2 i) at entry i). Only rows whose
  variance lies well inside the range are accurate (upper half: relative error 1/2048,
  tested). ``table_range_log2`` = 6 (R = 64, the best power of two for these rows) gives max
  15.0, mean 0.066, 7.9 over the random rows. That is the hls4ml design, modelled as such
  (hls4ml users tune the range per layer): 100 to 10^4 times less accurate than the
  approximate LayerNorm, whose table is indexed by the variance's leading one (a floating-point
  index) and refined by a Newton step.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np

from . import layernorm as approx
from .arrays import int64, namespace
from .formats import FixFormat, saturate, shift_round_half_up
from .params import ParamsBase, check_enum, check_fix, check_int

__all__ = [
    "random_cases",
    "row_params",
    "workload",
    "ERROR_BOUNDS",
    "LayerNormBaseKind",
    "LayerNormBaseParams",
    "RowConstants",
    "tables",
    "row_constants",
    "emulate",
    "reference",
    "random_rows",
    "standard_cases",
    "error_stats",
    "param_sweep",
]


class LayerNormBaseKind(enum.Enum):
    """Which baseline design."""

    #: mean and var by dividers, std by an integer square root, a pipelined divider per element.
    DIV = "div"
    #: hls4ml-style: 1/sqrt(var + eps) from a linear table, a multiplier per element.
    LUT = "lut"


@dataclass(frozen=True)
class LayerNormBaseParams(ParamsBase):
    """Configuration of a LayerNorm baseline.

    Parameters
    ----------
    kind : LayerNormBaseKind
        ``div`` (default) or ``lut``.
    in_fmt, out_fmt, gamma_fmt, beta_fmt, norm_fmt, max_len, eps
        As :class:`golden.layernorm.LayerNormParams` (s8.8, s6.10, s5.11, s5.11, s6.12, 1024,
        1e-6).
    mean_fmt : FixFormat
        The row mean S1 / D. Default s8.40: the cancellation in S2/D - mean^2 costs
        |mean| 2^-40 of variance.
    var_fmt : FixFormat
        The variance (unsigned). Default u14.34: holds every variance of s8.8 rows (below
        2^14) with 2^-34 steps, 2^-14 of eps = 1e-6.
    std_fmt : FixFormat
        ``div``: sqrt(var + eps) and the divisor of the per-element divider (unsigned);
        x - mean is formed at its fractional bits. Default u7.26: relative step 2^-16 at the
        smallest std, sqrt(eps) = 1e-3.
    diff_fmt : FixFormat
        ``lut``: x - mean, the multiplier's data operand. Default s9.12 (|x - mean| < 256).
    table_size : int
        ``lut``: entries of the 1/sqrt table, a power of two from 16 to 65536; default 4096.
    table_range_log2 : int
        ``lut``: the table covers var in [0, 2**table_range_log2), -16 to 14; default 0.
    table_fmt : FixFormat
        ``lut``: table words (unsigned). Default u10.14: 24 bits, 1/sqrt(eps) = 1000 fits.
    """

    op = "layernorm_base"

    kind: LayerNormBaseKind = LayerNormBaseKind.DIV
    in_fmt: FixFormat = FixFormat(8, 8)
    out_fmt: FixFormat = FixFormat(6, 10)
    max_len: int = 1024
    eps: float = 1e-6
    gamma_fmt: FixFormat = FixFormat(5, 11)
    beta_fmt: FixFormat = FixFormat(5, 11)
    norm_fmt: FixFormat = FixFormat(6, 12)
    mean_fmt: FixFormat = FixFormat(8, 40)
    var_fmt: FixFormat = FixFormat(14, 34, signed=False)
    std_fmt: FixFormat = FixFormat(7, 26, signed=False)
    diff_fmt: FixFormat = FixFormat(9, 12)
    table_size: int = 4096
    table_range_log2: int = 0
    table_fmt: FixFormat = FixFormat(10, 14, signed=False)

    def __post_init__(self):
        op = self.op
        object.__setattr__(self, "kind", check_enum(op, "kind", self.kind, LayerNormBaseKind))
        for name in ("in_fmt", "out_fmt", "gamma_fmt", "beta_fmt", "norm_fmt"):
            check_fix(op, name, getattr(self, name), signed=True)
        check_int(op, "max_len", self.max_len, 2, 4096)
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool):
            raise TypeError(f"{op} eps must be a number, not {self.eps!r}")
        if not 0 < self.eps < 1:
            raise ValueError(f"{op} eps must be in (0, 1), not {self.eps!r}")
        fi, ii = self.in_fmt.frac_bits, self.in_fmt.int_bits
        check_fix(op, "mean_fmt", self.mean_fmt, signed=True)
        if self.mean_fmt.int_bits < ii or self.mean_fmt.frac_bits < fi:
            raise ValueError(
                f"{op} mean_fmt must hold every in_fmt value (at least s{ii}.{fi}), "
                f"not {self.mean_fmt}"
            )
        check_fix(op, "var_fmt", self.var_fmt, signed=False)
        if self.var_fmt.int_bits < 2 * (ii - 1):
            raise ValueError(
                f"{op} var_fmt needs at least {2 * (ii - 1)} integer bits for the variance of "
                f"{self.in_fmt} rows, not {self.var_fmt}"
            )
        if not 2 * fi <= self.var_fmt.frac_bits <= 2 * self.mean_fmt.frac_bits:
            raise ValueError(
                f"{op} var_fmt's fractional bits must be {2 * fi} (those of x^2) to "
                f"{2 * self.mean_fmt.frac_bits} (those of mean^2), not {self.var_fmt.frac_bits}"
            )
        if self.eps_code < 1:
            raise ValueError(f"{op} eps={self.eps} rounds to 0 in var_fmt {self.var_fmt}")
        check_fix(op, "std_fmt", self.std_fmt, signed=False)
        fs = self.std_fmt.frac_bits
        if self.std_fmt.int_bits < ii - 1:
            raise ValueError(
                f"{op} std_fmt needs at least {ii - 1} integer bits, not {self.std_fmt}"
            )
        if not (fi <= fs <= self.mean_fmt.frac_bits and 2 * fs >= self.var_fmt.frac_bits):
            raise ValueError(
                f"{op} std_fmt's fractional bits must be at least in_fmt's ({fi}) and half "
                f"var_fmt's ({self.var_fmt.frac_bits}), at most mean_fmt's "
                f"({self.mean_fmt.frac_bits}); not {fs}"
            )
        check_fix(op, "diff_fmt", self.diff_fmt, signed=True)
        if self.diff_fmt.int_bits < ii + 1 or not (
            fi <= self.diff_fmt.frac_bits <= self.mean_fmt.frac_bits
        ):
            raise ValueError(
                f"{op} diff_fmt must have at least {ii + 1} integer bits and {fi} to "
                f"{self.mean_fmt.frac_bits} fractional bits, not {self.diff_fmt}"
            )
        check_int(op, "table_size", self.table_size, 16, 65536)
        if self.table_size & (self.table_size - 1):
            raise ValueError(f"{op} table_size must be a power of two, not {self.table_size}")
        check_int(op, "table_range_log2", self.table_range_log2, -16, 14)
        if self.index_shift < 0:
            raise ValueError(
                f"{op} var_fmt has {self.var_fmt.frac_bits} fractional bits; the table index "
                f"needs {self.var_fmt.frac_bits - self.index_shift} "
                f"(table_size {self.table_size} over 2**{self.table_range_log2})"
            )
        check_fix(op, "table_fmt", self.table_fmt, signed=False)
        if self.diff_fmt.frac_bits + self.table_fmt.frac_bits <= self.norm_fmt.frac_bits:
            raise ValueError(
                f"{op} norm_fmt keeps more fractional bits ({self.norm_fmt.frac_bits}) than "
                f"d * inv_std has ({self.diff_fmt.frac_bits + self.table_fmt.frac_bits})"
            )
        if 1.0 / math.sqrt(self.eps) > self.table_fmt.max_value:
            raise ValueError(
                f"{op} table_fmt {self.table_fmt} cannot hold 1/sqrt(eps) = "
                f"{1 / math.sqrt(self.eps):.4g}; add integer bits"
            )

    @property
    def eps_code(self) -> int:
        """eps in ``var_fmt`` units (rounded), as the hardware adds it."""
        return round(self.eps * 2.0**self.var_fmt.frac_bits)

    @property
    def index_shift(self) -> int:
        """``lut``: var code >> index_shift is the table index before clipping."""
        return self.var_fmt.frac_bits - (self.table_size.bit_length() - 1) + self.table_range_log2

    @property
    def num_frac(self) -> int:
        """Fractional bits of d = x - mean per element: std_fmt's (div), diff_fmt's (lut)."""
        fmt = self.std_fmt if self.kind is LayerNormBaseKind.DIV else self.diff_fmt
        return fmt.frac_bits

    @property
    def name(self) -> str:
        """Module and file name, e.g. ``layernorm_base_div_i16f8_o16f10_n1024``; the
        non-default fields that the kind uses are appended."""
        kind = self.kind.value
        name = f"layernorm_base_{kind}_i{self.in_fmt.tag}_o{self.out_fmt.tag}_n{self.max_len}"
        default = LayerNormBaseParams()
        if self.eps != default.eps:
            name += f"_eps{self.eps:g}".replace("-", "m").replace(".", "p")
        fields = [
            ("gamma_fmt", "g"),
            ("beta_fmt", "b"),
            ("norm_fmt", "nm"),
            ("mean_fmt", "m"),
            ("var_fmt", "v"),
        ]
        if self.kind is LayerNormBaseKind.DIV:
            fields += [("std_fmt", "s")]
        else:
            fields += [
                ("diff_fmt", "d"),
                ("table_size", "t"),
                ("table_range_log2", "r"),
                ("table_fmt", "tw"),
            ]
        for field, tag in fields:
            value = getattr(self, field)
            if value != getattr(default, field):
                text = value.tag if isinstance(value, FixFormat) else str(value)
                name += f"_{tag}{text.replace('-', 'm')}"
        return name


@functools.lru_cache(maxsize=64)
def tables(p: LayerNormBaseParams) -> np.ndarray:
    """``lut``: the 1/sqrt table, ``table_fmt`` codes (see the module docstring)."""
    step = 2.0**p.table_range_log2 / p.table_size
    i = np.arange(p.table_size, dtype=np.float64)
    v = p.eps + (i + 0.5) * step
    return p.table_fmt.encode(1.0 / np.sqrt(v))


def div_round(num: int, den: int, shift: int) -> int:
    """num * 2**shift / den rounded half away from zero (Python integers, den > 0).

    What the hardware's divider gives: floor(|num| 2^(shift+1) / den), plus 1, halved, and the
    sign put back.

    >>> [div_round(n, 4, 0) for n in (1, 2, 3, -2, -6)]   # 0.25 0.5 0.75 -0.5 -1.5
    [0, 1, 1, -1, -2]
    """
    q = ((abs(num) << (shift + 1)) // den + 1) >> 1
    return -q if num < 0 else q


def _round_half_up(v: int, shift: int) -> int:
    return (v + (1 << (shift - 1))) >> shift if shift > 0 else v << -shift


@dataclass(frozen=True)
class RowConstants:
    """What the per-row unit hands the element pipeline, and the statistics behind it.

    Members
    -------
    mean, var : int
        ``mean_fmt`` and ``var_fmt`` codes.
    mean_num : int
        The mean rounded half up to :attr:`LayerNormBaseParams.num_frac` fractional bits.
    scale : int
        ``div``: std, a ``std_fmt`` code; ``lut``: 1/sqrt(var + eps), a ``table_fmt`` code.
    """

    mean: int
    var: int
    mean_num: int
    scale: int


def row_constants(p: LayerNormBaseParams, s1: int, s2: int, d: int) -> RowConstants:
    """The per-row unit's arithmetic on the exact sums S1, S2 of a row of ``d`` elements."""
    fi = p.in_fmt.frac_bits
    fm, fv = p.mean_fmt.frac_bits, p.var_fmt.frac_bits
    mean = div_round(s1, d, fm - fi)
    e2 = div_round(s2, d, fv - 2 * fi)
    var = max(e2 - _round_half_up(mean * mean, 2 * fm - fv), 0)
    mean_num = _round_half_up(mean, fm - p.num_frac)
    if p.kind is LayerNormBaseKind.DIV:
        fs = p.std_fmt.frac_bits
        scale = (math.isqrt((var + p.eps_code) << (2 * fs - fv + 2)) + 1) >> 1
    else:
        scale = int(tables(p)[min(var >> p.index_shift, p.table_size - 1)])
    return RowConstants(mean, var, mean_num, scale)


def emulate(p: LayerNormBaseParams, codes, gamma_codes=None, beta_codes=None) -> np.ndarray:
    """Bit-exact model of :class:`hwgen.cores.layernorm_base.LayerNormBase`: the last axis of
    ``codes`` is one row (1 to ``max_len``). ``gamma_codes`` / ``beta_codes`` as
    :func:`golden.layernorm.emulate` (None: the identity). Returns ``out_fmt`` codes."""
    x = p.in_fmt.check_codes(codes, "layernorm_base input code")
    if x.ndim == 0 or not 1 <= x.shape[-1] <= p.max_len:
        length = "a scalar" if x.ndim == 0 else f"length {x.shape[-1]}"
        raise ValueError(
            f"layernorm_base rows must have length 1 to max_len={p.max_len} on the last "
            f"axis, not {length}; raise max_len"
        )
    d = x.shape[-1]
    gamma = approx._affine(p.gamma_fmt, gamma_codes, d, "gamma")
    beta = approx._affine(p.beta_fmt, beta_codes, d, "beta")
    xp = namespace(x)
    rows = xp.reshape(x, (-1, d))
    # the per-row unit's words are wider than 64 bits: its arithmetic runs on Python integers,
    # from the exact row sums (two numbers per row; on a GPU they come to the host and back)
    s1, s2 = xp.sum(rows, axis=1).tolist(), xp.sum(rows * rows, axis=1).tolist()
    consts = [row_constants(p, int(a), int(b), d) for a, b in zip(s1, s2, strict=True)]
    mean_num = int64(xp, [c.mean_num for c in consts], x)[:, None]
    scale = int64(xp, [c.scale for c in consts], x)[:, None]
    num = (rows << (p.num_frac - p.in_fmt.frac_bits)) - mean_num
    fz = p.norm_fmt.frac_bits
    if p.kind is LayerNormBaseKind.DIV:
        mag = ((xp.abs(num) << (fz + 1)) // scale + 1) >> 1
        z = xp.where(num < 0, -mag, mag)
    else:
        z = shift_round_half_up(num * scale, p.num_frac + p.table_fmt.frac_bits - fz)
    z = saturate(z, p.norm_fmt)
    frac, acc = fz, z
    if gamma is not None:
        acc = z * gamma[None, :]
        frac = fz + p.gamma_fmt.frac_bits
    if beta is not None:
        acc = acc + (beta[None, :] << (frac - p.beta_fmt.frac_bits))
    y = shift_round_half_up(acc, frac - p.out_fmt.frac_bits)
    return xp.reshape(saturate(y, p.out_fmt), x.shape)


def reference(p: LayerNormBaseParams, x, gamma=None, beta=None) -> np.ndarray:
    """Float64 LayerNorm over the last axis (:func:`golden.layernorm.reference`)."""
    return approx.reference(p, x, gamma, beta)


# -- test vectors ----------------------------------------------------------------------------------


def random_rows(p: LayerNormBaseParams, n_rows: int, length: int, seed: int = 0) -> np.ndarray:
    """DeiT-like rows (:func:`golden.layernorm.random_rows`)."""
    return approx.random_rows(p, n_rows, length, seed)


def standard_cases(p: LayerNormBaseParams) -> dict[str, np.ndarray]:
    """The approximate LayerNorm's named rows, plus rows aimed at the baselines: a row of
    ``max_len`` elements, a large mean over a tiny variance, and a variance at the lut's table
    range."""
    f = p.in_fmt
    cases = dict(approx.standard_cases(p))
    rng = np.random.default_rng(1)
    cases["max_len"] = f.encode(rng.normal(0.3, 1.5, p.max_len))
    d = min(p.max_len, 192)
    big_mean = np.full(d, f.max_code - 3, dtype=np.int64)
    big_mean[::5] -= 2  # |mean| near 128 over a variance of about one LSB^2
    cases["big_mean_tiny_variance"] = big_mean
    edge = np.where(np.arange(d) % 2 == 0, 1.0, -1.0) * math.sqrt(2.0**p.table_range_log2)
    cases["variance_at_table_range"] = f.encode(edge)
    return cases


def error_stats(p: LayerNormBaseParams, n_rows: int = 40, seed: int = 0) -> dict[str, float]:
    """Max and mean |emulate - reference| (no affine; reference clipped to out_fmt) over the
    rows :func:`golden.layernorm.error_stats` uses (random rows of 192, 384 and 768 channels
    and its named rows), plus this module's extra named rows."""
    cases = [random_rows(p, n_rows, d, seed + d) for d in (192, 384, 768) if d <= p.max_len]
    n_random = len(cases)
    cases += [row[None, :] for row in standard_cases(p).values()]
    max_abs, random_max, total, count = 0.0, 0.0, 0.0, 0
    for k, rows in enumerate(cases):
        y = p.out_fmt.decode(emulate(p, rows))
        ref = np.clip(reference(p, p.in_fmt.decode(rows)), p.out_fmt.min_value, p.out_fmt.max_value)
        err = np.abs(y - ref)
        max_abs = max(max_abs, float(err.max()))
        if k < n_random:
            random_max = max(random_max, float(err.max()))
        total += float(err.sum())
        count += err.size
    return {
        "inputs": count,
        "max_abs": max_abs,
        "mean_abs": total / count,
        "random_max_abs": random_max,
        "bound": ERROR_BOUNDS[p.kind],
    }


#: Stated bounds of max |emulate - reference| for the default of each kind (module docstring).
ERROR_BOUNDS = {LayerNormBaseKind.DIV: 2.0**-11 + 2.0**-13 + 2.0**-14, LayerNormBaseKind.LUT: 31.5}


def param_sweep() -> list[LayerNormBaseParams]:
    """The default of each kind first, then variants worth synthesizing."""
    d = LayerNormBaseParams()
    lut = d.replace(kind=LayerNormBaseKind.LUT)
    return [
        d,
        lut,
        d.replace(max_len=256, eps=1e-5, in_fmt=FixFormat(6, 10)),
        lut.replace(table_range_log2=6),
        lut.replace(table_size=1024, table_fmt=FixFormat(10, 8, signed=False)),
    ]


def random_cases(p: LayerNormBaseParams, n: int, seed: int = 0) -> list[np.ndarray]:
    """The approximate LayerNorm's random rows (:func:`golden.layernorm.random_cases`)."""
    return approx.random_cases(p, n, seed)


def row_params(p: LayerNormBaseParams, length: int, seed: int | None = None) -> dict:
    """gamma and beta as for the approximate LayerNorm (:func:`golden.layernorm.row_params`)."""
    return approx.row_params(p, length, seed)


def workload(p: LayerNormBaseParams, n: int, seed: int = 0):
    """The approximate LayerNorm's workload (:func:`golden.layernorm.workload`)."""
    return approx.workload(p, n, seed)
