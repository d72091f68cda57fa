"""Piecewise-linear GELU as a streaming Amaranth component.

The arithmetic is described in :mod:`golden.gelu`; this module only bakes the tables of
:func:`golden.gelu.tables` into logic.
"""

from __future__ import annotations

from functools import reduce

from amaranth.hdl import Array, Cat, Const, Module, Mux, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden import gelu as golden_gelu
from golden.gelu import Breakpoints, GeluParams, GeluTables, SlopeMode

from ..lib.pipeline import StallPipeline, fix_shape, saturate

__all__ = ["GeluPWL"]


class GeluPWL(wiring.Component):
    """Piecewise-linear GELU, fully pipelined, one result per clock.

    Computes ``golden.gelu.emulate(params, x)`` exactly for every input code.

    Grid breakpoints (default), 6 stages: input register; |x| below the grid's limit and the
    tail flag; the row's constants from a ROM addressed by a bit-slice of |x| (LUTs), the
    offset d being the bits below it; the slope terms (muxed shifts of d, complemented where
    the digit is positive); the correction sum N = J + terms; ReLU(x) + N shifted to the
    output LSB (the rounding half-LSB is inside J) and, where the tables say it can be needed,
    saturation. Free breakpoints add a comparator stage, a one-hot select of the row and the
    offset subtraction (8 stages).

    Parameters
    ----------
    params : GeluParams
        The configuration; the default is 16 multiplier-free segments on s6.10 words.
    tables : GeluTables, optional
        Tables to bake in instead of ``golden.gelu.tables(params)``. Only for verification
        (a deliberately corrupted table must make the testbenches fail).

    Members
    -------
    i : In(stream.Signature(signed(in_width)))
        Input codes of ``params.in_fmt``.
    o : Out(stream.Signature(signed(out_width)))
        Output codes of ``params.out_fmt``, in input order.
    latency : int
        Clocks from an input being accepted to its result being valid, without back-pressure
        (6 for grid breakpoints, 8 for free ones). Throughput is one element per clock while
        ``o.ready`` is high.
    """

    def __init__(self, params: GeluParams | None = None, *, tables: GeluTables | None = None):
        if params is None:
            params = GeluParams()
        if not isinstance(params, GeluParams):
            raise TypeError(f"params must be a GeluParams, not {params!r}")
        self.params = params
        self.tables = tables if tables is not None else golden_gelu.tables(params)
        super().__init__(
            {
                "i": In(stream.Signature(fix_shape(params.in_fmt))),
                "o": Out(stream.Signature(fix_shape(params.out_fmt))),
            }
        )

    @property
    def latency(self) -> int:
        return 6 if self.tables.breakpoints is Breakpoints.GRID else 8

    def elaborate(self, platform):
        m = Module()
        p, t = self.params, self.tables
        pipe = StallPipeline(m, self.i, self.o, self.latency)
        width = p.in_fmt.width
        rows = len(t.rom_icpt)
        fields = golden_gelu.row_terms(p, t)
        icpt_shape = _shape_of(t.rom_icpt)

        # 1: register the input
        x = pipe.stage(self.i.payload, "x")
        neg = x[-1]

        if t.breakpoints is Breakpoints.GRID:
            # 2: |x| below the grid limit (a narrow negation) and whether |x| >= limit: for
            # x < 0 that is unless every bit above the limit is set and the low bits are not
            # all zero (the carry out of ~x_low + 1 says they are)
            lim = t.offset_bits + t.grid_bits
            x_low = x[:lim]
            neg_low = Cat(~x_low, Const(0, 1)) + 1  # lim + 1 bits; top bit: x_low == 0
            if lim < width - 1:
                high = x[lim:]
                tail_neg = ~high.all() | neg_low[lim]
                tail_pos = high.any()
            else:
                tail_neg, tail_pos = neg_low[lim], Const(0, 1)
            a = pipe.stage(Mux(neg, neg_low[:lim], x_low), "a", unsigned(lim))
            tail = pipe.stage(Mux(neg, tail_neg, tail_pos), "tail")
            x = pipe.stage(x, "x2")

            # 3: the row's constants: a ROM addressed by the bits of |x| above the block (LUTs)
            row = a[t.offset_bits :]
            icpt = pipe.stage(Array(Const(int(v), icpt_shape) for v in t.rom_icpt)[row], "icpt")
            slope = self._rom_fields(pipe, fields, lambda values, shape: _rom(values, shape, row))
            d = pipe.stage(a[: t.offset_bits], "d", unsigned(t.offset_bits))
            tail = pipe.stage(tail, "tail3")
            x = pipe.stage(x, "x3")
        else:
            # 2: magnitude (|min_code| = 2**(width-1) still fits `width` unsigned bits)
            a = pipe.stage(Mux(neg, -x, x), "a", unsigned(width))
            x = pipe.stage(x, "x2")

            # 3: one comparator per breakpoint; monotone, so the bits form a thermometer code
            n_seg = rows
            above = pipe.stage(
                Const(0, n_seg - 1) if n_seg == 1 else Cat(*(a >= int(b) for b in t.starts[1:])),
                "above",
                unsigned(max(n_seg - 1, 1)),
            )
            a = pipe.stage(a, "a3")
            x = pipe.stage(x, "x3")

            # 4: one-hot row select, then AND-OR the constant rows (no index, no ROM)
            onehot = []
            for k in range(n_seg):
                lower = above[k - 1] if k > 0 else 1
                upper = ~above[k] if k < n_seg - 1 else 1
                onehot.append(lower & upper)
            start = pipe.stage(_select(onehot, t.starts, unsigned(width)), "seg_start")
            icpt = pipe.stage(_select(onehot, t.rom_icpt, icpt_shape), "icpt4")
            slope = self._rom_fields(
                pipe, fields, lambda values, shape: _select(onehot, values, shape)
            )
            a = pipe.stage(a, "a4")
            x = pipe.stage(x, "x4")

            # 5: offset of |x| inside its piece (wraps only in the flat last piece)
            d = pipe.stage(a - start, "d", unsigned(t.offset_bits))
            icpt = pipe.stage(icpt, "icpt5")
            slope = _restage(pipe, slope, "5")
            x = pipe.stage(x, "x5")
            tail = Const(0, 1)

        # next: the slope terms, u_j = +-(d shifted), muxed by the row's fields (LUTs only)
        if p.slope_mode is SlopeMode.MULT:
            terms = [pipe.stage(slope * d, "prod")]
            k0 = p.acc_frac - p.in_fmt.frac_bits - p.slope_fmt.frac_bits
            terms = [terms[0] << k0 if k0 >= 0 else terms[0] >> -k0]
        else:
            terms = []
            for j, (nonzero, complement, sel, shifts) in enumerate(slope):
                shifted = [d << s if s >= 0 else d >> -s for s in shifts]
                width_j = max(len(v) for v in shifted)
                mag = (
                    Array(v.as_unsigned() for v in shifted)[sel] if len(shifts) > 1 else shifted[0]
                )
                mag = mag.as_unsigned()
                value = Mux(complement, ~Cat(mag, Const(0, 1)).as_signed(), mag)
                # ~ on a zero-extended copy is -mag - 1
                value = Mux(nonzero, value, 0)
                terms.append(pipe.stage(value, f"term{j}", signed(width_j + 1)))
        icpt = pipe.stage(icpt, "icpt_t")
        tail = pipe.stage(tail, "tail_t") if t.breakpoints is Breakpoints.GRID else tail
        x = pipe.stage(x, "x_t")

        # next: the correction sum N = J + sum u_j (G fractional bits)
        n = pipe.stage(reduce(lambda u, v: u + v, terms, icpt), "n")
        tail = pipe.stage(tail, "tail_n") if t.breakpoints is Breakpoints.GRID else tail
        x = pipe.stage(x, "x_n")

        # last: ReLU(x) + N at the output's LSB; the grid's tail has N = half (output ReLU)
        g, f_in, f_out = p.acc_frac, p.in_fmt.frac_bits, p.out_fmt.frac_bits
        relu = Mux(neg_of(x), 0, x[: width - 1])
        h = max(g, f_in, f_out)
        half_j, half_end = golden_gelu._halves(p)
        if h == g and f_in <= f_out:
            # ReLU(x) << (G - in_frac) is a multiple of the output LSB: add N's top bits only
            n_out = n >> (g - f_out)
            if t.breakpoints is Breakpoints.GRID:
                n_out = Mux(tail, 0, n_out)
            y = (relu << (f_out - f_in)) + n_out
        else:
            n_sel = Mux(tail, t.half, n) if t.breakpoints is Breakpoints.GRID else n
            y = ((relu << (h - f_in)) + (n_sel << (h - g)) + half_end) >> (h - f_out)
        if t.saturates:
            y = saturate(y, p.out_fmt)
        elif len(y) > p.out_fmt.width:
            y = y[: p.out_fmt.width]
        out = pipe.stage(y, "y", fix_shape(p.out_fmt))
        m.d.comb += self.o.payload.eq(out)
        return m

    def _rom_fields(self, pipe, fields, lookup):
        """Registered slope fields of the row: ``mult``: minus the slope; ``shift_add``: per
        term position (nonzero, complement, shift select, the shifts that position uses)."""
        p = self.params
        if p.slope_mode is SlopeMode.MULT:
            return pipe.stage(lookup(fields, _shape_of(fields)), "neg_slope")
        out = []
        for j, (nonzero, complement, shift) in enumerate(fields):
            shifts = sorted({int(s) for s, nz in zip(shift, nonzero, strict=True) if nz}) or [0]
            sel = [shifts.index(int(s)) if nz else 0 for s, nz in zip(shift, nonzero, strict=True)]
            sel_shape = unsigned(max(1, (len(shifts) - 1).bit_length()))
            out.append(
                (
                    pipe.stage(lookup(nonzero, unsigned(1)), f"term{j}_nonzero"),
                    pipe.stage(lookup(complement, unsigned(1)), f"term{j}_complement"),
                    pipe.stage(lookup(sel, sel_shape), f"term{j}_sel"),
                    shifts,
                )
            )
        return out


def neg_of(x):
    """The sign bit of a signed value (combinational)."""
    return x[-1]


def _restage(pipe, slope, suffix):
    if not isinstance(slope, list):
        return pipe.stage(slope, f"neg_slope{suffix}")
    return [
        (
            pipe.stage(nz, f"term{j}_nonzero{suffix}"),
            pipe.stage(cp, f"term{j}_complement{suffix}"),
            pipe.stage(sel, f"term{j}_sel{suffix}"),
            shifts,
        )
        for j, (nz, cp, sel, shifts) in enumerate(slope)
    ]


def _shape_of(values):
    """The narrowest signed shape holding every value."""
    lo, hi = int(min(values)), int(max(values))
    bits = max(lo.bit_length() if lo < 0 else 0, hi.bit_length(), (~lo).bit_length()) + 1
    return signed(max(bits, 2))


def _rom(values, shape, addr):
    """A constant table indexed by ``addr`` (combinational; LUTs)."""
    return Array(Const(int(v), shape) for v in values)[addr]


def _select(onehot, values, shape):
    """AND-OR multiplexer of constants by a one-hot vector (combinational)."""
    terms = [Mux(sel, Const(int(v), shape), 0) for sel, v in zip(onehot, values, strict=True)]
    return reduce(lambda u, v: u | v, terms)
