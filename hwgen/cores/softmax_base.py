"""Streaming softmax baselines: a table exponential with a real divider, and hls4ml-style tables.

The arithmetic is :func:`golden.softmax_base.emulate`; this module bakes the tables of
:func:`golden.softmax_base.tables` into block RAM and schedules them with the row buffering of
:class:`hwgen.cores.softmax.Softmax` (same ports, framing, throughput and latency rule), so either
baseline can replace the approximate softmax.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from golden import softmax_base as golden_base
from golden.formats import FixFormat
from golden.softmax_base import SoftmaxBaseKind, SoftmaxBaseParams

from ..lib.pipeline import Levels, built, fix_shape, saturate
from ..lib.rows import BankFlags, RowLaunch, ScanRowCore, ScanRows, TableRom, bank_regs

__all__ = ["SoftmaxBase"]

#: Exp banks, as in :mod:`hwgen.cores.softmax`: a bank is busy from its row's first exp write to its
#: last output read (about 2 L + 30 clocks), so four keep rows of 16 or more elements at one
#: element per clock and make the bank pointer a plain 2-bit counter.
_E_BANKS = 4


def _round_sat(m: Module, value, from_frac: int, fmt: FixFormat, name: str) -> Signal:
    """A non-negative ``value`` with ``from_frac`` fractional bits rounded half up to ``fmt``
    and saturated (combinational; :func:`golden.softmax_base._round_to`)."""
    shift = from_frac - fmt.frac_bits
    rounded = (value + (1 << (shift - 1))) >> shift if shift > 0 else value << -shift
    out = Signal(fix_shape(fmt), name=name)
    m.d.comb += out.eq(saturate(rounded, fmt))
    return out


class SoftmaxBase(ScanRowCore):
    """Softmax baseline over rows of a stream, one element per clock in steady state.

    ``div``: e_i = 2^-z * table(fraction) of (max - x_i) log2(e), the exact row sum S, and
    p_i = e_i / S from a restoring divider with one quotient bit per stage
    (``out_fmt.frac_bits + 2`` stages; it carries S along, so rows may follow each other
    without a gap). ``lut``: e_i from a table indexed by the rounded, clamped max - x_i, 1/S
    from a table indexed by the rounded, clamped row sum once per row, p_i = e_i * (1/S) with
    one multiplier. Both tables and both row buffers are block RAM.

    Rows are delimited by ``last`` on the input (a row also ends after ``max_len``
    elements). As in :class:`hwgen.cores.softmax.Softmax`, three row stages run concurrently on
    ping-pong buffers: *ingest* stores a row and tracks its maximum, *exp* streams a stored
    row through the exponential and sums it, *normalise* streams e_i / S (or e_i * (1/S)) out
    with back-pressure. With rows of 16 or more elements and no back-pressure, input and output
    each move one element per clock indefinitely: R rows of length L take
    (R + 2) L + ``latency`` - 1 clocks from the first input to the last output.

    Parameters
    ----------
    params : SoftmaxBaseParams

    Members
    -------
    i, o : stream interfaces
        As in :class:`hwgen.cores.softmax.Softmax`: logit codes with ``last`` in, probability
        codes of ``params.out_fmt`` with ``first`` and ``last`` out.
    latency : int
        As in :class:`hwgen.cores.softmax.Softmax` (``L + latency`` clocks from a row's last
        input to its first output): 31 for ``div``, 15 for ``lut`` at the defaults.
    exp_depth, row_depth, norm_depth : int
        Levels of the exponential after the logit read, of the once-per-row unit and of the
        output pipeline.
    """

    PARAMS = SoftmaxBaseParams

    @property
    def _div(self) -> bool:
        return self.params.kind is SoftmaxBaseKind.DIV

    @property
    def exp_depth(self) -> int:
        """Levels of the exponential after the logit read (``div``: read register, max - x,
        *log2e (two), round to the table index, table read, its register, barrel shift, round
        and flush; ``lut``: read register, max - x, index, table read, its register)."""
        return built(self).exp - 1

    @property
    def row_depth(self) -> int:
        """Levels of the once-per-row unit (``lut``: sum register, index, reciprocal read);
        ``div`` has none: the divider takes S itself."""
        return built(self).rcp

    @property
    def norm_depth(self) -> int:
        """Levels of the output pipeline: tags, e read, then ``div``: one per quotient bit and
        the rounding; ``lut``: the product and the rounding."""
        return built(self).norm

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_base.tables(p)
        nb = _E_BANKS

        # ready: the row constant known (S for div, 1/S for lut)
        e_ready = BankFlags(m, nb, "e_ready")
        rows = ScanRows(m, self.i, p, banks=nb)
        datapath = self._exp_div if self._div else self._exp_lut
        e_val = datapath(m, rows.levels, rows.x, rows.max, tb)
        # div: the divider takes S itself, so the row is ready once it is summed
        e_summed = e_ready if self._div else BankFlags(m, nb, "e_summed")
        sums = rows.store(e_val, fix_shape(p.sum_fmt), e_summed)

        # ---- lut: 1/S once per row from the reciprocal table ------------------------------------
        rcp_depth = 0
        if not self._div:
            m.submodules.recip_rom = recip_rom = Memory(
                shape=fix_shape(p.recip_fmt), depth=len(tb.recip), init=tb.recip.tolist()
            )
            rcp_rd = recip_rom.read_port()
            launch = RowLaunch(m, e_summed, "rcp")
            rl = launch.levels
            s = rl.next(sum=sums.total.sum[launch.bank])
            s = rl.next(idx=_round_sat(m, s.sum, p.exp_fmt.frac_bits, p.inv_in_fmt, "rcp_index"))
            m.d.comb += [rcp_rd.addr.eq(s.idx), rcp_rd.en.eq(rl.valid)]
            rl.next()  # the table read
            e_inv = bank_regs(nb, fix_shape(p.recip_fmt), "e_inv")
            rcp_depth = launch.finish(e_ready, (e_inv, rcp_rd.data))

        # ---- normalise and emit, with back-pressure ------------------------------------------
        out = rows.reader(self.o, e_ready)
        nl = out.levels
        # level 1: the read port's data register (it loads with the pipeline); the row constant
        row_const = sums.total.sum[out.bank] if self._div else e_inv[out.bank]
        s = nl.next(c=row_const)
        s = nl.next(e=out.e, c=s.c)
        y = self._divide(nl, s) if self._div else self._multiply(nl, s)
        self.depths = SimpleNamespace(exp=rows.levels.depth, rcp=rcp_depth, norm=out.emit(y))
        return m

    # -- exponentials --------------------------------------------------------------------------

    def _exp_div(self, m: Module, lv: Levels, x_val, max_val, tb) -> Signal:
        """2^-z * table(j) for (max - x) log2(e) = z + j / 2**exp_bits, as exp_fmt codes."""
        p = self.params
        fn = p.in_fmt.frac_bits + p.log2e_fmt.frac_bits
        eb, fe = p.exp_bits, p.exp_fmt.frac_bits
        rd = TableRom(m, "exp_rom", fix_shape(p.exp_fmt), tb.exp.tolist())
        s = lv.next(x=x_val, mx=max_val)  # block RAM output register
        s = lv.next(dist=(s.mx - s.x, unsigned(p.in_fmt.width)))  # distance below the max
        s = lv.mul({"n": (s.dist, Const(tb.log2e, fix_shape(p.log2e_fmt)))})
        # n rounded half up to exp_bits fractional bits: table index j and shift z
        q = (s.n + (1 << (fn - eb - 1))) >> (fn - eb) if fn > eb else s.n
        s = lv.next(j=q[:eb], z=q[eb:])
        m.d.comb += [rd.addr.eq(s.j), rd.en.eq(lv.valid)]
        # shifts beyond the flush limit give 0; clamp the amount so the shifter stays small
        flush = s.z > p.flush_shift
        s = lv.next(z=(Mux(flush, 0, s.z), unsigned((fe + 1).bit_length())), flush=flush)
        s = lv.next(t=rd.data, z=s.z, flush=s.flush)  # the table's output register
        # t * 2^-z rounded half up is ((2 t) >> z + 1) >> 1
        s = lv.next(pre=(s.t << 1) >> s.z, flush=s.flush)
        return lv.next(e=(Mux(s.flush, 0, (s.pre + 1) >> 1), fix_shape(p.exp_fmt))).e

    def _exp_lut(self, m: Module, lv: Levels, x_val, max_val, tb) -> Signal:
        """table(round(max - x) saturated to diff_fmt), as exp_fmt codes."""
        p = self.params
        rd = TableRom(m, "exp_rom", fix_shape(p.exp_fmt), tb.exp.tolist())
        s = lv.next(x=x_val, mx=max_val)  # block RAM output register
        s = lv.next(dist=(s.mx - s.x, unsigned(p.in_fmt.width)))
        idx = _round_sat(m, s.dist, p.in_fmt.frac_bits, p.diff_fmt, "exp_index")
        s = lv.next(idx=idx)
        m.d.comb += [rd.addr.eq(s.idx), rd.en.eq(lv.valid)]
        lv.next()  # the table read
        return lv.next(e=rd.data).e  # its output register

    # -- normalisation -------------------------------------------------------------------------

    def _divide(self, nl: Levels, s) -> Signal:
        """floor(e * 2**(out_frac + 1) / S), one restoring step per level, then (q + 1) >> 1.

        The remainder stays below S (e <= S at the start), so every trial 2 r - S fits one
        bit more than the sum word.
        """
        p = self.params
        sum_w = p.sum_fmt.width
        rem, q, den = s.e, None, s.c
        for k in range(p.quotient_bits):
            trial = rem if k == 0 else rem << 1
            # one subtractor, one bit wider than its operands: the top bit is the borrow, and
            # its complement is the quotient bit (no separate comparator)
            diff = trial - den
            ge = ~diff[-1]
            keep = dict(den=den) if k < p.quotient_bits - 1 else {}
            nxt = nl.next(
                rem=(Mux(ge, diff, trial), unsigned(sum_w)),
                q=(ge if q is None else Cat(ge, q), unsigned(k + 1)),
                **keep,
            )
            rem, q, den = nxt.rem, nxt.q, getattr(nxt, "den", None)
        y = (q + 1) >> 1  # at most 2**out_frac: fits out_fmt (1.0 is representable)
        return nl.next(y=(y, fix_shape(p.out_fmt))).y

    def _multiply(self, nl: Levels, s) -> Signal:
        """e * (1/S) rounded half up to out_fmt: one multiplier, registered, then rounding.

        e <= 1.0 needs its integer bit only for e = 1.0 exactly (where the fraction is 0), so
        that case is a shift and the multiplier sees only the fraction: 17 x 18 bits unsigned
        fits one DSP48E1 (25 x 18 signed) as well as one ECP5 MULT18X18D.
        """
        p = self.params
        fe = p.exp_fmt.frac_bits
        prod = Mux(s.e[fe], s.c << fe, s.e[:fe] * s.c)
        s = nl.next(prod=prod)
        shift = p.exp_fmt.frac_bits + p.recip_fmt.frac_bits - p.out_fmt.frac_bits
        rounded = (s.prod + (1 << (shift - 1))) >> shift
        return nl.next(y=saturate(rounded, p.out_fmt)).y
