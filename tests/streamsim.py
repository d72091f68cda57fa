"""One amaranth.sim driver for every stream-in, stream-out component under test."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator


def stream_sim(dut, payloads, n_out: int, *, idle: float, backpressure: float, seed: int = 0):
    """Send ``payloads`` into ``dut.i`` with random idle cycles, read ``n_out`` results from
    ``dut.o`` under random back-pressure.

    Returns the output payloads and the clock of every input and output handshake (both
    handshakes are sampled at the same clock edge, so ``out - in`` is the latency).
    """
    rng = np.random.default_rng(seed)
    got, ins, outs = [], [], []

    async def testbench(ctx):
        sent, cycle = 0, 0
        while len(got) < n_out:
            valid = sent < len(payloads) and rng.random() >= idle
            ready = rng.random() >= backpressure
            ctx.set(dut.i.valid, valid)
            if valid:
                ctx.set(dut.i.payload, payloads[sent])
            ctx.set(dut.o.ready, ready)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload
            )
            if valid and i_ready:
                ins.append(cycle)
                sent += 1
            if ready and o_valid:
                outs.append(cycle)
                got.append(o_payload)
            cycle += 1
            assert cycle < 50 * len(payloads) + 2000, "stream stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got, np.array(ins), np.array(outs)
