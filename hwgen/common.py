"""Building blocks shared by the operator components: word shapes and pipeline control."""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import stream

from golden.formats import FixFormat

__all__ = ["fix_shape", "StallPipeline"]


def fix_shape(fmt: FixFormat) -> Shape:
    """The Amaranth shape of a :class:`~golden.formats.FixFormat` word (its raw code)."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


class StallPipeline:
    """Valid/ready control for a fixed-depth pipeline that advances as a whole.

    Every stage register is loaded when the pipeline is enabled, which is whenever the output
    register is empty or being read (``en = ~o.valid | o.ready``). The input is ready exactly
    then, so with ``o.ready`` held high one element enters and one leaves per clock, and under
    back-pressure nothing is lost or duplicated: a stalled pipeline holds every stage. The
    payload of ``o`` must be driven from the last :meth:`stage` register.

    Parameters
    ----------
    m : Module
        The module being elaborated.
    i, o : stream interfaces
        The component's input (a ``stream.Signature`` seen from the receiver) and output.
    depth : int
        Number of register stages between ``i`` and ``o``: the latency in clocks from an
        accepted input to its output being valid, with no back-pressure.

    Members
    -------
    en : Signal
        High when the stage registers load (combinational).
    """

    def __init__(self, m: Module, i: stream.Interface, o: stream.Interface, depth: int):
        if depth < 1:
            raise ValueError(f"pipeline depth must be at least 1, not {depth}")
        self._m = m
        self.depth = depth
        self.en = Signal()
        valid = [Signal(name=f"stage{n}_valid") for n in range(depth)]
        m.d.comb += [
            self.en.eq(~o.valid | o.ready),
            i.ready.eq(self.en),
            o.valid.eq(valid[-1]),
        ]
        with m.If(self.en):
            m.d.sync += valid[0].eq(i.valid)
            for prev, cur in zip(valid, valid[1:], strict=False):
                m.d.sync += cur.eq(prev)

    def stage(self, value, name: str, shape=None) -> Signal:
        """A register that loads ``value`` when the pipeline advances.

        Its shape is ``shape`` or the shape of ``value``. Data registers have no reset (only the
        valid bits do), which saves a reset multiplexer per bit and lets chains of them map to
        shift-register LUTs.
        """
        reg = Signal(shape if shape is not None else value.shape(), name=name, reset_less=True)
        with self._m.If(self.en):
            self._m.d.sync += reg.eq(value)
        return reg
