"""Streaming LayerNorm baselines: real dividers and square root, or an hls4ml-style 1/sqrt table.

The arithmetic is :func:`golden.layernorm_base.emulate`; this module schedules it with the row
banks, statistics and affine memories of :class:`hwgen.cores.layernorm.LayerNorm` (same ports,
framing, formats and throughput rule), so either baseline can replace the approximate block.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from golden import layernorm_base as golden_base
from golden.layernorm_base import LayerNormBaseKind, LayerNormBaseParams

from ..lib.pipeline import Levels, built
from ..lib.rows import StatRowCore, StatRows, bank_regs

__all__ = ["LayerNormBase", "SeqDivider", "SeqMultiplier", "SeqSqrt"]

#: Row banks, as in :mod:`hwgen.cores.layernorm`: a bank holds its row from its first input to its
#: last output read (about 2 L + row_clocks + the pipeline), so four keep rows longer than
#: ``row_clocks`` at one element per clock.
_BANKS = 4


class SeqDivider(Elaboratable):
    """Restoring division, one quotient bit per clock: ``q = num // den``.

    The caller guarantees ``num >> q_bits < den`` (the quotient fits ``q_bits``). ``start``
    loads the operands; ``done`` is high for one clock, ``q_bits + 1`` clocks later, and ``q``
    holds the quotient from then until the next ``start``.
    """

    def __init__(self, num_width: int, den_width: int, q_bits: int, name: str):
        self.q_bits = q_bits
        self.start = Signal(name=f"{name}_start")
        self.num = Signal(num_width, name=f"{name}_num")
        self.den = Signal(den_width, name=f"{name}_den")
        self.done = Signal(name=f"{name}_done")
        self.q = Signal(q_bits, name=f"{name}_q")
        self._name = name

    @property
    def clocks(self) -> int:
        return self.q_bits + 1

    def elaborate(self, platform):
        m = Module()
        n = self._name
        den = Signal.like(self.den, name=f"{n}_den_r")
        rem = Signal(len(self.den), name=f"{n}_rem")
        cnt = Signal(range(self.q_bits + 1), name=f"{n}_cnt")
        busy = Signal(name=f"{n}_busy")
        trial = Signal(len(self.den) + 1, name=f"{n}_trial")
        m.d.comb += trial.eq(Cat(self.q[-1], rem))  # 2 rem + the next dividend bit
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [
                den.eq(self.den),
                rem.eq(self.num >> self.q_bits),
                self.q.eq(self.num[: self.q_bits]),
                cnt.eq(self.q_bits),
                busy.eq(1),
            ]
        with m.Elif(busy):
            ge = trial >= den
            # the dividend's low bits leave q at the top as the quotient bits enter below
            m.d.sync += [
                rem.eq(Mux(ge, trial - den, trial)),
                self.q.eq(Cat(ge, self.q[:-1])),
                cnt.eq(cnt - 1),
            ]
            with m.If(cnt == 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        return m


class SeqMultiplier(Elaboratable):
    """Shift-and-add multiplication, one bit of ``b`` per clock: ``p = a * b`` (unsigned).

    The adder is only as wide as ``a``: the partial sum and ``b`` shift right together through
    one register. ``done`` is high one clock, ``len(b) + 1`` clocks after ``start``.
    """

    def __init__(self, a_width: int, b_width: int, name: str):
        self.start = Signal(name=f"{name}_start")
        self.a = Signal(a_width, name=f"{name}_a")
        self.b = Signal(b_width, name=f"{name}_b")
        self.done = Signal(name=f"{name}_done")
        self.p = Signal(a_width + b_width, name=f"{name}_p")
        self._name = name

    @property
    def clocks(self) -> int:
        return len(self.b) + 1

    def elaborate(self, platform):
        m = Module()
        n = self._name
        wa, wb = len(self.a), len(self.b)
        a = Signal(wa, name=f"{n}_a_r")
        cnt = Signal(range(wb + 1), name=f"{n}_cnt")
        busy = Signal(name=f"{n}_busy")
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [a.eq(self.a), self.p.eq(self.b), cnt.eq(wb), busy.eq(1)]
        with m.Elif(busy):
            upper = self.p[wb:] + Mux(self.p[0], a, 0)  # wa + 1 bits
            m.d.sync += [self.p.eq(Cat(self.p[1:wb], upper)), cnt.eq(cnt - 1)]
            with m.If(cnt == 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        return m


class SeqSqrt(Elaboratable):
    """Digit-by-digit integer square root, one result bit per clock: ``root = isqrt(v)``.

    ``v`` has ``2 n`` bits, ``root`` n. ``done`` is high one clock, ``n + 1`` clocks after
    ``start``.
    """

    def __init__(self, n: int, name: str):
        self.n = n
        self.start = Signal(name=f"{name}_start")
        self.v = Signal(2 * n, name=f"{name}_v")
        self.done = Signal(name=f"{name}_done")
        self.root = Signal(n, name=f"{name}_root")
        self._name = name

    @property
    def clocks(self) -> int:
        return self.n + 1

    def elaborate(self, platform):
        m = Module()
        n, nm = self.n, self._name
        v = Signal(2 * n, name=f"{nm}_v_r")
        rem = Signal(n + 2, name=f"{nm}_rem")
        cnt = Signal(range(n + 1), name=f"{nm}_cnt")
        busy = Signal(name=f"{nm}_busy")
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [v.eq(self.v), rem.eq(0), self.root.eq(0), cnt.eq(n), busy.eq(1)]
        with m.Elif(busy):
            # rem < 2 root + 1 always, so 4 rem + 3 fits n + 3 bits
            trial = Signal(n + 3, name=f"{nm}_trial")
            test = Signal(n + 2, name=f"{nm}_test")
            m.d.comb += [trial.eq(Cat(v[-2:], rem)), test.eq(Cat(Const(1, 2), self.root))]
            ge = trial >= test
            m.d.sync += [
                rem.eq(Mux(ge, trial - test, trial)),
                self.root.eq(Cat(ge, self.root[:-1])),
                v.eq(v << 2),
                cnt.eq(cnt - 1),
            ]
            with m.If(cnt == 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        return m


def _widths(p: LayerNormBaseParams) -> SimpleNamespace:
    """Word widths and divider sizes shared by the per-row unit and the element pipeline."""
    w = p.in_fmt.width
    fi = p.in_fmt.frac_bits
    fm, fv = p.mean_fmt.frac_bits, p.var_fmt.frac_bits
    idx_w = max(1, (p.max_len - 1).bit_length())
    k_mean = fm - fi + 1  # the divider's quotient carries one extra bit for the rounding
    k_e2 = fv - 2 * fi + 1
    sqrt_shift = 2 * p.std_fmt.frac_bits - fv + 2
    rad_w = max(p.var_fmt.width, p.eps_code.bit_length()) + 1 + sqrt_shift
    num_w = p.in_fmt.int_bits + 1 + p.num_frac  # d = x - mean, signed
    return SimpleNamespace(
        s1=w + idx_w + 1,
        s2=2 * w + idx_w + 1,
        d=p.max_len.bit_length(),
        mean_q=w + k_mean,  # |S1| / D <= 2^(w-1) in in_fmt units
        mean_num=w - 1 + idx_w + 1 + k_mean,
        e2_q=2 * w - 1 + k_e2,
        e2_num=2 * w + idx_w + k_e2,
        mean_mag=w - 1 + fm - fi + 1,  # |mean| <= 2^(w-1) in_fmt units
        sqrt_n=(rad_w + 1) // 2,
        sqrt_shift=sqrt_shift,
        num=num_w,
        scale=(p.std_fmt if p.kind is LayerNormBaseKind.DIV else p.table_fmt).width,
    )


def _row_unit_clocks(p: LayerNormBaseParams) -> int:
    """Clocks of :class:`_RowUnit` from ``start`` to ``done``: start, the two dividers side
    by side, the mean, the multiplier, the variance, then the square root and its rounding
    (``div``) or the table read (``lut``), and the hand-over."""
    wd = _widths(p)
    divs = max(wd.mean_q, wd.e2_q) + 1
    tail = wd.sqrt_n + 2 if p.kind is LayerNormBaseKind.DIV else 2
    return 1 + divs + 1 + (wd.mean_mag + 1) + 1 + tail


class _RowUnit(Elaboratable):
    """Per-row constants from S1, S2 and D, with sequential units.

    Two restoring dividers run side by side (mean = S1 / D and S2 / D, one quotient bit per
    clock), then one shift-and-add multiplier forms mean^2 (a bit per clock), then ``div``'s
    digit-by-digit square root (a bit per clock) or ``lut``'s table read. No DSP block.
    """

    #: outputs read at ``done`` (the other signals but ``idle`` and ``done`` are inputs)
    RESULTS = ("mean_num", "scale")

    @staticmethod
    def clocks(p) -> int:
        """Clocks from ``start`` to ``done``."""
        return _row_unit_clocks(p)

    def __init__(self, p: LayerNormBaseParams):
        self.p = p
        wd = _widths(p)
        self.wd = wd
        self.start = Signal()
        self.idle = Signal()
        self.done = Signal()
        self.s1 = Signal(signed(wd.s1))
        self.s2 = Signal(unsigned(wd.s2))
        self.d = Signal(unsigned(wd.d))
        self.mean_num = Signal(signed(wd.num))
        self.scale = Signal(unsigned(wd.scale))
        self.div_mean = SeqDivider(wd.mean_num, wd.d, wd.mean_q, "div_mean")
        self.div_e2 = SeqDivider(wd.e2_num, wd.d, wd.e2_q, "div_e2")
        self.mul = SeqMultiplier(wd.mean_mag, wd.mean_mag, "mul_msq")
        if p.kind is LayerNormBaseKind.DIV:
            self.sqrt = SeqSqrt(wd.sqrt_n, "sqrt")

    def elaborate(self, platform):
        m = Module()
        p, wd = self.p, self.wd
        fi = p.in_fmt.frac_bits
        fm, fv = p.mean_fmt.frac_bits, p.var_fmt.frac_bits
        m.submodules.div_mean = dm = self.div_mean
        m.submodules.div_e2 = de = self.div_e2
        m.submodules.mul = mul = self.mul
        neg = Signal()
        mean_mag = Signal(wd.mean_mag)
        e2 = Signal(wd.e2_q)
        var = Signal(p.var_fmt.width + 1)
        both = Signal(2)
        m.d.comb += [
            dm.num.eq(Mux(self.s1 < 0, -self.s1, self.s1) << (fm - fi + 1)),
            dm.den.eq(self.d),
            de.num.eq(self.s2 << (fv - 2 * fi + 1)),
            de.den.eq(self.d),
            mul.a.eq(mean_mag),
            mul.b.eq(mean_mag),
        ]
        msq_shift = 2 * fm - fv
        msq = (mul.p + (1 << (msq_shift - 1))) >> msq_shift if msq_shift else mul.p
        # the mean rounded half up to the element pipeline's fractional bits: -(|mean| rounded
        # half down) when negative
        num_shift = fm - p.num_frac
        if num_shift:
            half = 1 << (num_shift - 1)
            mean_up = (mean_mag + half) >> num_shift
            mean_down = (mean_mag + (half - 1)) >> num_shift
        else:
            mean_up = mean_down = mean_mag
        with m.FSM() as fsm:
            with m.State("idle"):
                with m.If(self.start):
                    m.d.comb += [dm.start.eq(1), de.start.eq(1)]
                    m.d.sync += [neg.eq(self.s1 < 0), both.eq(0)]
                    m.next = "divide"
            with m.State("divide"):
                with m.If(dm.done):
                    m.d.sync += mean_mag.eq((dm.q + 1) >> 1)
                with m.If(de.done):
                    m.d.sync += e2.eq((de.q + 1) >> 1)
                done = both | Cat(dm.done, de.done)
                m.d.sync += both.eq(done)
                with m.If(done.all()):
                    m.next = "mean"
            with m.State("mean"):
                m.d.sync += self.mean_num.eq(Mux(neg, -mean_down, mean_up))
                m.d.comb += mul.start.eq(1)
                m.next = "square"
            with m.State("square"):
                with m.If(mul.done):
                    m.next = "var"
            with m.State("var"):
                m.d.sync += var.eq(Mux(e2 >= msq, e2 - msq, 0))  # clamped at 0
                m.next = "tail"
            if p.kind is LayerNormBaseKind.DIV:
                sq = self.sqrt
                m.submodules.sqrt = sq
                m.d.comb += sq.v.eq((var + p.eps_code) << wd.sqrt_shift)
                with m.State("tail"):
                    m.d.comb += sq.start.eq(1)
                    m.next = "root"
                with m.State("root"):
                    with m.If(sq.done):
                        m.d.sync += self.scale.eq((sq.root + 1) >> 1)
                        m.next = "hand"
            else:
                rom = Memory(
                    shape=unsigned(wd.scale),
                    depth=p.table_size,
                    init=[int(v) for v in golden_base.tables(p)],
                )
                m.submodules.inv_rom = rom
                rd = rom.read_port()
                index = var >> p.index_shift
                top = p.table_size - 1
                m.d.comb += [
                    rd.addr.eq(Mux(index > top, top, index)),
                    rd.en.eq(fsm.ongoing("tail")),
                ]
                with m.State("tail"):
                    m.next = "read"
                with m.State("read"):
                    m.d.sync += self.scale.eq(rd.data)
                    m.next = "hand"
            with m.State("hand"):  # the constants are registered: hand them over
                m.next = "idle"
        m.d.comb += [self.idle.eq(fsm.ongoing("idle")), self.done.eq(fsm.ongoing("hand"))]
        return m


class LayerNormBase(StatRowCore):
    """LayerNorm baseline over rows of a stream, gamma and beta from on-chip memory.

    Ports, framing and the ``affine`` stream as :class:`hwgen.cores.layernorm.LayerNorm`. Three
    stages run concurrently on four row banks: *ingest* stores the row and accumulates
    S1 = sum x and S2 = sum x^2 (one multiplier); the *per-row unit* computes the mean, the
    variance and then std (``div``) or 1/std (``lut``) with **sequential** units (two
    restoring dividers side by side, a shift-and-add multiplier for mean^2 and, for ``div``,
    a digit-by-digit square root, each one bit per clock; no DSP); *normalise* reads the row
    back and streams z * gamma + beta out with back-pressure. The per-element z is

    * ``div``: (x - mean) / std from a **pipelined** restoring divider, one quotient bit per
      stage (``norm_fmt.width`` stages, each with a subtractor as wide as std), so one element
      per clock; std travels along the stages so that rows can follow each other;
    * ``lut``: (x - mean) * (1/std), one multiplier.

    With rows of more than ``row_clocks`` elements (140 for ``div``, 105 for ``lut`` at the
    defaults) the block takes and gives one element per clock indefinitely: R rows of length
    L take (R + 1) L + ``latency`` - 1 clocks from the first input to the last output.
    Shorter rows wait for the per-row unit.

    Parameters
    ----------
    params : LayerNormBaseParams

    Members
    -------
    i, o, affine : stream interfaces
        As in :class:`hwgen.cores.layernorm.LayerNorm`: codes in, normalised codes out with
        the row framing, gamma / beta writes (always ready; reset to the identity).
    latency, row_clocks, row_unit_factory
        As in :class:`hwgen.cores.layernorm.LayerNorm` (from
        :class:`hwgen.lib.rows.StatRowCore`), for this block's per-row unit and pipeline.
    norm_depth : int
        Levels of the normalising pipeline.
    """

    PARAMS = LayerNormBaseParams
    ROW_UNIT = _RowUnit

    @property
    def norm_depth(self) -> int:
        """Levels of the normalising pipeline: read, RAM register, d = x - mean, then ``div``:
        |d| and overflow, one level per quotient bit, round; ``lut``: |d|, the product (two
        levels), round; then saturate, z * gamma, + beta, round."""
        return built(self).norm

    def elaborate(self, platform):
        m = Module()
        p = self.params
        wd = _widths(p)
        nb = _BANKS
        unit = self.row_unit_factory(p)
        rows = StatRows(m, self, unit, banks=nb)

        # ---- per-row unit: mean and std (div) or 1/std (lut) ----------------------------------
        b_mean = bank_regs(nb, signed(wd.num), "mean_")
        b_scale = bank_regs(nb, unsigned(wd.scale), "scale_")
        rows.finish_unit((b_mean, unit.mean_num), (b_scale, unit.scale))

        # ---- normalise and emit ------------------------------------------------------------
        out = rows.reader(self.o)
        affine = rows.affine
        nl = out.levels
        # 1: the x read port's data register loads with the pipeline; the row constants beside
        s = nl.next(j=out.j, mean=b_mean[out.bank], scale=b_scale[out.bank])
        # 2: block-RAM output register (and the bank multiplexer, where the banks are split)
        s = rows.x_mem.stage_read(nl, "x", j=s.j, mean=s.mean, scale=s.scale)
        # 3: d = x - mean at the pipeline's fractional bits (exact)
        num = (s.x << (p.num_frac - p.in_fmt.frac_bits)) - s.mean
        s = nl.next(num=(num, signed(wd.num)), j=s.j, scale=s.scale)

        def read_affine(j):
            # gamma[j] and beta[j] are read beside the last level of z's core, so that their
            # block-RAM data is registered (with the saturated z) before the multiplier
            m.d.comb += affine.read(j, out.pipe.en & nl.valid)

        if p.kind is LayerNormBaseKind.DIV:
            z = self._divide(nl, s, wd, read_affine)
        else:
            z = self._multiply(nl, s, wd, read_affine)
        # saturate, z * gamma + beta, round; the divider's stages carried a channel index
        # instead of gamma and beta
        y = affine.apply(nl, z, affine.gamma.data, affine.beta.data, p.norm_fmt, p.out_fmt)
        self.depths = SimpleNamespace(stats=rows.depth, norm=out.emit(y))
        return m

    def _divide(self, nl: Levels, s, wd, read_affine):
        """z = |d| / std: floor(|d| 2^(fz+1) / std) one bit per level, rounded, signed."""
        p = self.params
        fz = p.norm_fmt.frac_bits
        qb = p.norm_fmt.width  # quotient bits: |z| < 2^(int_bits - 1) with fz + 1 fraction bits
        e = qb - fz - 1  # dividend bits above the quotient's alignment
        mag = Mux(s.num < 0, -s.num, s.num)
        s = nl.next(mag=(mag, unsigned(wd.num - 1)), neg=s.num < 0, scale=s.scale, j=s.j)
        # the quotient overflows (|z| >= 2^e) when |d| >> e >= std: force it to all ones
        # then, which rounds to the saturating 2^(qb-1); otherwise the remainder starts at |d| >> e
        top = s.mag >> e
        ovf = top >= s.scale
        s = nl.next(
            rem=(Mux(ovf, 0, top), unsigned(wd.scale)),
            low=(s.mag[:e] if e else Const(0, 1)),
            q=Const(0, qb),
            ovf=ovf,
            neg=s.neg,
            scale=s.scale,
            j=s.j,
        )
        for k in range(qb):
            bit = s.low[e - 1 - k] if k < e else Const(0, 1)
            trial = Cat(bit, s.rem)
            ge = trial >= s.scale
            s = nl.next(
                rem=(Mux(ge, trial - s.scale, trial)[: wd.scale], unsigned(wd.scale)),
                low=s.low,
                q=(Cat(ge, s.q[:-1]), unsigned(qb)),
                ovf=s.ovf,
                neg=s.neg,
                scale=s.scale,
                j=s.j,
            )
        q = Mux(s.ovf, (1 << qb) - 1, s.q)
        zmag = (q + 1) >> 1
        read_affine(s.j)
        return nl.next(z=Mux(s.neg, -zmag, zmag)).z

    def _multiply(self, nl: Levels, s, wd, read_affine):
        """z = d * (1/std) rounded half up: |d| * inv on DSP-sized parts, then the sign."""
        p = self.params
        mag = Mux(s.num < 0, -s.num, s.num)
        s = nl.next(mag=(mag, unsigned(wd.num - 1)), neg=s.num < 0, scale=s.scale, j=s.j)
        s = nl.mul({"prod": (s.mag, s.scale)}, neg=s.neg, j=s.j)
        sh = p.num_frac + p.table_fmt.frac_bits - p.norm_fmt.frac_bits
        half = 1 << (sh - 1)
        # round half up of -P is -((P + half - 1) >> sh)
        up = (s.prod + half) >> sh
        down = (s.prod + (half - 1)) >> sh
        read_affine(s.j)
        return nl.next(z=Mux(s.neg, -down, up)).z
