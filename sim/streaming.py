"""What every cocotb testbench of hwgen shares (runs inside the simulator).

:func:`setup` rebuilds the run's operator record, Params and knobs from the environment that
:func:`sim.runner.run` sets; :class:`Payload` packs and unpacks a port's payload from the
component's signature (Amaranth data layouts give the field offsets); :class:`StreamTB` drives
one input stream and collects one output stream; :func:`record` writes the run's summary.

:class:`StreamTB` drives the input and samples both handshakes once per clock: signals are set
just after the rising edge and sampled at the falling edge, where every combinational path has
settled, on Icarus and Verilator alike. Idle cycles (input valid low) and back-pressure (output
ready low) are drawn at random with the given probabilities.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data
from amaranth.lib.wiring import Flow
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hwgen import registry

__all__ = ["Setup", "setup", "Payload", "StreamTB", "stats", "record"]


@dataclass(frozen=True)
class Setup:
    """One simulation run: the operator, its configuration and the test's knobs.

    Members
    -------
    op : registry.Operator
        The operator record (registered here first when the runner passed it whole).
    params : ParamsBase
        The configuration, rebuilt from JSON.
    latency : int
        The simulated component's ``latency``.
    row_clocks : int
        Its ``row_clocks`` (clocks of a sequential per-row unit; 0 when it has none).
    knobs : dict
        Operator-specific settings from the ``sim/test_<op>.py`` that started the run.
    """

    op: registry.Operator
    params: object
    latency: int
    row_clocks: int
    knobs: dict

    @property
    def golden(self):
        from sim import _golden_compat  # TEMPORARY until the golden contract is merged

        return _golden_compat.Proxy(self.op.golden)

    def knob(self, name: str, default):
        return self.knobs.get(name, default)

    @functools.cached_property
    def ports(self) -> dict[str, tuple[Flow, Payload]]:
        """Each stream port of the component: its direction and payload (from the signature)."""
        members = self.op.inspect(self.params).signature.members
        return {
            name: (member.flow, Payload(member.signature.members["payload"].shape))
            for name, member in members.items()
            if member.is_signature
        }


@functools.cache
def setup() -> Setup:
    """The run's :class:`Setup` from the environment (``HWGEN_OPERATOR``, ``HWGEN_OP``,
    ``HWGEN_PARAMS``, ``HWGEN_LATENCY``, ``HWGEN_ROW_CLOCKS``, ``HWGEN_KNOBS``)."""
    record_json = os.environ.get("HWGEN_OPERATOR")
    if record_json:
        registry.register(registry.Operator.from_dict(json.loads(record_json)))
    op = registry.get(os.environ["HWGEN_OP"])
    return Setup(
        op=op,
        params=op.params.from_dict(json.loads(os.environ["HWGEN_PARAMS"])),
        latency=int(os.environ["HWGEN_LATENCY"]),
        row_clocks=int(os.environ.get("HWGEN_ROW_CLOCKS", "0")),
        knobs=json.loads(os.environ.get("HWGEN_KNOBS", "{}")),
    )


@dataclass(frozen=True)
class _Field:
    offset: int
    width: int  # of one element
    signed: bool
    count: int  # elements of an ArrayLayout field, else 0


class Payload:
    """One port's payload as Amaranth lays it out: a plain shape (one code) or a struct.

    Struct fields are packed from keyword arrays of ``n`` values; an ``ArrayLayout`` field takes
    an ``(n, length)`` array of elements, and a plain field of several bits may take an
    ``(n, width)`` array of bits (a per-lane flag word). Words are Python ints, so payloads
    wider than 64 bits work.
    """

    def __init__(self, shape):
        if isinstance(shape, data.Layout):
            self.fields = {name: self._field(f.offset, f.shape) for name, f in shape}
        else:
            self.fields = {"": self._field(0, shape)}
        self.width = Shape.cast(shape).width

    @staticmethod
    def _field(offset: int, shape) -> _Field:
        if isinstance(shape, data.ArrayLayout):
            elem = Shape.cast(shape.elem_shape)
            return _Field(offset, elem.width, elem.signed, shape.length)
        s = Shape.cast(shape)
        return _Field(offset, s.width, s.signed, 0)

    def pack(self, codes=None, **values) -> list[int]:
        """Raw words: ``pack(codes)`` for a plain shape, ``pack(name=array, ...)`` for a struct
        (every field named)."""
        if codes is not None:
            values = {"": codes}
        missing = set(self.fields) ^ set(values)
        assert not missing, f"payload fields {sorted(missing)} missing or unknown"
        words = None
        for name, f in self.fields.items():
            v = np.asarray(values[name], dtype=np.int64).astype(object)
            if words is None:
                words = np.full(len(v), 0, dtype=object)
            if v.ndim == 2:  # array elements, or the bits of a plain field
                width = f.width if f.count else 1
                for k in range(v.shape[1]):
                    words += (v[:, k] & ((1 << width) - 1)) << (f.offset + k * width)
            else:
                words += (v & ((1 << f.width) - 1)) << f.offset
        return [int(w) for w in words]

    def unpack(self, words) -> dict[str, np.ndarray] | np.ndarray:
        """Field values (signed fields sign-extended) of raw ``words``: one code array for a
        plain shape, else ``{name: array}`` (``(n, length)`` for an ``ArrayLayout`` field)."""
        w = np.array([int(x) for x in words], dtype=object)
        out = {}
        for name, f in self.fields.items():
            elems = [self._extract(w, f.offset + k * f.width, f) for k in range(f.count or 1)]
            out[name] = np.stack(elems, axis=1) if f.count else elems[0]
        return out[""] if "" in out else out

    @staticmethod
    def _extract(words, offset: int, f: _Field) -> np.ndarray:
        v = ((words >> offset) & ((1 << f.width) - 1)).astype(np.int64)
        if f.signed:
            v = np.where(v >= 1 << (f.width - 1), v - (1 << f.width), v)
        return v


class StreamTB:
    """Drives input stream ``i`` of the toplevel and collects output stream ``o``.

    Parameters
    ----------
    dut : cocotb handle
        The toplevel.
    seed : int
        Seed of the idle / back-pressure patterns.

    Members
    -------
    setup : Setup
        The run (operator, Params, knobs).
    i, o : Payload
        The payload layouts of the two streams.
    in_cycles, out_cycles : list of int
        The clock of every input and output handshake of the last :meth:`drive`.
    """

    def __init__(self, dut, seed: int = 0):
        self.dut = dut
        self.setup = setup()
        self.p = self.setup.params
        self.i = self.setup.ports["i"][1]
        self.o = self.setup.ports["o"][1]
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.in_cycles: list[int] = []
        self.out_cycles: list[int] = []
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, cycles: int = 3) -> None:
        """Reset with every input stream idle and every output stream stalled."""
        dut = self.dut
        dut.rst.value = 1
        for name, (flow, _) in self.setup.ports.items():
            if flow is Flow.In:
                getattr(dut, f"{name}__valid").value = 0
                getattr(dut, f"{name}__payload").value = 0
            else:
                getattr(dut, f"{name}__ready").value = 0
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def drive(
        self, words, n_out: int, *, idle: float, backpressure: float, stall_limit: int = 5000
    ) -> list[int]:
        """Send the raw payload ``words``; return the first ``n_out`` raw output payloads.

        Records the clock of every input and output handshake in ``in_cycles`` and
        ``out_cycles``. Raises ``AssertionError`` when the design makes no progress for
        ``stall_limit`` clocks (lost data would otherwise hang the test).
        """
        dut = self.dut
        n_in = len(words)
        sent, received = 0, []
        self.in_cycles, self.out_cycles = [], []
        quiet = 0
        while len(received) < n_out:
            in_valid = sent < n_in and not (idle and self.rng.random() < idle)
            out_ready = not (backpressure and self.rng.random() < backpressure)
            dut.i__valid.value = int(in_valid)
            if in_valid:
                dut.i__payload.value = words[sent]
            dut.o__ready.value = int(out_ready)
            await FallingEdge(dut.clk)
            progress = False
            if in_valid and int(dut.i__ready.value):
                self.in_cycles.append(self.cycle)
                sent += 1
                progress = True
            if out_ready and int(dut.o__valid.value):
                self.out_cycles.append(self.cycle)
                received.append(int(dut.o__payload.value.to_unsigned()))
                progress = True
            quiet = 0 if progress else quiet + 1
            assert quiet < stall_limit, (
                f"no handshake for {stall_limit} cycles: sent {sent}/{n_in}, "
                f"received {len(received)}/{n_out}"
            )
            await RisingEdge(dut.clk)
            self.cycle += 1
        dut.i__valid.value = 0
        await self.expect_silence()
        return received

    async def expect_silence(self, clocks: int = 16) -> None:
        """Fail if any output appears in the next ``clocks`` (a duplicated result)."""
        dut = self.dut
        dut.o__ready.value = 1
        extra = 0
        for _ in range(clocks):
            await FallingEdge(dut.clk)
            extra += int(dut.o__valid.value)
            await RisingEdge(dut.clk)
            self.cycle += 1
        assert extra == 0, f"{extra} outputs arrived after every input was answered"

    async def load(self, port: str, **values) -> None:
        """Write the struct ``values`` into input stream ``port``, one beat per clock while it
        is ready (a parameter port such as ``affine``)."""
        dut = self.dut
        valid, ready = getattr(dut, f"{port}__valid"), getattr(dut, f"{port}__ready")
        payload = getattr(dut, f"{port}__payload")
        for word in self.setup.ports[port][1].pack(**values):
            valid.value = 1
            payload.value = word
            await FallingEdge(dut.clk)
            while not int(ready.value):
                await RisingEdge(dut.clk)
                await FallingEdge(dut.clk)
            await RisingEdge(dut.clk)
            self.cycle += 1
        valid.value = 0

    def check_full_rate(self, ends=None) -> None:
        """After a run without idle or back-pressure: one input per clock, and output ``k``
        exactly ``latency`` clocks after input ``ends[k]`` (default: input ``k``)."""
        ins, outs = np.array(self.in_cycles), np.array(self.out_cycles)
        assert np.all(np.diff(ins) == 1), "input was not accepted on every clock"
        delays = outs - (ins if ends is None else ins[np.asarray(ends)])
        latency = self.setup.latency
        assert np.all(delays == latency), (
            f"latency {sorted(set(delays.tolist()))} clocks, component states {latency}"
        )


def stats(inputs, got, expected, case: str = "") -> dict:
    """Mismatch statistics of ``got`` against ``expected``; ``inputs`` name each result in the
    report of the first mismatches (codes, or indexes of dot products)."""
    inputs, got, expected = (np.asarray(v, dtype=np.int64) for v in (inputs, got, expected))
    assert got.shape == expected.shape, f"{case}: {got.size} results for {expected.size}"
    bad = np.flatnonzero(got != expected)
    return {
        "case": case,
        "checked": int(expected.size),
        "mismatches": int(bad.size),
        "first": [
            {"input": int(inputs[k]), "got": int(got[k]), "expected": int(expected[k])}
            for k in bad[:5]
        ],
    }


def record(name: str, result: dict) -> None:
    """Add ``result`` (:func:`stats`) to the run's summary file, then fail the cocotb test on
    any mismatch."""
    path = os.environ.get("HWGEN_SUMMARY")
    if path:
        summary = {}
        if os.path.exists(path):
            with open(path) as f:
                summary = json.load(f)
        summary[name] = result
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
    assert result["mismatches"] == 0, (
        f"{name}: {result['mismatches']} of {result['checked']} outputs differ from emulate; "
        f"first: {result['first']}"
    )
