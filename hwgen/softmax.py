"""Streaming softmax: Padé exponential, multi-scale reciprocal, ping-pong row buffers.

The arithmetic is :func:`golden.softmax.emulate`; this module bakes the constants of
:func:`golden.softmax.tables` into logic and schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import softmax as golden_softmax
from golden.softmax import PadeOrder, SoftmaxParams

from .common import Stages, StallPipeline, fix_shape

__all__ = ["Softmax", "recip_stages", "RECIP_STAGES_PER_NEWTON"]

#: Register stages of one Newton iteration in :func:`recip_stages`.
RECIP_STAGES_PER_NEWTON = 4


def recip_stages(st: Stages, m_val, p: SoftmaxParams, name: str) -> Signal:
    """The reciprocal unit of :func:`golden.softmax.recip` as pipeline stages.

    ``m_val`` is a ``poly_fmt`` code in [1, 2). Adds ``1 + 4 * newton_steps`` stages: the
    table lookup, then per Newton step m*y, 2 - round(m*y), y*(2 - m y), and its rounding.
    """
    fm, fy = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits
    table = Array(Const(int(v), fix_shape(p.recip_fmt)) for v in golden_softmax.tables(p).recip)
    idx = m_val[fm - p.recip_bits : fm]  # the top fraction bits (the integer bit is 1)
    y = st.stage(table[idx], f"{name}_seed")
    m_cur = st.stage(m_val, f"{name}_m0")
    for step in range(p.newton_steps):
        tag = f"{name}_nt{step}"
        my = st.stage(m_cur * y, f"{tag}_my")
        y1 = st.stage(y, f"{tag}_y1")
        m1 = st.stage(m_cur, f"{tag}_m1")
        two_minus = st.stage((2 << fy) - ((my + (1 << (fm - 1))) >> fm), f"{tag}_corr")
        y2 = st.stage(y1, f"{tag}_y2")
        m2 = st.stage(m1, f"{tag}_m2")
        prod = st.stage(y2 * two_minus, f"{tag}_prod")
        m3 = st.stage(m2, f"{tag}_m3")
        y = st.stage((prod + (1 << (fy - 1))) >> fy, f"{tag}_y", fix_shape(p.recip_fmt))
        m_cur = st.stage(m3, f"{tag}_m4")
    return y


def recip_depth(p: SoftmaxParams) -> int:
    return 1 + RECIP_STAGES_PER_NEWTON * p.newton_steps


def _exp_depth(p: SoftmaxParams) -> int:
    # read, max - x, * log2e, (r*r | a1*r), rounding, a2*r2, rounding, P/Q, recip, P*y,
    # barrel shift, round/flush
    return 8 + recip_depth(p) + 3


class Softmax(wiring.Component):
    """Softmax over rows of a stream, one element per clock in steady state.

    Rows are delimited by ``last`` on the input (a row also ends after ``max_len``
    elements). Three row stages run concurrently on ping-pong buffers: *ingest* writes a row
    into one of two logit banks while tracking its maximum; *exp* reads a complete row, one
    element per clock through the Padé exponential pipeline, writes e_i into one of two exp
    banks and sums them; *normalise* computes 1/S once per row (leading-one, table, Newton) and
    streams e_i * (1/S) out with back-pressure. So row n + 2 is accepted while row n + 1 is
    exponentiated and row n is emitted, and with rows of equal length L at least as long as
    the pipeline drains (about 30 clocks), input and output each move one element per clock.

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
        ``L + latency`` clocks after the row's last input was accepted (rows waiting for a
        buffer add their wait).
    """

    def __init__(self, params: SoftmaxParams | None = None):
        if params is None:
            params = SoftmaxParams()
        if not isinstance(params, SoftmaxParams):
            raise TypeError(f"params must be a SoftmaxParams, not {params!r}")
        self.params = params
        in_layout = data.StructLayout({"data": fix_shape(params.in_fmt), "last": 1})
        out_layout = data.StructLayout(
            {"data": fix_shape(params.out_fmt), "first": 1, "last": 1}
        )
        super().__init__(
            {"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))}
        )

    #: stages of the normalising output pipeline (read, multiply, shift, round)
    _NORM_DEPTH = 4
    #: stages of the 1/S unit before the reciprocal itself (leading one, normalise)
    _SUM_PRE = 2

    @property
    def latency(self) -> int:
        p = self.params
        # 1 (bank handed to exp) + exp pipeline + 1 (sum handed on) + 1 (1/S launched)
        # + 1/S pipeline + 1 (bank marked ready) + normalising pipeline
        return 1 + _exp_depth(p) + 1 + (self._SUM_PRE + recip_depth(p)) + 1 + self._NORM_DEPTH

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_softmax.tables(p)
        n_max = p.max_len
        idx_w = max(1, (n_max - 1).bit_length())
        len_w = n_max.bit_length()
        in_shape = fix_shape(p.in_fmt)
        exp_shape = fix_shape(p.exp_fmt)
        sum_shape = fix_shape(p.sum_fmt)

        # ---- buffers: bank in the top address bit --------------------------------------------
        m.submodules.x_mem = x_mem = Memory(shape=in_shape, depth=2 << idx_w, init=[])
        m.submodules.e_mem = e_mem = Memory(shape=exp_shape, depth=2 << idx_w, init=[])
        x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
        e_wr, e_rd = e_mem.write_port(), e_mem.read_port()

        # per logit bank: holds a complete row not yet fully read
        x_full = Signal(2)
        x_len = Array(Signal(len_w, name=f"x_len{b}") for b in range(2))
        x_max = Array(Signal(in_shape, name=f"x_max{b}") for b in range(2))
        x_set, x_clr = Signal(2), Signal(2)
        m.d.sync += x_full.eq((x_full & ~x_clr) | x_set)

        # per exp bank: reserved (from the exp stage's first read to the last output read),
        # summed (S known), ready (1/S known)
        e_busy, e_summed, e_ready = Signal(2), Signal(2), Signal(2)
        e_len = Array(Signal(len_w, name=f"e_len{b}") for b in range(2))
        e_sum = Array(Signal(sum_shape, name=f"e_sum{b}") for b in range(2))
        e_inv = Array(Signal(fix_shape(p.recip_fmt), name=f"e_inv{b}") for b in range(2))
        # right shift of e * (1/m) before the final rounding bit: k + recip_frac - out_frac - 1
        e_shift = Array(Signal(7, name=f"e_shift{b}") for b in range(2))
        busy_set, busy_clr = Signal(2), Signal(2)
        sum_set, sum_clr = Signal(2), Signal(2)
        rdy_set, rdy_clr = Signal(2), Signal(2)
        m.d.sync += [
            e_busy.eq((e_busy & ~busy_clr) | busy_set),
            e_summed.eq((e_summed & ~sum_clr) | sum_set),
            e_ready.eq((e_ready & ~rdy_clr) | rdy_set),
        ]

        # ---- ingest: write the row, track its maximum ------------------------------------------
        a_bank = Signal()
        a_idx = Signal(idx_w)
        a_max = Signal(in_shape)
        x_in = self.i.payload.data
        take = self.i.valid & self.i.ready
        new_max = Mux((a_idx == 0) | (x_in > a_max), x_in, a_max)
        row_end = self.i.payload.last | (a_idx == n_max - 1)
        m.d.comb += [
            self.i.ready.eq(~x_full.bit_select(a_bank, 1)),
            x_wr.addr.eq(Cat(a_idx, a_bank)),
            x_wr.data.eq(x_in),
            x_wr.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += a_max.eq(new_max)
            with m.If(row_end):
                m.d.sync += [
                    x_len[a_bank].eq(a_idx + 1),
                    x_max[a_bank].eq(new_max),
                    a_bank.eq(~a_bank),
                    a_idx.eq(0),
                ]
                m.d.comb += x_set.eq(Mux(a_bank, 0b10, 0b01))
            with m.Else():
                m.d.sync += a_idx.eq(a_idx + 1)

        # ---- exp: read a row, one element per clock, into the exp pipeline ----------------------
        b_bank = Signal()  # logit bank read next
        eb_bank = Signal()  # exp bank written next
        b_j = Signal(idx_w)
        b_len = x_len[b_bank]
        issue = Signal()
        m.d.comb += issue.eq(
            x_full.bit_select(b_bank, 1) & ((b_j != 0) | ~e_busy.bit_select(eb_bank, 1))
        )
        b_last = b_j == b_len - 1
        m.d.comb += x_rd.addr.eq(Cat(b_j, b_bank))
        with m.If(issue):
            with m.If(b_j == 0):
                m.d.comb += busy_set.eq(Mux(eb_bank, 0b10, 0b01))
            with m.If(b_last):
                m.d.comb += x_clr.eq(Mux(b_bank, 0b10, 0b01))
                m.d.sync += [b_j.eq(0), b_bank.eq(~b_bank), eb_bank.eq(~eb_bank)]
            with m.Else():
                m.d.sync += b_j.eq(b_j + 1)

        st = Stages(m)
        # stage 1 is the memory read; the tags travel beside it
        valid = Signal(name="exp_valid1")
        m.d.sync += valid.eq(issue)
        first_t = st.stage(b_j == 0, "exp_first1")
        last_t = st.stage(b_last, "exp_last1")
        idx_t = st.stage(b_j, "exp_idx1")
        bank_t = st.stage(eb_bank, "exp_bank1")
        max_t = st.stage(x_max[b_bank], "exp_max1")
        tags = [(valid, "valid"), (first_t, "first"), (last_t, "last"), (idx_t, "idx"),
                (bank_t, "bank")]
        x_val = x_rd.data
        e_val = self._exp_datapath(st, x_val, max_t, p, tb)
        depth = _exp_depth(p) - 1  # stages after the read
        out_tags = {}
        for sig, name in tags:
            if name == "valid":
                v = sig
                for k in range(depth):
                    nxt = Signal(name=f"exp_valid{k + 2}")
                    m.d.sync += nxt.eq(v)
                    v = nxt
                out_tags[name] = v
            else:
                out_tags[name] = st.delay(sig, depth, f"exp_{name}")

        # exp results: store, sum, hand the row on
        acc = Signal(sum_shape)
        acc_next = Mux(out_tags["first"], 0, acc) + e_val
        m.d.comb += [
            e_wr.addr.eq(Cat(out_tags["idx"], out_tags["bank"])),
            e_wr.data.eq(e_val),
            e_wr.en.eq(out_tags["valid"]),
        ]
        with m.If(out_tags["valid"]):
            m.d.sync += acc.eq(acc_next)
            with m.If(out_tags["last"]):
                m.d.sync += [
                    e_len[out_tags["bank"]].eq(out_tags["idx"] + 1),
                    e_sum[out_tags["bank"]].eq(acc_next),
                ]
                m.d.comb += sum_set.eq(Mux(out_tags["bank"], 0b10, 0b01))

        # ---- 1/S once per row ------------------------------------------------------------------
        r_bank = Signal()
        launch = e_summed.bit_select(r_bank, 1)
        with m.If(launch):
            m.d.comb += sum_clr.eq(Mux(r_bank, 0b10, 0b01))
            m.d.sync += r_bank.eq(~r_bank)
        rs = Stages(m)
        r_valid = Signal(name="rcp_valid0")
        m.d.sync += r_valid.eq(launch)
        s_val = rs.stage(e_sum[r_bank], "rcp_sum")
        s_bank = rs.stage(r_bank, "rcp_bank")
        # leading one: k = bit_length(S) - 1 (priority encoder, LUTs only)
        k_val = Signal(6, name="rcp_k_comb")
        for bit in range(len(s_val)):
            with m.If(s_val[bit]):
                m.d.comb += k_val.eq(bit)
        k1 = rs.stage(k_val, "rcp_k")
        s1 = rs.stage(s_val, "rcp_sum1")
        fm = p.poly_fmt.frac_bits
        mant = rs.stage((s1 << fm) >> k1, "rcp_mant", unsigned(fm + 1))
        k2 = rs.stage(k1, "rcp_k2")
        inv = recip_stages(rs, mant, p, "rcp")
        k_out = rs.delay(k2, recip_depth(p), "rcp_kout")
        bank_out = rs.delay(s_bank, self._SUM_PRE + recip_depth(p), "rcp_bank_out")
        v = r_valid
        for k in range(self._SUM_PRE + recip_depth(p)):
            nxt = Signal(name=f"rcp_valid{k + 1}")
            m.d.sync += nxt.eq(v)
            v = nxt
        shift_val = Signal(7, name="rcp_shift")  # >= 0 by SoftmaxParams' validation
        m.d.comb += shift_val.eq(k_out + (p.recip_fmt.frac_bits - p.out_fmt.frac_bits - 1))
        with m.If(v):
            m.d.sync += [e_inv[bank_out].eq(inv), e_shift[bank_out].eq(shift_val)]
            m.d.comb += rdy_set.eq(Mux(bank_out, 0b10, 0b01))

        # ---- normalise and emit, with back-pressure -----------------------------------------------
        d_bank = Signal()
        d_j = Signal(idx_w)
        src = SimpleNamespace(valid=Signal(name="norm_src_valid"), ready=Signal(name="norm_src_ready"))
        pipe = StallPipeline(m, src, self.o, self._NORM_DEPTH)
        d_len = e_len[d_bank]
        d_last = d_j == d_len - 1
        m.d.comb += [
            src.valid.eq(e_ready.bit_select(d_bank, 1)),
            e_rd.addr.eq(Cat(d_j, d_bank)),
            e_rd.en.eq(pipe.en),
        ]
        with m.If(src.valid & src.ready):
            with m.If(d_last):
                m.d.comb += [
                    rdy_clr.eq(Mux(d_bank, 0b10, 0b01)),
                    busy_clr.eq(Mux(d_bank, 0b10, 0b01)),
                ]
                m.d.sync += [d_j.eq(0), d_bank.eq(~d_bank)]
            with m.Else():
                m.d.sync += d_j.eq(d_j + 1)
        # stage 1: the read port's data register (loads with the pipeline) and the tags
        n_first = pipe.stage(d_j == 0, "norm_first1")
        n_last = pipe.stage(d_last, "norm_last1")
        n_inv = pipe.stage(e_inv[d_bank], "norm_inv1")
        n_shift = pipe.stage(e_shift[d_bank], "norm_shift1")
        # stage 2: e * (1/m)
        prod = pipe.stage(e_rd.data * n_inv, "norm_prod")
        n_first2, n_last2 = pipe.stage(n_first, "norm_first2"), pipe.stage(n_last, "norm_last2")
        # 3: shift right by (recip_frac + k - out_frac) - 1 (barrel), 4: round half up, saturate
        n_shift2 = pipe.stage(n_shift, "norm_shift2")
        pre = pipe.stage(prod >> n_shift2, "norm_pre")
        n_first3, n_last3 = pipe.stage(n_first2, "norm_first3"), pipe.stage(n_last2, "norm_last3")
        rounded = (pre + 1) >> 1
        y_sat = Mux(rounded > p.out_fmt.max_code, p.out_fmt.max_code, rounded)
        y_out = pipe.stage(y_sat, "norm_y", fix_shape(p.out_fmt))
        first_out = pipe.stage(n_first3, "norm_first4")
        last_out = pipe.stage(n_last3, "norm_last4")
        m.d.comb += [
            self.o.payload.data.eq(y_out),
            self.o.payload.first.eq(first_out),
            self.o.payload.last.eq(last_out),
        ]
        return m

    @staticmethod
    def _exp_datapath(st: Stages, x_val, max_val, p: SoftmaxParams, tb) -> Signal:
        """exp(x - max) as exp_fmt codes, ``_exp_depth(p) - 1`` stages after the read."""
        fin, fl, fr = p.in_fmt.frac_bits, p.log2e_fmt.frac_bits, p.red_fmt.frac_bits
        fp, fy, fe = p.poly_fmt.frac_bits, p.recip_fmt.frac_bits, p.exp_fmt.frac_bits
        width = p.in_fmt.width
        # 2: distance below the maximum (>= 0)
        dist = st.stage(max_val - x_val, "exp_dist", unsigned(width + 1))
        # 3: n = dist * log2(e): integer part z, fraction r (truncated to fr bits)
        n_val = st.stage(dist * tb.log2e, "exp_n")
        z = n_val[fin + fl :]
        r = n_val[fin + fl - fr : fin + fl]
        # 4: r^2 and a1 r
        r2p = st.stage(r * r, "exp_r2p")
        t1p = st.stage(r * tb.a1, "exp_t1p")
        z4 = st.stage(z, "exp_z4")
        # 5: round both to their working precision
        half_r = 1 << (fr - 1)
        r2 = st.stage((r2p + half_r) >> fr, "exp_r2", unsigned(fr + 1))
        t1 = st.stage((t1p + half_r) >> fr, "exp_t1")
        z5 = st.stage(z4, "exp_z5")
        # 6, 7: a2 r^2, rounded ([1/1]: a2 = 0)
        if p.pade is PadeOrder.P22:
            t2p = st.stage(r2 * tb.a2, "exp_t2p")
        else:
            t2p = st.stage(Const(0, 1), "exp_t2p")
        t1_6 = st.stage(t1, "exp_t1_6")
        z6 = st.stage(z5, "exp_z6")
        t2 = st.stage((t2p + half_r) >> fr, "exp_t2")
        t1_7 = st.stage(t1_6, "exp_t1_7")
        z7 = st.stage(z6, "exp_z7")
        # 8: numerator and denominator of the Padé approximant
        one = 1 << fp
        num = st.stage(one - t1_7 + t2, "exp_num", unsigned(fp + 1))
        den = st.stage(one + t1_7 + t2, "exp_den", unsigned(fp + 1))
        z8 = st.stage(z7, "exp_z8")
        # recip(den), the numerator and z waiting beside it
        y = recip_stages(st, den, p, "exp_rcp")
        num_r = st.delay(num, recip_depth(p), "exp_num")
        z_r = st.delay(z8, recip_depth(p), "exp_z")
        # P * y
        prod = st.stage(num_r * y, "exp_prod")
        z_p = st.stage(z_r, "exp_zp")
        # shift right by fp + fy - fe + z - 1 (flush when z is past the word), then round
        flush = z_p > p.flush_shift
        z_lim = Mux(flush, 0, z_p)
        pre = st.stage(prod >> (z_lim + (fp + fy - fe - 1)), "exp_pre")
        flushed = st.stage(flush, "exp_flush")
        rounded = (pre + 1) >> 1
        e_sat = Mux(rounded > p.exp_fmt.max_code, p.exp_fmt.max_code, rounded)
        return st.stage(Mux(flushed, 0, e_sat), "exp_e", fix_shape(p.exp_fmt))
