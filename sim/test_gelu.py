"""cocotb testbench of the generated GELU Verilog against ``golden.gelu.emulate``.

The cocotb tests (decorated with ``@cocotb.test``) run inside the simulator; the ``test_*``
functions at the bottom are the pytest side, which builds each configuration and runs them
through :mod:`sim.runner` on Icarus and Verilator.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from golden import gelu as golden_gelu
from hwgen.cores.gelu import GeluPWL
from sim import runner

OP = "gelu"

if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import json

    import cocotb

    from sim.streaming import StreamTB, record

    gelu = golden_gelu

    def _params() -> gelu.GeluParams:
        return gelu.GeluParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    @cocotb.test()
    @cocotb.parametrize(idle=[0.25], backpressure=[0.3])
    async def every_code(dut, idle, backpressure):
        """All input codes in shuffled order, random idle cycles and output back-pressure."""
        p = _params()
        codes = np.random.default_rng(7).permutation(p.in_fmt.all_codes())
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=11)
        await tb.reset()
        got = await tb.run(codes, idle=idle, backpressure=backpressure)
        record("every_code", tb.compare(codes, got, gelu.emulate(p, codes)))

    @cocotb.test()
    @cocotb.parametrize(pattern=[(0.0, 0.0), (0.5, 0.5)])
    async def standard_cases(dut, pattern):
        """Named corner cases back to back; at full rate also one result per clock and the
        stated latency."""
        idle, backpressure = pattern
        p = _params()
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=3)
        await tb.reset()
        for name, codes in gelu.standard_cases(p).items():
            got = await tb.run(codes, idle=idle, backpressure=backpressure)
            stats = tb.compare(codes, got, gelu.emulate(p, codes), case=name)
            record(f"{name}_idle{idle}_bp{backpressure}", stats)
            if not idle and not backpressure:
                tb.check_full_rate(latency=int(os.environ["HWGEN_LATENCY"]))


# -- pytest side -----------------------------------------------------------------------------

CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_gelu_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim)
    assert summary["every_code"]["checked"] == 2**params.in_fmt.width
    assert len(summary) == 1 + 2 * len(golden_gelu.standard_cases(params))
    assert all(v["mismatches"] == 0 for v in summary.values()), summary


def test_corrupted_table_entry_is_caught():
    """The comparison can fail: one ROM row's constant lowered by one output LSB in the RTL only."""
    p = runner.sweep(OP)[0]
    good = golden_gelu.tables(p)
    k = 5
    rom = good.rom_icpt.copy()
    rom[k] -= 1 << (p.acc_frac - p.out_fmt.frac_bits)
    dut = GeluPWL(p, tables=dataclasses.replace(good, rom_icpt=rom))
    with pytest.raises(SystemExit):
        runner.run(OP, p, "icarus", component=dut, tag="mutant", test_filter="every_code")
    every = runner.read_summary(p, "icarus", "mutant")["every_code"]
    # exactly the codes whose |x| reads row k move down by one LSB: both signs of that row
    rows = golden_gelu.row_of(p, good, p.in_fmt.all_codes())
    assert every["mismatches"] == int((rows == k).sum()) > 0
    for m in every["first"]:
        assert golden_gelu.row_of(p, good, [m["input"]])[0] == k
        assert m["got"] == m["expected"] - 1
