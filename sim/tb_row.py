"""cocotb testbench of every ``row`` and ``row_param`` operator (row-framed streams).

Input payload ``{data, last}``, output ``{data, first, last}`` (:mod:`hwgen.registry`), their
layouts read from the component's signature. A ``row_param`` operator also has the ``affine``
port: its vectors come from the golden module's ``row_params`` and are loaded through the port
(the identity before the named rows, new random vectors before each random phase) and passed to
``emulate`` after the row. Knobs (``HWGEN_KNOBS``):

``elements``
    random elements per configuration (default 100000, the contract's 10^5);
``latency_rows``
    whole row lengths before the stated ``latency`` starts: a row's first output is valid
    ``latency_rows * L + latency`` clocks after its last input without back-pressure
    (default 0).
"""

from __future__ import annotations

import cocotb
import numpy as np

from hwgen.registry import Interface
from sim.runner import CASE_PATTERNS, random_checks
from sim.streaming import StreamTB, record, setup, stats

#: the random run's phases, each after a new ``row_params`` load where there is a port
PHASES = random_checks(setup().op.interface)
#: rows and their length in the full-rate test (DeiT's 197 tokens where ``max_len`` allows)
FULL_RATE_ROWS, FULL_RATE_LENGTH = 5, 197


class RowTB(StreamTB):
    """Sends rows, splits the output at ``last`` and checks ``first``; loads the ``affine``
    vectors of a ``row_param`` operator."""

    async def load_row_params(self, seed: int | None = None) -> dict | None:
        """Load ``row_params(p, max_len, seed)`` through the parameter port; return it (None
        for an operator without one)."""
        if self.setup.op.interface is not Interface.ROW_PARAM:
            return None
        vectors = self.setup.golden.row_params(self.p, self.p.max_len, seed)
        await self.load("affine", addr=np.arange(self.p.max_len), **vectors)
        return vectors

    async def run_rows(self, rows, *, idle: float, backpressure: float) -> list[np.ndarray]:
        """Send the rows, return the output rows (split at ``last``, checked against
        ``first``)."""
        data = np.concatenate(rows)
        last = np.concatenate([np.arange(len(r)) == len(r) - 1 for r in rows])
        words = self.i.pack(data=data, last=last)
        n = len(words)
        out = self.o.unpack(
            await self.drive(words, n, idle=idle, backpressure=backpressure, stall_limit=5000)
        )
        out_rows, start = [], 0
        for k in np.flatnonzero(out["last"]):
            assert out["first"][start] == 1, f"output {start} starts a row but first is low"
            assert not out["first"][start + 1 : k + 1].any(), f"first set inside the row at {start}"
            out_rows.append(out["data"][start : k + 1])
            start = k + 1
        assert start == n, f"{n - start} outputs after the last `last`"
        return out_rows

    def compare(self, name: str, rows, got, vectors=None) -> None:
        """Record ``got`` against ``emulate`` of each row (with the loaded vectors cut to the
        row's length)."""
        s = self.setup
        assert len(got) == len(rows), f"{name}: {len(got)} output rows for {len(rows)} input rows"
        assert [len(g) for g in got] == [len(r) for r in rows], f"{name}: row lengths differ"
        expected = [
            s.golden.emulate(self.p, r, *(v[: len(r)] for v in (vectors or {}).values()))
            for r in rows
        ]
        codes, outputs = np.concatenate(rows), np.concatenate(got)
        record(name, stats(codes, outputs, np.concatenate(expected), name))


def _random_rows(n_elements: int, seed: int) -> list[np.ndarray]:
    """The shortest prefix of ``random_cases(p, n, seed)`` with ``n_elements`` elements."""
    s = setup()
    n = 16
    while True:
        rows = list(s.golden.random_cases(s.params, n, seed))
        ends = np.cumsum([len(r) for r in rows])
        if ends[-1] >= n_elements:
            return rows[: int(np.searchsorted(ends, n_elements)) + 1]
        n *= 2


@cocotb.test()
@cocotb.parametrize(idle=[0.2], backpressure=[0.3])
async def random_rows(dut, idle, backpressure):
    """Random rows from ``random_cases`` until ``elements`` elements, under idle cycles and
    back-pressure; with a parameter port in three phases, new random vectors loaded through
    the port before each."""
    tb = RowTB(dut, seed=5)
    await tb.reset()
    per_phase = -(-tb.setup.knob("elements", 100_000) // len(PHASES))
    for phase, name in enumerate(PHASES):
        vectors = await tb.load_row_params(seed=6 + phase)
        rows = _random_rows(per_phase, seed=1_000_003 * phase)
        got = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
        tb.compare(name, rows, got, vectors)


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """The named rows back to back (with the identity vectors loaded), free-running and under
    heavy stalls."""
    idle, backpressure = pattern
    tb = RowTB(dut, seed=3)
    await tb.reset()
    vectors = await tb.load_row_params(seed=None)
    cases = tb.setup.golden.standard_cases(tb.p)
    rows = [r[: tb.p.max_len] for r in cases.values()]
    got = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
    for name, row, out in zip(cases, rows, got, strict=True):
        tb.compare(f"{name}_idle{idle}_bp{backpressure}", [row], [out], vectors)


@cocotb.test()
async def full_rate(dut):
    """Equal rows longer than ``row_clocks`` at full rate: no input stall, no output gap, each
    row's first output ``latency_rows * L + latency`` clocks after its last input, and
    ``(R + 1 + latency_rows) L + latency - 1`` clocks from the first input to the last
    output. Where ``max_len`` is too short for that, rows follow the per-row unit's pace:
    the span is only bounded."""
    tb = RowTB(dut, seed=0)
    s, p = tb.setup, tb.p
    length = min(max(FULL_RATE_LENGTH, s.row_clocks + 1), p.max_len)
    n_rows = FULL_RATE_ROWS
    values = np.concatenate(_random_rows(n_rows * length, seed=11))
    rows = list(values[: n_rows * length].reshape(n_rows, length))
    await tb.reset()
    vectors = await tb.load_row_params(seed=None)
    got = await tb.run_rows(rows, idle=0.0, backpressure=0.0)
    tb.compare("full_rate_rows", rows, got, vectors)
    span = tb.out_cycles[-1] - tb.in_cycles[0] + 1
    lag = s.knob("latency_rows", 0) * length + s.latency
    if length > s.row_clocks:
        assert np.all(np.diff(tb.in_cycles) == 1), "input stalled"
        assert np.all(np.diff(tb.out_cycles) == 1), "output had gaps"
        first_out = np.array(tb.out_cycles[::length]) - np.array(tb.in_cycles[length - 1 :: length])
        assert np.all(first_out == lag), f"first outputs {first_out} clocks after last inputs"
        expected = (n_rows + 1) * length + lag - 1
        assert span == expected, f"{span} clocks for {n_rows} rows of {length}, not {expected}"
    else:
        bound = (n_rows + 1) * (s.row_clocks + 1) + lag
        assert span <= bound, f"{span} clocks for {n_rows} rows of {length}, over {bound}"
