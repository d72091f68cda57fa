"""cocotb testbench of the generated LayerNorm Verilog against ``golden.layernorm.emulate``.

The cocotb tests run inside the simulator; the ``test_*`` functions at the bottom are the
pytest side, which builds each configuration and runs them on Icarus and Verilator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim import runner

OP = "layernorm"
#: elements of random rows per configuration (the issue asks for at least 10^5)
N_ELEMENTS = int(os.environ.get("HWGEN_LAYERNORM_ELEMENTS", "100000"))

if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import json

    import cocotb
    from cocotb.triggers import RisingEdge

    from golden import layernorm
    from sim.streaming import RowStreamTB, record

    def _params() -> layernorm.LayerNormParams:
        return layernorm.LayerNormParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    class LayerNormTB(RowStreamTB):
        async def load_affine(self, p, gamma, beta):
            """Write gamma[k], beta[k] for every channel through the affine stream."""
            dut = self.dut
            idx_w = max(1, (p.max_len - 1).bit_length())
            g_bits = p.gamma_fmt.to_bits(gamma).tolist()
            b_bits = p.beta_fmt.to_bits(beta).tolist()
            for addr, (g, b) in enumerate(zip(g_bits, b_bits, strict=True)):
                dut.affine__valid.value = 1
                dut.affine__payload.value = addr | (g << idx_w) | (b << (idx_w + p.gamma_fmt.width))
                await RisingEdge(dut.clk)
            dut.affine__valid.value = 0

    async def _identity(tb, p):
        """gamma = 1, beta = 0 through the port (memories keep an earlier test's values)."""
        width = p.max_len
        await tb.load_affine(
            p, np.full(width, 1 << p.gamma_fmt.frac_bits), np.zeros(width, dtype=np.int64)
        )

    def _compare(tb, name, rows, got, p, gamma=None, beta=None):
        codes = np.concatenate(rows)
        expected = np.concatenate([layernorm.emulate(p, r, gamma, beta) for r in rows])
        assert [len(g) for g in got] == [len(r) for r in rows], f"{name}: row lengths differ"
        record(name, tb.compare(codes, np.concatenate(got), expected, case=name))

    def _widths(p):
        return [d for d in (192, 384, 768) if d <= p.max_len] or [p.max_len]

    @cocotb.test()
    @cocotb.parametrize(idle=[0.2], backpressure=[0.3])
    async def random_rows_changing_affine(dut, idle, backpressure):
        """Random DeiT-like rows until N_ELEMENTS, in three phases with new gamma and beta
        loaded through the port between them (widths 192, 384, 768 where they fit)."""
        p = _params()
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=5)
        dut.affine__valid.value = 0
        await tb.reset()
        rng = np.random.default_rng(6)
        widths = _widths(p)
        per_phase = N_ELEMENTS // 3 + 1
        total = 0
        for phase, width in enumerate(widths * (3 // len(widths)) + widths[: 3 % len(widths)]):
            n_rows = -(-per_phase // width)
            rows = list(layernorm.random_rows(p, n_rows, width, seed=phase))
            gamma = p.gamma_fmt.encode(rng.uniform(0.1, 2.5, width))
            beta = p.beta_fmt.encode(rng.normal(0.0, 1.0, width))
            await tb.load_affine(p, gamma, beta)
            got, _ = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
            _compare(tb, f"random_rows_phase{phase}", rows, got, p, gamma, beta)
            total += sum(len(r) for r in rows)
        assert total >= N_ELEMENTS

    @cocotb.test()
    @cocotb.parametrize(pattern=[(0.0, 0.0), (0.5, 0.5)])
    async def standard_cases(dut, pattern):
        """Named rows (constant, zero, tiny variance, one huge outlier, format extremes ...)
        with the identity affine, free-running and under heavy stalls."""
        idle, backpressure = pattern
        p = _params()
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=3)
        dut.affine__valid.value = 0
        await tb.reset()
        await _identity(tb, p)
        cases = layernorm.standard_cases(p)
        rows = [r[: p.max_len] for r in cases.values()]
        got, _ = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
        for name, row, out in zip(cases, rows, got, strict=True):
            _compare(tb, f"{name}_idle{idle}_bp{backpressure}", [row], [out], p)

    @cocotb.test()
    async def throughput(dut):
        """Rows longer than row_clocks at full rate: no stall, no gap, exact total time."""
        p = _params()
        # the per-row unit takes row_clocks and one more to hand over
        length = max(min(_widths(p)), int(os.environ["HWGEN_ROW_CLOCKS"]) + 1)
        length = min(length, p.max_len)
        n_rows = 4
        rows = list(layernorm.random_rows(p, n_rows, length, seed=11))
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=0)
        dut.affine__valid.value = 0
        await tb.reset()
        await _identity(tb, p)
        got, span = await tb.run_rows(rows, idle=0.0, backpressure=0.0)
        _compare(tb, "throughput_rows", rows, got, p)
        latency = int(os.environ["HWGEN_LATENCY"])
        row_clocks = int(os.environ["HWGEN_ROW_CLOCKS"])
        if length > row_clocks:
            assert np.all(np.diff(tb.in_cycles) == 1), "input stalled"
            assert np.all(np.diff(tb.out_cycles) == 1), "output had gaps"
            expected = (n_rows + 1) * length + latency - 1
            assert span == expected, f"{span} clocks for {n_rows} rows of {length}, not {expected}"
        else:  # max_len below the per-row unit's time: rows follow its pace instead
            bound = (n_rows + 1) * (row_clocks + 1) + latency
            assert span <= bound, f"{span} clocks for {n_rows} rows of {length}, over {bound}"


# -- pytest side -----------------------------------------------------------------------------

CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:3]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_layernorm_rtl_equals_emulate(params, sim):
    from golden import layernorm

    summary = runner.run(OP, params, sim)
    phases = [v for k, v in summary.items() if k.startswith("random_rows_phase")]
    assert len(phases) == 3 and sum(v["checked"] for v in phases) >= N_ELEMENTS
    assert "throughput_rows" in summary
    assert len(summary) == 4 + 2 * len(layernorm.standard_cases(params))
    assert all(v["mismatches"] == 0 for v in summary.values()), summary
