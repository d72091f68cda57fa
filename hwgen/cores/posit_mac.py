"""Mixed Posit4 / FixP4 dot-product engine (and its all-FixP and all-posit baselines).

The arithmetic is :func:`golden.posit_mac.emulate`; how each lane forms its product is
:func:`golden.posit_mac.tables`' ``plan`` (:class:`golden.posit_mac.LanePlan`).
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from golden import posit_mac as golden_mac
from golden.posit_mac import MacMode, MacParams

from ..lib.pipeline import Levels, Stages, fix_shape

__all__ = ["MacEngine"]

#: Output FIFO entries beyond the results that can be in flight (the buffered FIFO holds up
#: to two while it is read every clock, so four keep the input ready at full rate).
_FIFO_SLACK = 4
#: Clocks from a FIFO write to the entry being readable (SyncFIFOBuffered: the FIFO, then
#: its output register, which keeps ``o.payload`` a register rather than a memory read).
_FIFO_LATENCY = 2


def _bits(lo: int, hi: int) -> int:
    """Width of the signed word that holds every integer in ``lo .. hi``."""
    return 1 + max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length())


class _TermCode:
    """How a term's state travels in the input register: as a code for its state (compact),
    or as a shift select and a sign bit (split: the sign of the zero state is free, so it can
    follow whichever weight bits are simplest), whichever needs no more 4-input LUTs per bit
    of the term. Codes are assigned so that each register bit depends on as few of the
    weight's 5 bits (format, pattern) as possible, which keeps the decode small.

    Parameters
    ----------
    states : tuple of (int, int)
        The plan's states of this term.
    picks : list of int
        The state of every weight (by weight index).
    """

    def __init__(self, states, picks):
        self.states = states
        self.shifts = sorted({sh for sg, sh in states if sg})
        sel_bits = len(self.shifts).bit_length()
        compact_bits = (len(states) - 1).bit_length()
        self.split = _lut4(len(self.shifts) + sel_bits + 1) <= _lut4(
            len(self.shifts) + compact_bits
        )
        if self.split:
            sel = [1 + self.shifts.index(states[k][1]) if states[k][0] else 0 for k in picks]
            self.sel_code = _assign_codes(sel, sel_bits)
            zero = {i for i, k in enumerate(picks) if not states[k][0]}
            negs = _fill_free([int(states[k][0] < 0) for k in picks], zero)
            self.table = [self.sel_code[v] | n << sel_bits for v, n in zip(sel, negs, strict=True)]
            self.sel_bits, self.width = sel_bits, sel_bits + 1
        else:
            self.state_code = _assign_codes(list(picks), compact_bits)
            self.table = [self.state_code[k] for k in picks]
            self.width = compact_bits

    def term(self, m: Module, code, a, name: str):
        """The term for ``code`` as ``(copy, negative)``: the shifted copy of ``a`` (or 0),
        and whether the term is its negative (combinational)."""
        copy = Signal(signed(len(a) + max(self.shifts)), name=f"{name}_copy")
        negative = Signal(name=f"{name}_neg")
        zero = Const(0, signed(len(a)))
        if self.split:
            options = [zero] * (1 << self.sel_bits)
            for v, c in self.sel_code.items():
                options[c] = a << self.shifts[v - 1] if v else zero
            sel = code[: self.sel_bits]
            m.d.comb += [copy.eq(_select(options, sel)), negative.eq(code[-1])]
        else:
            options, signs = [zero] * (1 << self.width), [0] * (1 << self.width)
            for k, c in self.state_code.items():
                sg, sh = self.states[k]
                options[c], signs[c] = (a << sh if sg else zero), int(sg < 0)
            m.d.comb += [copy.eq(_select(options, code)), negative.eq(_rom(signs, 1, code))]
        return copy, negative


def _decode_cost(table, bits: int) -> int:
    """4-input LUTs to decode ``table`` (register bits by weight index) from the index."""
    return sum(_lut4(len(_support([(v >> b) & 1 for v in table]))) for b in range(bits))


def _assign_codes(values, bits: int) -> dict:
    """A code of ``bits`` bits for each distinct value in ``values`` (by weight index),
    chosen among the assignments to need the fewest LUTs to decode (first found on ties; the
    first 5040 assignments are tried: every one for values that fit 2 bits, the plans' usual
    case)."""
    distinct = sorted(set(values))
    best = None
    candidates = itertools.permutations(range(1 << bits), len(distinct))
    for codes in itertools.islice(candidates, 5040):
        table = [codes[distinct.index(v)] for v in values]
        cost = _decode_cost(table, bits)
        if best is None or cost < best[0]:
            best = (cost, dict(zip(distinct, codes, strict=True)))
    return best[1]


def _fill_free(bits, free: set) -> list:
    """``bits`` (by weight index) with the entries in ``free`` set so that the result depends
    on as few index bits as possible."""
    n = (len(bits) - 1).bit_length()
    for size in range(n + 1):
        for support in itertools.combinations(range(n), size):
            groups, ok = {}, True
            for i, v in enumerate(bits):
                if i not in free and groups.setdefault(_project(i, support), v) != v:
                    ok = False
                    break
            if ok:
                return [groups.get(_project(i, support), 0) for i in range(len(bits))]
    return list(bits)


def _project(i: int, support) -> tuple:
    return tuple((i >> b) & 1 for b in support)


def _rom(values, width: int, index):
    """``values[index]`` as ``width``-bit words (combinational; a constant's part select, so
    the Verilog is a continuous assignment that every simulator evaluates from time 0)."""
    packed = sum((int(v) & ((1 << width) - 1)) << (width * k) for k, v in enumerate(values))
    return Const(packed, width * len(values)).word_select(index, width)


def _select(options, index):
    """``options[index]`` of signed values, each sign-extended to the widest (combinational,
    a part select like :func:`_rom`)."""
    width = max(len(v) for v in options)
    extended = [Cat(v, v[-1].replicate(width - len(v))) for v in options]
    return Cat(*extended).word_select(index, width).as_signed()


def _support(values) -> set[int]:
    """The index bits that a table ``values[index]`` depends on."""
    n = (len(values) - 1).bit_length()
    return {b for b in range(n) for i in range(len(values)) if values[i] != values[i ^ (1 << b)]}


def _lut4(inputs: int) -> int:
    """4-input LUTs for a function of ``inputs`` inputs (ECP5's wide functions)."""
    return 2 ** max(0, inputs - 4)


class MacEngine(wiring.Component):
    """``lanes`` products per clock, an adder tree and an exact accumulator.

    A dot product is a run of beats from one with ``first`` (which clears the accumulator) to
    one with ``last`` (whose accumulator value is sent out); beats without ``first`` keep
    accumulating, so a long dot product is split over as many beats as it needs and short
    ones can share nothing. Unused lanes carry weight pattern 0 (zero in both formats). At most
    ``max_terms`` products may go into one accumulator value.

    No multiplier: each lane forms ``(t0 + t1) << e`` from its weight's plan indices
    (``tables(p).plan``, a function of the format bit and pattern), each term zero or a
    signed shifted copy of the activation. The indices are decoded as the beat comes in,
    except where the term logic can read the weight's own bits as cheaply (the baselines).
    A negative term is the one's complement of its copy; the ones it lacks come back as
    carry-ins: the first term's in the lane's adder, the other one (set into the bits the
    post-shift brings in, so that it is worth 1 at any shift) in an adder of the tree or the
    accumulator. A tree over ``lanes`` values has ``lanes - 1`` adders, so with the
    accumulator there is exactly one carry-in per lane. Every word is as wide as its exact
    range. The ``posit`` baseline turns its posit activation into fixed point with a
    16-entry table as the beat comes in.

    Parameters
    ----------
    params : MacParams

    Members
    -------
    i : In(stream.Signature(StructLayout({w, w_is_posit, a, first, last})))
        ``w``: ``lanes`` 4-bit weight patterns; ``w_is_posit``: one format bit per lane
        (ignored by the baselines, which have one weight format); ``a``: ``lanes`` activation
        codes (``act_fmt``; posit patterns in ``posit`` mode).
    o : Out(stream.Signature(signed(acc_width)))
        One ``acc_fmt`` code per dot product.
    latency : int
        Clocks from accepting a ``last`` beat to its result being valid, without
        back-pressure: 5 + ceil(log2(lanes)) (input register, lane register, one register
        per adder-tree level, the accumulator, then two clocks through the output FIFO).
        One beat per clock is accepted while the FIFO has room for every result that can be
        in flight, which holds at full rate whenever ``o`` is read.
    """

    def __init__(self, params: MacParams | None = None):
        if params is None:
            params = MacParams()
        if not isinstance(params, MacParams):
            raise TypeError(f"params must be a MacParams, not {params!r}")
        self.params = params
        a_shape = unsigned(4) if params.mode is MacMode.POSIT else fix_shape(params.act_fmt)
        layout = data.StructLayout(
            {
                "w": data.ArrayLayout(unsigned(4), params.lanes),
                "w_is_posit": unsigned(params.lanes),
                "a": data.ArrayLayout(a_shape, params.lanes),
                "first": 1,
                "last": 1,
            }
        )
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(fix_shape(params.acc_fmt))),
            }
        )

    @property
    def tree_depth(self) -> int:
        return (self.params.lanes - 1).bit_length()

    @property
    def _pipe_depth(self) -> int:
        # registers before the FIFO write: the input, the lane products, the adder tree, the
        # accumulator
        return 3 + self.tree_depth

    @property
    def latency(self) -> int:
        return self._pipe_depth + _FIFO_LATENCY

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = golden_mac.tables(p)
        plan = t.plan
        # The pipeline runs freely (no stall enable fanned out to every register, which
        # limited the clock); results go into a FIFO that always has room for everything in
        # flight, and the input is ready only while it does.
        depth = self._pipe_depth + _FIFO_SLACK
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=p.acc_fmt.width, depth=depth)
        m.d.comb += [
            self.i.ready.eq(fifo.level <= depth - self._pipe_depth - 1),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        lv = Levels(Stages(m), "mac")

        # 1: input register: the activations as they come, each weight as its plan indices
        # (a function of its format bit and pattern, decoded from the port)
        beat = self.i.payload
        row = {MacMode.MIXED: None, MacMode.FIXP: 0, MacMode.POSIT: 1}[p.mode]
        picks = plan.pick[0] + plan.pick[1] if row is None else plan.pick[row]
        codes = [
            _TermCode(states, [pick[1 + j] for pick in picks]) if len(states) > 1 else None
            for j, states in enumerate(plan.states)
        ]
        e_bits = (len(plan.post_shifts) - 1).bit_length()
        e_code = _assign_codes([e for e, _, _ in picks], e_bits)

        if p.mode is MacMode.POSIT:
            a_lo, a_hi = int(t.a_int.min()), int(t.a_int.max())
            a_bits = _bits(a_lo, a_hi)
        else:
            a_lo, a_hi, a_bits = p.act_fmt.min_code, p.act_fmt.max_code, p.act_fmt.width
        roms = {}  # field -> (register bits by weight index, shape)
        if len(plan.post_shifts) > 1:
            roms["e"] = ([e_code[e] for e, _, _ in picks], unsigned(e_bits))
        for j, code in enumerate(codes):
            if code is not None:
                roms[f"s{j}"] = (code.table, unsigned(code.width))
        # Decode where it is cheaper: after the input register when every field depends on no
        # more of the weight's bits than it has itself (the term logic then reads those bits
        # as it would read the field: the baselines' two's complement and posit patterns),
        # else as the beat comes in (the mixed lane's 5-bit decode stays out of its terms).
        decode_in_lane = all(len(_support(v)) <= shape.width for v, shape in roms.values())

        def decode(index):
            return {
                f: (_rom(values, shape.width, index), shape) for f, (values, shape) in roms.items()
            }

        fields = {}
        for k in range(p.lanes):
            index = beat.w[k] if row is not None else Cat(beat.w[k], beat.w_is_posit[k])
            if decode_in_lane:
                fields[f"l{k}w"] = index
            else:
                fields.update({f"l{k}{f}": v for f, v in decode(index).items()})
            if p.mode is MacMode.POSIT:
                # the posit activation's value in fixed point (a 16-entry table), decoded as
                # it comes in: inside the term logic it would widen every term bit's function
                fields[f"l{k}a"] = (_rom(t.a_int, a_bits, beat.a[k]).as_signed(), signed(a_bits))
            else:
                fields[f"l{k}a"] = beat.a[k]
        s = lv.next(**fields, first=beat.first, last=beat.last)
        if decode_in_lane:
            for k in range(p.lanes):
                for f, (v, shape) in decode(getattr(s, f"l{k}w")).items():
                    sig = Signal(shape, name=f"mac_l{k}{f}")
                    m.d.comb += sig.eq(v)
                    setattr(s, f"l{k}{f}", sig)
        valid = Stages(m).valid_stage(self.i.valid & self.i.ready, "mac_valid1")

        # 2: each lane's (t0 + t1), the first term's correction as the adder's carry-in
        lane_q = {}
        for k in range(p.lanes):
            a = getattr(s, f"l{k}a").as_signed()
            terms, negs = [], []
            for j, code in enumerate(codes):
                if code is None:
                    continue
                copy, negative = code.term(m, getattr(s, f"l{k}s{j}"), a, f"mac_l{k}t{j}")
                terms.append(Mux(negative, ~copy, copy))  # one's complement: -copy - 1
                negs.append(negative)
            q = terms[0] if len(terms) == 1 else terms[0] + terms[1] + negs[0]
            lo, hi = self._q_range(plan, a_lo, a_hi)
            lane_q[f"l{k}q"] = (q, signed(_bits(lo, hi)))
            lane_q[f"l{k}n"] = negs[-1]
            if len(plan.post_shifts) > 1:
                lane_q[f"l{k}e"] = getattr(s, f"l{k}e")
        s = lv.next(**lane_q, first=s.first, last=s.last)
        valid = Stages(m).valid_stage(valid, "mac_valid2")

        # the products, less each lane's pending correction: (q << e) with the ones the shift
        # brings in set where the correction is pending (then it owes 1 at any shift)
        p_lo, p_hi = int(t.products.min()) - 1, int(t.products.max())
        words, owed = [], []
        for k in range(p.lanes):
            q, n = getattr(s, f"l{k}q"), getattr(s, f"l{k}n")
            shifted = [q] * (1 << e_bits)
            for k_e, e in enumerate(plan.post_shifts):
                shifted[e_code[k_e]] = Cat(n.replicate(e), q).as_signed() if e else q
            value = Signal(signed(_bits(p_lo, p_hi)), name=f"mac_l{k}p")
            if len(shifted) == 1:
                m.d.comb += value.eq(shifted[0])
            elif len(shifted) == 2:
                m.d.comb += value.eq(Mux(getattr(s, f"l{k}e"), shifted[1], shifted[0]))
            else:
                m.d.comb += value.eq(_select(shifted, getattr(s, f"l{k}e")))
            words.append((value, p_lo, p_hi))
            owed.append(n)

        # 3 ..: adder tree, one level of pairwise sums per clock, each adder paying one
        # correction as its carry-in
        first, last = s.first, s.last
        for level_k in range(self.tree_depth):
            sums = []
            for k in range(0, len(words), 2):
                if k + 1 == len(words):
                    sums.append(words[k])
                    continue
                (u, u_lo, u_hi), (v, v_lo, v_hi) = words[k], words[k + 1]
                lo, hi = u_lo + v_lo, u_hi + v_hi + 1
                sums.append(((u + v + owed.pop())[: _bits(lo, hi)].as_signed(), lo, hi))
            level = lv.next(
                **{f"sum{k}": value for k, (value, _, _) in enumerate(sums)},
                **{f"owed{k}": c for k, c in enumerate(owed)},
                first=first,
                last=last,
            )
            words = [(getattr(level, f"sum{k}"), lo, hi) for k, (_, lo, hi) in enumerate(sums)]
            owed = [getattr(level, f"owed{k}") for k in range(len(owed))]
            first, last = level.first, level.last
            valid = Stages(m).valid_stage(valid, f"mac_valid_tree{level_k}")
        ((total, _, _),) = words
        (carry,) = owed

        # last: accumulate, and a `last` beat's value goes into the FIFO
        acc = Signal(fix_shape(p.acc_fmt), name="acc")
        acc_next = Signal(fix_shape(p.acc_fmt), name="acc_next")
        m.d.comb += acc_next.eq(Mux(first, 0, acc) + total + carry)
        out_valid = Signal(name="acc_valid")
        m.d.sync += out_valid.eq(valid & last)
        with m.If(valid):
            m.d.sync += acc.eq(acc_next)
        m.d.comb += [fifo.w_data.eq(acc), fifo.w_en.eq(out_valid)]
        return m

    @staticmethod
    def _q_range(plan, a_lo: int, a_hi: int) -> tuple[int, int]:
        """Range of a lane's ``t0 + t1 + carry``: its product before the post-shift, less the
        second term's pending correction."""
        lo = hi = 0
        for picks in plan.pick:
            for _, *ks in picks:
                digits = [plan.states[j][k] for j, k in enumerate(ks)]
                weight = sum(sg << sh for sg, sh in digits)
                owed = int(digits[-1][0] < 0) if len(plan.states[1]) > 1 else int(digits[0][0] < 0)
                for a in (a_lo, a_hi):
                    lo, hi = min(lo, weight * a - owed), max(hi, weight * a)
        return lo, hi
