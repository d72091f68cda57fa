"""hwgen.lib helpers: signed-digit constants, adder-tree products, split tables.

Expected values come from Python integers (the product itself, the table list), not from the
helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.sim import Simulator

from hwgen.lib.pipeline import Levels, Stages, csd_digits
from hwgen.lib.rows import TableRom


def test_csd_digits_sum_to_the_code_with_no_adjacent_digits():
    for code in range(1 << 14):
        digits = csd_digits(code)
        assert sum(d << s for s, d in digits) == code
        shifts = [s for s, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False))
        assert all(d in (1, -1) for _, d in digits)
        # the canonical form has the fewest non-zero digits: at most one per two bit positions
        assert len(digits) <= (code.bit_length() + 2) // 2


@pytest.mark.parametrize("arity", [2, 3])
@pytest.mark.parametrize("code", [1, 355 << 6, 1477, 41, 0b1011101110111, 0])
def test_shift_add_is_the_exact_product(code, arity):
    m = Module()
    x = Signal(14)
    lv = Levels(Stages(m), "t")
    out = lv.shift_add({"p": (x, code)}, arity=arity)
    rng = np.random.default_rng(code)
    inputs = [0, (1 << 14) - 1, *rng.integers(0, 1 << 14, 40).tolist()]
    seen = []

    async def bench(ctx):
        for value in inputs:
            ctx.set(x, value)
            await ctx.tick()
            seen.append(ctx.get(out.p))
        for _ in range(lv.depth):
            await ctx.tick()
            seen.append(ctx.get(out.p))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # after depth clocks the product of each input appears, in order
    got = seen[lv.depth - 1 : lv.depth - 1 + len(inputs)]
    assert got == [v * code for v in inputs]
    assert len(out.p) == 14 + max(1, code.bit_length())


def test_shift_add_rejects_signed_operands():
    m = Module()
    lv = Levels(Stages(m), "t")
    with pytest.raises(TypeError, match="unsigned operands"):
        lv.shift_add({"p": (Signal(range(-4, 4)), 3)})
    with pytest.raises(ValueError, match="arity must be 2 or 3"):
        lv.shift_add({"p": (Signal(4), 3)}, arity=4)


@pytest.mark.parametrize("depth", [700, 2048, 2500])
def test_table_rom_reads_every_word_and_holds_while_disabled(depth):
    rng = np.random.default_rng(depth)
    table = rng.integers(0, 1 << 18, depth).tolist()
    m = Module()
    rom = TableRom(m, "rom", unsigned(18), table)
    addrs = rng.integers(0, depth, 60).tolist()
    enables = rng.integers(0, 2, 60).tolist()

    async def bench(ctx):
        held = None
        for addr, en in zip(addrs, enables, strict=True):
            ctx.set(rom.addr, addr)
            ctx.set(rom.en, en)
            await ctx.tick()
            data = ctx.get(rom.data)
            if en:
                assert data == table[addr]
                held = data
            elif held is not None:
                assert data == held  # a disabled read leaves the data as it was

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
