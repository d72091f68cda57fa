"""cocotb driver/monitor for hwgen's valid/ready streams (runs inside the simulator).

One coroutine drives the input and samples both handshakes once per clock: signals are set
just after the rising edge and sampled at the falling edge, where every combinational path
has settled, on Icarus and Verilator alike. Idle cycles (input valid low) and back-pressure
(output ready low) are drawn at random with the given probabilities.
"""

from __future__ import annotations

import json
import os

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from golden.formats import FixFormat

__all__ = ["StreamTB", "RowStreamTB", "record"]


class StreamTB:
    """Testbench of one stream-in, stream-out component (ports ``i__*``, ``o__*``).

    Parameters
    ----------
    dut : cocotb handle
        The toplevel.
    in_fmt, out_fmt : FixFormat
        Formats of the input and output payloads.
    seed : int
        Seed of the idle / back-pressure patterns.
    """

    def __init__(self, dut, in_fmt: FixFormat, out_fmt: FixFormat, seed: int = 0):
        self.dut = dut
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.in_cycles: list[int] = []
        self.out_cycles: list[int] = []
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self, cycles: int = 3) -> None:
        dut = self.dut
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.i__payload.value = 0
        dut.o__ready.value = 0
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def drive(
        self, words, n_out: int, *, idle: float, backpressure: float, stall_limit: int = 1000
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
                received.append(dut.o__payload.value.to_unsigned())
                progress = True
            quiet = 0 if progress else quiet + 1
            assert quiet < stall_limit, (
                f"no handshake for {stall_limit} cycles: sent {sent}/{n_in}, "
                f"received {len(received)}/{n_out}"
            )
            await RisingEdge(dut.clk)
            self.cycle += 1
        dut.i__valid.value = 0
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

    async def run(self, codes, *, idle: float, backpressure: float) -> np.ndarray:
        """Send ``codes``, collect as many outputs, return them as ``out_fmt`` codes."""
        bits = self.in_fmt.to_bits(codes).tolist()
        received = await self.drive(bits, len(bits), idle=idle, backpressure=backpressure)
        await self.expect_silence()
        return self.out_fmt.from_bits(np.array(received, dtype=np.int64))

    def compare(self, codes, got, expected, case: str = "") -> dict:
        """Mismatch statistics of ``got`` against ``expected`` (same order as ``codes``)."""
        codes, got, expected = (np.asarray(v, dtype=np.int64) for v in (codes, got, expected))
        bad = np.flatnonzero(got != expected)
        return {
            "case": case,
            "checked": int(codes.size),
            "mismatches": int(bad.size),
            "first": [
                {"input": int(codes[k]), "got": int(got[k]), "expected": int(expected[k])}
                for k in bad[:5]
            ],
        }

    def check_full_rate(self, latency: int) -> None:
        """After a run without idle or back-pressure: one input per clock, fixed latency."""
        ins, outs = np.array(self.in_cycles), np.array(self.out_cycles)
        assert np.all(np.diff(ins) == 1), "input was not accepted on every clock"
        delays = outs - ins
        assert np.all(delays == latency), (
            f"latency {sorted(set(delays.tolist()))} clocks, component states {latency}"
        )


class RowStreamTB(StreamTB):
    """Testbench of a row-framed component.

    Input payload ``{data, last}`` and output payload ``{data, first, last}`` as Amaranth
    packs them: ``data`` in the low bits, then the flags in declaration order.
    """

    async def run_rows(
        self, rows, *, idle: float, backpressure: float
    ) -> tuple[list[np.ndarray], int]:
        """Send the rows, return the output rows (split at ``last``, checked against
        ``first``) and the number of clocks from the first input to the last output."""
        width_in, width_out = self.in_fmt.width, self.out_fmt.width
        words = []
        for row in rows:
            bits = self.in_fmt.to_bits(row).tolist()
            words += [b | ((k == len(bits) - 1) << width_in) for k, b in enumerate(bits)]
        n = len(words)
        received = await self.drive(
            words, n, idle=idle, backpressure=backpressure, stall_limit=5000
        )
        await self.expect_silence()
        span = self.out_cycles[-1] - self.in_cycles[0] + 1
        words_out = np.array(received, dtype=np.int64)
        data = self.out_fmt.from_bits(words_out & ((1 << width_out) - 1))
        first = (words_out >> width_out) & 1
        last = (words_out >> (width_out + 1)) & 1
        out_rows, start = [], 0
        for k in np.flatnonzero(last):
            assert first[start] == 1, f"output {start} starts a row but first is low"
            assert not first[start + 1 : k + 1].any(), f"first set inside the row at {start}"
            out_rows.append(data[start : k + 1])
            start = k + 1
        assert start == n, f"{n - start} outputs after the last `last`"
        return out_rows, span


def record(name: str, stats: dict) -> None:
    """Add ``stats`` to the run's summary file, then fail the cocotb test on any mismatch."""
    path = os.environ.get("HWGEN_SUMMARY")
    if path:
        summary = {}
        if os.path.exists(path):
            with open(path) as f:
                summary = json.load(f)
        summary[name] = stats
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
    assert stats["mismatches"] == 0, (
        f"{name}: {stats['mismatches']} of {stats['checked']} outputs differ from emulate; "
        f"first: {stats['first']}"
    )
