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
from sim.streaming import StreamTB, setup

#: the random run's phases, each after a new ``row_params`` load where there is a port
PHASES = random_checks(setup().op.interface)
#: rows and their length in the full-rate test (DeiT's 197 tokens where ``max_len`` allows)
FULL_RATE_ROWS, FULL_RATE_LENGTH = 5, 197


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


def _row_params(length: int, seed: int):
    """New random vectors for a ``row_param`` operator (None: a plain row operator)."""
    s = setup()
    if s.op.interface is not Interface.ROW_PARAM:
        return None
    return s.golden.row_params(s.params, length, seed)


@cocotb.test()
@cocotb.parametrize(idle=[0.2], backpressure=[0.3])
async def random_rows(dut, idle, backpressure):
    """Random rows from ``random_cases`` until ``elements`` elements, under idle cycles and
    back-pressure; with a parameter port in three phases, new random vectors loaded through
    the port before each."""
    tb = StreamTB(dut, seed=5)
    await tb.reset()
    per_phase = -(-tb.setup.knob("elements", 100_000) // len(PHASES))
    for phase, name in enumerate(PHASES):
        rows = _random_rows(per_phase, seed=1_000_003 * phase)
        vectors = _row_params(max(len(r) for r in rows), seed=6 + phase)
        beats, got = await tb.run(rows, idle=idle, backpressure=backpressure, row_params=vectors)
        tb.check(name, beats, got)


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """The named rows back to back (the identity vectors loaded first where there is a
    parameter port), free-running and under heavy stalls."""
    await StreamTB(dut, seed=3).named_cases(*pattern, full_rate=False)


@cocotb.test()
async def full_rate(dut):
    """Equal rows longer than ``row_clocks`` at full rate: no input stall, no output gap, each
    row's first output ``latency_rows * L + latency`` clocks after its last input, and
    ``(R + 1 + latency_rows) L + latency - 1`` clocks from the first input to the last
    output. Where ``max_len`` is too short for that, rows follow the per-row unit's pace:
    the span is only bounded."""
    tb = StreamTB(dut, seed=0)
    s, p = tb.setup, tb.p
    length = min(max(FULL_RATE_LENGTH, s.row_clocks + 1), p.max_len)
    n_rows = FULL_RATE_ROWS
    values = np.concatenate(_random_rows(n_rows * length, seed=11))
    rows = list(values[: n_rows * length].reshape(n_rows, length))
    await tb.reset()
    beats, got = await tb.run(rows, idle=0.0, backpressure=0.0)
    tb.check("full_rate_rows", beats, got)
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
