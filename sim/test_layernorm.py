"""LayerNorm on Icarus and Verilator: the row testbench with the ``affine`` port
(sim/tb_row.py) on the first three sweep configurations."""

from __future__ import annotations

import os

import pytest

from sim import runner

OP = "layernorm"
#: elements of random rows per configuration (the issue asks for at least 10^5)
N_ELEMENTS = int(os.environ.get("HWGEN_LAYERNORM_ELEMENTS", "100000"))
CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_layernorm_rtl_equals_emulate(params, sim):
    n = runner.random_count(N_ELEMENTS, sim)
    summary = runner.run(OP, params, sim, knobs={"elements": n})
    runner.check_summary(OP, params, summary, random=n)
