"""cocotb testbench of the generated LayerNorm baselines against ``golden.layernorm_base.emulate``.

The same tests as sim/test_layernorm.py (the designs share ports, framing and the affine
stream): random DeiT-like rows under idle cycles and back-pressure with gamma and beta reloaded
through the port between phases, the named rows (constant, outliers, length 1, ``max_len``, a
large mean over a tiny variance ...) free-running and under heavy stalls, and the exact
full-rate timing. The cocotb tests run inside the simulator; the ``test_*`` functions at the
bottom are the pytest side, which builds each configuration and runs it on Icarus and Verilator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim import runner

OP = "layernorm_base"
#: elements of random rows for the default of each kind: 2 x 10^4 to fit make test's time
#: budget; set 100000 for the issue's 10^5 (run and passed on both simulators)
N_ELEMENTS = int(os.environ.get("HWGEN_LAYERNORM_BASE_ELEMENTS", "20000"))
#: elements of random rows for the other configurations
N_VARIANT = int(os.environ.get("HWGEN_LAYERNORM_BASE_VARIANT_ELEMENTS", "3000"))


def elements_for(params) -> int:
    """Random elements to test: :data:`N_ELEMENTS` for a kind's default, else :data:`N_VARIANT`."""
    from golden.layernorm_base import LayerNormBaseParams

    return N_ELEMENTS if params == LayerNormBaseParams(kind=params.kind) else N_VARIANT


if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import json

    import cocotb

    from golden import layernorm_base
    from sim.streaming import record
    from sim.test_layernorm import LayerNormTB  # the affine-stream driver (same port layout)

    def _params() -> layernorm_base.LayerNormBaseParams:
        return layernorm_base.LayerNormBaseParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    async def _identity(tb, p):
        """gamma = 1, beta = 0 through the port (memories keep an earlier test's values)."""
        width = p.max_len
        await tb.load_affine(
            p, np.full(width, 1 << p.gamma_fmt.frac_bits), np.zeros(width, dtype=np.int64)
        )

    def _compare(tb, name, rows, got, p, gamma=None, beta=None):
        codes = np.concatenate(rows)
        expected = np.concatenate([layernorm_base.emulate(p, r, gamma, beta) for r in rows])
        assert [len(g) for g in got] == [len(r) for r in rows], f"{name}: row lengths differ"
        record(name, tb.compare(codes, np.concatenate(got), expected, case=name))

    def _widths(p):
        return [d for d in (192, 384, 768) if d <= p.max_len] or [p.max_len]

    @cocotb.test()
    @cocotb.parametrize(idle=[0.2], backpressure=[0.3])
    async def random_rows_changing_affine(dut, idle, backpressure):
        """Random DeiT-like rows until enough elements, in three phases with new gamma and
        beta loaded through the port between them (widths 192, 384, 768 where they fit)."""
        p = _params()
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=5)
        dut.affine__valid.value = 0
        await tb.reset()
        rng = np.random.default_rng(6)
        widths = _widths(p)
        n_elements = elements_for(p)
        per_phase = n_elements // 3 + 1
        total = 0
        for phase, width in enumerate(widths * (3 // len(widths)) + widths[: 3 % len(widths)]):
            n_rows = -(-per_phase // width)
            rows = list(layernorm_base.random_rows(p, n_rows, width, seed=phase))
            gamma = p.gamma_fmt.encode(rng.uniform(0.1, 2.5, width))
            beta = p.beta_fmt.encode(rng.normal(0.0, 1.0, width))
            await tb.load_affine(p, gamma, beta)
            got, _ = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
            _compare(tb, f"random_rows_phase{phase}", rows, got, p, gamma, beta)
            total += sum(len(r) for r in rows)
        assert total >= n_elements

    @cocotb.test()
    @cocotb.parametrize(pattern=[(0.0, 0.0), (0.5, 0.5)])
    async def standard_cases(dut, pattern):
        """Named rows (constant, zero, tiny variance, one huge outlier, format extremes, length
        1, max_len ...) with the identity affine, free-running and under heavy stalls."""
        idle, backpressure = pattern
        p = _params()
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=3)
        dut.affine__valid.value = 0
        await tb.reset()
        await _identity(tb, p)
        cases = layernorm_base.standard_cases(p)
        rows = [r[: p.max_len] for r in cases.values()]
        got, _ = await tb.run_rows(rows, idle=idle, backpressure=backpressure)
        for name, row, out in zip(cases, rows, got, strict=True):
            _compare(tb, f"{name}_idle{idle}_bp{backpressure}", [row], [out], p)

    @cocotb.test()
    async def throughput(dut):
        """Rows longer than row_clocks at full rate: no stall, no gap, exact total time."""
        p = _params()
        row_clocks = int(os.environ["HWGEN_ROW_CLOCKS"])
        length = min(max(min(_widths(p)), row_clocks + 1), p.max_len)
        n_rows = 4
        rows = list(layernorm_base.random_rows(p, n_rows, length, seed=11))
        tb = LayerNormTB(dut, p.in_fmt, p.out_fmt, seed=0)
        dut.affine__valid.value = 0
        await tb.reset()
        await _identity(tb, p)
        got, span = await tb.run_rows(rows, idle=0.0, backpressure=0.0)
        _compare(tb, "throughput_rows", rows, got, p)
        latency = int(os.environ["HWGEN_LATENCY"])
        if length > row_clocks:
            assert np.all(np.diff(tb.in_cycles) == 1), "input stalled"
            assert np.all(np.diff(tb.out_cycles) == 1), "output had gaps"
            expected = (n_rows + 1) * length + latency - 1
            assert span == expected, f"{span} clocks for {n_rows} rows of {length}, not {expected}"
        else:  # max_len below the per-row unit's time: rows follow its pace instead
            bound = (n_rows + 1) * (row_clocks + 1) + latency
            assert span <= bound, f"{span} clocks for {n_rows} rows of {length}, over {bound}"


# -- pytest side -----------------------------------------------------------------------------

#: the default of each kind (the third sweep entry passed too; it is left out for time)
CONFIGS = [pytest.param(p, id=p.name) for p in runner.sweep(OP)[:2]]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_layernorm_base_rtl_equals_emulate(params, sim):
    from golden import layernorm_base

    summary = runner.run(OP, params, sim)
    phases = [v for k, v in summary.items() if k.startswith("random_rows_phase")]
    assert len(phases) == 3 and sum(v["checked"] for v in phases) >= elements_for(params)
    assert "throughput_rows" in summary
    assert len(summary) == 4 + 2 * len(layernorm_base.standard_cases(params))
    assert all(v["mismatches"] == 0 for v in summary.values()), summary
