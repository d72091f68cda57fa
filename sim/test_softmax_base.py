"""Softmax baselines on Icarus and Verilator: the row testbench (sim/tb_row.py) on the default
of each kind (both simulators) and a divider with fewer quotient bits (Icarus)."""

from __future__ import annotations

import os

import pytest

from golden.softmax_base import SoftmaxBaseParams
from sim import runner

OP = "softmax_base"
#: elements of random rows for the default of each kind (the issue asks for at least 10^5)
N_ELEMENTS = int(os.environ.get("HWGEN_SOFTMAX_BASE_ELEMENTS", "100000"))
#: elements of random rows for the other configurations
N_VARIANT = int(os.environ.get("HWGEN_SOFTMAX_BASE_VARIANT_ELEMENTS", "10000"))


def elements_for(params) -> int:
    """Random elements to test: :data:`N_ELEMENTS` for a kind's default, else :data:`N_VARIANT`."""
    return N_ELEMENTS if params == SoftmaxBaseParams(kind=params.kind) else N_VARIANT


#: both defaults on both simulators; the divider with fewer quotient bits (a shorter pipeline)
#: on Icarus only, whose build is cheap (every sweep configuration is also checked against
#: emulate in amaranth.sim by tests/test_softmax_base.py)
CONFIGS = [
    pytest.param(p, sim, id=f"{p.name}-{sim}")
    for p, sims in [
        (runner.sweep(OP)[0], runner.SIMULATORS),
        (runner.sweep(OP)[1], runner.SIMULATORS),
        (runner.sweep(OP)[3], ("icarus",)),
    ]
    for sim in sims
]


@pytest.mark.parametrize("params, sim", CONFIGS)
def test_softmax_base_rtl_equals_emulate(params, sim):
    # same rule as the approximate softmax: first output L + latency after a row's last input
    knobs = {"elements": runner.random_count(elements_for(params), sim), "latency_rows": 1}
    summary = runner.run(OP, params, sim, knobs=knobs)
    runner.check_summary(OP, params, summary, random=knobs["elements"])
