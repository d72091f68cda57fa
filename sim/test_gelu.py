"""cocotb testbench of the generated GELU Verilog against ``golden.gelu.emulate``.

The cocotb tests (decorated with ``@cocotb.test``) run inside the simulator; the ``test_*``
functions at the bottom are the pytest side, which builds each configuration and runs them
through :mod:`sim.runner` on Icarus and Verilator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim import runner

OP = "gelu"

try:  # the cocotb half only exists inside a simulator
    import cocotb

    _IN_SIM = cocotb.top is not None
except (ImportError, AttributeError):
    _IN_SIM = False


if _IN_SIM:
    from golden import gelu
    from sim.streaming import StreamTB, record

    def _params() -> gelu.GeluParams:
        import json

        return gelu.GeluParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    @cocotb.test()
    @cocotb.parametrize(idle=[0.25], backpressure=[0.3])
    async def every_code_with_backpressure(dut, idle, backpressure):
        """All input codes in shuffled order, random idle cycles and output back-pressure."""
        p = _params()
        codes = np.random.default_rng(7).permutation(p.in_fmt.all_codes())
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=11)
        await tb.reset()
        got = await tb.run(codes, idle=idle, backpressure=backpressure)
        record(
            f"every_code_idle{idle}_bp{backpressure}",
            tb.compare(codes, got, gelu.emulate(p, codes)),
        )

    @cocotb.test()
    async def standard_cases_full_rate(dut):
        """Named corner cases streamed back to back: one result per clock, stated latency."""
        p = _params()
        cases = gelu.standard_cases(p)
        tb = StreamTB(dut, p.in_fmt, p.out_fmt, seed=3)
        await tb.reset()
        for name, codes in cases.items():
            got = await tb.run(codes, idle=0.0, backpressure=0.0)
            record(f"case_{name}", tb.compare(codes, got, gelu.emulate(p, codes), case=name))
        tb.check_full_rate(latency=int(os.environ["HWGEN_LATENCY"]))


# -- pytest side -----------------------------------------------------------------------------

CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_gelu_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim)
    every = [v for k, v in summary.items() if k.startswith("every_code")]
    assert every and every[0]["checked"] == params.in_fmt.max_code - params.in_fmt.min_code + 1
    assert all(v["mismatches"] == 0 for v in summary.values()), summary
