"""GELU baselines as a streaming Amaranth component: a block-RAM table or a polynomial.

The arithmetic and the tables are described in :mod:`golden.gelu_base`; this module only bakes
the contents of :func:`golden.gelu_base.tables` into a memory or into small constant ROMs.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Const, Module, Mux, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import gelu_base as golden_gelu_base
from golden.formats import FixFormat
from golden.gelu_base import GeluBaseKind, GeluBaseParams, PolyTables, TableROM

from ..lib.pipeline import StallPipeline, built, fix_shape, saturate

__all__ = ["GeluBase"]


class GeluBase(wiring.Component):
    """GELU without PEANO-ViT's approximations, fully pipelined, one result per clock.

    Computes ``golden.gelu_base.emulate(params, x)`` exactly for every input code, with the
    ports of :class:`hwgen.cores.gelu.GeluPWL` (a drop-in replacement).

    ``table`` (latency 4): input register; block-RAM read addressed by the input's top bits,
    in parallel the range test and the asymptote x; a register behind the memory (its output
    multiplexer across blocks); the output multiplexer (entry, x or 0).

    ``poly`` (latency 2 * degree + 6): input register; |x| and sign; segment index from the bits
    of |x| and the top coefficient from a constant ROM; per Horner step a multiplier t * h
    (registered) and the add of the next coefficient, with the rounding half folded into it;
    Phi = q or 1 - q, rounded and clamped to ``phi_fmt``; the multiplier x * Phi; output
    rounding and saturation. Every multiplier sits between two registers.

    Parameters
    ----------
    params : GeluBaseParams
        The configuration; the default is the 4,096-entry table on [-4, 4).
    tables : TableROM or PolyTables, optional
        Contents to bake in instead of ``golden.gelu_base.tables(params)``. Only for
        verification (a deliberately corrupted table must make the testbenches fail).

    Members
    -------
    i, o : stream interfaces
        As in :class:`hwgen.cores.gelu.GeluPWL`: ``in_fmt`` codes in, ``out_fmt`` codes out in
        input order, one per clock while ``o.ready`` is high.
    latency : int
        Clocks from an input being accepted to its result being valid, without back-pressure:
        the depth of the pipeline built (4 for ``table``, 2 ``degree`` + 6 for ``poly``).
    """

    def __init__(
        self,
        params: GeluBaseParams | None = None,
        *,
        tables: TableROM | PolyTables | None = None,
    ):
        if params is None:
            params = GeluBaseParams()
        if not isinstance(params, GeluBaseParams):
            raise TypeError(f"params must be a GeluBaseParams, not {params!r}")
        self.params = params
        self.tables = tables if tables is not None else golden_gelu_base.tables(params)
        want = TableROM if params.kind is GeluBaseKind.TABLE else PolyTables
        if not isinstance(self.tables, want):
            raise TypeError(f"tables for kind {params.kind.value} must be a {want.__name__}")
        super().__init__(
            {
                "i": In(stream.Signature(fix_shape(params.in_fmt))),
                "o": Out(stream.Signature(fix_shape(params.out_fmt))),
            }
        )

    @property
    def latency(self) -> int:
        return built(self).pipe

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, self.i, self.o)
        lv = pipe.levels("t" if self.params.kind is GeluBaseKind.TABLE else "p")
        build = {
            GeluBaseKind.TABLE: lambda: self._table(m, pipe.en, lv),
            GeluBaseKind.POLY: lambda: self._poly(lv),
        }
        y = build[self.params.kind]()
        m.d.comb += self.o.payload.eq(y)
        self.depths = SimpleNamespace(pipe=pipe.finish(lv))
        return m

    def _table(self, m, en, lv):
        p, rom = self.params, self.tables
        out_shape = fix_shape(p.out_fmt)
        d, width = p.addr_shift, p.addr_fmt.width

        # 1: register the input; its top bits address the memory directly
        x = lv.next(x=self.i.payload).x

        # 2: synchronous block-RAM read (held while the pipeline stalls); in parallel, x is
        # in the table's range when the bits above the address all equal its sign bit
        m.submodules.rom = mem = Memory(
            shape=out_shape, depth=1 << width, init=rom.entries.tolist()
        )
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(x[d : d + width]), rd.en.eq(en)]
        top = x[d + width - 1 :]
        s = lv.next(
            in_range=top.all() | ~top.any(),
            nonneg=~x[-1],
            asymptote=(_to_format(x, p.in_fmt, p.out_fmt), out_shape),
        )

        # 3: register behind the memory (and its multiplexer across blocks)
        s = lv.next(entry=rd.data, in_range=s.in_range, nonneg=s.nonneg, asymptote=s.asymptote)

        # 4: the entry inside the range, else GELU's asymptote: x above, 0 below
        y = Mux(s.in_range, s.entry, Mux(s.nonneg, s.asymptote, 0))
        return lv.next(y=(y, out_shape)).y

    def _poly(self, lv):
        p, coefs = self.params, self.tables.coefs
        f_in, f_c, f_phi = p.in_fmt.frac_bits, p.coef_fmt.frac_bits, p.phi_fmt.frac_bits
        width = p.in_fmt.width
        coef_shape = fix_shape(p.coef_fmt)
        k, seg_bits = p.seg_shift, p.segments.bit_length() - 1

        # 1: input register
        s = lv.next(x=self.i.payload)

        # 2: magnitude (|min_code| still fits `width` unsigned bits) and sign
        s = lv.next(x=s.x, a=(Mux(s.x < 0, -s.x, s.x), unsigned(width)), neg=s.x[-1])

        # 3: segment = the bits of |x| above t; |x| >= limit selects the all-zero last row
        beyond = s.a[k + seg_bits :].any()
        seg = Mux(beyond, p.segments, s.a[k : k + seg_bits])
        rom = [Array(Const(int(c), coef_shape) for c in coefs[:, j]) for j in range(p.degree + 1)]
        s = lv.next(
            x=s.x, neg=s.neg, seg=seg, t=(s.a[:k], unsigned(k)), h=(rom[p.degree][seg], coef_shape)
        )

        # Horner, two levels per step: the product t * h alone between registers (one DSP),
        # then h = c_j + round(t * h), with the rounding half folded into c_j's constant
        half = 1 << (f_in - 1) if f_in else 0
        c_shape = signed(p.coef_fmt.width + f_in + 1)
        for j in range(p.degree - 1, -1, -1):
            folded = Array(Const((int(c) << f_in) + half, c_shape) for c in coefs[:, j])
            s = lv.next(x=s.x, neg=s.neg, seg=s.seg, t=s.t, prod=s.t * s.h, c=folded[s.seg])
            s = lv.next(x=s.x, neg=s.neg, seg=s.seg, t=s.t, h=((s.c + s.prod) >> f_in, coef_shape))

        # Phi = q below zero, 1 - q above, rounded half up to phi_fmt and clamped to [0, max]
        r = f_c - f_phi
        half_r = 1 << (r - 1) if r else 0
        phi_wide = Mux(s.neg, s.h + half_r, ((1 << f_c) + half_r) - s.h) >> r
        s = lv.next(x=s.x, phi=(_clamp_unsigned(phi_wide, p.phi_fmt), fix_shape(p.phi_fmt)))

        # x * Phi alone between registers (one DSP), then round half up and saturate
        s = lv.next(prod=s.x * s.phi)
        shift = f_in + f_phi - p.out_fmt.frac_bits
        rounded = (s.prod + (1 << (shift - 1))) >> shift if shift > 0 else s.prod << -shift
        s = lv.next(y=(saturate(rounded, p.out_fmt), fix_shape(p.out_fmt)))
        return s.y


def _to_format(x, src: FixFormat, dst: FixFormat):
    """Signed code ``x`` of ``src`` in ``dst``: rounded half up, saturated (combinational)."""
    shift = src.frac_bits - dst.frac_bits
    value = (x + (1 << (shift - 1))) >> shift if shift > 0 else x << -shift
    return saturate(value, dst)


def _clamp_unsigned(value, fmt: FixFormat):
    """Signed ``value`` clamped into the unsigned ``fmt``: 0 below, max above (bit tests)."""
    negative = value[-1]
    body = value[: len(value) - 1]
    over = body[fmt.width :].any() if len(body) > fmt.width else Const(0, 1)
    return Mux(negative, 0, Mux(over, fmt.max_code, body[: fmt.width]))
