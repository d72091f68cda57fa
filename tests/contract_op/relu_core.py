"""A test-only operator: ReLU on the element stream, hardware side (see :mod:`.relu`)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.lib.pipeline import StallPipeline, fix_shape

from .relu import ReluParams


class Relu(wiring.Component):
    """ReLU, one register stage, one result per clock; ``latency`` 1."""

    latency = 1

    def __init__(self, params: ReluParams):
        self.params = params
        super().__init__(
            {
                "i": In(stream.Signature(fix_shape(params.in_fmt))),
                "o": Out(stream.Signature(fix_shape(params.out_fmt))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o, self.latency)
        x = self.i.payload
        y = pipe.stage(Mux(x[-1], 0, x), "y", fix_shape(self.params.out_fmt))
        m.d.comb += self.o.payload.eq(y)
        return m
