"""cocotb testbench of every ``element`` operator (one code in, one code out per beat).

Everything operator-specific comes from the contract (:mod:`hwgen.registry`): the golden
module's ``emulate`` and ``standard_cases``, ``random_cases`` where the input space is too large
to sweep, the payload layouts from the component's signature. Knobs (``HWGEN_KNOBS``):

``stalls``
    ``[idle, backpressure]`` probabilities of the exhaustive run (default ``[0.25, 0.3]``);
``elements``
    random codes when the input has more than 2**16 codes (default 100000).
"""

from __future__ import annotations

import cocotb
import numpy as np

from sim.runner import CASE_PATTERNS
from sim.streaming import StreamTB, record, setup, stats

#: input spaces up to this many codes are swept exhaustively (DESIGN.md, contract 2)
EXHAUSTIVE = 2**16
_IDLE, _BACKPRESSURE = setup().knob("stalls", [0.25, 0.3])


def _emulate(codes):
    s = setup()
    return s.golden.emulate(s.params, codes)


async def _send(tb: StreamTB, codes, *, idle: float, backpressure: float) -> np.ndarray:
    words = tb.i.pack(codes)
    return tb.o.unpack(await tb.drive(words, len(words), idle=idle, backpressure=backpressure))


@cocotb.test()
@cocotb.parametrize(idle=[_IDLE], backpressure=[_BACKPRESSURE])
async def every_code(dut, idle, backpressure):
    """Every input code in shuffled order (or ``elements`` random codes where there are more
    than 2**16), random idle cycles and output back-pressure."""
    tb = StreamTB(dut, seed=11)
    width = tb.i.width
    if 2**width <= EXHAUSTIVE:
        codes = np.arange(-(2 ** (width - 1)), 2 ** (width - 1), dtype=np.int64)
        if not tb.i.fields[""].signed:
            codes += 2 ** (width - 1)
        codes = np.random.default_rng(7).permutation(codes)
    else:
        codes = tb.setup.golden.random_cases(tb.p, tb.setup.knob("elements", 100_000), seed=7)
    await tb.reset()
    got = await _send(tb, codes, idle=idle, backpressure=backpressure)
    record("every_code", stats(codes, got, _emulate(codes)))


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """Named corner cases back to back; at full rate also one result per clock and the stated
    latency."""
    idle, backpressure = pattern
    tb = StreamTB(dut, seed=3)
    await tb.reset()
    for name, codes in tb.setup.golden.standard_cases(tb.p).items():
        got = await _send(tb, codes, idle=idle, backpressure=backpressure)
        record(f"{name}_idle{idle}_bp{backpressure}", stats(codes, got, _emulate(codes), name))
        if not idle and not backpressure:
            tb.check_full_rate()
