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

from .arrays import device, extrema, is_numpy, lookup, namespace, size
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
    "LanePlan",
    "lane_plan",
    "tables",
    "emulate",
    "emulate_matmul",
    "reference",
    "param_sweep",
    "pareto_sweep",
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
class LanePlan:
    """How a lane forms ``w * a`` without a multiplier: ``(t0 + t1) << e``.

    Each term ``t_j`` is zero or one signed shifted copy of the activation, from a small set
    of states per term; ``e`` is one of at most two post-shifts. Every weight is one
    ``(e, state0, state1)`` choice, a function of its 5 bits (format, pattern) that the
    hardware decodes once per beat.

    Members
    -------
    post_shifts : tuple of int
        The post-shifts ``e``, ascending.
    states : tuple of (tuple of (int, int), tuple of (int, int))
        ``states[j]``: the ``(sign, shift)`` states of term ``j``; ``(0, 0)`` (first) is zero.
        Term 1 has only the zero state where every weight is a single term.
    pick : tuple of tuple of (int, int, int)
        ``pick[fmt][pattern]``: indices ``(e, state0, state1)``; row 0 FixP4, row 1 posit.
    """

    post_shifts: tuple
    states: tuple
    pick: tuple

    def value(self, fmt: int, pattern: int) -> int:
        """The weight value a pick stands for (units of ``2**-w_frac``)."""
        e, *ks = self.pick[fmt][pattern]
        total = sum(self.states[j][k][0] << self.states[j][k][1] for j, k in enumerate(ks))
        return total << self.post_shifts[e]


def _signed_powers(u: int) -> list[tuple]:
    """Every way to write ``u`` as at most two signed powers of two ``((s, k), (s, k))`` with
    ascending shifts (``(0, 0)`` for an unused term)."""
    out = [((0, 0), (0, 0))] if u == 0 else []
    for k in range(max(abs(u), 1).bit_length() + 2):
        for s in (1, -1):
            rest = u - (s << k)
            if rest == 0:
                out += [((s, k), (0, 0)), ((0, 0), (s, k))]
            elif rest % (1 << (k + 1)) == 0 and (abs(rest) & (abs(rest) - 1)) == 0:
                out.append(((s, k), (1 if rest > 0 else -1, abs(rest).bit_length() - 1)))
    return out


def _plan_cost(states, post_shifts, a_bits: int) -> int:
    """LUTs a lane needs for a plan, estimated for 6-input (xc7) plus 4-input (ECP5) LUTs:
    each term bit is a function of the activation bits of its shifts and the state index; a
    second term adds an adder, a second post-shift a 2:1 multiplexer per product bit."""
    cost, top = 0, 0
    for st in states:
        shifts = {k for s, k in st if s}
        if not shifts:
            continue
        inputs = len(shifts) + (len(st) - 1).bit_length()
        width = a_bits + max(shifts)
        cost += width * (2 ** max(0, inputs - 6) + 2 ** max(0, inputs - 4) + 1)
        top = max(top, width)
    if len(post_shifts) > 1:
        # per product bit one 6-input LUT, and 4-input LUTs for 1 + log2(choices) selects
        inputs = len(post_shifts) + (len(post_shifts) - 1).bit_length()
        cost += (1 + 2 ** max(0, inputs - 4)) * (top + post_shifts[-1] - post_shifts[0])
    return cost


def _greedy_pick(flat, options):
    """Per weight the representation that adds the fewest new states (then post-shifts),
    weights with the fewest choices first; returns the picks and the states used."""
    used, used_e, pick = [{(0, 0)}, {(0, 0)}], set(), {}

    def new(o, used=used, used_e=used_e):
        e, (t0, t1) = o
        return (t0 not in used[0]) + (t1 not in used[1]), e not in used_e, o

    for v in sorted(flat, key=lambda v: (len(options[v]), abs(v))):
        e, (t0, t1) = min(options[v], key=new)
        used[0].add(t0), used[1].add(t1), used_e.add(e)
        pick[v] = (e, t0, t1)
    return pick, used, used_e


@functools.lru_cache(maxsize=64)
def lane_plan(values: tuple, a_bits: int) -> LanePlan | None:
    """The cheapest :class:`LanePlan` (by :func:`_plan_cost`) for weight ``values``
    (``values[fmt][pattern]``, integers) times ``a_bits``-bit activations, or None when a weight
    needs more than two terms.

    Term 0 takes the shifts ``0 .. h0``, term 1 ``h0 + 1 .. h1`` (relative to the smallest
    power of two that divides every weight), post-shifts are that power and at most one
    more; per weight the representation that adds the fewest new states wins.
    """
    flat = sorted({v for row in values for v in row if v})
    if not flat:
        return None
    base = min((v & -v).bit_length() - 1 for v in flat)
    top = max(abs(v) for v in flat).bit_length()
    reps = {}
    for e in range(base, top + 1):
        for v in flat:
            if v % (1 << e) == 0:
                reps[v, e] = _signed_powers(v >> e)
    best = None
    # one post-shift, two, or three of which the second is at most two above the first
    choices = [(base,)] + [(base, e) for e in range(base + 1, top + 1)]
    choices += [(base, e1, e2) for e1 in (base + 1, base + 2) for e2 in range(e1 + 1, top + 1)]
    for post in choices:
        for h0 in range(top - base + 1):
            for h1 in range(h0, top - base + 1):

                def fits(r, h0=h0, h1=h1):
                    (s0, k0), (s1, k1) = r
                    return (not s0 or k0 <= h0) and (not s1 or h0 < k1 <= h1)

                options = {
                    v: [(e, r) for e in post for r in reps.get((v, e), ()) if fits(r)] for v in flat
                }
                if not all(options.values()):
                    continue
                pick, used, used_e = _greedy_pick(flat, options)
                post_used = tuple(sorted(used_e))
                states = tuple(
                    ((0, 0),) + tuple(sorted(u - {(0, 0)}, key=lambda t: (t[1], -t[0])))
                    for u in used
                )
                cost = _plan_cost(states, post_used, a_bits)
                if best is None or cost < best[0]:
                    best = (cost, post_used, states, pick)
    _, post_used, states, pick = best
    table = tuple(
        tuple(
            (
                post_used.index(pick[v][0]) if v else 0,
                states[0].index(pick[v][1]) if v else 0,
                states[1].index(pick[v][2]) if v else 0,
            )
            for v in row
        )
        for row in values
    )
    return LanePlan(post_shifts=post_used, states=states, pick=table)


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
    plan : LanePlan
        How the engine's lanes form each product (:func:`lane_plan`).
    """

    w_int: np.ndarray
    terms: tuple
    a_int: np.ndarray
    products: np.ndarray
    plan: LanePlan


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
    # the lanes see only the weights of their mode (the other row stays zero)
    seen = w_int * np.array([[p.mode is not MacMode.POSIT], [p.mode is not MacMode.FIXP]])
    a_bits = (
        int(np.abs(a_int).max()).bit_length() + 1 if p.mode is MacMode.POSIT else p.act_fmt.width
    )
    plan = lane_plan(tuple(tuple(int(v) for v in row) for row in seen), a_bits)
    return MacTables(w_int=w_int, terms=terms, a_int=a_int, products=products, plan=plan)


def _check_patterns(codes, what: str) -> np.ndarray:
    xp = namespace(codes)
    arr = codes if not is_numpy(xp) else np.asarray(codes)
    if not xp.isdtype(arr.dtype, "integral"):
        raise TypeError(f"{what} must be integer 4-bit patterns 0 .. 15, not {arr.dtype} values")
    lo, hi = extrema(xp, arr) if size(arr) else (0, 0)
    if lo < 0 or hi > 15:
        bad = int(xp.reshape(arr[(arr < 0) | (arr > 15)], (-1,))[0])
        raise ValueError(f"{what} {bad} is not a 4-bit pattern; pass 0 .. 15")
    return xp.astype(arr, xp.int64)


def _formats(p: MacParams, w_is_posit, like):
    """Per-weight format (True: posit) of the weights ``like``, checked against the mode."""
    xp = namespace(like)
    if w_is_posit is None:
        return xp.full(like.shape, p.mode is not MacMode.FIXP, dtype=xp.bool, device=device(like))
    if is_numpy(xp):
        fmt = np.asarray(w_is_posit, dtype=bool)
    else:
        fmt = xp.astype(xp.asarray(w_is_posit, device=device(like)), xp.bool)
    fmt = xp.broadcast_to(fmt, like.shape)
    if p.mode is MacMode.FIXP and xp.any(fmt):
        raise ValueError("the fixp baseline has FixP4 weights only; pass w_is_posit=None")
    if p.mode is MacMode.POSIT and not xp.all(fmt):
        raise ValueError("the posit baseline has posit weights only; pass w_is_posit=None")
    return fmt


@functools.lru_cache(maxsize=64)
def _weight_table(p: MacParams) -> np.ndarray:
    """``tables(p).w_int`` flattened: entry ``16 * fmt + pattern``."""
    return tables(p).w_int.reshape(-1)


def _weight_values(p: MacParams, w, w_is_posit):
    """The integer value of each weight pattern (``tables(p).w_int[fmt, w]``)."""
    xp = namespace(w)
    fmt = xp.astype(_formats(p, w_is_posit, w), xp.int64)
    return lookup(xp, _weight_table(p), (fmt << 4) + w)


def _activations_in(p: MacParams, a_codes, like):
    """Activation codes as integers in accumulator units of the activation."""
    if p.mode is MacMode.POSIT:
        a = _check_patterns(a_codes, "activation pattern")
        return lookup(namespace(a), tables(p).a_int, a)
    return p.act_fmt.check_codes(a_codes, "activation code")


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
    w = _check_patterns(w_codes, "weight pattern")
    xp = namespace(w)
    a = _activations_in(p, a_codes, w)
    try:
        w, a = xp.broadcast_arrays(w, a)
    except (ValueError, RuntimeError):
        raise ValueError(
            f"weights {tuple(w.shape)} and activations {tuple(a.shape)} do not broadcast to "
            f"one shape"
        ) from None
    if w.ndim == 0 or w.shape[-1] > p.max_terms:
        raise ValueError(
            f"dot products need 1 to max_terms={p.max_terms} terms on the last axis, "
            f"not {'a scalar' if w.ndim == 0 else w.shape[-1]}; raise max_terms"
        )
    return xp.sum(_weight_values(p, w, w_is_posit) * a, axis=-1)


def emulate_matmul(p: MacParams, w_codes, a_codes, w_is_posit=None) -> np.ndarray:
    """:func:`emulate` for a weight matrix against many activation vectors, as one matmul.

    ``w_codes`` (and ``w_is_posit``) are ``[out, in]``, ``a_codes`` is ``[..., in]``; returns
    the accumulator codes ``[..., out]``, equal to ``emulate(p, w, a[..., None, :], mask)``:
    the same per-weight integers ``tables(p).w_int`` times the activation codes, summed
    exactly. The sum runs in float64, exact because every partial sum stays below 2**53
    (checked from the operand ranges), which is what makes a DeiT forward pass affordable;
    the order of the additions then does not matter, so every backend and device gives the
    same integers.
    """
    w = _check_patterns(w_codes, "weight pattern")
    if w.ndim != 2:
        raise ValueError(f"weights must be one [out, in] matrix, not shape {tuple(w.shape)}")
    xp = namespace(w)
    a = _activations_in(p, a_codes, w)
    if a.ndim == 0 or a.shape[-1] != w.shape[1]:
        raise ValueError(f"activations {tuple(a.shape)} need {w.shape[1]} terms on the last axis")
    if w.shape[1] > p.max_terms:
        raise ValueError(
            f"dot products need 1 to max_terms={p.max_terms} terms, not {w.shape[1]}; "
            "raise max_terms"
        )
    w_int = _weight_values(p, w, w_is_posit)
    top_w = int(xp.max(xp.abs(w_int))) if size(w_int) else 0
    top_a = int(xp.max(xp.abs(a))) if size(a) else 0
    if top_w * top_a * w.shape[1] >= 2**53:
        raise ValueError("dot products too large for the float64 matmul; use emulate()")
    acc = xp.matmul(xp.astype(a, xp.float64), xp.astype(w_int, xp.float64).T)
    return xp.astype(acc, xp.int64)


def reference(p: MacParams, w_codes, a_codes, w_is_posit=None) -> np.ndarray:
    """The same dot products in float64 from the decoded values (exact for these sizes)."""
    w = np.asarray(w_codes)
    fmt = _formats(p, w_is_posit, w)
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


def pareto_sweep() -> list[MacParams]:
    """Mixed, all-FixP and all-posit engines at 1, 8 and 32 lanes (the overhead study)."""
    d = MacParams()
    return [d.replace(mode=mode, lanes=lanes) for mode in MacMode for lanes in (1, 8, 32)]


@dataclass(frozen=True)
class DotFields:
    """How the engine's input fields carry a dot product's operands.

    Members
    -------
    a_bits : int
        Bits of one activation field (4 for posit activations, else ``act_fmt.width``).
    a_signed : bool
        Whether the field is a two's complement code (fixed point) rather than a pattern.
    formats_used : bool
        Whether the per-weight format bits are read (``mixed`` mode); the baselines ignore
        them and their cases carry the one format they have.
    """

    a_bits: int
    a_signed: bool
    formats_used: bool


def dot_fields(p: MacParams) -> DotFields:
    """The operand fields of ``p``'s engine (:class:`DotFields`)."""
    if p.mode is MacMode.POSIT:
        return DotFields(a_bits=4, a_signed=False, formats_used=False)
    signed = p.act_fmt.signed
    return DotFields(a_bits=p.act_fmt.width, a_signed=signed, formats_used=p.mode is MacMode.MIXED)


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
