"""Streaming softmax baselines: a table exponential with a real divider, and hls4ml-style tables.

The arithmetic is :func:`golden.softmax_base.emulate`; this module bakes the tables of
:func:`golden.softmax_base.tables` into block RAM and schedules them with the row buffering of
:class:`hwgen.cores.softmax.Softmax` (same ports, framing, throughput and latency rule), so either
baseline can replace the approximate softmax.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import softmax_base as golden_base
from golden.formats import FixFormat
from golden.softmax_base import SoftmaxBaseKind, SoftmaxBaseParams

from ..lib.pipeline import Levels, Stages, StallPipeline, fix_shape, onehot, saturate, valid_chain

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


class SoftmaxBase(wiring.Component):
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
    i : In(stream.Signature(StructLayout({"data": in_shape, "last": 1})))
        Logit codes; ``last`` marks the end of a row.
    o : Out(stream.Signature(StructLayout({"data": out_shape, "first": 1, "last": 1})))
        Probability codes of ``params.out_fmt`` with the row framing.
    latency : int
        Without back-pressure, the first output of a row of length L is valid
        ``L + latency`` clocks after the row's last input was accepted (31 for ``div``, 15 for
        ``lut`` at the defaults; rows waiting for a buffer add their wait).
    """

    def __init__(self, params: SoftmaxBaseParams | None = None):
        if params is None:
            params = SoftmaxBaseParams()
        if not isinstance(params, SoftmaxBaseParams):
            raise TypeError(f"params must be a SoftmaxBaseParams, not {params!r}")
        self.params = params
        in_layout = data.StructLayout({"data": fix_shape(params.in_fmt), "last": 1})
        out_layout = data.StructLayout({"data": fix_shape(params.out_fmt), "first": 1, "last": 1})
        super().__init__(
            {"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))}
        )

    @property
    def _div(self) -> bool:
        return self.params.kind is SoftmaxBaseKind.DIV

    @property
    def exp_depth(self) -> int:
        """Levels of the exponential after the logit read."""
        # div: read register, max - x, *log2e (two), round to the table index, table read,
        # its register, barrel shift, round and flush. lut: read register, max - x, index,
        # table read, its register.
        return 9 if self._div else 5

    @property
    def row_depth(self) -> int:
        """Levels of the once-per-row unit (``lut``: sum register, index, reciprocal read);
        ``div`` has none: the divider takes S itself."""
        return 0 if self._div else 3

    @property
    def norm_depth(self) -> int:
        """Levels of the output pipeline: tags, e read, then ``div``: one per quotient bit and
        the rounding; ``lut``: the product and the rounding."""
        return 2 + (self.params.quotient_bits + 1 if self._div else 2)

    @property
    def latency(self) -> int:
        # after the row's L reads (the first one the clock after its last input): the read,
        # the exp pipeline, 1 (row sum flagged), [the 1/S unit and 1 (bank flagged)], the
        # output pipeline
        row = self.row_depth + 1 if self.row_depth else 0
        return 1 + self.exp_depth + 1 + row + self.norm_depth

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tb = golden_base.tables(p)
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
        x_end = Array(Signal(idx_w, name=f"x_end{b}") for b in range(2))
        x_max = Array(Signal(in_shape, name=f"x_max{b}") for b in range(2))
        x_set, x_clr = Signal(2), Signal(2)
        m.d.sync += x_full.eq((x_full & ~x_clr) | x_set)

        # per exp bank: reserved (from the exp stage's first read to the last output read),
        # summed (S known), ready (the row constant known: S for div, 1/S for lut)
        nb = _E_BANKS
        e_busy, e_summed, e_ready = Signal(nb), Signal(nb), Signal(nb)
        e_end = Array(Signal(idx_w, name=f"e_end{b}") for b in range(nb))
        e_sum = Array(Signal(sum_shape, name=f"e_sum{b}") for b in range(nb))
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
        b_bank = Signal()
        eb_bank = Signal(range(nb))
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
        datapath = self._exp_div if self._div else self._exp_lut
        e_val = datapath(m, lv, x_rd.data, max_t, tb)
        assert lv.depth == self.exp_depth, (lv.depth, self.exp_depth)
        tags = {k: st.delay(v, lv.depth, f"exp_{k}") for k, v in tags.items()}
        tags["valid"] = valid_chain(m, valid, lv.depth, "exp_valid")

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
                # div: the divider takes S itself, so the row is ready once it is summed
                m.d.comb += (rdy_set if self._div else sum_set).eq(onehot(tags["bank"], nb))

        # ---- lut: 1/S once per row from the reciprocal table ------------------------------------
        if not self._div:
            e_inv = Array(Signal(fix_shape(p.recip_fmt), name=f"e_inv{b}") for b in range(nb))
            m.submodules.recip_rom = recip_rom = Memory(
                shape=fix_shape(p.recip_fmt), depth=len(tb.recip), init=tb.recip.tolist()
            )
            rcp_rd = recip_rom.read_port()
            r_bank = Signal(range(nb))
            launch = e_summed.bit_select(r_bank, 1)
            with m.If(launch):
                m.d.comb += sum_clr.eq(onehot(r_bank, nb))
                m.d.sync += r_bank.eq(r_bank + 1)
            rl = Levels(Stages(m), "rcp")
            s = rl.next(sum=e_sum[r_bank], bank=r_bank)
            s_idx = _round_sat(m, s.sum, p.exp_fmt.frac_bits, p.inv_in_fmt, "rcp_index")
            s = rl.next(idx=s_idx, bank=s.bank)
            m.d.comb += rcp_rd.addr.eq(s.idx)
            s = rl.next(bank=s.bank)  # the table read
            assert rl.depth == self.row_depth
            rcp_valid = valid_chain(m, launch, rl.depth, "rcp_valid")
            with m.If(rcp_valid):
                m.d.sync += e_inv[s.bank].eq(rcp_rd.data)
                m.d.comb += rdy_set.eq(onehot(s.bank, nb))

        # ---- normalise and emit, with back-pressure ------------------------------------------
        d_bank = Signal(range(nb))
        d_j = Signal(idx_w)
        src = SimpleNamespace(
            valid=Signal(name="norm_src_valid"), ready=Signal(name="norm_src_ready")
        )
        pipe = StallPipeline(m, src, self.o, self.norm_depth)
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
        row_const = e_sum[d_bank] if self._div else e_inv[d_bank]
        s = nl.next(first=d_j == 0, last=d_last, c=row_const)
        s = nl.next(e=e_rd.data, first=s.first, last=s.last, c=s.c)
        y = self._divide(nl, s) if self._div else self._multiply(nl, s)
        assert nl.depth == self.norm_depth
        m.d.comb += [
            self.o.payload.data.eq(y.y),
            self.o.payload.first.eq(y.first),
            self.o.payload.last.eq(y.last),
        ]
        return m

    # -- exponentials --------------------------------------------------------------------------

    def _exp_div(self, m: Module, lv: Levels, x_val, max_val, tb) -> Signal:
        """2^-z * table(j) for (max - x) log2(e) = z + j / 2**exp_bits, as exp_fmt codes."""
        p = self.params
        fn = p.in_fmt.frac_bits + p.log2e_fmt.frac_bits
        eb, fe = p.exp_bits, p.exp_fmt.frac_bits
        m.submodules.exp_rom = rom = Memory(
            shape=fix_shape(p.exp_fmt), depth=len(tb.exp), init=tb.exp.tolist()
        )
        rd = rom.read_port()
        s = lv.next(x=x_val, mx=max_val)  # block RAM output register
        s = lv.next(dist=(s.mx - s.x, unsigned(p.in_fmt.width)))  # distance below the max
        s = lv.mul({"n": (s.dist, Const(tb.log2e, fix_shape(p.log2e_fmt)))})
        # n rounded half up to exp_bits fractional bits: table index j and shift z
        q = (s.n + (1 << (fn - eb - 1))) >> (fn - eb) if fn > eb else s.n
        s = lv.next(j=q[:eb], z=q[eb:])
        m.d.comb += rd.addr.eq(s.j)
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
        m.submodules.exp_rom = rom = Memory(
            shape=fix_shape(p.exp_fmt), depth=len(tb.exp), init=tb.exp.tolist()
        )
        rd = rom.read_port()
        s = lv.next(x=x_val, mx=max_val)  # block RAM output register
        s = lv.next(dist=(s.mx - s.x, unsigned(p.in_fmt.width)))
        idx = _round_sat(m, s.dist, p.in_fmt.frac_bits, p.diff_fmt, "exp_index")
        s = lv.next(idx=idx)
        m.d.comb += rd.addr.eq(s.idx)
        lv.next()  # the table read
        return lv.next(e=rd.data).e  # its output register

    # -- normalisation -------------------------------------------------------------------------

    def _divide(self, nl: Levels, s) -> SimpleNamespace:
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
                first=s.first,
                last=s.last,
                **keep,
            )
            rem, q, den, s = nxt.rem, nxt.q, getattr(nxt, "den", None), nxt
        y = (q + 1) >> 1  # at most 2**out_frac: fits out_fmt (1.0 is representable)
        return nl.next(y=(y, fix_shape(p.out_fmt)), first=s.first, last=s.last)

    def _multiply(self, nl: Levels, s) -> SimpleNamespace:
        """e * (1/S) rounded half up to out_fmt: one multiplier, registered, then rounding.

        e <= 1.0 needs its integer bit only for e = 1.0 exactly (where the fraction is 0), so
        that case is a shift and the multiplier sees only the fraction: 17 x 18 bits unsigned
        fits one DSP48E1 (25 x 18 signed) as well as one ECP5 MULT18X18D.
        """
        p = self.params
        fe = p.exp_fmt.frac_bits
        prod = Mux(s.e[fe], s.c << fe, s.e[:fe] * s.c)
        s = nl.next(prod=prod, first=s.first, last=s.last)
        shift = p.exp_fmt.frac_bits + p.recip_fmt.frac_bits - p.out_fmt.frac_bits
        rounded = (s.prod + (1 << (shift - 1))) >> shift
        return nl.next(y=saturate(rounded, p.out_fmt), first=s.first, last=s.last)
