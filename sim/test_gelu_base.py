"""cocotb testbench of the generated GELU baselines against ``golden.gelu_base.emulate``.

The cocotb tests (decorated with ``@cocotb.test``) run inside the simulator; the ``test_*``
functions at the bottom are the pytest side, which builds the default table and the default
polynomial and runs them through :mod:`sim.runner` on Icarus and Verilator.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from golden import gelu_base as golden_gelu_base
from hwgen.cores.gelu_base import GeluBase
from sim import runner

OP = "gelu_base"

if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import json

    import cocotb

    from sim.streaming import StreamTB, record

    gelu_base = golden_gelu_base

    def _params() -> gelu_base.GeluBaseParams:
        return gelu_base.GeluBaseParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    @cocotb.test()
    @cocotb.parametrize(idle=[0.1], backpressure=[0.15])
    async def every_code(dut, idle, backpressure):
        """All input codes in shuffled order, random idle cycles and output back-pressure
        (light, to keep 2**16 codes on two simulators within the suite's time budget; the
        standard cases run under 50 % of both)."""
        p = _params()
        codes = np.random.default_rng(7).permutation(p.in_fmt.all_codes())
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=11)
        await tb.reset()
        got = await tb.run(codes, idle=idle, backpressure=backpressure)
        record("every_code", tb.compare(codes, got, gelu_base.emulate(p, codes)))

    @cocotb.test()
    @cocotb.parametrize(pattern=[(0.0, 0.0), (0.5, 0.5)])
    async def standard_cases(dut, pattern):
        """Named corner cases back to back; at full rate also one result per clock and the
        stated latency."""
        idle, backpressure = pattern
        p = _params()
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=3)
        await tb.reset()
        for name, codes in gelu_base.standard_cases(p).items():
            got = await tb.run(codes, idle=idle, backpressure=backpressure)
            stats = tb.compare(codes, got, gelu_base.emulate(p, codes), case=name)
            record(f"{name}_idle{idle}_bp{backpressure}", stats)
            if not idle and not backpressure:
                tb.check_full_rate(latency=int(os.environ["HWGEN_LATENCY"]))


# -- pytest side -----------------------------------------------------------------------------

CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:2]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_gelu_base_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim)
    assert summary["every_code"]["checked"] == 2**params.in_fmt.width
    assert len(summary) == 1 + 2 * len(golden_gelu_base.standard_cases(params))
    assert all(v["mismatches"] == 0 for v in summary.values()), summary


def test_corrupted_table_entry_is_caught():
    """The comparison can fail: the block-RAM entry of GELU's minimum (x = -0.752, in the
    last named case) raised by one output LSB in the RTL only; exactly the inputs that share
    that entry mismatch, at full rate and under stalls, and every earlier case still passes."""
    p = runner.sweep(OP)[0]
    good = golden_gelu_base.tables(p)
    cases = golden_gelu_base.standard_cases(p)
    assert list(cases)[-1] == "minimum"
    peak = int(cases["minimum"][1])
    index = peak >> p.addr_shift  # the entry: the input code's bits above the dropped ones
    entries = good.entries.copy()
    entries[index & (entries.size - 1)] += 1
    sharing = [c for c in cases["minimum"].tolist() if c >> p.addr_shift == index]
    assert peak in sharing and len(sharing) == 2  # 2 input codes per entry (addr_shift 1)
    dut = GeluBase(p, tables=dataclasses.replace(good, entries=entries))
    with pytest.raises(SystemExit):
        runner.run(OP, p, "icarus", component=dut, tag="mutant", test_filter="standard_cases")
    summary = runner.read_summary(p, "icarus", "mutant")
    assert len(summary) == 2 * len(cases)
    for name, stats in summary.items():
        if name.startswith("minimum"):
            assert stats["mismatches"] == len(sharing), stats
            assert sorted(m["input"] for m in stats["first"]) == sorted(sharing)
            assert all(m["got"] == m["expected"] + 1 for m in stats["first"])
        else:
            assert stats["mismatches"] == 0, (name, stats)
