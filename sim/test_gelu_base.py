"""GELU baselines on Icarus and Verilator: the element testbench (sim/tb_element.py) on the
default table and the default polynomial, and a corrupted table that it must catch."""

from __future__ import annotations

import dataclasses

import pytest

from golden import gelu_base
from hwgen.cores.gelu_base import GeluBase
from sim import runner

OP = "gelu_base"
CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:2]]
#: light stalls on the exhaustive run, to keep 2**16 codes on two simulators within the
#: suite's time budget (the standard cases run under 50 % of both)
KNOBS = {"stalls": [0.1, 0.15]}


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_gelu_base_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim, knobs=KNOBS)
    runner.check_summary(OP, params, summary, random=2**params.in_fmt.width)


def test_corrupted_table_entry_is_caught():
    """The comparison can fail: the block-RAM entry of GELU's minimum (x = -0.752, in the
    last named case) raised by one output LSB in the RTL only; exactly the inputs that share
    that entry mismatch, at full rate and under stalls, and every earlier case still passes."""
    p = runner.sweep(OP)[0]
    good = gelu_base.tables(p)
    cases = gelu_base.standard_cases(p)
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
