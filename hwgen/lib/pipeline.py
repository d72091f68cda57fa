"""Building blocks shared by the operator components: word shapes and pipeline control."""

from __future__ import annotations

import functools
from types import SimpleNamespace

from amaranth.hdl import Const, Fragment, Module, Shape, Signal, signed, unsigned
from amaranth.lib import stream

from golden.formats import FixFormat

__all__ = [
    "csd_digits",
    "fix_shape",
    "saturate",
    "onehot",
    "valid_chain",
    "Stages",
    "Levels",
    "StallPipeline",
    "built",
]


def fix_shape(fmt: FixFormat) -> Shape:
    """The Amaranth shape of a :class:`~golden.formats.FixFormat` word (its raw code)."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def saturate(value, fmt: FixFormat):
    """``value`` clamped into ``fmt`` (combinational, no adder).

    A signed value is in range when every bit above the format's sign bit equals it, so the
    test is an AND / OR reduction instead of two wide comparisons.
    """
    from amaranth.hdl import Mux

    width = fmt.width
    if not value.shape().signed:
        if len(value) <= width:
            return value
        return Mux(value[width:].any(), fmt.max_code, value[:width])
    if len(value) <= width:
        return value
    top = value[width - 1 :]
    in_range = top.all() | ~top.any()
    return Mux(in_range, value[:width], Mux(value[-1], fmt.min_code, fmt.max_code))


def onehot(index, n: int):
    """An ``n``-bit value with only bit ``index`` set (combinational)."""
    from amaranth.hdl import Const

    return (Const(1, n) << index)[:n]


def csd_digits(code: int) -> list[tuple[int, int]]:
    """The canonical signed-digit form of a non-negative integer: ``(shift, ±1)`` pairs whose
    sum of ``digit << shift`` is ``code``, with no two adjacent shifts (the fewest non-zero
    digits of any signed-digit form)."""
    digits, shift = [], 0
    while code:
        if code & 1:
            digit = 2 - (code & 3)  # +1 where the next bit is 0, -1 where a run of ones starts
            digits.append((shift, digit))
            code -= digit
        code >>= 1
        shift += 1
    return digits


def valid_chain(m: Module, valid, n: int, name: str) -> Signal:
    """``valid`` delayed by ``n`` registers that reset to 0 (a free-running pipeline's)."""
    stages = Stages(m)
    for k in range(n):
        valid = stages.valid_stage(valid, f"{name}{k + 1}")
    return valid


def built(component) -> SimpleNamespace:
    """What ``component`` records in ``self.depths`` while elaborating: the depths of the
    pipelines it builds, from which its ``latency`` follows.

    Measured once per class and Params, by elaborating a fresh component of the same class
    (so reading ``latency`` never elaborates, or alters, the component itself).
    """
    return _built(type(component), component.params)


@functools.cache
def _built(cls, params) -> SimpleNamespace:
    dut = cls(params)
    Fragment.get(dut, None)
    return dut.depths


class Stages:
    """Pipeline data registers that load on every clock, or only while ``en`` is high.

    Data registers have no reset (only valid bits need one), which saves a reset multiplexer
    per bit and lets chains of them map to shift-register LUTs.

    Parameters
    ----------
    m : Module
        The module being elaborated.
    en : Value, optional
        Load enable; None for a free-running pipeline.
    """

    def __init__(self, m: Module, en=None):
        self._m = m
        self._en = en

    def stage(self, value, name: str, shape=None) -> Signal:
        """A register loading ``value``; its shape is ``shape`` or the shape of ``value``."""
        reg = Signal(shape if shape is not None else value.shape(), name=name, reset_less=True)
        if self._en is None:
            self._m.d.sync += reg.eq(value)
        else:
            with self._m.If(self._en):
                self._m.d.sync += reg.eq(value)
        return reg

    def valid_stage(self, valid, name: str) -> Signal:
        """A valid bit's register: it resets to 0 and loads like the data registers."""
        reg = Signal(name=name)
        if self._en is None:
            self._m.d.sync += reg.eq(valid)
        else:
            with self._m.If(self._en):
                self._m.d.sync += reg.eq(valid)
        return reg

    def delay(self, value, n: int, name: str) -> Signal:
        """``value`` delayed by ``n`` stages (``n == 0`` returns it unchanged)."""
        for k in range(n):
            value = self.stage(value, f"{name}_d{k + 1}")
        return value


class Levels:
    """A pipeline written level by level: each :meth:`next` registers a set of named values.

    Values that later levels need must be passed on explicitly, so every name in the returned
    namespace is aligned with every other; ``depth`` counts the levels built so far. Side-band
    values (a valid bit, row framing, indices) ride along by themselves: every level registers
    them beside its own values, so they stay aligned with the datapath without a delay chain.

    Parameters
    ----------
    stages : Stages
        Where the registers come from (free-running or with an enable).
    prefix : str
        Signal name prefix.
    valid : Value, optional
        A valid bit entering the first level; its registers reset to 0.
    **side : Value
        Side-band values entering the first level.

    Members
    -------
    depth : int
        Levels built so far.
    valid : Value or None
        The valid bit aligned with the last level (``valid`` itself before the first).
    side : SimpleNamespace
        The side-band values aligned with the last level; the namespace that :meth:`next`
        returns holds them too.
    """

    #: Widest unsigned operand that fits one DSP block (ECP5 18x18 and xc7 25x18 signed).
    DSP_BITS = 17

    def __init__(self, stages: Stages, prefix: str, *, valid=None, **side):
        self.stages = stages
        self.prefix = prefix
        self.depth = 0
        self.valid = valid
        self.side = SimpleNamespace(**side)

    def next(self, **values) -> SimpleNamespace:
        """Register ``values`` (each a Value, or a ``(value, shape)`` pair) as one level, with
        the side-band values and the valid bit beside them."""
        side = vars(self.side)
        clash = sorted(set(values) & set(side))
        if clash:
            raise ValueError(f"{self.prefix}: {clash} ride as side-band values already")
        self.depth += 1
        out = {}
        for key, value in {**values, **side}.items():
            value, shape = value if isinstance(value, tuple) else (value, None)
            out[key] = self.stages.stage(value, f"{self.prefix}{self.depth}_{key}", shape)
        self.side = SimpleNamespace(**{key: out[key] for key in side})
        if self.valid is not None:
            self.valid = self.stages.valid_stage(self.valid, f"{self.prefix}{self.depth}_valid")
        return SimpleNamespace(**out)

    def shift_add(self, products: dict, *, arity: int = 2, **carry) -> SimpleNamespace:
        """Products by constants as adder trees: no multiplier.

        ``products`` maps a name to ``(x, code)``: an unsigned value times a non-negative
        integer constant, exact. The constant is written in canonical signed digits (at most
        one non-zero digit in any two adjacent places), so ``x * code`` is a sum of
        ``len(csd_digits(code))`` shifted copies of ``±x``, added pairwise modulo the product's
        width ``len(x) + code.bit_length()``, one tree layer
        per level: ``ceil(log_arity(digits))`` levels (at least one), the same for every
        product (shorter trees pass through). ``arity`` 3 adds three terms per node (two carry
        chains in one clock, fewer levels and registers). ``carry`` values travel alongside.
        """
        if arity not in (2, 3):
            raise ValueError(f"shift_add arity must be 2 or 3, not {arity}")
        trees, widths = {}, {}
        for name, (x, code) in products.items():
            if x.shape().signed or code < 0:
                raise TypeError(f"Levels.shift_add takes unsigned operands ({name})")
            widths[name] = len(x) + max(1, code.bit_length())
            # partial sums modulo 2**width: the total is exact and below 2**width, so the wrap
            # of a partial sum that goes negative (a minus digit) cancels
            wide = unsigned(widths[name])
            terms = [
                (x << shift) if digit > 0 else -(x << shift) for shift, digit in csd_digits(code)
            ]
            trees[name] = [(t, wide) for t in terms] or [(Const(0, 1), wide)]

        def depth(n):
            d = 0
            while n > 1:
                n, d = -(-n // arity), d + 1
            return d

        layers = max(1, max(depth(len(t)) for t in trees.values()))
        for _ in range(layers):
            values = {}
            for name, terms in trees.items():
                for k in range(0, len(terms), arity):
                    group = terms[k : k + arity]
                    total = group[0][0]
                    for term, _shape in group[1:]:
                        total = total + term
                    values[f"{name}_t{k // arity}"] = (total, group[0][1])
            level = self.next(**values, **carry)
            carry = {k: getattr(level, k) for k in carry}
            for name, terms in trees.items():
                n = -(-len(terms) // arity)
                trees[name] = [(getattr(level, f"{name}_t{k}"), terms[0][1]) for k in range(n)]
        out = {name: trees[name][0][0] for name in products}
        return SimpleNamespace(**out, **carry, **vars(self.side))

    def mul(self, products: dict, **carry) -> SimpleNamespace:
        """Unsigned products in two levels: DSP-sized partial products, then their sum.

        ``products`` maps a name to an ``(a, b)`` pair; ``carry`` values travel alongside.
        Splitting operands wider than :data:`DSP_BITS` keeps every multiplier followed by a
        register, so no adder sits behind a DSP block in the same clock.
        """
        parts, plan = {}, {}
        for name, (a, b) in products.items():
            for value in (a, b):
                if value.shape().signed:
                    raise TypeError(f"Levels.mul takes unsigned operands ({name})")
            terms = []
            for i, a_lo in enumerate(range(0, len(a), self.DSP_BITS)):
                for j, b_lo in enumerate(range(0, len(b), self.DSP_BITS)):
                    a_part = a[a_lo : a_lo + self.DSP_BITS]
                    b_part = b[b_lo : b_lo + self.DSP_BITS]
                    key = f"{name}_pp{i}{j}"
                    parts[key] = a_part * b_part
                    terms.append((key, a_lo + b_lo))
            plan[name] = terms
        level = self.next(**parts, **carry)
        sums = {}
        for name, terms in plan.items():
            total = None
            for key, shift in terms:
                term = getattr(level, key) << shift
                total = term if total is None else total + term
            sums[name] = total
        return self.next(**sums, **{k: getattr(level, k) for k in carry})


class StallPipeline(Stages):
    """Valid/ready control for a pipeline that advances as a whole.

    Every stage register is loaded when the pipeline is enabled, which is whenever the output
    register is empty or being read (``en = ~o.valid | o.ready``). The input is ready exactly
    then, so with ``o.ready`` held high one element enters and one leaves per clock, and under
    back-pressure nothing is lost or duplicated: a stalled pipeline holds every stage. The
    payload of ``o`` must be driven from the last stage register.

    The valid bits come either from a fixed ``depth`` given here, or from the :class:`Levels`
    that :meth:`levels` starts, which carry the input's valid bit as a side-band value; then
    :meth:`finish` drives ``o.valid`` from them and takes their depth as the pipeline's.

    Parameters
    ----------
    m : Module
        The module being elaborated.
    i, o : stream interfaces
        The component's input (a ``stream.Signature`` seen from the receiver) and output.
    depth : int, optional
        Number of register stages between ``i`` and ``o``, when it is known up front.

    Members
    -------
    en : Signal
        High when the stage registers load (combinational).
    depth : int or None
        The latency in clocks from an accepted input to its output being valid, with no
        back-pressure (None until :meth:`finish`, unless given).
    """

    def __init__(self, m: Module, i: stream.Interface, o: stream.Interface, depth=None):
        if depth is not None and depth < 1:
            raise ValueError(f"pipeline depth must be at least 1, not {depth}")
        self.en = Signal()
        super().__init__(m, self.en)
        self._i, self._o = i, o
        self.depth = None
        m.d.comb += [self.en.eq(~o.valid | o.ready), i.ready.eq(self.en)]
        if depth is not None:
            valid = i.valid
            for n in range(depth):
                valid = self.valid_stage(valid, f"stage{n}_valid")
            self._drive(valid, depth)

    def levels(self, prefix: str, **side) -> Levels:
        """:class:`Levels` on this pipeline that carry the input's valid bit and ``side``."""
        return Levels(self, prefix, valid=self._i.valid, **side)

    def finish(self, levels: Levels) -> int:
        """Drive ``o.valid`` from ``levels`` (from :meth:`levels`); return their depth."""
        if self.depth is not None:
            raise ValueError("the pipeline's valid bits are driven already")
        if levels.depth < 1:
            raise ValueError(f"pipeline depth must be at least 1, not {levels.depth}")
        self._drive(levels.valid, levels.depth)
        return self.depth

    def _drive(self, valid, depth: int) -> None:
        self.depth = depth
        self._m.d.comb += self._o.valid.eq(valid)
