"""Mixed Posit4 / FixP4 dot-product engine (and its all-FixP and all-posit baselines).

The arithmetic is :func:`golden.posit_mac.emulate`; the weight decode tables come from
:func:`golden.posit_mac.tables`.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from golden import posit_mac as golden_mac
from golden.posit_mac import MacMode, MacParams

from ..lib.pipeline import Levels, Stages, fix_shape

__all__ = ["MacEngine"]

#: Output FIFO entries beyond the results that can be in flight (the buffered FIFO holds up
#: to two while it is read every clock, so four keep the input ready at full rate).
_FIFO_SLACK = 4
#: Clocks from a FIFO write to the entry being readable (SyncFIFOBuffered: the FIFO, then
#: its output register).
_FIFO_LATENCY = 2


class MacEngine(wiring.Component):
    """``lanes`` products per clock, an adder tree and an exact accumulator.

    A dot product is a run of beats from one with ``first`` (which clears the accumulator) to
    one with ``last`` (whose accumulator value is sent out); beats without ``first`` keep
    accumulating, so a long dot product is split over as many beats as it needs and short
    ones can share nothing. Unused lanes carry weight pattern 0 (zero in both formats). At most
    ``max_terms`` products may go into one accumulator value.

    Each product is one or two shifted copies of the activation (``tables(p).terms``), added or
    subtracted: no multiplier. The ``posit`` baseline first turns its posit activation into
    fixed point with a 16-entry table, then multiplies the same way.

    Parameters
    ----------
    params : MacParams

    Members
    -------
    i : In(stream.Signature(StructLayout({w, w_is_posit, a, first, last})))
        ``w``: ``lanes`` 4-bit weight patterns; ``w_is_posit``: one format bit per lane
        (ignored by the baselines, which have one weight format); ``a``: ``lanes`` activation
        codes (``act_fmt``; posit patterns in ``posit`` mode).
    o : Out(stream.Signature(signed(acc_width)))
        One ``acc_fmt`` code per dot product.
    latency : int
        Clocks from accepting a ``last`` beat to its result being valid, without
        back-pressure: 7 + ceil(log2(lanes)) (the pipeline, then two clocks through the
        output FIFO). One beat per clock is accepted while the FIFO has room for every result
        that can be in flight, which holds at full rate whenever ``o`` is read.
    """

    def __init__(self, params: MacParams | None = None):
        if params is None:
            params = MacParams()
        if not isinstance(params, MacParams):
            raise TypeError(f"params must be a MacParams, not {params!r}")
        self.params = params
        a_shape = unsigned(4) if params.mode is MacMode.POSIT else fix_shape(params.act_fmt)
        layout = data.StructLayout(
            {
                "w": data.ArrayLayout(unsigned(4), params.lanes),
                "w_is_posit": unsigned(params.lanes),
                "a": data.ArrayLayout(a_shape, params.lanes),
                "first": 1,
                "last": 1,
            }
        )
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(fix_shape(params.acc_fmt))),
            }
        )

    @property
    def tree_depth(self) -> int:
        return (self.params.lanes - 1).bit_length()

    @property
    def _pipe_depth(self) -> int:
        # input register, three product levels, the adder tree, the accumulator
        return 5 + self.tree_depth

    @property
    def latency(self) -> int:
        return self._pipe_depth + _FIFO_LATENCY

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = golden_mac.tables(p)
        # The pipeline runs freely (no stall enable fanned out to every register, which
        # limited the clock); results go into a FIFO that always has room for everything in
        # flight, and the input is ready only while it does.
        en = Const(1)
        depth = self._pipe_depth + _FIFO_SLACK
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=p.acc_fmt.width, depth=depth)
        m.d.comb += [
            self.i.ready.eq(fifo.level <= depth - self._pipe_depth - 1),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        st = Stages(m)
        lv = Levels(st, "mac")
        valid = self.i.valid

        # 1: input register
        beat = self.i.payload
        s = lv.next(
            w=Cat(*beat.w), fmt=beat.w_is_posit, a=Cat(*beat.a), first=beat.first, last=beat.last
        )
        v = _valid_stage(m, en, valid & self.i.ready, "mac_valid1")
        a_width = 4 if p.mode is MacMode.POSIT else p.act_fmt.width
        lanes_w = [s.w[4 * k : 4 * k + 4] for k in range(p.lanes)]
        lanes_a = [s.a[a_width * k : a_width * (k + 1)] for k in range(p.lanes)]
        if p.mode is MacMode.POSIT:
            # the posit activation's value in fixed point (a 16-entry table), then the same
            # shift-and-add product as the other modes
            width = int(np.abs(t.a_int).max()).bit_length() + 1
            decode = Array(Const(int(v), signed(width)) for v in t.a_int)
            lanes_a = [decode[a] for a in lanes_a]
        else:
            lanes_a = [a.as_signed() for a in lanes_a]

        # 2, 3, 4: each lane's product: shifted terms, their signs, their sum
        products = self._shift_add_products(lv, s, lanes_w, lanes_a, t)
        for n in (2, 3, 4):
            v = _valid_stage(m, en, v, f"mac_valid{n}")

        # 5 ..: adder tree, one level of pairwise sums per clock
        level = products.values
        for depth in range(self.tree_depth):
            pairs = [
                level[k] + level[k + 1] if k + 1 < len(level) else level[k]
                for k in range(0, len(level), 2)
            ]
            s = lv.next(
                **{f"sum{k}": v_ for k, v_ in enumerate(pairs)},
                first=products.first,
                last=products.last,
            )
            level = [getattr(s, f"sum{k}") for k in range(len(pairs))]
            products.first, products.last = s.first, s.last
            v = _valid_stage(m, en, v, f"mac_valid_tree{depth}")
        total = level[0]

        # last: accumulate; a `last` beat's value goes into the FIFO
        acc = Signal(fix_shape(p.acc_fmt), name="acc")
        acc_next = Mux(products.first, 0, acc) + total
        out_valid = Signal(name="acc_valid")
        m.d.sync += out_valid.eq(v & products.last)
        with m.If(v):
            m.d.sync += acc.eq(acc_next)
        m.d.comb += [fifo.w_data.eq(acc), fifo.w_en.eq(out_valid)]
        return m

    def _shift_add_products(self, lv, s, lanes_w, lanes_a, t):
        """Products as up to two signed shifted copies of the activation (three levels)."""
        p = self.params
        # signed digits of every weight the mode can see, indexed like the lane's table index
        rows = {
            MacMode.MIXED: list(t.terms[0]) + list(t.terms[1]),
            MacMode.FIXP: list(t.terms[0]),
            MacMode.POSIT: list(t.terms[1]),
        }[p.mode]
        n_terms = max(len(d) for d in rows)
        # each term position's mux only has the shifts some weight uses there
        shift_sets = [sorted({d[j][1] for d in rows if j < len(d)}) or [0] for j in range(n_terms)]
        mags, negs = {}, {}
        for k in range(p.lanes):
            index = Cat(lanes_w[k], s.fmt[k]) if p.mode is MacMode.MIXED else lanes_w[k]
            for j, shifts in enumerate(shift_sets):
                digits = [d[j] if j < len(d) else None for d in rows]
                nonzero = Array(Const(int(d is not None), 1) for d in digits)[index]
                negative = Array(Const(int(d is not None and d[0] < 0), 1) for d in digits)
                sel = Array(
                    Const(shifts.index(d[1]) if d is not None else 0, range(len(shifts)))
                    for d in digits
                )[index]
                shifted = Array(lanes_a[k] << sh for sh in shifts)[sel]
                mags[f"l{k}t{j}"] = Mux(nonzero, shifted, 0)
                negs[f"l{k}n{j}"] = negative[index]
        level = lv.next(**mags, **negs, first=s.first, last=s.last)
        signed_terms = {
            f"l{k}s{j}": Mux(
                getattr(level, f"l{k}n{j}"),
                -getattr(level, f"l{k}t{j}"),
                getattr(level, f"l{k}t{j}"),
            )
            for k in range(p.lanes)
            for j in range(n_terms)
        }
        level = lv.next(**signed_terms, first=level.first, last=level.last)
        prods = {
            f"p{k}": reduce(
                lambda u, v: u + v, [getattr(level, f"l{k}s{j}") for j in range(n_terms)]
            )
            for k in range(p.lanes)
        }
        level = lv.next(**prods, first=level.first, last=level.last)
        return _Products([getattr(level, f"p{k}") for k in range(p.lanes)], level.first, level.last)


class _Products:
    def __init__(self, values, first, last):
        self.values, self.first, self.last = values, first, last


def _valid_stage(m: Module, en, valid, name: str) -> Signal:
    reg = Signal(name=name)
    with m.If(en):
        m.d.sync += reg.eq(valid)
    return reg
