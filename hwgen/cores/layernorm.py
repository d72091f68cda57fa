"""Streaming LayerNorm: exact one-pass statistics, a sequential per-row 1/sqrt unit.

The arithmetic is :func:`golden.layernorm.emulate`; this module schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import layernorm as golden_ln
from golden.layernorm import LayerNormParams

from ..lib.pipeline import Levels, Stages, StallPipeline, fix_shape, onehot, saturate, valid_chain

__all__ = ["LayerNorm"]

#: Bits of A multiplied in a DSP block (17: an unsigned operand of an 18 x 18 signed DSP).
_A_LO_BITS = 17

#: Logit banks: a bank holds its row from the first input to the last output read, about
#: 2 L + 180 clocks, so four keep rows of 180 or more elements at one element per clock.
_BANKS = 4


class LayerNorm(wiring.Component):
    """LayerNorm over rows of a stream, gamma and beta from on-chip memory.

    Rows are delimited by ``last`` (a row also ends after ``max_len`` elements). Three
    stages run concurrently on four row banks: *ingest* stores the row and accumulates
    S1 = sum x and S2 = sum x^2 (one multiplier); a *per-row unit* turns them into the
    constants A = D y, B = S1 y and a shift (y = 1/sqrt(m) of W = D S2 - S1^2 + D^2 eps, see
    :mod:`golden.layernorm`) with one shift-and-add multiplier working a bit per clock (no
    DSP; about 150 clocks per row); *normalise* reads the row back and streams
    round(x A - B) * gamma + beta out with back-pressure (two multipliers). So each lane has
    three multipliers.

    With rows of more than ``row_clocks`` elements (160 for the default, so DeiT-T's 192
    qualifies) the block takes and gives one element per clock indefinitely: R rows of length
    L take (R + 1) L + ``latency`` - 1 clocks from the first input to the last output. Shorter
    rows wait for the per-row unit.

    Parameters
    ----------
    params : LayerNormParams

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": in_shape, "last": 1})))
    o : Out(stream.Signature(StructLayout({"data": out_shape, "first": 1, "last": 1})))
    affine : In(stream.Signature(StructLayout({"addr": ..., "gamma": ..., "beta": ...})))
        Always ready: writes gamma[addr] and beta[addr] (``gamma_fmt`` / ``beta_fmt`` codes)
        in one clock. After reset every gamma is 1.0 and every beta 0 (the identity). A write
        applies to every output read after it; load a model layer's parameters while the
        block is idle (or between rows whose outputs have all left) to change them between
        rows deterministically.
    latency : int
        Without back-pressure and with an idle per-row unit, the first output of a row is
        valid ``latency`` clocks after its last input was accepted.
    row_clocks : int
        Clocks the sequential per-row unit needs per row.
    row_unit_factory : callable
        ``factory(params)`` returns the per-row unit (default: the real one). The unit's
        protocol: ``start`` while ``idle`` begins a row; ``idle`` and ``done`` stay low until
        ``done`` is high for one clock with the results, then ``idle`` is high again.
    """

    def __init__(self, params: LayerNormParams | None = None):
        if params is None:
            params = LayerNormParams()
        if not isinstance(params, LayerNormParams):
            raise TypeError(f"params must be a LayerNormParams, not {params!r}")
        self.params = params
        p = params
        in_layout = data.StructLayout({"data": fix_shape(p.in_fmt), "last": 1})
        out_layout = data.StructLayout({"data": fix_shape(p.out_fmt), "first": 1, "last": 1})
        affine_layout = data.StructLayout(
            {
                "addr": unsigned(max(1, (p.max_len - 1).bit_length())),
                "gamma": fix_shape(p.gamma_fmt),
                "beta": fix_shape(p.beta_fmt),
            }
        )
        super().__init__(
            {
                "i": In(stream.Signature(in_layout)),
                "o": Out(stream.Signature(out_layout)),
                "affine": In(stream.Signature(affine_layout)),
            }
        )
        #: builds the per-row unit from the Params; the counting proofs of :mod:`hwgen.flows.formal`
        #: put a stand-in with the same start/idle/done protocol and a free latency here
        self.row_unit_factory = _RowUnit

    #: ingest statistics: input register, x^2 (two levels), then the row's flag
    _STATS_DEPTH = 4
    #: normalising pipeline levels (see elaborate)
    _NORM_DEPTH = 12

    @property
    def row_clocks(self) -> int:
        """Clocks the per-row unit spends on one row (its sequential multiplications)."""
        return _row_unit_clocks(self.params)

    @property
    def latency(self) -> int:
        """Clocks from a row's last input to its first output (per-row unit idle, no
        back-pressure): the statistics drain, the per-row unit, the normalising pipeline."""
        return self._STATS_DEPTH + self.row_clocks + 1 + self._NORM_DEPTH

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n_max = p.max_len
        idx_w = max(1, (n_max - 1).bit_length())
        nb = _BANKS
        in_shape = fix_shape(p.in_fmt)
        width = p.in_fmt.width

        m.submodules.x_mem = x_mem = Memory(shape=in_shape, depth=nb << idx_w, init=[])
        x_wr = x_mem.write_port()
        x_rd = x_mem.read_port()
        one = 1 << p.gamma_fmt.frac_bits
        m.submodules.g_mem = g_mem = Memory(
            shape=fix_shape(p.gamma_fmt), depth=1 << idx_w, init=[one] * (1 << idx_w)
        )
        m.submodules.b_mem = b_mem = Memory(shape=fix_shape(p.beta_fmt), depth=1 << idx_w, init=[])
        g_wr = g_mem.write_port()
        g_rd = g_mem.read_port()
        b_wr = b_mem.write_port()
        b_rd = b_mem.read_port()
        m.d.comb += [
            self.affine.ready.eq(1),
            g_wr.addr.eq(self.affine.payload.addr),
            b_wr.addr.eq(self.affine.payload.addr),
            g_wr.data.eq(self.affine.payload.gamma),
            b_wr.data.eq(self.affine.payload.beta),
            g_wr.en.eq(self.affine.valid),
            b_wr.en.eq(self.affine.valid),
        ]

        # bank flags: busy (ingest started .. last output read), stats (S1, S2 known),
        # ready (A, B, shift known)
        busy = Signal(nb)
        stats = Signal(nb)
        ready = Signal(nb)
        busy_set = Signal(nb)
        busy_clr = Signal(nb)
        stats_set = Signal(nb)
        stats_clr = Signal(nb)
        ready_set = Signal(nb)
        ready_clr = Signal(nb)
        m.d.sync += [
            busy.eq((busy & ~busy_clr) | busy_set),
            stats.eq((stats & ~stats_clr) | stats_set),
            ready.eq((ready & ~ready_clr) | ready_set),
        ]
        s1_w = width + idx_w + 1
        s2_w = 2 * width + idx_w + 1
        b_s1 = Array(Signal(signed(s1_w), name=f"s1_{b}") for b in range(nb))
        b_s2 = Array(Signal(unsigned(s2_w), name=f"s2_{b}") for b in range(nb))
        b_end = Array(Signal(idx_w, name=f"end_{b}") for b in range(nb))

        # ---- ingest -------------------------------------------------------------------------
        a_bank = Signal(range(nb))
        a_idx = Signal(idx_w)
        x_in = self.i.payload.data
        take = self.i.valid & self.i.ready
        row_end = self.i.payload.last | (a_idx == n_max - 1)
        m.d.comb += [
            self.i.ready.eq(~busy.bit_select(a_bank, 1)),
            x_wr.addr.eq(Cat(a_idx, a_bank)),
            x_wr.data.eq(x_in),
            x_wr.en.eq(take),
        ]
        with m.If(take):
            with m.If(row_end):
                m.d.comb += busy_set.eq(onehot(a_bank, nb))
                m.d.sync += [a_idx.eq(0), a_bank.eq(a_bank + 1)]
            with m.Else():
                m.d.sync += a_idx.eq(a_idx + 1)
        # statistics pipeline: x, |x|^2, accumulate
        sl = Levels(Stages(m), "stats")
        s = sl.next(
            x=x_in,
            mag=(Mux(x_in < 0, -x_in, x_in), unsigned(width)),
            first=a_idx == 0,
            last=row_end,
            idx=a_idx,
            bank=a_bank,
        )
        s = sl.mul(
            {"sq": (s.mag, s.mag)}, x=s.x, first=s.first, last=s.last, idx=s.idx, bank=s.bank
        )
        v = valid_chain(m, take, sl.depth, "stats_valid")
        acc1 = Signal(signed(s1_w))
        acc2 = Signal(unsigned(s2_w))
        next1 = Mux(s.first, 0, acc1) + s.x
        next2 = Mux(s.first, 0, acc2) + s.sq
        with m.If(v):
            m.d.sync += [acc1.eq(next1), acc2.eq(next2)]
            with m.If(s.last):
                m.d.sync += [
                    b_s1[s.bank].eq(next1),
                    b_s2[s.bank].eq(next2),
                    b_end[s.bank].eq(s.idx),
                ]
                m.d.comb += stats_set.eq(onehot(s.bank, nb))
        assert sl.depth + 1 == self._STATS_DEPTH

        # ---- per-row unit ---------------------------------------------------------------------
        b_a = Array(Signal(unsigned(_a_width(p)), name=f"a_{b}") for b in range(nb))
        b_b = Array(Signal(signed(_b_width(p)), name=f"b_{b}") for b in range(nb))
        # the output shift, decoded: right by (shift - 1) then round, or left by -shift
        lo_shift, hi_shift = _shift_range(p)
        right_w = max(1, (hi_shift - 1).bit_length())
        left_w = max(1, (-lo_shift).bit_length())
        b_right_m1 = Array(Signal(right_w, name=f"right_m1_{b}") for b in range(nb))
        b_left = Array(Signal(left_w, name=f"left_{b}") for b in range(nb))
        b_is_right = Array(Signal(name=f"is_right_{b}") for b in range(nb))
        r_bank = Signal(range(nb))
        unit = self.row_unit_factory(p)
        m.submodules.row_unit = unit
        m.d.comb += [
            unit.start.eq(stats.bit_select(r_bank, 1) & unit.idle),
            unit.s1.eq(b_s1[r_bank]),
            unit.s2.eq(b_s2[r_bank]),
            unit.d.eq(b_end[r_bank] + 1),
        ]
        with m.If(unit.start):
            m.d.comb += stats_clr.eq(onehot(r_bank, nb))
        with m.If(unit.done):
            m.d.sync += [
                b_a[r_bank].eq(unit.a),
                b_b[r_bank].eq(unit.b),
                b_right_m1[r_bank].eq(Mux(unit.shift > 0, unit.shift - 1, 0)),
                b_left[r_bank].eq(Mux(unit.shift < 0, -unit.shift, 0)),
                b_is_right[r_bank].eq(unit.shift > 0),
                r_bank.eq(r_bank + 1),
            ]
            m.d.comb += ready_set.eq(onehot(r_bank, nb))

        # ---- normalise and emit ------------------------------------------------------------
        d_bank = Signal(range(nb))
        d_j = Signal(idx_w)
        src = SimpleNamespace(
            valid=Signal(name="norm_src_valid"), ready=Signal(name="norm_src_ready")
        )
        pipe = StallPipeline(m, src, self.o, self._NORM_DEPTH)
        d_last = d_j == b_end[d_bank]
        m.d.comb += [
            src.valid.eq(ready.bit_select(d_bank, 1)),
            x_rd.addr.eq(Cat(d_j, d_bank)),
            x_rd.en.eq(pipe.en),
            g_rd.addr.eq(d_j),
            g_rd.en.eq(pipe.en),
            b_rd.addr.eq(d_j),
            b_rd.en.eq(pipe.en),
        ]
        with m.If(src.valid & src.ready):
            with m.If(d_last):
                m.d.comb += [ready_clr.eq(onehot(d_bank, nb)), busy_clr.eq(onehot(d_bank, nb))]
                m.d.sync += [d_j.eq(0), d_bank.eq(d_bank + 1)]
            with m.Else():
                m.d.sync += d_j.eq(d_j + 1)
        nl = Levels(pipe, "norm")
        # 1: the read ports' data registers load with the pipeline; the row constants beside
        s = nl.next(
            first=d_j == 0,
            last=d_last,
            a=b_a[d_bank],
            b=b_b[d_bank],
            right_m1=b_right_m1[d_bank],
            left=b_left[d_bank],
            is_right=b_is_right[d_bank],
        )
        tags = dict(first=s.first, last=s.last)
        # 2: block-RAM output registers
        sh = dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right)
        s = nl.next(x=x_rd.data, g=g_rd.data, beta=b_rd.data, a=s.a, b=s.b, **sh, **tags)
        tags = dict(first=s.first, last=s.last)
        # 3 .. 6: x * A - B = (D x - S1) y exactly. The low 17 bits of A go through one
        # DSP-sized multiplier; its few high bits are shift-and-add terms in LUTs, summed
        # over two levels, so no clock holds a DSP followed by a wide adder.
        lo = _A_LO_BITS
        a_lo = s.a[:lo]
        a_hi = s.a[lo:]
        terms = [Mux(a_hi[i], s.x << i, 0) for i in range(len(a_hi))]
        pairs = {
            f"h{k}": terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
            for k in range(0, len(terms), 2)
        }
        sh = dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right)
        s = nl.next(p_lo=s.x * a_lo, **pairs, b=s.b, g=s.g, beta=s.beta, **sh, **tags)
        tags = dict(first=s.first, last=s.last)
        hsum = sum((getattr(s, k) for k in pairs), Const(0, 1))
        sh = dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right)
        s = nl.next(p_lo=s.p_lo, hsum=hsum, b=s.b, g=s.g, beta=s.beta, **sh, **tags)
        tags = dict(first=s.first, last=s.last)
        sh = dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right)
        s = nl.next(prod=s.p_lo + (s.hsum << lo), b=s.b, g=s.g, beta=s.beta, **sh, **tags)
        tags = dict(first=s.first, last=s.last)
        sh = dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right)
        s = nl.next(num=s.prod - s.b, g=s.g, beta=s.beta, **sh, **tags)
        tags = dict(first=s.first, last=s.last)
        # 7: to norm_fmt, round half up (shift > 0: (num >> (shift - 1) + 1) >> 1) or exact
        # left shift (shift <= 0, rows of fewer than four elements); both amounts come
        # decoded from the per-row unit, so this level is only the barrel shifters
        s = nl.next(
            pre_r=s.num >> s.right_m1,
            pre_l=s.num << s.left,
            is_right=s.is_right,
            g=s.g,
            beta=s.beta,
            **tags,
        )
        tags = dict(first=s.first, last=s.last)
        # 8: the rounding add and the choice
        s = nl.next(z=Mux(s.is_right, (s.pre_r + 1) >> 1, s.pre_l), g=s.g, beta=s.beta, **tags)
        tags = dict(first=s.first, last=s.last)
        # 9: saturate to norm_fmt
        zf = p.norm_fmt
        s = nl.next(z=(saturate(s.z, zf), fix_shape(zf)), g=s.g, beta=s.beta, **tags)
        tags = dict(first=s.first, last=s.last)
        # 10, 11: z * gamma (one multiplier) + beta, aligned
        frac = zf.frac_bits + p.gamma_fmt.frac_bits
        s = nl.next(zg=s.z * s.g, beta=s.beta, **tags)
        tags = dict(first=s.first, last=s.last)
        s = nl.next(acc=s.zg + (s.beta << (frac - p.beta_fmt.frac_bits)), **tags)
        tags = dict(first=s.first, last=s.last)
        # 12: round half up to out_fmt, saturate
        sh = frac - p.out_fmt.frac_bits
        y = (s.acc + (1 << (sh - 1))) >> sh
        s = nl.next(y=(saturate(y, p.out_fmt), fix_shape(p.out_fmt)), **tags)
        assert nl.depth == self._NORM_DEPTH
        m.d.comb += [
            self.o.payload.data.eq(s.y),
            self.o.payload.first.eq(s.first),
            self.o.payload.last.eq(s.last),
        ]
        return m


def _shift_range(p: LayerNormParams) -> tuple[int, int]:
    """Smallest and largest output shift k + f - G/2 - norm_frac over all rows."""
    w = p.in_fmt.width
    e = p.eps_code
    w_min = e  # one element, zero variance
    w_max = p.max_len**2 * (1 << (2 * w - 2 + p.eps_extra_bits)) + p.max_len**2 * e
    offset = p.rsqrt_fmt.frac_bits - p.eps_extra_bits // 2 - p.norm_fmt.frac_bits
    return (
        (w_min.bit_length() - 1) // 2 + offset,
        (w_max.bit_length() - 1) // 2 + offset,
    )


def _a_width(p: LayerNormParams) -> int:
    # A = D y with y <= 1.0
    return (p.max_len << p.rsqrt_fmt.frac_bits).bit_length()


def _b_width(p: LayerNormParams) -> int:
    return p.in_fmt.width + p.max_len.bit_length() + p.rsqrt_fmt.width + 1


def _row_unit_clocks(p: LayerNormParams) -> int:
    """Clocks of :class:`_RowUnit` from ``start`` to ``done``."""
    return sum(bits + 2 for _, bits in _RowUnit.mults(p)) + _RowUnit.GLUE_STATES


class _RowUnit(Elaboratable):
    """Per-row constants A = D y, B = S1 y and the output shift, one multiplier bit per clock.

    A small state machine runs the multiplications of :func:`golden.layernorm._row_constants`
    on one shared shift-and-add multiplier (LUTs and a carry chain, no DSP): each takes one
    clock to load and one clock per bit of its shorter operand, plus one to hand the product
    on; W, its leading one (two clocks), the mantissa, the seed and the hand-over one each.
    """

    GLUE_STATES = 6  # W, leading one (two), mantissa, seed, hand-over
    #: outputs read at ``done`` (the other signals but ``idle`` and ``done`` are inputs)
    RESULTS = ("a", "b", "shift")

    def __init__(self, p: LayerNormParams):
        self.p = p
        self.start = Signal()
        self.idle = Signal()
        self.done = Signal()
        s1_w = p.in_fmt.width + (p.max_len - 1).bit_length() + 1
        s2_w = 2 * p.in_fmt.width + (p.max_len - 1).bit_length() + 1
        self.s1 = Signal(signed(s1_w))
        self.s2 = Signal(unsigned(s2_w))
        self.d = Signal(unsigned(p.max_len.bit_length()))
        self.a = Signal(unsigned(_a_width(p)))
        self.b = Signal(signed(_b_width(p)))
        self.shift = Signal(signed(8))

    @staticmethod
    def mults(p: LayerNormParams) -> list[tuple[str, int]]:
        """(name, bits of the multiplier operand) of every multiplication, in order."""
        d_bits = p.max_len.bit_length()
        s1_bits = p.in_fmt.width + (p.max_len - 1).bit_length()
        e_bits = max(1, p.eps_code.bit_length())
        y_bits = p.rsqrt_fmt.width
        ops = [("ds2", d_bits), ("s1sq", s1_bits), ("dd", d_bits), ("dde", e_bits)]
        for k in range(p.newton_steps):
            ops += [(f"yy{k}", y_bits), (f"my{k}", y_bits), (f"yt{k}", y_bits + 1)]
        return ops + [("a", d_bits), ("b", y_bits)]

    def elaborate(self, platform):
        m = Module()
        p = self.p
        f = p.rsqrt_fmt.frac_bits
        g = p.eps_extra_bits
        bits = dict(self.mults(p))
        s2_w, s1_w = len(self.s2), len(self.s1)
        wide = max(s2_w + bits["ds2"], 2 * s1_w, 2 * len(self.d) + bits["dde"]) + 2
        ma = Signal(wide)
        mb = Signal(max(bits.values()) + 1)
        acc = Signal(wide)
        cnt = Signal(range(max(bits.values()) + 2))
        d = Signal.like(self.d)
        mag1 = Signal(s1_w - 1)
        neg1 = Signal()
        s2 = Signal.like(self.s2)
        p1 = Signal(wide)
        p2 = Signal(wide)
        p3 = Signal(wide)
        p4 = Signal(wide)
        w_val = Signal(wide + g + 1)
        k = Signal(range(len(w_val)))
        mant = Signal(f + 2)
        y = Signal(p.rsqrt_fmt.width + 1)
        y2 = Signal(p.rsqrt_fmt.width + 1)
        t = Signal(f + 3)
        table = Array(Const(int(v), p.rsqrt_fmt.width) for v in golden_ln.tables(p).rsqrt)
        order = [name for name, _ in self.mults(p)]

        def mult(name, a, b, then, next_state):
            with m.State(f"{name}_load"):
                m.d.sync += [ma.eq(a), mb.eq(b), acc.eq(0), cnt.eq(bits[name])]
                m.next = f"{name}_run"
            with m.State(f"{name}_run"):
                with m.If(cnt == 0):
                    m.d.sync += then(acc)
                    m.next = next_state
                with m.Else():
                    m.d.sync += [
                        acc.eq(acc + Mux(mb[0], ma, 0)),
                        ma.eq(ma << 1),
                        mb.eq(mb >> 1),
                        cnt.eq(cnt - 1),
                    ]

        def after(name):
            i = order.index(name)
            return f"{order[i + 1]}_load" if i + 1 < len(order) else "shift"

        half = 1 << (f - 1)
        # idle and done are decoded from the state outside the FSM's processes, so they are
        # continuous assignments (no X in event-driven simulators before the first event)
        with m.FSM() as fsm:
            with m.State("idle"):
                with m.If(self.start):
                    m.d.sync += [
                        d.eq(self.d),
                        mag1.eq(Mux(self.s1 < 0, -self.s1, self.s1)),
                        neg1.eq(self.s1 < 0),
                        s2.eq(self.s2),
                    ]
                    m.next = "ds2_load"
            mult("ds2", s2, d, lambda v: [p1.eq(v)], "s1sq_load")
            mult("s1sq", mag1, mag1, lambda v: [p2.eq(v)], "dd_load")
            mult("dd", d, d, lambda v: [p3.eq(v)], "dde_load")
            mult("dde", p3, Const(p.eps_code), lambda v: [p4.eq(v)], "w")
            with m.State("w"):
                m.d.sync += w_val.eq(((p1 - p2) << g) + p4)
                m.next = "lod_group"
            # leading one of W in two clocks: the highest nonzero 8-bit group, then the
            # highest one inside it; k = (bit_length(W) - 1) // 2 so that W = 2^(2k) m
            n_groups = -(-len(w_val) // 8)
            group = Signal(range(n_groups), name="lod_group")
            group_bits = Signal(8, name="lod_group_bits")
            with m.State("lod_group"):
                for index in range(n_groups):
                    chunk = w_val[8 * index : 8 * index + 8]
                    with m.If(chunk.any()):
                        m.d.sync += [group.eq(index), group_bits.eq(chunk)]
                m.next = "lod"
            with m.State("lod"):
                low = Signal(3, name="lod_low")
                for bit in range(8):
                    with m.If(group_bits[bit]):
                        m.d.comb += low.eq(bit)
                m.d.sync += k.eq(Cat(low, group) >> 1)
                m.next = "mant"
            with m.State("mant"):
                m.d.sync += [
                    mant.eq((w_val << f) >> (k << 1)),
                    self.shift.eq(k + (f - g // 2 - p.norm_fmt.frac_bits)),
                ]
                m.next = "seed"
            with m.State("seed"):
                idx = (mant >> (f - (p.rsqrt_bits - 1))) - (1 << (p.rsqrt_bits - 1))
                m.d.sync += y.eq(table[idx[: (3 << (p.rsqrt_bits - 1)).bit_length()]])
                m.next = f"{order[4]}_load"
            for step in range(p.newton_steps):
                mult(f"yy{step}", y, y, lambda v: [y2.eq((v + half) >> f)], f"my{step}_load")
                mult(
                    f"my{step}",
                    mant,
                    y2,
                    lambda v: [t.eq((3 << f) - ((v + half) >> f))],
                    f"yt{step}_load",
                )
                mult(
                    f"yt{step}",
                    y,
                    t,
                    lambda v: [y.eq((v + (1 << f)) >> (f + 1))],
                    after(f"yt{step}"),
                )
            mult("a", y, d, lambda v: [self.a.eq(v)], "b_load")
            mult("b", mag1, y, lambda v: [self.b.eq(Mux(neg1, -v, v))], "shift")
            with m.State("shift"):  # the constants are all registered: hand them over
                m.next = "idle"
        m.d.comb += [self.idle.eq(fsm.ongoing("idle")), self.done.eq(fsm.ongoing("shift"))]
        return m
