"""Mixed-computation multiply-accumulate: Posit4 or FixP4 weights times fixed-point activations.

Every weight is a 4-bit pattern read either as a ``posit<4, es>`` or as a FixP4 two's
complement code (``w_fixp_fmt``, default s1.3: -1 .. 0.875 in steps of 1/8); a per-weight bit
``w_is_posit`` picks the format. Activations are ``act_fmt`` codes. Products and their sum are
exact in the accumulator: the accumulator's fractional bits are those of the activation plus
the most any weight needs (4 for posit<4,1>'s 1/16, 3 for FixP4), and its integer bits hold
``max_terms`` products of the largest magnitudes, so no dot product of up to ``max_terms``
terms can overflow or round.

Each weight value, in accumulator units, is an integer with at most two nonzero signed digits
(posit<4,1>: a single power of two; posit<4,0>: 3 * 2^j for 0.75 and 1.5; FixP4: any 4-bit code),
so every product is one or two shifted copies of the activation added or subtracted: the
hardware needs no multiplier (``tables(p).terms``).

Modes (``mode``), all with the same interface so the overhead of mixing can be measured:

* ``mixed``: the paper's MAC, each weight posit or FixP4;
* ``fixp``: the all-FixP4 baseline (``w_is_posit`` must be all false);
* ``posit``: the all-posit baseline, Posit4 weights times Posit4 activations (``a_codes`` are
  posit<4, es> patterns), the product in fixed point.

The NaR pattern (1000) never comes out of a quantizer; as a weight or activation it counts as
zero, in the model and in the hardware alike.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np

from .formats import FixFormat, PositFormat
from .gelu import naf_digits
from .params import ParamsBase, Workload, check_enum, check_fix, check_int

__all__ = [
    "DotFields",
    "dot_fields",
    "standard_cases",
    "random_cases",
    "error_stats",
    "workload",
    "MacMode",
    "MacParams",
    "MacTables",
    "tables",
    "emulate",
    "emulate_matmul",
    "reference",
    "param_sweep",
    "synth_sweep",
]


class MacMode(enum.Enum):
    MIXED = "mixed"
    FIXP = "fixp"
    POSIT = "posit"


@dataclass(frozen=True)
class MacParams(ParamsBase):
    """Configuration of the MAC and the dot-product engine.

    Parameters
    ----------
    es : int
        Posit exponent bits, 0 to 2. Default 1: every Posit4 magnitude (1/16 .. 16) is a power
        of two, so a product is one shift; and in the mixed setting (posits beside FixP4 at a
        shared per-channel scale) ``hwtorch.quant.weight_error_study`` finds es=1 the lowest
        weight error on every seed (relative squared error 0.0056 against 0.0071 for es=0,
        0.0066 for es=2, 0.0094 for FixP4 alone; mean of 10 digits MLPs), because its values
        1/16, 2, 4 and 16 fill the gaps of the FixP4 grid. Posits alone favour es=0 (0.0135
        against 0.0291), which is not how the MAC uses them.
    w_fixp_fmt : FixFormat
        FixP4 weights, a signed 4-bit format. Default s1.3.
    act_fmt : FixFormat
        Fixed-point activations, signed, 4 or 8 bits. Default s4.4 (8 bits).
    max_terms : int
        Longest dot product the accumulator holds exactly. Default 4096.
    lanes : int
        Products per clock in the engine, 1 to 64.
    mode : MacMode
        ``mixed`` (default), or the ``fixp`` / ``posit`` baselines.

    Members
    -------
    w_posit_fmt : PositFormat
        posit<4, es>.
    w_frac : int
        Fractional bits every weight value needs to be an integer.
    acc_fmt : FixFormat
        The exact accumulator (derived from the fields above).
    """

    op = "posit_mac"

    es: int = 1
    w_fixp_fmt: FixFormat = FixFormat(1, 3)
    act_fmt: FixFormat = FixFormat(4, 4)
    max_terms: int = 4096
    lanes: int = 8
    mode: MacMode = MacMode.MIXED

    def __post_init__(self):
        op = "posit_mac"
        check_int(op, "es", self.es, 0, 2)
        check_fix(op, "w_fixp_fmt", self.w_fixp_fmt, signed=True)
        if self.w_fixp_fmt.width != 4:
            raise ValueError(f"{op} w_fixp_fmt must be 4 bits wide (FixP4), not {self.w_fixp_fmt}")
        check_fix(op, "act_fmt", self.act_fmt, signed=True)
        if self.act_fmt.width not in (4, 8):
            raise ValueError(f"{op} act_fmt must be 4 or 8 bits wide, not {self.act_fmt}")
        check_int(op, "max_terms", self.max_terms, 1, 1 << 20)
        check_int(op, "lanes", self.lanes, 1, 64)
        object.__setattr__(self, "mode", check_enum(op, "mode", self.mode, MacMode))

    @property
    def w_posit_fmt(self) -> PositFormat:
        return PositFormat(4, self.es)

    @property
    def a_posit_fmt(self) -> PositFormat:
        """Activation format of the ``posit`` baseline."""
        return PositFormat(4, self.es)

    @property
    def w_frac(self) -> int:
        posit = _frac_needed(self.w_posit_fmt)
        if self.mode is MacMode.FIXP:
            return self.w_fixp_fmt.frac_bits
        if self.mode is MacMode.POSIT:
            return posit
        return max(posit, self.w_fixp_fmt.frac_bits)

    @property
    def a_frac(self) -> int:
        return (
            _frac_needed(self.a_posit_fmt) if self.mode is MacMode.POSIT else self.act_fmt.frac_bits
        )

    @property
    def acc_fmt(self) -> FixFormat:
        t = tables(self)
        biggest = int(np.abs(t.products).max()) * self.max_terms
        return FixFormat(max(1, biggest.bit_length() + 1 - self.acc_frac), self.acc_frac)

    @property
    def acc_frac(self) -> int:
        return self.a_frac + self.w_frac

    @property
    def name(self) -> str:
        name = f"posit_mac_{self.mode.value}_e{self.es}_a{self.act_fmt.tag}_l{self.lanes}"
        if self.w_fixp_fmt != FixFormat(1, 3):
            name += f"_wf{self.w_fixp_fmt.tag}"
        if self.max_terms != 4096:
            name += f"_t{self.max_terms}"
        return name


def _frac_needed(fmt: PositFormat) -> int:
    values = fmt.decode(fmt.all_codes())
    values = values[np.isfinite(values) & (values != 0)]
    frac = 0
    while not np.all(np.ldexp(values, frac) == np.rint(np.ldexp(values, frac))):
        frac += 1
    return frac


@dataclass(frozen=True)
class MacTables:
    """What the hardware bakes in.

    Members
    -------
    w_int : ndarray of int64, shape (2, 16)
        Value of each weight pattern in units of 2**-w_frac; row 0 FixP4, row 1 posit
        (NaR counts as 0).
    terms : tuple
        ``terms[fmt][pattern]``: the signed digits ``(sign, shift)`` of ``w_int``.
    a_int : ndarray of int64, shape (16,)
        ``posit`` mode: value of each activation pattern in units of 2**-a_frac.
    products : ndarray of int64
        Every possible product in accumulator units (used to size the accumulator).
    """

    w_int: np.ndarray
    terms: tuple
    a_int: np.ndarray
    products: np.ndarray


@functools.lru_cache(maxsize=64)
def tables(p: MacParams) -> MacTables:
    wf = p.w_frac
    fixp = p.w_fixp_fmt.from_bits(np.arange(16)) << (wf - p.w_fixp_fmt.frac_bits)
    posit_vals = np.nan_to_num(p.w_posit_fmt.decode(np.arange(16)), nan=0.0)
    posit = np.rint(np.ldexp(posit_vals, wf)).astype(np.int64)
    w_int = np.stack([fixp, posit]).astype(np.int64)
    terms = tuple(tuple(tuple(naf_digits(int(v))) for v in row) for row in w_int)
    if p.mode is MacMode.POSIT:
        a_vals = np.nan_to_num(p.a_posit_fmt.decode(np.arange(16)), nan=0.0)
        a_int = np.rint(np.ldexp(a_vals, p.a_frac)).astype(np.int64)
        a_range = a_int
    else:
        a_int = np.zeros(16, dtype=np.int64)
        a_range = np.array([p.act_fmt.min_code, p.act_fmt.max_code], dtype=np.int64)
    rows = {MacMode.FIXP: w_int[:1], MacMode.POSIT: w_int[1:], MacMode.MIXED: w_int}[p.mode]
    products = np.unique(np.outer(rows.ravel(), a_range))
    return MacTables(w_int=w_int, terms=terms, a_int=a_int, products=products)


def _check_patterns(codes, what: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer 4-bit patterns 0 .. 15, not {arr.dtype} values")
    if ((arr < 0) | (arr > 15)).any():
        bad = int(arr[(arr < 0) | (arr > 15)].flat[0])
        raise ValueError(f"{what} {bad} is not a 4-bit pattern; pass 0 .. 15")
    return arr.astype(np.int64)


def _formats(p: MacParams, w_is_posit, shape) -> np.ndarray:
    """Per-weight format (True: posit) after checking it against the mode."""
    if w_is_posit is None:
        return np.full(shape, p.mode is not MacMode.FIXP)
    fmt = np.broadcast_to(np.asarray(w_is_posit, dtype=bool), shape)
    if p.mode is MacMode.FIXP and fmt.any():
        raise ValueError("the fixp baseline has FixP4 weights only; pass w_is_posit=None")
    if p.mode is MacMode.POSIT and not fmt.all():
        raise ValueError("the posit baseline has posit weights only; pass w_is_posit=None")
    return fmt


def emulate(p: MacParams, w_codes, a_codes, w_is_posit=None) -> np.ndarray:
    """Exact dot products over the last axis, as ``acc_fmt`` codes.

    Parameters
    ----------
    w_codes : int array
        4-bit weight patterns 0 .. 15.
    a_codes : int array, broadcastable with ``w_codes``
        ``act_fmt`` codes (``posit`` mode: posit<4, es> patterns).
    w_is_posit : bool array, same shape, optional
        Per-weight format; None means all posit in ``mixed`` mode (and is the only choice
        accepted by the baselines, which have one weight format).
    """
    t = tables(p)
    w = _check_patterns(w_codes, "weight pattern")
    if p.mode is MacMode.POSIT:
        a = t.a_int[_check_patterns(a_codes, "activation pattern")]
    else:
        a = p.act_fmt.check_codes(a_codes, "activation code")
    try:
        w, a = np.broadcast_arrays(w, a)
    except ValueError:
        raise ValueError(
            f"weights {w.shape} and activations {a.shape} do not broadcast to one shape"
        ) from None
    if w.ndim == 0 or w.shape[-1] > p.max_terms:
        raise ValueError(
            f"dot products need 1 to max_terms={p.max_terms} terms on the last axis, "
            f"not {'a scalar' if w.ndim == 0 else w.shape[-1]}; raise max_terms"
        )
    fmt = _formats(p, w_is_posit, w.shape)
    w_int = t.w_int[fmt.astype(np.int64), w]
    return (w_int * a).sum(axis=-1)


def emulate_matmul(p: MacParams, w_codes, a_codes, w_is_posit=None) -> np.ndarray:
    """:func:`emulate` for a weight matrix against many activation vectors, as one matmul.

    ``w_codes`` (and ``w_is_posit``) are ``[out, in]``, ``a_codes`` is ``[..., in]``; returns
    the accumulator codes ``[..., out]``, equal to ``emulate(p, w, a[..., None, :], mask)``:
    the same per-weight integers ``tables(p).w_int`` times the activation codes, summed
    exactly. The sum runs in float64, exact because every partial sum stays below 2**53
    (checked from the operand ranges), which is what makes a DeiT forward pass affordable.
    """
    t = tables(p)
    w = _check_patterns(w_codes, "weight pattern")
    if w.ndim != 2:
        raise ValueError(f"weights must be one [out, in] matrix, not shape {w.shape}")
    if p.mode is MacMode.POSIT:
        a = t.a_int[_check_patterns(a_codes, "activation pattern")]
    else:
        a = p.act_fmt.check_codes(a_codes, "activation code")
    if a.ndim == 0 or a.shape[-1] != w.shape[1]:
        raise ValueError(f"activations {a.shape} need {w.shape[1]} terms on the last axis")
    if w.shape[1] > p.max_terms:
        raise ValueError(
            f"dot products need 1 to max_terms={p.max_terms} terms, not {w.shape[1]}; "
            "raise max_terms"
        )
    w_int = t.w_int[_formats(p, w_is_posit, w.shape).astype(np.int64), w]
    bound = int(np.abs(w_int).max(initial=0)) * int(np.abs(a).max(initial=0)) * w.shape[1]
    if bound >= 2**53:
        raise ValueError("dot products too large for the float64 matmul; use emulate()")
    acc = a.astype(np.float64) @ w_int.T.astype(np.float64)
    return acc.astype(np.int64)


def reference(p: MacParams, w_codes, a_codes, w_is_posit=None) -> np.ndarray:
    """The same dot products in float64 from the decoded values (exact for these sizes)."""
    w = np.asarray(w_codes)
    fmt = _formats(p, w_is_posit, w.shape)
    w_val = np.where(
        fmt,
        np.nan_to_num(p.w_posit_fmt.decode(w), nan=0.0),
        p.w_fixp_fmt.decode(p.w_fixp_fmt.from_bits(w)),
    )
    if p.mode is MacMode.POSIT:
        a_val = np.nan_to_num(p.a_posit_fmt.decode(np.asarray(a_codes)), nan=0.0)
    else:
        a_val = p.act_fmt.decode(a_codes)
    return (w_val * a_val).sum(axis=-1)


def param_sweep() -> list[MacParams]:
    d = MacParams()
    return [
        d,
        d.replace(act_fmt=FixFormat(2, 2), lanes=4),
        d.replace(es=0, lanes=1),
        d.replace(mode=MacMode.FIXP),
        d.replace(mode=MacMode.POSIT, lanes=4),
        d.replace(es=2, lanes=32, max_terms=65536),
    ]


def synth_sweep() -> list[MacParams]:
    """The overhead study: mixed, all-FixP and all-posit engines at 1, 8 and 32 lanes."""
    d = MacParams()
    return [d.replace(mode=mode, lanes=lanes) for mode in MacMode for lanes in (1, 8, 32)]


@dataclass(frozen=True)
class DotFields:
    """How the engine's input fields carry a dot product's operands.

    Members
    -------
    a_bits : int
        Bits of one activation field (4 for posit activations, else ``act_fmt.width``).
    formats_used : bool
        Whether the per-weight format bits are read (``mixed`` mode); the baselines ignore
        them and their cases carry the one format they have.
    """

    a_bits: int
    formats_used: bool


def dot_fields(p: MacParams) -> DotFields:
    """The operand fields of ``p``'s engine (:class:`DotFields`)."""
    a_bits = 4 if p.mode is MacMode.POSIT else p.act_fmt.width
    return DotFields(a_bits=a_bits, formats_used=p.mode is MacMode.MIXED)


def _mode_formats(p: MacParams, fmt: np.ndarray) -> np.ndarray:
    """``fmt`` in mixed mode; the one weight format of a baseline otherwise."""
    if p.mode is MacMode.MIXED:
        return fmt.astype(bool)
    return np.full(fmt.shape, p.mode is MacMode.POSIT)


def _activations(p: MacParams, rng, shape) -> np.ndarray:
    if p.mode is MacMode.POSIT:
        return rng.integers(0, 16, shape)
    return rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, shape)


def standard_cases(p: MacParams) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Named dot products ``(w, a, w_is_posit)`` of ``min(2 * lanes, max_terms)`` terms:
    zeros, the largest products of both signs, NaR weights and activations, alternating
    signs and formats, and a single term."""
    n = min(2 * p.lanes, p.max_terms)
    t = tables(p)
    if p.mode is MacMode.POSIT:
        a_lo, a_hi = 9, 7  # posit patterns of the most negative and most positive values
    else:
        a_lo, a_hi = p.act_fmt.min_code, p.act_fmt.max_code
    fmt = _mode_formats(p, np.arange(n) % 2 == 1)
    row = fmt.astype(np.int64)
    w_big = np.argmax(t.w_int[row, :], axis=1)  # the largest weight of each term's format
    w_small = np.argmin(t.w_int[row, :], axis=1)
    ones = np.ones(n, dtype=np.int64)
    cases = {
        "zero": (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), fmt),
        "max_positive": (w_big, a_hi * ones, fmt),
        "max_negative": (w_big, a_lo * ones, fmt),
        "min_times_min": (w_small, a_lo * ones, fmt),
        "nar": (np.full(n, 8), (8 if p.mode is MacMode.POSIT else a_hi) * ones, fmt),
        "alternating": (np.where(np.arange(n) % 2 == 0, w_big, w_small), a_hi * ones, fmt),
        "single_term": (np.array([7]), np.array([a_hi]), fmt[:1]),
    }
    return {
        k: (np.asarray(w, np.int64), np.asarray(a, np.int64), f) for k, (w, a, f) in cases.items()
    }


def random_cases(p: MacParams, n: int, seed: int = 0) -> list:
    """``n`` random dot products ``(w, a, w_is_posit)`` of 1 to 3 beats of ``lanes`` terms
    (at most ``max_terms``): uniform weight patterns and activation codes, formats at random
    in mixed mode."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        beats = 1 if rng.random() < 0.8 else int(rng.integers(2, 4))
        terms = min(beats * p.lanes, p.max_terms)
        w = rng.integers(0, 16, terms)
        a = _activations(p, rng, terms)
        out.append((w, a, _mode_formats(p, rng.random(terms) < 0.5)))
    return out


def error_stats(p: MacParams, n: int = 2000, seed: int = 0) -> dict[str, float]:
    """|decoded ``emulate`` - ``reference``| over random and named dot products: the engine
    is exact, so ``max_abs`` must be 0 (``target``)."""
    cases = random_cases(p, n, seed) + list(standard_cases(p).values())
    errs = np.array(
        [abs(float(p.acc_fmt.decode(emulate(p, *c))) - float(reference(p, *c))) for c in cases]
    )
    return {
        "inputs": len(cases),
        "max_abs": float(errs.max()),
        "mean_abs": float(errs.mean()),
        "target": 0.0,
    }


def workload(p: MacParams, n: int, seed: int = 0) -> Workload:
    """Dot products of ``8 * lanes`` terms, about ``n`` terms in all: N(0, 1) weights (25 %
    posit in mixed mode), N(0, 1.5) activations."""
    rng = np.random.default_rng(seed)
    beats = 8
    n_dots = max(1, -(-n // (p.lanes * beats)))
    shape = (n_dots * beats, p.lanes)
    w_posit = p.w_posit_fmt.encode(rng.normal(0.0, 1.0, shape))
    fixp = p.w_fixp_fmt
    w_fixp = fixp.to_bits(fixp.encode(rng.normal(0.0, 0.35, shape)))
    if p.mode is MacMode.MIXED:
        is_posit = rng.random(shape) < 0.25
    else:
        is_posit = np.full(shape, p.mode is MacMode.POSIT)
    w = np.where(is_posit, w_posit, w_fixp)
    if p.mode is MacMode.POSIT:
        a = p.a_posit_fmt.encode(rng.normal(0.0, 1.0, shape))
    else:
        a = p.act_fmt.encode(rng.normal(0.0, 1.5, shape))
    terms = beats * p.lanes
    cases = [
        (
            w[k * beats : (k + 1) * beats].ravel(),
            a[k * beats : (k + 1) * beats].ravel(),
            is_posit[k * beats : (k + 1) * beats].ravel(),
        )
        for k in range(n_dots)
    ]
    what = (
        f"dot products of {terms} terms, N(0, 1) weights (25 % posit in mixed mode), "
        "N(0, 1.5) activations"
    )
    return Workload(cases, what)
