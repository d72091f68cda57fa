"""Streaming softmax: Padé exponential, multi-scale reciprocal, ping-pong row buffers.

Three multipliers (r^2, P * (1/Q), e * (1/S)); the constants are adder trees and the two
reciprocals share one table in a dual-port block RAM.

The arithmetic is :func:`golden.softmax.emulate`; this module bakes the constants of
:func:`golden.softmax.tables` into logic and schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from golden import softmax as golden_softmax
from golden.softmax import PadeOrder, SoftmaxParams

from ..lib.pipeline import Levels, fix_shape
from ..lib.rows import BankFlags, RowLaunch, ScanRowCore, ScanRows, TableRom, bank_regs

__all__ = ["Softmax", "recip_levels"]


class RecipTable:
    """The reciprocal seed table of :func:`golden.softmax.tables` in one memory with two read
    ports: ``q`` for 1/Q, one read per element, and ``s`` for 1/S, one read per row.

    At the default 1024 x 17 bits it is one block RAM (RAMB18E1 or DP16KD, both ports in use),
    so the two reciprocals share it; Yosys maps small tables to LUTs. The base-2 exponential
    (``exp_table_bits``) has no Q: then ``q`` is None and the memory has one port.
    """

    def __init__(self, m: Module, p: SoftmaxParams):
        table = [int(v) for v in golden_softmax.tables(p).recip]
        m.submodules.recip_rom = rom = Memory(
            shape=fix_shape(p.recip_fmt), depth=len(table), init=table
        )
        self.q = None if p.exp_table_bits else rom.read_port()
        self.s = rom.read_port()


def recip_levels(
    mod: Module, lv: Levels, m_val, p: SoftmaxParams, port, **carry
) -> SimpleNamespace:
    """The reciprocal unit of :func:`golden.softmax.recip` as pipeline levels.

    ``m_val`` is a ``poly_fmt`` code in [1, 2); ``port`` a read port of :class:`RecipTable`;
    ``carry`` values travel alongside. Adds 2 + 6 ``newton_steps`` levels: the table read
    (its data register) and a register after the block RAM, then per Newton step m*y (two
    levels), 2 - round(m y), y (2 - m y) (two levels) and its rounding. Returns ``y`` and the
    carry.
    """
    fm, fy = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits
    keep = list(carry)
    mod.d.comb += [port.addr.eq(m_val[fm - p.recip_bits : fm]), port.en.eq(lv.valid)]
    s = lv.next(m=m_val, **carry)  # the read (the port's data register)
    s = lv.next(y=port.data, m=s.m, **{k: getattr(s, k) for k in keep})

    def pass_on(level):
        return {k: getattr(level, k) for k in keep}

    for _ in range(p.newton_steps):
        s = lv.mul({"my": (s.m, s.y)}, y=s.y, m=s.m, **pass_on(s))
        corr = (2 << fy) - ((s.my + (1 << (fm - 1))) >> fm)
        s = lv.next(corr=(corr, unsigned(fy + 2)), y=s.y, m=s.m, **pass_on(s))
        s = lv.mul({"prod": (s.y, s.corr)}, m=s.m, **pass_on(s))
        s = lv.next(
            y=((s.prod + (1 << (fy - 1))) >> fy, fix_shape(p.recip_fmt)), m=s.m, **pass_on(s)
        )
    return s


#: Exp banks: a bank is busy from its row's first exp write to its last output read, about
#: 2 L + 30 clocks, so three are needed to keep rows of length L >= 30 at one element per clock;
#: four make the bank pointer a plain 2-bit counter and cost no extra block RAM at 256 x 19 bits.
_E_BANKS = 4


class Softmax(ScanRowCore):
    """Softmax over rows of a stream, one element per clock in steady state.

    Rows are delimited by ``last`` on the input (a row also ends after ``max_len``
    elements). Three row stages run concurrently on ping-pong buffers: *ingest* writes a row
    into one of two logit banks while tracking its maximum; *exp* reads a complete row, one
    element per clock through the Padé exponential pipeline, writes e_i into one of two exp
    banks and sums them; *normalise* computes 1/S once per row (leading-one, table, Newton) and
    streams e_i * (1/S) out with back-pressure. So row n + 2 is accepted while row n + 1 is
    exponentiated and row n is emitted. With rows of 16 or more elements and no
    back-pressure, input and output each move one element per clock indefinitely: R rows of
    length L take (R + 2) L + ``latency`` - 1 clocks from the first input to the last output
    (the exp pass and the output pass of the last row follow its input). Shorter rows are
    limited by the exp banks' turnaround (about 2 L + 30 clocks for four banks).

    Parameters
    ----------
    params : SoftmaxParams

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": in_shape, "last": 1})))
        Logit codes; ``last`` marks the end of a row.
    o : Out(stream.Signature(StructLayout({"data": out_shape, "first": 1, "last": 1})))
        Probability codes of ``params.out_fmt`` with the row framing.
    latency : int
        Without back-pressure, the first output of a row of length L is valid
        ``L + latency`` clocks after the row's last input was accepted (28 for the default
        configuration; rows waiting for a buffer add their wait).
    """

    PARAMS = SoftmaxParams

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_softmax.tables(p)
        nb = _E_BANKS
        rt = RecipTable(m, p)
        # per exp bank: summed (S known), ready (1/S known)
        e_summed = BankFlags(m, nb, "e_summed")
        e_ready = BankFlags(m, nb, "e_ready")

        # ---- ingest (row maximum), then exp: one element per clock through the exp levels -----
        rows = ScanRows(m, self.i, p, banks=nb)
        lv = rows.levels
        e_val = self._exp_datapath(m, lv, rows.x, rows.max, p, tb, rt)
        sums = rows.store(e_val, fix_shape(p.sum_fmt), e_summed)

        # ---- 1/S once per row ---------------------------------------------------------------
        launch = RowLaunch(m, e_summed, "rcp")
        rl = launch.levels
        s = rl.next(sum=sums.total.sum[launch.bank])
        # leading one: k = bit_length(S) - 1 (a priority encoder: LUTs only)
        k_val = Signal(range(len(s.sum)), name="rcp_k_comb")
        for bit in range(len(s.sum)):
            with m.If(s.sum[bit]):
                m.d.comb += k_val.eq(bit)
        s = rl.next(sum=s.sum, k=k_val)
        fm = p.poly_fmt.frac_bits
        s = rl.next(mant=((s.sum << fm) >> s.k, unsigned(fm + 1)), k=s.k)
        s = recip_levels(m, rl, s.mant, p, rt.s, k=s.k)
        # right shift of e * (1/m) before the final rounding bit: k + recip_frac - out_frac - 1.
        # The row maximum has e = recip(1.0) >= 1/2, so S >= 1/2 and k >= exp_frac - 1: the
        # shift is at least `base` (wiring) plus a small variable part
        base = p.exp_fmt.frac_bits - 1 + p.recip_fmt.frac_bits - p.out_fmt.frac_bits - 1
        var_w = max(1, (p.sum_fmt.width - p.exp_fmt.frac_bits).bit_length())
        shift_val = Signal(var_w, name="rcp_shift")
        m.d.comb += shift_val.eq(s.k - (p.exp_fmt.frac_bits - 1))
        e_inv = bank_regs(nb, fix_shape(p.recip_fmt), "e_inv")
        e_shift = bank_regs(nb, var_w, "e_shift")
        rcp_depth = launch.finish(e_ready, (e_inv, s.y), (e_shift, shift_val))

        # ---- normalise and emit, with back-pressure ------------------------------------------
        out = rows.reader(self.o, e_ready)
        nl = out.levels
        # level 1: the read port's data register (it loads with the pipeline); the row constants
        s = nl.next(inv=e_inv[out.bank], shift=e_shift[out.bank])
        s = nl.next(e=out.e, inv=s.inv, shift=s.shift)
        # e * inv: e's fraction on one multiplier; its integer bit (e = 1.0) adds inv itself
        fe = p.exp_fmt.frac_bits
        s = nl.next(
            lo=s.e[:fe] * s.inv, hi=Mux(s.e[fe], s.inv, 0), shift=s.shift
        )  # the multiplier, registered
        s = nl.next(prod=s.lo + (s.hi << fe), shift=s.shift)
        # right shift by (recip_frac + k - out_frac) - 1, then round half up and saturate
        s = nl.next(pre=s.prod[base:] >> s.shift)
        rounded = (s.pre + 1) >> 1
        y_sat = Mux(rounded > p.out_fmt.max_code, p.out_fmt.max_code, rounded)
        s = nl.next(y=(y_sat, fix_shape(p.out_fmt)))
        self.depths = SimpleNamespace(exp=lv.depth, rcp=rcp_depth, norm=out.emit(s.y))
        return m

    @staticmethod
    def _exp_datapath(m: Module, lv: Levels, x_val, max_val, p: SoftmaxParams, tb, rt) -> Signal:
        """exp(x - max) as exp_fmt codes, from the read's level on.

        Three multipliers in all are left in the design: r^2 here, P * (1/Q) here and e * (1/S)
        in the output pass. The constants log2(e), a1 and a2 multiply by adder trees
        (:meth:`Levels.shift_add`), and 1/Q is a read of the reciprocal table that 1/S shares.
        """
        fin, fl, fr = p.in_fmt.frac_bits, p.log2e_fmt.frac_bits, p.red_fmt.frac_bits
        fp, fy, fe = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits, p.exp_fmt.frac_bits
        width = p.in_fmt.width
        s = lv.next(x=x_val, mx=max_val)  # a register after the block RAM's output
        s = lv.next(dist=(s.mx - s.x, unsigned(width)))  # distance below the max, >= 0
        # distances of 2**dw codes or more give z > flush_shift, flushed whatever their value:
        # saturating them there leaves every output alone and narrows the adder tree
        dw = _dist_bits(p, tb.log2e)
        dist = s.dist
        if dw < width:
            dist = Mux(s.dist[dw:].any(), (1 << dw) - 1, s.dist[:dw])
        # n = dist * log2(e): integer part z, fraction r truncated to fr bits
        s = lv.shift_add({"n": (dist, tb.log2e)}, arity=3)
        z, r = s.n[fin + fl :], s.n[fin + fl - fr : fin + fl]
        if p.exp_table_bits:
            return Softmax._exp2_table(m, lv, s.n, z, p, tb)
        # r^2 on a multiplier (registered), a1 r by an adder tree beside it
        s = lv.shift_add({"t1p": (r, tb.a1)}, arity=3, r2p=r * r, z=z)
        half_r = 1 << (fr - 1)
        s = lv.next(r2=((s.r2p + half_r) >> fr, unsigned(fr + 1)), t1=(s.t1p + half_r) >> fr, z=s.z)
        if p.pade is PadeOrder.P22:
            s = lv.shift_add({"t2p": (s.r2, tb.a2)}, arity=3, t1=s.t1, z=s.z)
            t2 = (s.t2p + half_r) >> fr
        else:  # [1/1]: no square term
            t2 = Const(0, 1)
        one = 1 << fp
        s = lv.next(
            num=(one - s.t1 + t2, unsigned(fp + 1)),
            den=(one + s.t1 + t2, unsigned(fp + 1)),
            z=s.z,
        )
        s = recip_levels(m, lv, s.den, p, rt.q, num=s.num, z=s.z)
        s = lv.next(prod=s.num * s.y, z=s.z)  # the multiplier, registered
        # the constant part of the shift, fp + fy - fe - 1, is wiring
        return Softmax._shift_by_z(lv, s.prod[fp + fy - fe - 1 :], s.z, p)

    @staticmethod
    def _exp2_table(m: Module, lv: Levels, n, z, p: SoftmaxParams, tb) -> Signal:
        """The base-2 option: 2^-r read from the fractional-power table, shifted by z.

        No multiplier: n's top ``exp_table_bits`` fractional bits address a block-RAM table
        (one read per element), whose entry, its leading one restored, shifts right by z.
        """
        fix = p.in_fmt.frac_bits + p.log2e_fmt.frac_bits
        k, fe = p.exp_table_bits, p.exp_fmt.frac_bits
        rom = TableRom(m, "exp2_rom", unsigned(fe + 1), tb.exp2.tolist())
        m.d.comb += [rom.addr.eq(n[fix - k : fix]), rom.en.eq(lv.valid)]
        s = lv.next(z=z)  # the read (the port's data register)
        s = lv.next(t=rom.data, z=s.z)  # a register after the block RAM
        # (2^(fe+1) + t) at fe + 2 fractional bits: the shift by one is wiring
        return Softmax._shift_by_z(lv, Cat(s.t, Const(1, 1))[1:], s.z, p)

    @staticmethod
    def _shift_by_z(lv: Levels, value, z, p: SoftmaxParams) -> Signal:
        """e = (value >> z) rounded half up by one more bit, saturated to exp_fmt; 0 past the
        flush limit. The barrel shifter only moves by z (two levels)."""
        flush = z > p.flush_shift
        s = lv.next(pre=value >> z[: p.flush_shift.bit_length()], flush=flush)
        rounded = (s.pre + 1) >> 1
        e_sat = Mux(rounded > p.exp_fmt.max_code, p.exp_fmt.max_code, rounded)
        return lv.next(e=(Mux(s.flush, 0, e_sat), fix_shape(p.exp_fmt))).e


def _dist_bits(p: SoftmaxParams, log2e: int) -> int:
    """The fewest bits d such that every distance of 2**d - 1 codes or more is flushed."""
    shift = p.in_fmt.frac_bits + p.log2e_fmt.frac_bits
    for d in range(1, p.in_fmt.width + 1):
        if (((1 << d) - 1) * log2e) >> shift > p.flush_shift:
            return d
    return p.in_fmt.width
