"""cocotb testbench of every ``dot`` operator (dot-product beats in, one accumulator out).

A case is ``(w, a, w_is_posit)``, the terms of one dot product (:mod:`hwgen.registry`); it goes
in as beats of ``lanes`` terms (the last one padded with zero terms: weight pattern 0 is zero
in every format) from one with ``first`` (which clears the accumulator) to one with ``last``
(whose accumulator value comes out). The payload layout (``w[lanes]``, ``w_is_posit``,
``a[lanes]``, ``first``, ``last``) is read from the component's signature. Knobs
(``HWGEN_KNOBS``):

``dots``
    random dot products per configuration (default 100000, the contract's 10^5).
"""

from __future__ import annotations

import cocotb
import numpy as np

from sim.runner import CASE_PATTERNS
from sim.streaming import StreamTB

#: one random dot product in this many keeps accumulating onto the one before
CHAIN_ONE_IN = 8


def _chained(cases, rng, max_terms: int) -> np.ndarray:
    """Which random dot products clear the accumulator: all but about one in
    :data:`CHAIN_ONE_IN`, and every one that would take a chain past ``max_terms``."""
    clears, terms = [], 0
    for k, (w, _, _) in enumerate(cases):
        clear = k == 0 or rng.random() >= 1 / CHAIN_ONE_IN or terms + len(w) > max_terms
        terms = len(w) if clear else terms + len(w)
        clears.append(clear)
    return np.array(clears)


def _chain(beats, clears) -> None:
    """Let the dot products with ``clears`` false keep accumulating onto the one before: their
    first beat does not clear, and their expected result adds the one before."""
    first, expected = beats.streams["i"]["first"], beats.expected[""]
    first[np.flatnonzero(first)[~clears]] = 0
    for k in np.flatnonzero(~clears):
        expected[k] += expected[k - 1]


@cocotb.test()
@cocotb.parametrize(idle=[0.2], backpressure=[0.3])
async def random_dot_products(dut, idle, backpressure):
    """``dots`` random dot products from ``random_cases`` (some accumulating onto the one
    before) under idle cycles and back-pressure."""
    tb = StreamTB(dut, seed=4)
    cases = tb.setup.golden.random_cases(tb.p, tb.setup.knob("dots", 100_000), seed=9)
    beats = tb.beats(cases)
    _chain(beats, _chained(cases, np.random.default_rng(9), tb.p.max_terms))
    await tb.reset()
    got = await tb.send(beats, idle=idle, backpressure=backpressure)
    tb.check("random_dot_products", beats, got)


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """The named dot products back to back; at full rate also one beat per clock and each
    result the stated latency after its last beat."""
    await StreamTB(dut, seed=3).named_cases(*pattern, full_rate=True)
