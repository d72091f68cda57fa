"""Piecewise-linear GELU as a streaming Amaranth component.

The arithmetic is described in :mod:`golden.gelu`; this module only bakes the tables of
:func:`golden.gelu.tables` into logic.
"""

from __future__ import annotations

from functools import reduce

from amaranth.hdl import Array, Cat, Const, Module, Mux, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden import gelu as golden_gelu
from golden.gelu import GeluParams, GeluTables, SlopeMode

from ..lib.pipeline import StallPipeline, fix_shape

__all__ = ["GeluPWL"]


class GeluPWL(wiring.Component):
    """Piecewise-linear GELU, fully pipelined, one result per clock.

    Computes ``golden.gelu.emulate(params, x)`` exactly for every input code. Pipeline
    stages: input register, |x| and ReLU, breakpoint comparators (a thermometer code), one-hot
    selection of the segment's row, offset in the segment, slope product (shifts and adds, or
    one multiplier in ``mult`` mode), correction sum, subtraction from ReLU(x), and output
    rounding (wiring: the half-LSB is added with ReLU) and saturation (no carry chain).

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
        (10). Throughput is one element per clock while ``o.ready`` is high.
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
        return 10

    def elaborate(self, platform):
        m = Module()
        p, t = self.params, self.tables
        pipe = StallPipeline(m, self.i, self.o, self.latency)
        width = p.in_fmt.width
        g = p.acc_frac
        n_seg = len(t.starts)

        # 1: register the input so the comparators see a clean flop
        x = pipe.stage(self.i.payload, "x")

        # 2: magnitude (|min_code| = 2**(width-1) still fits `width` unsigned bits) and ReLU
        a = pipe.stage(Mux(x < 0, -x, x), "a", unsigned(width))
        relu = pipe.stage(Mux(x < 0, 0, x), "relu", unsigned(width - 1))

        # 3: one comparator per breakpoint; monotone, so the bits form a thermometer code
        above = pipe.stage(
            Const(0, n_seg - 1) if n_seg == 1 else Cat(*(a >= int(b) for b in t.starts[1:])),
            "above",
            unsigned(n_seg - 1),
        )
        a3 = pipe.stage(a, "a3")
        relu3 = pipe.stage(relu, "relu3")

        # 4: one-hot segment select, then AND-OR the constant rows (no index, no ROM)
        onehot = []
        for k in range(n_seg):
            lower = above[k - 1] if k > 0 else 1
            upper = ~above[k] if k < n_seg - 1 else 1
            onehot.append(lower & upper)
        seg_start = pipe.stage(_select(onehot, t.starts, unsigned(width)), "seg_start")
        icpt = pipe.stage(_select(onehot, t.icpts, fix_shape(p.icpt_fmt)), "icpt")
        if p.slope_mode is SlopeMode.MULT:
            slope = pipe.stage(_select(onehot, t.slopes, fix_shape(p.slope_fmt)), "slope")
        else:
            terms = self._term_fields(pipe, onehot)
        a4 = pipe.stage(a3, "a4")
        relu4 = pipe.stage(relu3, "relu4")

        # 5: offset of |x| inside its segment; the row's slope fields move along with it
        d = pipe.stage(a4 - seg_start, "d", unsigned(t.offset_bits))
        icpt5 = pipe.stage(icpt, "icpt5")
        relu5 = pipe.stage(relu4, "relu5")
        if p.slope_mode is SlopeMode.MULT:
            slope5 = pipe.stage(slope, "slope5")
        else:
            terms = [
                (
                    pipe.stage(nonzero, f"term{j}_nonzero5"),
                    pipe.stage(negative, f"term{j}_negative5"),
                    pipe.stage(shift_sel, f"term{j}_shift_sel5"),
                    shifts,
                )
                for j, (nonzero, negative, shift_sel, shifts) in enumerate(terms)
            ]

        # 6: slope * d, exact, in in_frac + slope_frac fractional bits. Shift-and-add: each
        # term's magnitude is a mux of the shifts its position uses (LUTs only) ...
        if p.slope_mode is SlopeMode.MULT:
            prod = pipe.stage(slope5 * d, "prod")
        else:
            mags, negs = [], []
            for j, (nonzero, negative, shift_sel, shifts) in enumerate(terms):
                shifted = Array(d << s for s in shifts)[shift_sel]
                mags.append(pipe.stage(Mux(nonzero, shifted, 0), f"term{j}_mag"))
                negs.append(pipe.stage(negative, f"term{j}_negative6"))
        icpt6 = pipe.stage(icpt5, "icpt6")
        relu6 = pipe.stage(relu5, "relu6")

        # 7: ... then its sign (one carry chain); the multiplier's output gets a second register
        if p.slope_mode is SlopeMode.MULT:
            slope_sum = pipe.stage(prod, "prod7")
        else:
            parts = [
                pipe.stage(Mux(neg, -mag, mag), f"term{j}")
                for j, (mag, neg) in enumerate(zip(mags, negs, strict=True))
            ]
            slope_sum = reduce(lambda u, v: u + v, parts)
        icpt7 = pipe.stage(icpt6, "icpt7")
        relu7 = pipe.stage(relu6, "relu7")

        # 8: correction c_hat = intercept + slope * d, aligned to G fractional bits; in
        # parallel, ReLU(x) aligned to G with the rounding half-LSB already added
        prod_shift = g - p.in_fmt.frac_bits - p.slope_fmt.frac_bits
        c_hat = pipe.stage(
            (icpt7 << (g - p.icpt_fmt.frac_bits)) + (slope_sum << prod_shift), "c_hat"
        )
        shift = g - p.out_fmt.frac_bits
        half = (1 << (shift - 1)) if shift > 0 else 0
        relu_half = pipe.stage((relu7 << (g - p.in_fmt.frac_bits)) + half, "relu_half")

        # 9: y = ReLU(x) - c_hat + half, one carry chain
        y = pipe.stage(relu_half - c_hat, "y_full")

        # 10: drop the rounded-off bits (wiring) and saturate; the range check looks at the
        # bits above the output word (all equal to the sign bit when in range): no adder
        y_round = y >> shift if shift > 0 else y << -shift
        width_out = p.out_fmt.width
        if len(y_round) > width_out:
            top = y_round[width_out - 1 :]
            in_range = top.all() | ~top.any()
            negative = y_round[-1]
            y_sat = Mux(
                in_range,
                y_round,
                Mux(negative, p.out_fmt.min_code, p.out_fmt.max_code),
            )
        else:
            y_sat = y_round
        out = pipe.stage(y_sat, "y", fix_shape(p.out_fmt))
        m.d.comb += self.o.payload.eq(out)
        return m

    def _term_fields(self, pipe, onehot):
        """Per shift-and-add term position: registered (nonzero, negative, shift_sel) fields.

        Term j of a segment is the j-th digit of its slope's canonical signed-digit form. Only
        the shift amounts some segment uses at position j are wired into that term's mux.
        """
        t = self.tables
        n_terms = max((len(digits) for digits in t.terms), default=0)
        fields = []
        for j in range(n_terms):
            digits = [digits[j] if j < len(digits) else None for digits in t.terms]
            shifts = sorted({dig[1] for dig in digits if dig is not None})
            nonzero = [int(dig is not None) for dig in digits]
            negative = [int(dig is not None and dig[0] < 0) for dig in digits]
            sel = [shifts.index(dig[1]) if dig is not None else 0 for dig in digits]
            sel_width = max(1, (len(shifts) - 1).bit_length())
            fields.append(
                (
                    pipe.stage(_select(onehot, nonzero, unsigned(1)), f"term{j}_nonzero"),
                    pipe.stage(_select(onehot, negative, unsigned(1)), f"term{j}_negative"),
                    pipe.stage(_select(onehot, sel, unsigned(sel_width)), f"term{j}_shift_sel"),
                    shifts,
                )
            )
        return fields


def _select(onehot, values, shape):
    """AND-OR multiplexer of constants by a one-hot vector (combinational)."""
    terms = [Mux(sel, Const(int(v), shape), 0) for sel, v in zip(onehot, values, strict=True)]
    return reduce(lambda u, v: u | v, terms)
