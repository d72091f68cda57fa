"""cocotb testbench of the generated MAC engine Verilog against ``golden.posit_mac.emulate``.

The cocotb tests run inside the simulator; the ``test_*`` functions at the bottom are the
pytest side, which builds each configuration and runs them on Icarus and Verilator.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim import runner

OP = "posit_mac"
#: random dot products for the default configuration (the issue asks for at least 10^5)
N_DOTS = int(os.environ.get("HWGEN_MAC_DOTS", "100000"))

if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import json

    import cocotb

    from golden import posit_mac
    from golden.posit_mac import MacMode
    from sim.streaming import StreamTB, record

    def _params() -> posit_mac.MacParams:
        return posit_mac.MacParams.from_dict(json.loads(os.environ["HWGEN_PARAMS"]))

    class MacTB(StreamTB):
        """Drives beats {w, w_is_posit, a, first, last}; collects accumulator results."""

        def __init__(self, dut, p, seed):
            super().__init__(dut, p.act_fmt, p.acc_fmt, seed)
            self.p = p
            self.a_width = 4 if p.mode is MacMode.POSIT else p.act_fmt.width

        def pack(self, w, fmt, a, first, last) -> int:
            """One beat as Amaranth packs the payload: fields LSB first, in order."""
            lanes, aw = self.p.lanes, self.a_width
            word = 0
            for k in range(lanes):
                word |= int(w[k]) << (4 * k)
                word |= int(fmt[k]) << (4 * lanes + k)
                word |= (int(a[k]) & ((1 << aw) - 1)) << (5 * lanes + aw * k)
            top = 5 * lanes + aw * lanes
            return word | (int(first) << top) | (int(last) << (top + 1))

        async def run_beats(self, beats, n_results, *, idle, backpressure):
            words = [self.pack(*b) for b in beats]
            got = await self.drive(words, n_results, idle=idle, backpressure=backpressure)
            await self.expect_silence()
            return self.out_fmt.from_bits(np.array(got, dtype=np.int64))

    def _random_dots(p, n, rng):
        """n dot products of 1 to 3 beats, random formats; 1 in 8 keeps accumulating."""
        lanes = p.lanes
        beats, expected, acc = [], [], 0
        for d in range(n):
            n_beats = 1 if rng.random() < 0.8 else int(rng.integers(2, 4))
            clear = d == 0 or rng.random() >= 0.125
            w = rng.integers(0, 16, (n_beats, lanes))
            if p.mode is MacMode.POSIT:
                a = rng.integers(0, 16, (n_beats, lanes))
            else:
                a = rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, (n_beats, lanes))
            fmt = {
                MacMode.MIXED: rng.random((n_beats, lanes)) < 0.5,
                MacMode.FIXP: np.zeros((n_beats, lanes), dtype=bool),
                MacMode.POSIT: np.ones((n_beats, lanes), dtype=bool),
            }[p.mode]
            mask = fmt.ravel() if p.mode is MacMode.MIXED else None
            value = int(posit_mac.emulate(p, w.ravel(), a.ravel(), mask))
            acc = (0 if clear else acc) + value
            expected.append(acc)
            for b in range(n_beats):
                beats.append((w[b], fmt[b], a[b], clear and b == 0, b == n_beats - 1))
        return beats, np.array(expected)

    @cocotb.test()
    @cocotb.parametrize(idle=[0.2], backpressure=[0.3])
    async def random_dot_products(dut, idle, backpressure):
        """Random dot products (clear/accumulate sequencing included) under back-pressure."""
        p = _params()
        n = N_DOTS if p == posit_mac.MacParams() else max(N_DOTS // 20, 1)
        rng = np.random.default_rng(9)
        beats, expected = _random_dots(p, n, rng)
        tb = MacTB(dut, p, seed=4)
        await tb.reset()
        got = await tb.run_beats(beats, len(expected), idle=idle, backpressure=backpressure)
        codes = np.arange(len(expected))
        record("random_dot_products", _stats(codes, got, expected, "random"))

    @cocotb.test()
    async def every_single_product(dut):
        """Each (weight pattern, activation code, weight format) alone in a rotating lane."""
        p = _params()
        lanes = p.lanes
        if p.mode is MacMode.POSIT:
            acts = np.arange(16)  # every posit pattern
        elif p.act_fmt.width == 4:
            acts = p.act_fmt.all_codes()  # every 4-bit activation
        else:
            acts = np.array(sorted({p.act_fmt.min_code, -77, -1, 0, 1, 3, p.act_fmt.max_code}))
        fmts = {MacMode.MIXED: (False, True), MacMode.FIXP: (False,), MacMode.POSIT: (True,)}
        beats, expected, k = [], [], 0
        for f in fmts[p.mode]:
            for w in range(16):
                for a in acts:
                    wl, al, fl = np.zeros(lanes, int), np.zeros(lanes, int), np.zeros(lanes, bool)
                    wl[k % lanes], al[k % lanes], fl[k % lanes] = w, a, f
                    mask = fl if p.mode is MacMode.MIXED else None
                    expected.append(int(posit_mac.emulate(p, wl, al, mask)))
                    beats.append((wl, fl, al, True, True))
                    k += 1
        tb = MacTB(dut, p, seed=1)
        await tb.reset()
        got = await tb.run_beats(beats, len(expected), idle=0.1, backpressure=0.1)
        record("every_single_product", _stats(np.arange(k), got, np.array(expected), "pairs"))

    @cocotb.test()
    async def accumulator_extremes(dut):
        """max_terms products of the largest magnitude, both signs, then back to zero."""
        p = _params()
        lanes = p.lanes
        n_beats = p.max_terms // lanes
        w_big = 7  # maxpos in posit<4, es>; FixP4's largest magnitude is pattern 8 (-1)
        fixp = p.mode is MacMode.FIXP
        w_pat = 8 if fixp else w_big
        neg_w = 8 if fixp else 9  # -maxpos
        if p.mode is MacMode.POSIT:
            a_big, a_neg = 7, 9
        else:
            a_big, a_neg = p.act_fmt.min_code, p.act_fmt.min_code
        beats, expected = [], []
        for w, a in ((w_pat, a_big), (neg_w, a_neg), (w_pat, a_neg)):
            wl, al = np.full(lanes, w), np.full(lanes, a)
            fl = np.full(lanes, not fixp)
            for b in range(n_beats):
                beats.append((wl, fl, al, b == 0, b == n_beats - 1))
            mask = np.full(lanes * n_beats, not fixp) if p.mode is MacMode.MIXED else None
            expected.append(
                int(
                    posit_mac.emulate(
                        p, np.full(lanes * n_beats, w), np.full(lanes * n_beats, a), mask
                    )
                )
            )
        # independent: max_terms equal products
        t = posit_mac.tables(p)
        single = int(t.w_int[0 if fixp else 1][w_pat]) * (
            int(t.a_int[a_big]) if p.mode is MacMode.POSIT else a_big
        )
        assert expected[0] == single * n_beats * lanes
        assert p.acc_fmt.min_code <= min(expected) and max(expected) <= p.acc_fmt.max_code
        tb = MacTB(dut, p, seed=2)
        await tb.reset()
        got = await tb.run_beats(beats, len(expected), idle=0.0, backpressure=0.2)
        record("accumulator_extremes", _stats(np.arange(3), got, np.array(expected), "extremes"))

    def _stats(codes, got, expected, case):
        bad = np.flatnonzero(got != expected)
        return {
            "case": case,
            "checked": int(len(expected)),
            "mismatches": int(bad.size),
            "first": [
                {"input": int(codes[i]), "got": int(got[i]), "expected": int(expected[i])}
                for i in bad[:5]
            ],
        }


# -- pytest side -----------------------------------------------------------------------------

SWEEP = runner.sweep(OP)
CONFIGS = [pytest.param(p, id=p.name) for p in (SWEEP[0], SWEEP[1], SWEEP[3], SWEEP[4])]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("params", CONFIGS)
def test_mac_rtl_equals_emulate(params, sim):
    summary = runner.run(OP, params, sim)
    assert set(summary) == {"random_dot_products", "every_single_product", "accumulator_extremes"}
    if params == SWEEP[0]:
        assert summary["random_dot_products"]["checked"] >= N_DOTS
    assert all(v["mismatches"] == 0 for v in summary.values()), summary
