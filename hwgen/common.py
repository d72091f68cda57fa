"""Building blocks shared by the operator components: word shapes and pipeline control."""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import stream

from golden.formats import FixFormat

__all__ = ["fix_shape", "Stages", "StallPipeline"]


def fix_shape(fmt: FixFormat) -> Shape:
    """The Amaranth shape of a :class:`~golden.formats.FixFormat` word (its raw code)."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


class Stages:
    """Pipeline data registers that load on every clock, or only while ``en`` is high.

    Data registers have no reset (only valid bits need one), which saves a reset multiplexer
    per bit and lets chains of them map to shift-register LUTs.

    Parameters
    ----------
    m : Module
        The module being elaborated.
    en : Value, optional
        Load enable; None for a free-running pipeline.
    """

    def __init__(self, m: Module, en=None):
        self._m = m
        self._en = en

    def stage(self, value, name: str, shape=None) -> Signal:
        """A register loading ``value``; its shape is ``shape`` or the shape of ``value``."""
        reg = Signal(shape if shape is not None else value.shape(), name=name, reset_less=True)
        if self._en is None:
            self._m.d.sync += reg.eq(value)
        else:
            with self._m.If(self._en):
                self._m.d.sync += reg.eq(value)
        return reg

    def delay(self, value, n: int, name: str) -> Signal:
        """``value`` delayed by ``n`` stages (``n == 0`` returns it unchanged)."""
        for k in range(n):
            value = self.stage(value, f"{name}_d{k + 1}")
        return value


class StallPipeline(Stages):
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
        self.depth = depth
        self.en = Signal()
        super().__init__(m, self.en)
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
