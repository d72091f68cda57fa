"""Division-free LayerNorm: exact one-pass statistics and a table + Newton 1/sqrt.

Golden model only (the Amaranth component is still to be built; see issue 5's notes).

Algorithm (one row X_0 .. X_{D-1} of ``in_fmt`` codes with F fractional bits)
------------------------------------------------------------------------------
1. One pass, exact integers: S1 = sum X, S2 = sum X^2.
2. D^2 var = D S2 - S1^2 exactly, so with G = ``eps_extra_bits`` (even) guard bits
   W = (D S2 - S1^2) 2^G + D^2 round(eps 2^(2F+G)) > 0
   is D^2 (var + eps) in units of 2^-(2F+G), still an integer: no 1/D anywhere, and no
   cancellation however large the mean is against a tiny variance.
3. Leading one: W = 2^(2k) m with m in [1, 4) kept to ``rsqrt_fmt`` fractional bits; a table
   of 3 * 2^(rsqrt_bits-1) seeds over [1, 4) (2 / (sqrt(lo) + sqrt(hi)) each, the minimax
   relative seed) and ``newton_steps`` iterations y <- y (3 - m y^2) / 2 give y ~ 1/sqrt(m).
4. (x - mean) / sqrt(var + eps) = (D X - S1) 2^(G/2 - k) y. In hardware the per-row unit
   forms A = D y and B = S1 y (exact integers) so that each element needs one multiply,
   X A - B, then the shift by k - G/2 (all exact), and one rounding to ``norm_fmt``.
5. Affine: z * gamma + beta, rounded half up to ``out_fmt`` and saturated.

Per lane that is three multipliers: X^2 (statistics), X A (normalise; A has
11 + y's bits for max_len 1024), and the gamma product.

Error
-----
Everything before the 1/sqrt is exact. The table seed's relative error is at most about
(sqrt(hi/lo) - 1) / 2, i.e. 1/(2^(rsqrt_bits+1)) near m = 1; each Newton step squares it (times
3/2); the output then carries |z| times that relative error (|z| <= sqrt(D - 1) for a row with
one outlier, about 27.7 for D = 768) plus the roundings of ``norm_fmt`` and ``out_fmt``. The
default configuration is measured (tests/test_layernorm.py) to stay within 2^-7 of float64
``(x - mean) / sqrt(var + eps)`` on realistic rows of length 192, 384 and 768, outlier rows and
rows of tiny variance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
from .formats import FixFormat, saturate_, shift_round_half_up
from .params import ParamsBase, Workload, check_fix, check_int

__all__ = [
    "pareto_sweep",
    "random_cases",
    "row_params",
    "workload",
    "LayerNormParams",
    "LayerNormTables",
    "tables",
    "emulate",
    "reference",
    "rsqrt",
    "standard_cases",
    "random_rows",
    "error_stats",
    "param_sweep",
]


@dataclass(frozen=True)
class LayerNormParams(ParamsBase):
    """Configuration of the LayerNorm.

    Parameters
    ----------
    in_fmt : FixFormat
        Activations. Default s8.8: DeiT's residual stream has channels 10 to 50 times larger
        than the rest (values past ±60), which s6.10 would clip.
    out_fmt : FixFormat
        Output (after the affine step). Default s6.10: normalised values stay within
        ±sqrt(D - 1) (27.7 for D = 768) and gamma is mostly below 2.
    max_len : int
        Longest row, 2 to 4096; default 1024 (DeiT-T/S/B widths 192, 384, 768).
    eps : float
        Added to the variance (DeiT uses 1e-6).
    gamma_fmt, beta_fmt : FixFormat
        Affine parameters. Default s5.11 (±16).
    eps_extra_bits : int
        Guard bits G (even) that resolve eps below the input's squared step. Default 16.
    rsqrt_fmt : FixFormat
        m in [1, 4) and y = 1/sqrt(m) in (0.5, 1]. Default u2.13: y keeps 13 fractional bits,
        so A = D y < 2^24 for max_len 1024 and x * A is one 25 x 18 DSP48 product.
    rsqrt_bits : int
        The seed table has 3 * 2**(rsqrt_bits - 1) entries over [1, 4). Default 6 (96).
    newton_steps : int
        0 to 3. Default 1 (1.97e-3 max error; a second step adds nothing at 14 fractional
        bits and costs the sequential per-row unit 49 clocks).
    norm_fmt : FixFormat
        The normalised value before the affine step. Default s6.12: 18 bits, so z * gamma is
        one 18 x 18 DSP product.
    """

    op = "layernorm"

    in_fmt: FixFormat = FixFormat(8, 8)
    out_fmt: FixFormat = FixFormat(6, 10)
    max_len: int = 1024
    eps: float = 1e-6
    gamma_fmt: FixFormat = FixFormat(5, 11)
    beta_fmt: FixFormat = FixFormat(5, 11)
    eps_extra_bits: int = 16
    rsqrt_fmt: FixFormat = FixFormat(2, 13, signed=False)
    rsqrt_bits: int = 6
    newton_steps: int = 1
    norm_fmt: FixFormat = FixFormat(6, 12)

    def __post_init__(self):
        op = "layernorm"
        for name in ("in_fmt", "out_fmt", "gamma_fmt", "beta_fmt", "norm_fmt"):
            check_fix(op, name, getattr(self, name), signed=True)
        check_fix(op, "rsqrt_fmt", self.rsqrt_fmt, signed=False)
        if self.rsqrt_fmt.int_bits != 2:
            raise ValueError(
                f"{op} rsqrt_fmt must have 2 integer bits (m lies in [1, 4)), not {self.rsqrt_fmt}"
            )
        check_int(op, "max_len", self.max_len, 2, 4096)
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool):
            raise TypeError(f"{op} eps must be a number, not {self.eps!r}")
        if not (0 < self.eps < float("inf")):
            raise ValueError(f"{op} eps must be a positive finite number, not {self.eps!r}")
        check_int(op, "eps_extra_bits", self.eps_extra_bits, 0, 32)
        if self.eps_extra_bits % 2:
            raise ValueError(
                f"{op} eps_extra_bits must be even (its square root is a shift), "
                f"not {self.eps_extra_bits}"
            )
        if round(self.eps * 2.0 ** (2 * self.in_fmt.frac_bits + self.eps_extra_bits)) < 1:
            raise ValueError(
                f"{op} eps={self.eps} rounds to 0 at in_fmt {self.in_fmt} with "
                f"{self.eps_extra_bits} guard bits; raise eps_extra_bits"
            )
        check_int(op, "rsqrt_bits", self.rsqrt_bits, 2, 10)
        if self.rsqrt_bits - 1 > self.rsqrt_fmt.frac_bits:
            raise ValueError(
                f"{op} rsqrt_bits - 1 ({self.rsqrt_bits - 1}) must not exceed rsqrt_fmt's "
                f"fractional bits ({self.rsqrt_fmt.frac_bits})"
            )
        check_int(op, "newton_steps", self.newton_steps, 0, 3)

    @property
    def eps_code(self) -> int:
        """eps in units of 2**-(2 in_frac + eps_extra_bits), as the hardware adds it."""
        return round(self.eps * 2.0 ** (2 * self.in_fmt.frac_bits + self.eps_extra_bits))

    @property
    def name(self) -> str:
        name = f"layernorm_i{self.in_fmt.tag}_o{self.out_fmt.tag}_n{self.max_len}"
        default = LayerNormParams()
        if self.eps != default.eps:
            name += f"_eps{self.eps:g}".replace("-", "m").replace(".", "p")
        if self.rsqrt_bits != default.rsqrt_bits:
            name += f"_rb{self.rsqrt_bits}"
        if self.newton_steps != default.newton_steps:
            name += f"_nt{self.newton_steps}"
        for field, tag in (
            ("gamma_fmt", "g"),
            ("beta_fmt", "b"),
            ("rsqrt_fmt", "rs"),
            ("norm_fmt", "nm"),
        ):
            if getattr(self, field) != getattr(default, field):
                name += f"_{tag}{getattr(self, field).tag}"
        if self.eps_extra_bits != default.eps_extra_bits:
            name += f"_x{self.eps_extra_bits}"
        return name


#: Most guard bits :func:`eps_guard_bits` chooses (``eps_extra_bits``' upper limit).
MAX_GUARD_BITS = 32
#: :func:`eps_guard_bits` resolves eps to at least this many units (relative error <= 1/128).
EPS_UNITS = 64


def eps_guard_bits(eps: float, in_fmt: FixFormat, minimum: int = 16) -> int:
    """Guard bits G for ``eps``: the smallest even G >= ``minimum`` at which eps is at least
    :data:`EPS_UNITS` units of 2**-(2 in_frac + G) (so the hardware adds it within 1/128 of its
    value), or :data:`MAX_GUARD_BITS` where no G reaches that. Each guard bit widens the
    per-row unit's W word by one bit.

    >>> eps_guard_bits(1e-6, FixFormat(8, 8))   # DeiT: the default 16 already suffice
    16
    >>> eps_guard_bits(1e-12, FixFormat(8, 8))  # BERT: 1e-12 * 2**(16 + 30) = 70 units
    30
    >>> eps_guard_bits(1e-20, FixFormat(8, 8))  # below the grid: the most there is
    32
    """
    if not (0 < eps < float("inf")):
        raise ValueError(f"eps must be a positive finite number, not {eps!r}")
    g = max(0, minimum + minimum % 2)
    while g < MAX_GUARD_BITS and eps * 2.0 ** (2 * in_fmt.frac_bits + g) < EPS_UNITS:
        g += 2
    return min(g, MAX_GUARD_BITS)


@dataclass(frozen=True)
class LayerNormTables:
    """Members
    -------
    rsqrt : ndarray of int64
        Seeds of 1/sqrt(m), ``rsqrt_fmt`` codes, for the 3 * 2**(rsqrt_bits-1) intervals of
        [1, 4) indexed by m's top bits minus 2**(rsqrt_bits-1).
    """

    rsqrt: np.ndarray


@functools.lru_cache(maxsize=64)
def tables(p: LayerNormParams) -> LayerNormTables:
    half = 1 << (p.rsqrt_bits - 1)
    step = 1.0 / half
    lo = 1.0 + np.arange(3 * half) * step
    hi = lo + step
    seeds = p.rsqrt_fmt.encode(2.0 / (np.sqrt(lo) + np.sqrt(hi)), saturate=False)
    return LayerNormTables(rsqrt=seeds)


def rsqrt(p: LayerNormParams, m) -> np.ndarray:
    """1/sqrt(m) for ``rsqrt_fmt`` codes m in [1, 4): table seed, then Newton steps.

    Each step y <- y (3 - m y^2) / 2 with every product rounded half up to ``rsqrt_fmt``.
    """
    xp = namespace(m)
    m = int64(xp, m)
    f = p.rsqrt_fmt.frac_bits
    one = 1 << f
    lo, hi = extrema(xp, m) if size(m) else (one, one)
    if lo < one or hi >= 4 * one:
        raise ValueError("rsqrt takes mantissas in [1, 4)")
    return _rsqrt(p, m)


def _rsqrt(p: LayerNormParams, m):
    """:func:`rsqrt` of int64 mantissas known to lie in [1, 4) (the row unit's own m)."""
    xp = namespace(m)
    f = p.rsqrt_fmt.frac_bits
    idx = (m >> (f - (p.rsqrt_bits - 1))) - (1 << (p.rsqrt_bits - 1))
    y = lookup(xp, tables(p).rsqrt, idx)
    for _ in range(p.newton_steps):
        y2 = shift_round_half_up(y * y, f)
        my2 = shift_round_half_up(m * y2, f)
        y = shift_round_half_up(y * ((3 << f) - my2), f + 1)
    return y


def _row_constants(p: LayerNormParams, x):
    """Per row: A = D y, B = S1 y and k (W = 2^(2k) m), from exact integer statistics; A
    and B in x's library and on its device, k in :func:`~golden.arrays.row_namespace`'s.

    W = (D S2 - S1^2) 2^G + D^2 eps_code can exceed 64 bits, so it is held as two words,
    W = H 2^G + L with H = D S2 - S1^2 + floor(D^2 eps_code / 2^G) and L < 2^G (L the same for
    every row); its bit length and top bits m follow from H and L exactly.
    """
    xp = namespace(x)
    d = x.shape[-1]
    f, g = p.rsqrt_fmt.frac_bits, p.eps_extra_bits
    high, low = divmod(d * d * p.eps_code, 1 << g)
    top = max(-p.in_fmt.min_code, p.in_fmt.max_code)
    if d * d * top * top + high >= 1 << 63:  # D S2 + high bounds H
        raise ValueError(
            f"layernorm rows of {d} {p.in_fmt} codes (eps={p.eps}) need statistics wider than "
            f"64 bits; use a narrower in_fmt, shorter rows or fewer eps_extra_bits"
        )
    rows = xp.reshape(x, (-1, d))
    s1 = xp.sum(rows, axis=1)  # |S1| < 2^(width - 1) * max_len: int64
    s2 = xp.sum(rows * rows, axis=1)  # < 2^(2 width - 2) * max_len: int64 for 16-bit input
    # the per-row unit, on one value per row (in NumPy for a CPU tensor: row_namespace)
    rx = row_namespace(xp, x)
    s1, s2 = to_rows(rx, s1), to_rows(rx, s2)
    h = d * s2 - s1 * s1 + high  # >= high >= 0 (Cauchy-Schwarz)
    n_bits = rx.where(h > 0, bit_length(rx, h) + g, low.bit_length())
    k = (n_bits - 1) >> 1  # W = 2^(2k) m, m in [1, 4)
    shift = 2 * k - f
    # m = W >> shift (f fractional bits, truncated) or W << -shift, as H's part plus L's part
    # (0 where shift >= G), each part a shift left by max(-s, 0) and right by max(s, 0):
    # both below 2^(f + 2), so neither overflows; right shifts stop at 63, where every
    # non-negative int64 is already 0 (shifts past the width are not defined everywhere)
    h_shift = shift - g
    h_part = (h << clip(rx, -h_shift, 0, None)) >> clip(rx, h_shift, 0, 63)
    l_part = (low << clip(rx, -shift, 0, None)) >> clip(rx, shift, 0, 63)
    y = _rsqrt(p, h_part + l_part)  # m in [1, 4) by construction
    # A and B multiply the elements (on x's device); k only shifts them (stays per row)
    return from_rows(xp, (d * y)[:, None]), from_rows(xp, (s1 * y)[:, None]), k[:, None]


def emulate(
    p: LayerNormParams, codes, gamma_codes=None, beta_codes=None, *, checked: bool = False
) -> np.ndarray:
    """Bit-exact model: the last axis of ``codes`` is one row (1 to ``max_len``).

    ``gamma_codes`` / ``beta_codes``: one per channel (the last axis), ``gamma_fmt`` /
    ``beta_fmt`` codes; None means the identity (gamma 1, beta 0). Returns ``out_fmt`` codes.
    ``checked``: ``codes`` (and gamma and beta where given) are int64 arrays known to lie in
    their formats (``encode``'s results), so the passes that check them are skipped.
    """
    x = codes if checked else p.in_fmt.check_codes(codes, "layernorm input code")
    if x.ndim == 0 or not 1 <= x.shape[-1] <= p.max_len:
        length = "a scalar" if x.ndim == 0 else f"length {x.shape[-1]}"
        raise ValueError(
            f"layernorm rows must have length 1 to max_len={p.max_len} on the last axis, "
            f"not {length}; raise max_len"
        )
    d = x.shape[-1]
    gamma = _affine(p.gamma_fmt, gamma_codes, d, "gamma", checked)
    beta = _affine(p.beta_fmt, beta_codes, d, "beta", checked)
    xp = namespace(x)
    a, b, k = _row_constants(p, x)
    # every step below works in place on prod, the one new array of the element pass
    prod = xp.reshape(x, (-1, d)) * a
    prod -= b  # (D X - S1) y, exact
    # (D X - S1) 2^-F / sqrt(W 2^-(2F+G)) = prod 2^(G/2 - k - rsqrt_frac): to norm_fmt units
    fz = p.norm_fmt.frac_bits
    shift = k + (p.rsqrt_fmt.frac_bits - p.eps_extra_bits // 2 - fz)
    acc = saturate_(shift_round_half_up(prod, shift, overwrite=True), p.norm_fmt)  # z
    frac = fz
    if gamma is not None:
        acc *= gamma[None, :]
        frac = fz + p.gamma_fmt.frac_bits
    if beta is not None:
        acc += beta[None, :] << (frac - p.beta_fmt.frac_bits)
    y = shift_round_half_up(acc, frac - p.out_fmt.frac_bits, overwrite=True)
    return xp.reshape(saturate_(y, p.out_fmt), x.shape)


def _affine(fmt: FixFormat, codes, d: int, what: str, checked: bool = False):
    if codes is None:
        return None
    arr = codes if checked else fmt.check_codes(codes, f"{what} code")
    if arr.shape != (d,):
        raise ValueError(f"{what} must have one code per channel ({d}), not shape {arr.shape}")
    return arr


def reference(p: LayerNormParams, x, gamma=None, beta=None) -> np.ndarray:
    """Float64 LayerNorm over the last axis of real values (biased variance, as torch)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + p.eps)
    if gamma is not None:
        y = y * np.asarray(gamma, dtype=np.float64)
    if beta is not None:
        y = y + np.asarray(beta, dtype=np.float64)
    return y


# -- test vectors ----------------------------------------------------------------------------------


def random_rows(p: LayerNormParams, n_rows: int, length: int, seed: int = 0) -> np.ndarray:
    """DeiT-like rows: N(mu, sigma) channels with a few 10x to 50x outlier channels."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_rows):
        sigma = float(np.exp(rng.uniform(np.log(0.05), np.log(2.0))))
        row = rng.normal(rng.uniform(-1, 1), sigma, size=length)
        n_out = int(rng.integers(0, 4))
        chans = rng.choice(length, size=n_out, replace=False)
        row[chans] *= rng.uniform(10, 50, size=n_out)
        rows.append(row)
    return p.in_fmt.encode(np.array(rows))


def standard_cases(p: LayerNormParams) -> dict[str, np.ndarray]:
    """Named rows of length min(max_len, 192)."""
    f = p.in_fmt
    d = min(p.max_len, 192)
    ramp = f.encode(np.linspace(-4, 4, d))
    outlier = f.encode(np.full(d, 0.25))
    outlier[d // 2] = f.encode(60.0)
    tiny = np.full(d, 1000, dtype=np.int64)
    tiny[::7] += 1  # variance of a fraction of one LSB^2
    return {
        "constant": np.full(d, 77, dtype=np.int64),
        "zero": np.zeros(d, dtype=np.int64),
        "tiny_variance": tiny,
        "one_huge_outlier": outlier,
        "extremes": np.array([f.min_code, f.max_code] * (d // 2), dtype=np.int64),
        "all_min": np.full(d, f.min_code, dtype=np.int64),
        "ramp": ramp,
        "single": np.array([123], dtype=np.int64),
        "pair": np.array([0, 256], dtype=np.int64),
    }


def error_stats(p: LayerNormParams, n_rows: int = 40, seed: int = 0) -> dict[str, float]:
    """Max and mean |emulate - reference| (no affine; reference clipped to out_fmt) over
    random rows of 192, 384 and 768 channels and the named rows."""
    max_abs, total, count = 0.0, 0.0, 0
    cases = [random_rows(p, n_rows, d, seed + d) for d in (192, 384, 768) if d <= p.max_len]
    cases += [row[None, :] for row in standard_cases(p).values()]
    for rows in cases:
        y = p.out_fmt.decode(emulate(p, rows))
        ref = np.clip(reference(p, p.in_fmt.decode(rows)), p.out_fmt.min_value, p.out_fmt.max_value)
        err = np.abs(y - ref)
        max_abs = max(max_abs, float(err.max()))
        total += float(err.sum())
        count += err.size
    return {"inputs": count, "max_abs": max_abs, "mean_abs": total / count, "target": 2.0**-7}


def param_sweep() -> list[LayerNormParams]:
    d = LayerNormParams()
    return [
        d,
        d.replace(newton_steps=2),
        d.replace(rsqrt_bits=4, newton_steps=3, max_len=256),
        d.replace(eps=1e-5, in_fmt=FixFormat(6, 10)),
    ]


def _widths(p: LayerNormParams) -> list[int]:
    """DeiT-T/S/B channel counts that fit ``max_len`` (else ``max_len`` alone)."""
    return [d for d in (192, 384, 768) if d <= p.max_len] or [p.max_len]


def random_cases(p: LayerNormParams, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` DeiT-like rows (:func:`random_rows`) of 192, 384 and 768 channels in turn."""
    widths = _widths(p)
    return [random_rows(p, 1, widths[k % len(widths)], seed + k)[0] for k in range(n)]


def row_params(p: LayerNormParams, length: int, seed: int | None = None) -> dict:
    """gamma and beta codes for ``length`` channels, in the ``affine`` port's field order:
    gamma U(0.1, 2.5) and beta N(0, 1), or with ``seed=None`` the identity (1 and 0)."""
    if seed is None:
        gamma = np.full(length, p.gamma_fmt.encode(1.0), dtype=np.int64)
        return {"gamma": gamma, "beta": np.zeros(length, dtype=np.int64)}
    rng = np.random.default_rng(seed)
    return {
        "gamma": p.gamma_fmt.encode(rng.uniform(0.1, 2.5, length)),
        "beta": p.beta_fmt.encode(rng.normal(0.0, 1.0, length)),
    }


def workload(p: LayerNormParams, n: int, seed: int = 0) -> Workload:
    """DeiT-like rows of 192 channels (or ``max_len``) with outliers, about ``n`` elements,
    after random gamma and beta loads."""
    length = min(192, p.max_len)
    rows = list(random_rows(p, max(1, -(-n // length)), length, seed=seed))
    what = f"DeiT-like rows of {length} channels with outliers, gamma/beta loaded"
    return Workload(rows, what, row_params(p, length, seed))


def pareto_sweep() -> list[LayerNormParams]:
    """1/sqrt table size x Newton steps."""
    return [LayerNormParams(rsqrt_bits=b, newton_steps=n) for b in (4, 6, 8) for n in (0, 1, 2)]
