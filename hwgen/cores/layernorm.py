"""Streaming LayerNorm: exact one-pass statistics, a sequential per-row 1/sqrt unit.

The arithmetic is :func:`golden.layernorm.emulate`; this module schedules it.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from golden import layernorm as golden_ln
from golden.layernorm import LayerNormParams

from ..lib.rows import StatRowCore, StatRows, bank_regs

__all__ = ["LayerNorm"]

#: Bits of A multiplied in a DSP block (17: an unsigned operand of an 18 x 18 signed DSP).
_A_LO_BITS = 17

#: Row banks: a bank holds its row from its first input to its last output read, about
#: 2 L + ``latency`` clocks, so four hold a row every L clocks whenever the per-row unit does
#: (L > ``row_clocks``), and the bank pointer is a plain 2-bit counter.
_BANKS = 4


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
    """Clocks of :class:`_RowUnit` from ``start`` to ``done`` (inclusive)."""
    steps = sum(_RowUnit.steps(bits) for _, bits in _RowUnit.mults(p))
    # a load clock for ds2, dde, a and each Newton product, a hand-over clock after each
    # Newton product (their results are rounded), and the glue states
    return steps + 3 + 6 * p.newton_steps + _RowUnit.GLUE_STATES


class _RowUnit(Elaboratable):
    """Per-row constants A = D y, B = S1 y and the output shift, two multiplier bits a clock.

    A small state machine runs the multiplications of :func:`golden.layernorm._row_constants`
    on one shared radix-4 Booth multiplier (LUTs and one carry chain, no DSP): per clock the
    accumulator adds one of 0, ±M, ±2M selected by three bits of the multiplier, so a product
    takes one clock per two bits of its shorter operand (plus one). A product whose successor
    does not need it loads that successor in its last clock (D S2, S1^2, D^2 and A, B); the
    others take a load clock, and the Newton products, which are rounded, a hand-over clock.
    W, its leading one (two clocks), the mantissa and the seed take one clock each; B, the
    last product, is ``done`` (86 clocks for the default, 157 with the bit-serial unit this
    replaced).
    """

    GLUE_STATES = 5  # W, leading one (two), mantissa, seed
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
    def clocks(p) -> int:
        """Clocks from ``start`` to ``done``."""
        return _row_unit_clocks(p)

    @staticmethod
    def steps(bits: int) -> int:
        """Radix-4 Booth steps for an unsigned multiplier of ``bits`` bits (a zero on top)."""
        return -(-(bits + 1) // 2)

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
        # every product and B = S1 y (signed, two's complement modulo 2**wide) fit
        wide = max(s2_w + bits["ds2"], 2 * s1_w, 2 * len(self.d) + bits["dde"]) + 2
        ma = Signal(wide)  # multiplicand M, shifted left two bits a step
        mb = Signal(max(bits.values()) + 2)  # multiplier, shifted right two bits a step
        low = Signal()  # the multiplier bit below the current two (Booth's overlap)
        acc = Signal(wide)
        cnt = Signal(range(max(self.steps(b) for b in bits.values()) + 1))
        d = Signal.like(self.d)
        mag1 = Signal(s1_w - 1)
        s1 = Signal.like(self.s1)
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

        # one Booth step: digit -2 b1 + b0 + low of {b1 b0 low}, in -2 .. 2
        window = Cat(low, mb[:2])
        digits = [-2 * (v >> 2) + ((v >> 1) & 1) + (v & 1) for v in range(8)]
        mag = Array(Const(abs(x), 2) for x in digits)[window]
        neg = Array(Const(x < 0, 1) for x in digits)[window]
        term = Array([Const(0, wide), ma, (ma << 1)[:wide]])[mag]
        acc_next = Signal(wide, name="acc_next")
        m.d.comb += acc_next.eq(acc + Mux(neg, ~term, term) + neg)

        def load(name, a, b):
            return [
                ma.eq(a),  # sign-extended when a is signed (S1 for B)
                mb.eq(b),
                low.eq(0),
                acc.eq(0),
                cnt.eq(self.steps(bits[name]) - 1),
            ]

        def run(name, then, following, next_state, hand=False):
            """The steps of ``name``; ``then(v)`` takes the product (``acc_next`` in the last
            step, or ``acc`` one clock later with ``hand``); ``following`` (statements) loads the
            next product in the last step."""
            with m.State(f"{name}_run"):
                m.d.sync += [
                    acc.eq(acc_next),
                    ma.eq(ma << 2),
                    mb.eq(mb >> 2),
                    low.eq(mb[1]),
                    cnt.eq(cnt - 1),
                ]
                with m.If(cnt == 0):
                    if hand:
                        m.next = f"{name}_hand"
                    else:
                        m.d.sync += then(acc_next) + following
                        m.next = next_state
            if hand:
                with m.State(f"{name}_hand"):
                    m.d.sync += then(acc)
                    m.next = next_state

        half = 1 << (f - 1)
        # idle and done are decoded from the state outside the FSM's processes, so they are
        # continuous assignments (no X in event-driven simulators before the first event)
        with m.FSM() as fsm:
            with m.State("idle"):
                with m.If(self.start):
                    m.d.sync += [
                        d.eq(self.d),
                        mag1.eq(Mux(self.s1 < 0, -self.s1, self.s1)),
                        s1.eq(self.s1),
                        s2.eq(self.s2),
                    ]
                    m.next = "ds2_load"
            with m.State("ds2_load"):
                m.d.sync += load("ds2", s2, d)
                m.next = "ds2_run"
            run("ds2", lambda v: [p1.eq(v)], load("s1sq", mag1, mag1), "s1sq_run")
            run("s1sq", lambda v: [p2.eq(v)], load("dd", d, d), "dd_run")
            run("dd", lambda v: [p3.eq(v)], [], "dde_load")
            with m.State("dde_load"):
                m.d.sync += load("dde", p3, Const(p.eps_code))
                m.next = "dde_run"
            run("dde", lambda v: [p4.eq(v)], [], "w")
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
            # the mantissa (W << f) >> 2k in two steps: by the group's 8 bits here, by the
            # even part of the position inside the group (0, 2, 4 or 6) in "mant". Two small
            # multiplexers where one shifter by 0..2k would take hundreds of LUTs
            coarse = Signal(f + 2 + 6, name="lod_coarse")
            wide_w = Cat(Const(0, f), w_val)  # W << f
            fine = Signal(2, name="lod_fine")
            with m.State("lod"):
                low_bit = Signal(3, name="lod_low")
                for bit in range(8):
                    with m.If(group_bits[bit]):
                        m.d.comb += low_bit.eq(bit)
                m.d.sync += [
                    k.eq(Cat(low_bit, group) >> 1),
                    coarse.eq(Array(wide_w[8 * i :] for i in range(n_groups))[group]),
                    fine.eq(low_bit[1:]),
                ]
                m.next = "mant"
            order = [name for name, _ in self.mults(p)]
            after_seed = f"{order[4]}_load"
            with m.State("mant"):
                m.d.sync += [
                    mant.eq(Array(coarse[2 * i :] for i in range(4))[fine]),
                    self.shift.eq(k + (f - g // 2 - p.norm_fmt.frac_bits)),
                ]
                m.next = "seed"
            # the seed in a clock of its own: a table of up to 1536 entries behind the
            # mantissa multiplexer would be one long path
            with m.State("seed"):
                idx = (mant >> (f - (p.rsqrt_bits - 1))) - (1 << (p.rsqrt_bits - 1))
                m.d.sync += y.eq(table[idx[: (3 << (p.rsqrt_bits - 1)).bit_length()]])
                m.next = after_seed
            for step in range(p.newton_steps):
                yy, my, yt = f"yy{step}", f"my{step}", f"yt{step}"
                with m.State(f"{yy}_load"):
                    m.d.sync += load(yy, y, y)
                    m.next = f"{yy}_run"
                run(yy, lambda v: [y2.eq((v + half) >> f)], [], f"{my}_load", hand=True)
                with m.State(f"{my}_load"):
                    m.d.sync += load(my, mant, y2)
                    m.next = f"{my}_run"
                run(my, lambda v: [t.eq((3 << f) - ((v + half) >> f))], [], f"{yt}_load", hand=True)
                with m.State(f"{yt}_load"):
                    m.d.sync += load(yt, y, t)
                    m.next = f"{yt}_run"
                nxt = f"yy{step + 1}_load" if step + 1 < p.newton_steps else "a_load"
                run(yt, lambda v: [y.eq((v + (1 << f)) >> (f + 1))], [], nxt, hand=True)
            with m.State("a_load"):
                m.d.sync += load("a", y, d)
                m.next = "a_run"
            # B = S1 y: the signed multiplicand makes the product signed (modulo 2**wide)
            run("a", lambda v: [self.a.eq(v)], load("b", s1, y), "b_run")
            # the last product: `done` in its last step, B read combinationally from acc_next
            run("b", lambda v: [], [], "idle")
        m.d.comb += [
            self.b.eq(acc_next.as_signed()),
            self.idle.eq(fsm.ongoing("idle")),
            self.done.eq(fsm.ongoing("b_run") & (cnt == 0)),
        ]
        return m


class LayerNorm(StatRowCore):
    """LayerNorm over rows of a stream, gamma and beta from on-chip memory.

    Rows are delimited by ``last`` (a row also ends after ``max_len`` elements). Three
    stages run concurrently on four row banks: *ingest* stores the row and accumulates
    S1 = sum x and S2 = sum x^2 (one multiplier); a *per-row unit* turns them into the
    constants A = D y, B = S1 y and a shift (y = 1/sqrt(m) of W = D S2 - S1^2 + D^2 eps, see
    :mod:`golden.layernorm`) with one radix-4 Booth multiplier working two bits per clock
    (no DSP; 86 clocks per row for the default); *normalise* reads the row back and streams
    round(x A - B) * gamma + beta out with back-pressure (two multipliers). So each lane has
    three multipliers.

    With rows of more than ``row_clocks`` elements (86 for the default, so DeiT-T's 192 and
    128-wide models qualify) the block takes and gives one element per clock indefinitely: R
    rows of length L take (R + 1) L + ``latency`` - 1 clocks from the first input to the last
    output. Shorter rows wait for the per-row unit.

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

    PARAMS = LayerNormParams
    ROW_UNIT = _RowUnit

    def elaborate(self, platform):
        m = Module()
        p = self.params
        nb = _BANKS
        unit = self.row_unit_factory(p)
        rows = StatRows(m, self, unit, banks=nb)

        # ---- per-row unit: A, B and the output shift, decoded: right by (shift - 1) then
        # round, or left by -shift
        lo_shift, hi_shift = _shift_range(p)
        b_right_m1 = bank_regs(nb, max(1, (hi_shift - 1).bit_length()), "right_m1_")
        b_left = bank_regs(nb, max(1, (-lo_shift).bit_length()), "left_")
        b_is_right = bank_regs(nb, 1, "is_right_")
        b_a = bank_regs(nb, unsigned(_a_width(p)), "a_")
        b_b = bank_regs(nb, signed(_b_width(p)), "b_")
        rows.finish_unit(
            (b_a, unit.a),
            (b_b, unit.b),
            (b_right_m1, Mux(unit.shift > 0, unit.shift - 1, 0)),
            (b_left, Mux(unit.shift < 0, -unit.shift, 0)),
            (b_is_right, unit.shift > 0),
        )

        # ---- normalise and emit ------------------------------------------------------------
        out = rows.reader(self.o)
        affine = rows.affine
        m.d.comb += affine.read(out.j, out.read)
        nl = out.levels
        # 1: the read ports' data registers load with the pipeline; the row constants beside
        bank = out.bank
        s = nl.next(
            a=b_a[bank],
            b=b_b[bank],
            right_m1=b_right_m1[bank],
            left=b_left[bank],
            is_right=b_is_right[bank],
        )

        # 2: block-RAM output registers (and the x banks' multiplexer, where they are split)
        s = rows.x_mem.stage_read(
            nl,
            "x",
            g=affine.gamma.data,
            beta=affine.beta.data,
            a=s.a,
            b=s.b,
            right_m1=s.right_m1,
            left=s.left,
            is_right=s.is_right,
        )

        # 3 .. 6: x * A - B = (D x - S1) y exactly. The low 17 bits of A go through one
        # DSP-sized multiplier; its few high bits are shift-and-add terms in LUTs, summed
        # over two levels, so no clock holds a DSP followed by a wide adder.
        def keep(s):
            # what rides on to level 7: the decoded shift, gamma and beta
            return dict(right_m1=s.right_m1, left=s.left, is_right=s.is_right, g=s.g, beta=s.beta)

        lo = _A_LO_BITS
        a_lo = s.a[:lo]
        a_hi = s.a[lo:]
        terms = [Mux(a_hi[i], s.x << i, 0) for i in range(len(a_hi))]
        pairs = {
            f"h{k}": terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
            for k in range(0, len(terms), 2)
        }
        s = nl.next(p_lo=s.x * a_lo, **pairs, b=s.b, **keep(s))
        hsum = sum((getattr(s, k) for k in pairs), Const(0, 1))
        s = nl.next(p_lo=s.p_lo, hsum=hsum, b=s.b, **keep(s))
        s = nl.next(prod=s.p_lo + (s.hsum << lo), b=s.b, **keep(s))
        s = nl.next(num=s.prod - s.b, **keep(s))
        # 7: to norm_fmt, round half up (shift > 0: (num >> (shift - 1) + 1) >> 1) or exact
        # left shift (shift <= 0, rows of fewer than four elements); both amounts come
        # decoded from the per-row unit, so this level is only the barrel shifters
        s = nl.next(
            pre_r=s.num >> s.right_m1,
            pre_l=s.num << s.left,
            is_right=s.is_right,
            g=s.g,
            beta=s.beta,
        )
        # 8: the rounding add and the choice
        s = nl.next(z=Mux(s.is_right, (s.pre_r + 1) >> 1, s.pre_l), g=s.g, beta=s.beta)
        # 9 .. 12: saturate to norm_fmt, z * gamma (one multiplier) + beta, round to out_fmt
        y = affine.apply(nl, s.z, s.g, s.beta, p.norm_fmt, p.out_fmt)
        self.depths = SimpleNamespace(stats=rows.depth, norm=out.emit(y))
        return m
