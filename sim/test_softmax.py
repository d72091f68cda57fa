"""Softmax on Icarus and Verilator: the row testbench (sim/tb_row.py) on the first three sweep
configurations."""

from __future__ import annotations

import os

import pytest

from sim import runner

OP = "softmax"
#: elements of random rows per configuration (the issue asks for at least 10^5)
N_ELEMENTS = int(os.environ.get("HWGEN_SOFTMAX_ELEMENTS", "100000"))
CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_softmax_rtl_equals_emulate(params, sim):
    n = runner.random_count(N_ELEMENTS, sim)
    # latency_rows: the first output of a row comes L + latency clocks after its last input
    # (the exp pass of the row follows its input)
    summary = runner.run(OP, params, sim, knobs={"elements": n, "latency_rows": 1})
    runner.check_summary(OP, params, summary, random=n)
