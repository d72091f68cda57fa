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
from sim.streaming import StreamTB, record, stats

#: one random dot product in this many keeps accumulating onto the one before
CHAIN_ONE_IN = 8


class DotTB(StreamTB):
    """Sends dot products as beats; collects one accumulator code per dot product."""

    @property
    def lanes(self) -> int:
        return self.i.fields["w"].count

    def expected(self, cases, clears) -> np.ndarray:
        """``emulate`` of each case, added onto the one before where it does not clear."""
        s, acc, out = self.setup, 0, []
        for (w, a, fmt), clear in zip(cases, clears, strict=True):
            acc = (0 if clear else acc) + int(s.golden.emulate(self.p, w, a, fmt))
            out.append(acc)
        return np.array(out, dtype=np.int64)

    async def run_dots(self, cases, clears=None, *, idle: float, backpressure: float):
        """Send the cases (each clearing the accumulator unless ``clears`` says otherwise);
        return the results and, per dot product, the index of its last beat."""
        lanes = self.lanes
        clears = np.ones(len(cases), dtype=bool) if clears is None else clears
        fields = {"w": [], "w_is_posit": [], "a": [], "first": [], "last": []}
        for (w, a, fmt), clear in zip(cases, clears, strict=True):
            n_beats = -(-len(w) // lanes)
            pad = (0, n_beats * lanes - len(w))
            for name, v in (("w", w), ("w_is_posit", np.broadcast_to(fmt, np.shape(w))), ("a", a)):
                fields[name].append(np.pad(np.asarray(v, np.int64), pad).reshape(n_beats, lanes))
            fields["first"].append((np.arange(n_beats) == 0) & clear)
            fields["last"].append(np.arange(n_beats) == n_beats - 1)
        beats = {name: np.concatenate(v) for name, v in fields.items()}
        words = self.i.pack(**beats)
        got = await self.drive(words, len(cases), idle=idle, backpressure=backpressure)
        return self.o.unpack(got), np.flatnonzero(beats["last"])


def _chained(cases, rng, max_terms: int) -> np.ndarray:
    """Which random dot products clear the accumulator: all but about one in
    :data:`CHAIN_ONE_IN`, and every one that would take a chain past ``max_terms``."""
    clears, terms = [], 0
    for k, (w, _, _) in enumerate(cases):
        clear = k == 0 or rng.random() >= 1 / CHAIN_ONE_IN or terms + len(w) > max_terms
        terms = len(w) if clear else terms + len(w)
        clears.append(clear)
    return np.array(clears)


@cocotb.test()
@cocotb.parametrize(idle=[0.2], backpressure=[0.3])
async def random_dot_products(dut, idle, backpressure):
    """``dots`` random dot products from ``random_cases`` (some accumulating onto the one
    before) under idle cycles and back-pressure."""
    tb = DotTB(dut, seed=4)
    cases = tb.setup.golden.random_cases(tb.p, tb.setup.knob("dots", 100_000), seed=9)
    clears = _chained(cases, np.random.default_rng(9), tb.p.max_terms)
    await tb.reset()
    got, _ = await tb.run_dots(cases, clears, idle=idle, backpressure=backpressure)
    index = np.arange(len(cases))
    record("random_dot_products", stats(index, got, tb.expected(cases, clears), "random"))


@cocotb.test()
@cocotb.parametrize(pattern=CASE_PATTERNS)
async def standard_cases(dut, pattern):
    """The named dot products back to back; at full rate also one beat per clock and each
    result the stated latency after its last beat."""
    idle, backpressure = pattern
    tb = DotTB(dut, seed=3)
    cases = tb.setup.golden.standard_cases(tb.p)
    await tb.reset()
    got, ends = await tb.run_dots(list(cases.values()), idle=idle, backpressure=backpressure)
    expected = tb.expected(cases.values(), [True] * len(cases))
    for k, name in enumerate(cases):
        result = stats([k], got[k : k + 1], expected[k : k + 1], name)
        record(f"{name}_idle{idle}_bp{backpressure}", result)
    if not idle and not backpressure:
        tb.check_full_rate(ends)
