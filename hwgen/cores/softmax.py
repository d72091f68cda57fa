"""Streaming softmax: Padé exponential, multi-scale reciprocal, ping-pong row buffers.

The arithmetic is :func:`golden.softmax.emulate`; this module bakes the constants of
:func:`golden.softmax.tables` into logic and schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import softmax as golden_softmax
from golden.softmax import PadeOrder, SoftmaxParams

from ..lib.pipeline import Levels, Stages, StallPipeline, fix_shape, onehot, valid_chain

__all__ = ["Softmax", "recip_levels"]


def recip_levels(lv: Levels, m_val, p: SoftmaxParams, **carry) -> SimpleNamespace:
    """The reciprocal unit of :func:`golden.softmax.recip` as pipeline levels.

    ``m_val`` is a ``poly_fmt`` code in [1, 2); ``carry`` values travel alongside. Adds
    :func:`recip_depth` levels: the table lookup, then per Newton step m*y (two levels),
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


def recip_depth(p: SoftmaxParams) -> int:
    """Levels of :func:`recip_levels`."""
    return 1 + 6 * p.newton_steps


def _exp_depth(p: SoftmaxParams) -> int:
    """Levels of :meth:`Softmax._exp_datapath` after the memory read."""
    # read register, max - x, *log2e (2), r*r and a1 r (2), rounding, a2 r^2 (2), rounding,
    # P and Q, reciprocal, P * y (2), shift amount, barrel shift, round and flush
    return 16 + recip_depth(p)


#: Exp banks: a bank is busy from its row's first exp write to its last output read, about
#: 2 L + 30 clocks, so three are needed to keep rows of length L >= 30 at one element per clock;
#: four make the bank pointer a plain 2-bit counter and cost no extra block RAM at 256 x 19 bits.
_E_BANKS = 4


class Softmax(wiring.Component):
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
        ``L + latency`` clocks after the row's last input was accepted (30 for the default
        configuration; rows waiting for a buffer add their wait).
    """

    def __init__(self, params: SoftmaxParams | None = None):
        if params is None:
            params = SoftmaxParams()
        if not isinstance(params, SoftmaxParams):
            raise TypeError(f"params must be a SoftmaxParams, not {params!r}")
        self.params = params
        in_layout = data.StructLayout({"data": fix_shape(params.in_fmt), "last": 1})
        out_layout = data.StructLayout({"data": fix_shape(params.out_fmt), "first": 1, "last": 1})
        super().__init__(
            {"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))}
        )

    #: levels of the normalising output pipeline: read, read register, e * (1/m) (two),
    #: barrel shift, round and saturate
    _NORM_DEPTH = 6
    #: levels of the 1/S unit before the reciprocal itself: sum, leading one, normalise
    _SUM_PRE = 3

    @property
    def latency(self) -> int:
        p = self.params
        # after the row's L reads (the first one the clock after its last input): the read,
        # the exp pipeline, 1 (row sum flagged), the 1/S pipeline, 1 (bank flagged ready),
        # the normalising pipeline
        return 1 + _exp_depth(p) + 1 + self._SUM_PRE + recip_depth(p) + 1 + self._NORM_DEPTH

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_softmax.tables(p)
        n_max = p.max_len
        idx_w = max(1, (n_max - 1).bit_length())
        in_shape = fix_shape(p.in_fmt)
        exp_shape = fix_shape(p.exp_fmt)
        sum_shape = fix_shape(p.sum_fmt)

        # ---- buffers: bank in the top address bit --------------------------------------------
        m.submodules.x_mem = x_mem = Memory(shape=in_shape, depth=2 << idx_w, init=[])
        m.submodules.e_mem = e_mem = Memory(shape=exp_shape, depth=_E_BANKS << idx_w, init=[])
        x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
        e_wr, e_rd = e_mem.write_port(), e_mem.read_port()

        # per logit bank: holds a complete row not yet fully read
        x_full = Signal(2)
        # rows are described by their last index (an equality test ends them: no subtractor)
        x_end = Array(Signal(idx_w, name=f"x_end{b}") for b in range(2))
        x_max = Array(Signal(in_shape, name=f"x_max{b}") for b in range(2))
        x_set, x_clr = Signal(2), Signal(2)
        m.d.sync += x_full.eq((x_full & ~x_clr) | x_set)

        # per exp bank: reserved (from the exp stage's first read to the last output read),
        # summed (S known), ready (1/S known)
        nb = _E_BANKS
        e_busy, e_summed, e_ready = Signal(nb), Signal(nb), Signal(nb)
        e_end = Array(Signal(idx_w, name=f"e_end{b}") for b in range(nb))
        e_sum = Array(Signal(sum_shape, name=f"e_sum{b}") for b in range(nb))
        e_inv = Array(Signal(fix_shape(p.recip_fmt), name=f"e_inv{b}") for b in range(nb))
        # right shift of e * (1/m) before the final rounding bit: k + recip_frac - out_frac - 1
        e_shift = Array(Signal(7, name=f"e_shift{b}") for b in range(nb))
        busy_set, busy_clr = Signal(nb), Signal(nb)
        sum_set, sum_clr = Signal(nb), Signal(nb)
        rdy_set, rdy_clr = Signal(nb), Signal(nb)
        m.d.sync += [
            e_busy.eq((e_busy & ~busy_clr) | busy_set),
            e_summed.eq((e_summed & ~sum_clr) | sum_set),
            e_ready.eq((e_ready & ~rdy_clr) | rdy_set),
        ]

        # ---- ingest: write the row, track its maximum ------------------------------------------
        a_bank = Signal()
        a_idx = Signal(idx_w)
        # running maximum: one compare and one mux per clock, the tightest loop of the design;
        # a one-bit `a_first` flag (not an index compare) starts each row afresh
        a_max = Signal(in_shape)
        a_first = Signal(init=1)
        x_in = self.i.payload.data
        take = self.i.valid & self.i.ready
        new_max = Mux(a_first | (x_in > a_max), x_in, a_max)
        row_end = self.i.payload.last | (a_idx == n_max - 1)
        m.d.comb += [
            self.i.ready.eq(~x_full.bit_select(a_bank, 1)),
            x_wr.addr.eq(Cat(a_idx, a_bank)),
            x_wr.data.eq(x_in),
            x_wr.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += [a_max.eq(new_max), a_first.eq(row_end)]
            with m.If(row_end):
                m.d.sync += [
                    x_end[a_bank].eq(a_idx),
                    x_max[a_bank].eq(new_max),
                    a_bank.eq(~a_bank),
                    a_idx.eq(0),
                ]
                m.d.comb += x_set.eq(Mux(a_bank, 0b10, 0b01))
            with m.Else():
                m.d.sync += a_idx.eq(a_idx + 1)

        # ---- exp: read a row, one element per clock, into the exp pipeline ----------------------
        b_bank = Signal()  # logit bank read next
        eb_bank = Signal(range(nb))  # exp bank written next
        b_j = Signal(idx_w)
        issue = Signal()
        m.d.comb += issue.eq(
            x_full.bit_select(b_bank, 1) & ((b_j != 0) | ~e_busy.bit_select(eb_bank, 1))
        )
        b_last = b_j == x_end[b_bank]
        m.d.comb += x_rd.addr.eq(Cat(b_j, b_bank))
        with m.If(issue):
            with m.If(b_j == 0):
                m.d.comb += busy_set.eq(onehot(eb_bank, nb))
            with m.If(b_last):
                m.d.comb += x_clr.eq(Mux(b_bank, 0b10, 0b01))
                m.d.sync += [b_j.eq(0), b_bank.eq(~b_bank), eb_bank.eq(eb_bank + 1)]
            with m.Else():
                m.d.sync += b_j.eq(b_j + 1)

        st = Stages(m)
        # level 0 is the memory read; the tags are registered beside it
        valid = Signal(name="exp_valid0")
        m.d.sync += valid.eq(issue)
        tags = {
            "first": st.stage(b_j == 0, "exp_first0"),
            "last": st.stage(b_last, "exp_last0"),
            "idx": st.stage(b_j, "exp_idx0"),
            "bank": st.stage(eb_bank, "exp_bank0"),
        }
        max_t = st.stage(x_max[b_bank], "exp_max0")
        lv = Levels(st, "exp")
        e_val = self._exp_datapath(lv, x_rd.data, max_t, p, tb)
        assert lv.depth == _exp_depth(p), (lv.depth, _exp_depth(p))
        tags = {k: st.delay(v, lv.depth, f"exp_{k}") for k, v in tags.items()}
        tags["valid"] = valid_chain(m, valid, lv.depth, "exp_valid")

        # exp results: store, sum, hand the row on
        acc = Signal(sum_shape)
        acc_next = Mux(tags["first"], 0, acc) + e_val
        m.d.comb += [
            e_wr.addr.eq(Cat(tags["idx"], tags["bank"])),
            e_wr.data.eq(e_val),
            e_wr.en.eq(tags["valid"]),
        ]
        with m.If(tags["valid"]):
            m.d.sync += acc.eq(acc_next)
            with m.If(tags["last"]):
                m.d.sync += [
                    e_end[tags["bank"]].eq(tags["idx"]),
                    e_sum[tags["bank"]].eq(acc_next),
                ]
                m.d.comb += sum_set.eq(onehot(tags["bank"], nb))

        # ---- 1/S once per row ---------------------------------------------------------------
        r_bank = Signal(range(nb))
        launch = e_summed.bit_select(r_bank, 1)
        with m.If(launch):
            m.d.comb += sum_clr.eq(onehot(r_bank, nb))
            m.d.sync += r_bank.eq(r_bank + 1)
        rl = Levels(Stages(m), "rcp")
        s = rl.next(sum=e_sum[r_bank], bank=r_bank)
        # leading one: k = bit_length(S) - 1 (a priority encoder: LUTs only)
        k_val = Signal(range(len(s.sum)), name="rcp_k_comb")
        for bit in range(len(s.sum)):
            with m.If(s.sum[bit]):
                m.d.comb += k_val.eq(bit)
        s = rl.next(sum=s.sum, k=k_val, bank=s.bank)
        fm = p.poly_fmt.frac_bits
        s = rl.next(mant=((s.sum << fm) >> s.k, unsigned(fm + 1)), k=s.k, bank=s.bank)
        s = recip_levels(rl, s.mant, p, k=s.k, bank=s.bank)
        assert rl.depth == self._SUM_PRE + recip_depth(p)
        rcp_valid = valid_chain(m, launch, rl.depth, "rcp_valid")
        shift_val = Signal(7, name="rcp_shift")  # >= 0 by SoftmaxParams' validation
        m.d.comb += shift_val.eq(s.k + (p.recip_fmt.frac_bits - p.out_fmt.frac_bits - 1))
        with m.If(rcp_valid):
            m.d.sync += [e_inv[s.bank].eq(s.y), e_shift[s.bank].eq(shift_val)]
            m.d.comb += rdy_set.eq(onehot(s.bank, nb))

        # ---- normalise and emit, with back-pressure ------------------------------------------
        d_bank = Signal(range(nb))
        d_j = Signal(idx_w)
        src = SimpleNamespace(
            valid=Signal(name="norm_src_valid"), ready=Signal(name="norm_src_ready")
        )
        pipe = StallPipeline(m, src, self.o, self._NORM_DEPTH)
        d_last = d_j == e_end[d_bank]
        m.d.comb += [
            src.valid.eq(e_ready.bit_select(d_bank, 1)),
            e_rd.addr.eq(Cat(d_j, d_bank)),
            e_rd.en.eq(pipe.en),
        ]
        with m.If(src.valid & src.ready):
            with m.If(d_last):
                m.d.comb += [rdy_clr.eq(onehot(d_bank, nb)), busy_clr.eq(onehot(d_bank, nb))]
                m.d.sync += [d_j.eq(0), d_bank.eq(d_bank + 1)]
            with m.Else():
                m.d.sync += d_j.eq(d_j + 1)
        # level 1 is the read port's data register (it loads with the pipeline) and the tags
        nl = Levels(pipe, "norm")
        s = nl.next(first=d_j == 0, last=d_last, inv=e_inv[d_bank], shift=e_shift[d_bank])
        s = nl.next(e=e_rd.data, first=s.first, last=s.last, inv=s.inv, shift=s.shift)
        s = nl.mul({"prod": (s.e, s.inv)}, first=s.first, last=s.last, shift=s.shift)
        # right shift by (recip_frac + k - out_frac) - 1, then round half up and saturate
        s = nl.next(pre=s.prod >> s.shift, first=s.first, last=s.last)
        rounded = (s.pre + 1) >> 1
        y_sat = Mux(rounded > p.out_fmt.max_code, p.out_fmt.max_code, rounded)
        s = nl.next(y=(y_sat, fix_shape(p.out_fmt)), first=s.first, last=s.last)
        assert nl.depth == self._NORM_DEPTH
        m.d.comb += [
            self.o.payload.data.eq(s.y),
            self.o.payload.first.eq(s.first),
            self.o.payload.last.eq(s.last),
        ]
        return m

    @staticmethod
    def _exp_datapath(lv: Levels, x_val, max_val, p: SoftmaxParams, tb) -> Signal:
        """exp(x - max) as exp_fmt codes, :func:`_exp_depth` levels after the read."""
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
