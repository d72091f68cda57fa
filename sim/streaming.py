"""What every cocotb testbench of hwgen shares (runs inside the simulator).

:func:`setup` rebuilds the run's operator record, Params and knobs from the environment that
:func:`sim.runner.run` sets. :class:`StreamTB` turns the operator's cases into stream beats and
expected outputs with :func:`hwgen.flows.streams.beats` (by interface kind; payload words packed
from the component's own signature, so no bit offset is written here), loads any parameter port,
drives input stream ``i``, collects output stream ``o`` and compares every output field;
:func:`record` writes the run's summary.

:meth:`StreamTB.drive` waits once per clock, for the falling edge: there it reads what the last
rising edge transferred from the registers the runner's :class:`sim.runner.Harness` adds
(``tb_<port>_fire``, ``tb_o_payload``), then sets the inputs for the next rising edge. Idle
cycles (input valid low) and back-pressure (output ready low) are drawn at random with the
given probabilities.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hwgen import registry
from hwgen.flows import streams

__all__ = ["Setup", "setup", "StreamTB", "stats", "record"]


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
        return self.op.golden

    def knob(self, name: str, default):
        return self.knobs.get(name, default)

    @functools.cached_property
    def shapes(self) -> dict:
        """``{port: payload shape}`` of every stream port, from the component's signature."""
        members = self.op.inspect(self.params).signature.members
        return {
            name: m.signature.members["payload"].shape
            for name, m in members.items()
            if m.is_signature
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


class StreamTB:
    """Sends an operator's cases through input stream ``i`` and checks output stream ``o``.

    Parameters
    ----------
    dut : cocotb handle
        The toplevel.
    seed : int
        Seed of the idle / back-pressure patterns.

    Members
    -------
    setup : Setup
        The run (operator, Params, knobs); ``p`` is its Params.
    in_cycles, out_cycles : list of int
        The clock of every input and output handshake of the last :meth:`drive`.
    """

    def __init__(self, dut, seed: int = 0):
        self.dut = dut
        self.setup = setup()
        self.p = self.setup.params
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.in_cycles: list[int] = []
        self.out_cycles: list[int] = []
        # the simulator-side clock: cocotb's default here is a Python coroutine that wakes
        # twice per clock to toggle it
        Clock(dut.clk, 10, unit="ns", impl="gpi").start()

    async def reset(self, cycles: int = 3) -> None:
        """Reset with every input stream idle and the output stalled; returns at the falling
        edge after the first clock out of reset, where the other methods start and end."""
        dut = self.dut
        dut.rst.value = 1
        for port in self.setup.shapes:
            if port != "o":
                getattr(dut, f"{port}__valid").value = 0
                getattr(dut, f"{port}__payload").value = 0
        dut.o__ready.value = 0
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)

    def beats(self, cases, row_params=None) -> streams.Beats:
        """The beats of ``cases`` and the outputs ``emulate`` expects
        (:func:`hwgen.flows.streams.beats`)."""
        return streams.beats(self.setup.op, self.p, cases, row_params)

    async def send(self, beats: streams.Beats, *, idle: float, backpressure: float) -> dict:
        """Load the parameter ports' beats (one per clock), then drive ``i`` with its beats;
        return the output fields (:func:`hwgen.flows.streams.unpack_words`)."""
        shapes = self.setup.shapes
        for port, fields in beats.streams.items():
            if port != "i":
                await self.load(port, streams.pack_words(shapes[port], fields))
        words = streams.pack_words(shapes["i"], beats.streams["i"])
        got = await self.drive(words, beats.outputs, idle=idle, backpressure=backpressure)
        return streams.unpack_words(shapes["o"], got)

    async def run(self, cases, *, idle: float, backpressure: float, row_params=None):
        """:meth:`beats` then :meth:`send`: the beats (with the expected outputs) and the
        output fields."""
        beats = self.beats(cases, row_params)
        return beats, await self.send(beats, idle=idle, backpressure=backpressure)

    def check(self, name: str, beats: streams.Beats, got: dict, part=slice(None)) -> None:
        """Record outputs ``part`` of ``got`` against the expected ones, every field (data and
        framing alike); inputs name the outputs in the report (the input code where each input
        gives one output, else the output's index)."""
        i = beats.streams["i"]
        codes = i.get("data" if "data" in i else "")
        one_each = codes is not None and len(codes) == beats.outputs
        inputs = codes if one_each else np.arange(beats.outputs)
        part_of = {key: np.asarray(v)[part] for key, v in got.items() if key in beats.expected}
        want = {key: np.asarray(v)[part] for key, v in beats.expected.items()}
        record(name, stats(np.asarray(inputs)[part], part_of, want, name))

    async def named_cases(self, idle: float, backpressure: float, *, full_rate: bool) -> None:
        """The golden module's ``standard_cases`` back to back (rows cut to ``max_len``), each
        recorded as ``<case>_idle<idle>_bp<backpressure>``; at full rate, with ``full_rate``,
        also :meth:`check_full_rate`."""
        cases = self.setup.golden.standard_cases(self.p)
        values = list(cases.values())
        if self.setup.op.interface.rows:
            values = [r[: self.p.max_len] for r in values]
        await self.reset()
        beats, got = await self.run(values, idle=idle, backpressure=backpressure)
        counts = [1 if isinstance(c, tuple) else len(c) for c in values]  # outputs per case
        ends = np.cumsum(counts)
        for name, start, end in zip(cases, ends - counts, ends, strict=True):
            self.check(f"{name}_idle{idle}_bp{backpressure}", beats, got, slice(start, end))
        if full_rate and not idle and not backpressure:
            last = beats.streams["i"].get("last")  # a dot product's result follows its last beat
            self.check_full_rate(None if last is None else np.flatnonzero(last))

    async def drive(
        self, words, n_out: int, *, idle: float, backpressure: float, stall_limit: int = 5000
    ) -> list[int]:
        """Send the raw payload ``words``; return the first ``n_out`` raw output payloads,
        then check that nothing more comes (:meth:`expect_silence`).

        Records the clock of every input and output handshake in ``in_cycles`` and
        ``out_cycles``. Raises ``AssertionError`` when the design makes no progress for
        ``stall_limit`` clocks (lost data would otherwise hang the test).
        """
        dut = self.dut
        i_valid, i_payload, o_ready = dut.i__valid, dut.i__payload, dut.o__ready
        i_fire, o_fire, o_payload = dut.tb_i_fire, dut.tb_o_fire, dut.tb_o_payload
        falling = FallingEdge(dut.clk)
        rand = self.rng.random
        n_in = len(words)
        sent, received = 0, []
        self.in_cycles, self.out_cycles = [], []
        quiet = 0
        # at a falling edge (every method leaves the clock there): set the inputs of the next
        # rising edge, wait for the falling edge after it, read what that edge transferred
        while True:
            offered = sent < n_in and not (idle and rand() < idle)
            i_valid.value = int(offered)
            if offered:
                i_payload.value = words[sent]
            o_ready.value = int(not (backpressure and rand() < backpressure))
            await falling
            self.cycle += 1
            progress = False
            if i_fire.value:
                self.in_cycles.append(self.cycle)
                sent += 1
                progress = True
            if o_fire.value:
                self.out_cycles.append(self.cycle)
                received.append(int(o_payload.value.to_unsigned()))
                progress = True
                if len(received) == n_out:
                    break
            quiet = 0 if progress else quiet + 1
            assert quiet < stall_limit, (
                f"no handshake for {stall_limit} cycles: sent {sent}/{n_in}, "
                f"received {len(received)}/{n_out}"
            )
        i_valid.value = 0
        await self.expect_silence()
        return received

    async def expect_silence(self, clocks: int = 16) -> None:
        """Fail if any output appears in the next ``clocks`` (a duplicated result)."""
        dut = self.dut
        dut.o__ready.value = 1
        extra = 0
        for _ in range(clocks):
            await FallingEdge(dut.clk)
            self.cycle += 1
            extra += int(dut.tb_o_fire.value)
        assert extra == 0, f"{extra} outputs arrived after every input was answered"

    async def load(self, port: str, words) -> None:
        """Write raw ``words`` into input stream ``port``, one per clock while it is ready
        (a parameter port such as ``affine``)."""
        dut = self.dut
        valid, payload = getattr(dut, f"{port}__valid"), getattr(dut, f"{port}__payload")
        fire = getattr(dut, f"tb_{port}_fire")
        for word in words:
            valid.value = 1
            payload.value = word
            await FallingEdge(dut.clk)
            self.cycle += 1
            while not fire.value:
                await FallingEdge(dut.clk)
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


def stats(inputs, got: dict, expected: dict, case: str = "") -> dict:
    """Mismatch statistics of the output fields ``got`` against ``expected`` (``{field:
    array}``); an output mismatches when any field differs. The first five mismatches give
    the input (``inputs``: codes, or indexes of dot products) and the data field, plus every
    other field that differs (``{field: [got, expected]}``)."""
    main = "data" if "data" in expected else ""
    n = len(expected[main])
    bad = np.zeros(n, dtype=bool)
    for key, want in expected.items():
        assert len(got[key]) == n, f"{case}: {len(got[key])} results for {n}"
        bad |= np.asarray(got[key]) != np.asarray(want)
    first = []
    for k in np.flatnonzero(bad)[:5]:
        entry = {
            "input": int(inputs[k]),
            "got": int(got[main][k]),
            "expected": int(expected[main][k]),
        }
        for key in expected:
            if key != main and got[key][k] != expected[key][k]:
                entry[key] = [int(got[key][k]), int(expected[key][k])]
        first.append(entry)
    return {"case": case, "checked": n, "mismatches": int(bad.sum()), "first": first}


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
