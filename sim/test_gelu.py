"""GELU on Icarus and Verilator: the element testbench (sim/tb_element.py) on the first three
sweep configurations, and a corrupted design that it must catch."""

from __future__ import annotations

import dataclasses

import pytest

from golden import gelu
from hwgen.cores.gelu import GeluPWL
from sim import runner

OP = "gelu"
CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_gelu_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim)
    runner.check_summary(OP, params, summary, random=2**params.in_fmt.width)


def test_corrupted_table_entry_is_caught():
    """The comparison can fail: one ROM row's constant lowered by one output LSB in the RTL only."""
    p = runner.sweep(OP)[0]
    good = gelu.tables(p)
    k = 5
    rom = good.rom_icpt.copy()
    rom[k] -= 1 << (p.acc_frac - p.out_fmt.frac_bits)
    dut = GeluPWL(p, tables=dataclasses.replace(good, rom_icpt=rom))
    with pytest.raises(SystemExit):
        runner.run(OP, p, "icarus", component=dut, tag="mutant", test_filter="every_code")
    every = runner.read_summary(p, "icarus", "mutant")["every_code"]
    # exactly the codes whose |x| reads row k move down by one LSB: both signs of that row
    rows = gelu.row_of(p, good, p.in_fmt.all_codes())
    assert every["mismatches"] == int((rows == k).sum()) > 0
    for m in every["first"]:
        assert gelu.row_of(p, good, [m["input"]])[0] == k
        assert m["got"] == m["expected"] - 1
