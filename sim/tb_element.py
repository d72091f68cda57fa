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
from amaranth.hdl import Shape

from sim.runner import CASE_PATTERNS
from sim.streaming import StreamTB, setup

#: input spaces up to this many codes are swept exhaustively (DESIGN.md, contract 2)
EXHAUSTIVE = 2**16
_IDLE, _BACKPRESSURE = setup().knob("stalls", [0.25, 0.3])


def _every_code() -> np.ndarray:
    """Every code of the input payload, in shuffled order (or ``elements`` random codes)."""
    s = setup()
    shape = Shape.cast(s.shapes["i"])
    if 2**shape.width > EXHAUSTIVE:
        return s.golden.random_cases(s.params, s.knob("elements", 100_000), seed=7)
    low = -(2 ** (shape.width - 1)) if shape.signed else 0
    return np.random.default_rng(7).permutation(np.arange(low, low + 2**shape.width))


@cocotb.test()
@cocotb.parametrize(idle=[_IDLE], backpressure=[_BACKPRESSURE])
async def every_code(dut, idle, backpressure):
    """Every input code in shuffled order (or ``elements`` random codes where there are more
    than 2**16), random idle cycles and output back-pressure."""
    tb = StreamTB(dut, seed=11)
    await tb.reset()
    beats, got = await tb.run(_every_code(), idle=idle, backpressure=backpressure)
    tb.check("every_code", beats, got)


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """Named corner cases back to back; at full rate also one result per clock and the stated
    latency."""
    await StreamTB(dut, seed=3).named_cases(*pattern, full_rate=True)
