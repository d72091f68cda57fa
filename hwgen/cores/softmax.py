"""Streaming softmax: Padé exponential, multi-scale reciprocal, ping-pong row buffers.

The arithmetic is :func:`golden.softmax.emulate`; this module bakes the constants of
:func:`golden.softmax.tables` into logic and schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned

from golden import softmax as golden_softmax
from golden.softmax import PadeOrder, SoftmaxParams

from ..lib.pipeline import Levels, fix_shape
from ..lib.rows import BankFlags, RowLaunch, ScanRowCore, ScanRows, bank_regs

__all__ = ["Softmax", "recip_levels"]


def recip_levels(lv: Levels, m_val, p: SoftmaxParams, **carry) -> SimpleNamespace:
    """The reciprocal unit of :func:`golden.softmax.recip` as pipeline levels.

    ``m_val`` is a ``poly_fmt`` code in [1, 2); ``carry`` values travel alongside. Adds
    1 + 6 ``newton_steps`` levels: the table lookup, then per Newton step m*y (two levels),
    2 - round(m y), y (2 - m y) (two levels) and its rounding. Returns ``y`` and the carry.
    """
    fm, fy = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits
    table = Array(Const(int(v), fix_shape(p.recip_fmt)) for v in golden_softmax.tables(p).recip)
    idx = m_val[fm - p.recip_bits : fm]  # the top fraction bits (the integer bit is 1)
    s = lv.next(y=table[idx], m=m_val, **carry)
    keep = list(carry)

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
        ``L + latency`` clocks after the row's last input was accepted (42 for the default
        configuration; rows waiting for a buffer add their wait).
    """

    PARAMS = SoftmaxParams

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_softmax.tables(p)
        nb = _E_BANKS
        # per exp bank: summed (S known), ready (1/S known)
        e_summed = BankFlags(m, nb, "e_summed")
        e_ready = BankFlags(m, nb, "e_ready")

        # ---- ingest (row maximum), then exp: one element per clock through the exp levels -----
        rows = ScanRows(m, self.i, p, banks=nb)
        lv = rows.levels
        e_val = self._exp_datapath(lv, rows.x, rows.max, p, tb)
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
        s = recip_levels(rl, s.mant, p, k=s.k)
        # right shift of e * (1/m) before the final rounding bit: k + recip_frac - out_frac - 1
        shift_val = Signal(7, name="rcp_shift")  # >= 0 by SoftmaxParams' validation
        m.d.comb += shift_val.eq(s.k + (p.recip_fmt.frac_bits - p.out_fmt.frac_bits - 1))
        e_inv = bank_regs(nb, fix_shape(p.recip_fmt), "e_inv")
        e_shift = bank_regs(nb, 7, "e_shift")
        rcp_depth = launch.finish(e_ready, (e_inv, s.y), (e_shift, shift_val))

        # ---- normalise and emit, with back-pressure ------------------------------------------
        out = rows.reader(self.o, e_ready)
        nl = out.levels
        # level 1: the read port's data register (it loads with the pipeline); the row constants
        s = nl.next(inv=e_inv[out.bank], shift=e_shift[out.bank])
        s = nl.next(e=out.e, inv=s.inv, shift=s.shift)
        s = nl.mul({"prod": (s.e, s.inv)}, shift=s.shift)
        # right shift by (recip_frac + k - out_frac) - 1, then round half up and saturate
        s = nl.next(pre=s.prod >> s.shift)
        rounded = (s.pre + 1) >> 1
        y_sat = Mux(rounded > p.out_fmt.max_code, p.out_fmt.max_code, rounded)
        s = nl.next(y=(y_sat, fix_shape(p.out_fmt)))
        self.depths = SimpleNamespace(exp=lv.depth, rcp=rcp_depth, norm=out.emit(s.y))
        return m

    @staticmethod
    def _exp_datapath(lv: Levels, x_val, max_val, p: SoftmaxParams, tb) -> Signal:
        """exp(x - max) as exp_fmt codes, from the read's level on."""
        fin, fl, fr = p.in_fmt.frac_bits, p.log2e_fmt.frac_bits, p.red_fmt.frac_bits
        fp, fy, fe = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits, p.exp_fmt.frac_bits
        width = p.in_fmt.width
        s = lv.next(x=x_val, mx=max_val)  # block RAM output register
        s = lv.next(dist=(s.mx - s.x, unsigned(width)))  # distance below the max, >= 0
        # n = dist * log2(e): integer part z, fraction r truncated to fr bits
        s = lv.mul({"n": (s.dist, Const(tb.log2e, fix_shape(p.log2e_fmt)))})
        z, r = s.n[fin + fl :], s.n[fin + fl - fr : fin + fl]
        a1 = Const(tb.a1, unsigned(max(1, tb.a1.bit_length())))
        s = lv.mul({"r2p": (r, r), "t1p": (r, a1)}, z=z)
        half_r = 1 << (fr - 1)
        s = lv.next(r2=((s.r2p + half_r) >> fr, unsigned(fr + 1)), t1=(s.t1p + half_r) >> fr, z=s.z)
        if p.pade is PadeOrder.P22:
            a2 = Const(tb.a2, unsigned(max(1, tb.a2.bit_length())))
            s = lv.mul({"t2p": (s.r2, a2)}, t1=s.t1, z=s.z)
        else:  # [1/1]: no square term; keep the levels so the latency does not depend on it
            s = lv.next(t2p=Const(0, 1), t1=s.t1, z=s.z)
            s = lv.next(t2p=s.t2p, t1=s.t1, z=s.z)
        s = lv.next(t2=(s.t2p + half_r) >> fr, t1=s.t1, z=s.z)
        one = 1 << fp
        s = lv.next(
            num=(one - s.t1 + s.t2, unsigned(fp + 1)),
            den=(one + s.t1 + s.t2, unsigned(fp + 1)),
            z=s.z,
        )
        s = recip_levels(lv, s.den, p, num=s.num, z=s.z)
        s = lv.mul({"prod": (s.num, s.y)}, z=s.z)
        # shift right by fp + fy - fe + z - 1 (entries past the flush limit become 0), round
        flush = s.z > p.flush_shift
        amount = Mux(flush, 0, s.z) + (fp + fy - fe - 1)
        s = lv.next(prod=s.prod, amount=amount, flush=flush)
        s = lv.next(pre=s.prod >> s.amount, flush=s.flush)
        rounded = (s.pre + 1) >> 1
        e_sat = Mux(rounded > p.exp_fmt.max_code, p.exp_fmt.max_code, rounded)
        return lv.next(e=(Mux(s.flush, 0, e_sat), fix_shape(p.exp_fmt))).e
