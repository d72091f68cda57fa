"""Built-in self-test around one operator: LFSR stimulus, MISR signature, baked-in prediction.

:class:`SelfTest` is the top level of ``make bitstream`` (inside the board wrapper of
:mod:`hwgen.flows.bitstream`) and of the cocotb self-test in ``sim/test_bist.py``. It

1. draws every input beat of the operator from a maximal-length LFSR (codes, the row framing of
   softmax and LayerNorm, the gamma / beta loads of LayerNorm, the weight patterns, formats and
   dot-product framing of the MAC), offering one beat per clock;
2. reads every output on every clock (no back-pressure: the operator runs at full rate);
3. compresses each output word into a 32-bit MISR;
4. compares the signature with the one :func:`predict` computed at build time from
   ``golden.<op>.emulate`` on the same beats, and shows running / pass / fail, plus a UART
   line with the signature, the expected signature and the clock count.

The stimulus is a pure function of the beat index: the LFSR advances only on an accepted beat,
so stalls inside the operator change the clock count, never the sequence or the signature.

The LFSR sequence, the MISR signature and the UART are the reusable gateware of
:mod:`hwgen.lib.selftest`, which defines both and gives their Python models; a beat ``t`` is
the ``B`` bits of LFSR step ``t`` (``B`` = :attr:`Stimulus.beat_bits`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from golden.formats import FixFormat

from .. import registry
from ..lib.selftest import (
    LFSR_DEGREE,
    MISR_WIDTH,
    Lfsr,
    Misr,
    UartTx,
    lfsr_bits,
    misr_signature,
    mux_tree,
)
from ..registry import Interface

__all__ = [
    "BistParams",
    "Prediction",
    "Stimulus",
    "stimulus",
    "predict",
    "SelfTest",
    "report_text",
]

#: random framing bits per beat: a row (or dot product) ends when they are all zero (1 in 16)
FRAME_BITS = 4
#: clocks without any handshake before the self-test gives up (reported as HANG)
WATCHDOG_BITS = 16


@dataclass(frozen=True)
class BistParams:
    """What the self-test runs: one operator configuration and its stimulus sequence.

    Parameters
    ----------
    op : str
        Operator name in :data:`hwgen.registry.OPERATORS`.
    params : Params, optional
        The operator's configuration (default: its defaults).
    beats : int
        Input beats of the run (elements; MAC: beats of ``lanes`` products), 1 to 2^24.
    row_max : int
        Longest row (softmax, LayerNorm; at most ``max_len``) or dot product in beats (MAC;
        ``row_max * lanes`` at most ``max_terms``). Rows also end at random (1 in 16 beats).
    seed : int
        Initial LFSR state, 1 to 2^31 - 1.
    """

    op: str
    params: object = None
    beats: int = 2048
    row_max: int = 32
    seed: int = 0x5EED_B157

    def __post_init__(self):
        entry = registry.get(self.op)
        if self.params is None:
            object.__setattr__(self, "params", entry.params())
        if not isinstance(self.params, entry.params):
            raise TypeError(
                f"bist params must be a {entry.params.__name__} for {self.op}, not {self.params!r}"
            )
        for name, value, lo, hi in (
            ("beats", self.beats, 1, 1 << 24),
            ("row_max", self.row_max, 1, 1 << 16),
            ("seed", self.seed, 1, (1 << LFSR_DEGREE) - 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"bist {name} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"bist {name} must be {lo} to {hi}, not {value!r}")
        stimulus(self)  # checks row_max against the operator

    @property
    def name(self) -> str:
        return f"bist_{self.params.name}_b{self.beats}_r{self.row_max}"


# -- stimulus adapters: how beats become operator inputs, per kind of interface ----------------


def _sext_narrow(fmt: FixFormat) -> int:
    """Bits of the narrow code range (about +-4 in value, where the functions bend)."""
    return min(fmt.width, fmt.frac_bits + 3)


def _field(bits: np.ndarray, lo: int, width: int) -> np.ndarray:
    """Unsigned integer of ``bits[:, lo:lo+width]`` (bit lo is the LSB) per row."""
    weights = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
    return bits[:, lo : lo + width].astype(np.int64) @ weights


def _code_py(raw: np.ndarray, sel: np.ndarray, fmt: FixFormat) -> np.ndarray:
    """Codes from raw bits: full range when ``sel``, else the narrow range (sign-extended)."""
    nb = _sext_narrow(fmt)
    narrow = raw & ((1 << nb) - 1)
    if fmt.signed:
        narrow = narrow - ((narrow >> (nb - 1)) << nb)
    return np.where(sel != 0, fmt.from_bits(raw), narrow)


def _code_hw(raw, sel, fmt: FixFormat):
    nb = _sext_narrow(fmt)
    full = raw.as_signed() if fmt.signed else raw
    narrow = raw[:nb].as_signed() if fmt.signed else raw[:nb]
    return Mux(sel, full, narrow)


def _sext_py(raw: np.ndarray, width: int) -> np.ndarray:
    return raw - ((raw >> (width - 1)) << width)


@dataclass
class Stimulus:
    """How one operator interface is fed from LFSR beats and what it answers.

    Subclasses fill in the layout of a beat and the two sides of the mapping: hardware
    (:meth:`drive`, Amaranth) and model (:meth:`expected_words`, NumPy through
    ``golden.<op>.emulate``).

    Members
    -------
    beat_bits : int
        LFSR bits per beat.
    load_beats : int
        Beats spent on parameter loads before the run (LayerNorm's gamma and beta).
    out_width : int
        Bits of an output word as the MISR sees it (the whole output payload).
    """

    bist: BistParams
    beat_bits: int = 0
    load_beats: int = 0
    out_width: int = 0
    framed: bool = field(default=False)

    @property
    def p(self):
        return self.bist.params

    @property
    def golden(self):
        return registry.get(self.bist.op).golden

    def framing(self, bits: np.ndarray) -> np.ndarray:
        """Per run beat: 1 where a row (dot product) ends (model of the hardware's rule)."""
        frame = _field(bits, self.beat_bits - FRAME_BITS, FRAME_BITS)
        last = np.zeros(len(bits), dtype=bool)
        idx = 0
        for t in range(len(bits)):
            last[t] = frame[t] == 0 or idx == self.bist.row_max - 1 or t == len(bits) - 1
            idx = 0 if last[t] else idx + 1
        return last

    def rows(self, bits: np.ndarray) -> list[slice]:
        ends = np.flatnonzero(self.framing(bits)) + 1
        starts = np.concatenate([[0], ends[:-1]])
        return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


class _ElementStim(Stimulus):
    """One code per beat, one result per beat (GELU and anything with a plain payload)."""

    def __init__(self, bist):
        w = bist.params.in_fmt.width
        super().__init__(bist, beat_bits=w + 1, out_width=bist.params.out_fmt.width)

    def drive(self, m, dut, beat, ctx):
        w = self.p.in_fmt.width
        m.d.comb += dut.i.payload.eq(_code_hw(beat[:w], beat[w], self.p.in_fmt))

    def expected_words(self, load_bits, bits):
        w = self.p.in_fmt.width
        codes = _code_py(_field(bits, 0, w), bits[:, w], self.p.in_fmt)
        return self.p.out_fmt.to_bits(self.golden.emulate(self.p, codes))


class _RowStim(Stimulus):
    """Row-framed codes; with ``affine``, the vectors of the parameter port are loaded first
    (one channel a beat, each vector in its ``<name>_fmt``)."""

    def __init__(self, bist, affine: bool):
        p = bist.params
        if bist.row_max > p.max_len:
            raise ValueError(
                f"bist row_max must be at most the {bist.op} max_len {p.max_len}, "
                f"not {bist.row_max}"
            )
        w = p.in_fmt.width
        run_bits = w + 1 + FRAME_BITS
        self.affine = affine
        load_bits = self._vector_bits(bist) if affine else {}
        super().__init__(
            bist,
            beat_bits=max(run_bits, sum(load_bits.values())),
            load_beats=bist.row_max if affine else 0,
            out_width=p.out_fmt.width + 2,
            framed=True,
        )

    @staticmethod
    def _vector_bits(bist) -> dict[str, int]:
        """Random bits of each parameter vector: about +-2 in value, sign-extended."""
        names = registry.get(bist.op).golden.row_params(bist.params, 1)
        fmts = {name: getattr(bist.params, f"{name}_fmt") for name in names}
        return {name: min(f.width, f.frac_bits + 2) for name, f in fmts.items()}

    def load(self, m, dut, beat, idx):
        pl = dut.affine.payload
        m.d.comb += pl.addr.eq(idx)
        lo = 0
        for name, nb in self._vector_bits(self.bist).items():
            m.d.comb += pl[name].eq(beat[lo : lo + nb].as_signed())
            lo += nb

    def drive(self, m, dut, beat, ctx):
        w = self.p.in_fmt.width
        m.d.comb += [
            dut.i.payload.data.eq(_code_hw(beat[:w], beat[w], self.p.in_fmt)),
            dut.i.payload.last.eq(ctx.last),
        ]

    def expected_words(self, load_bits, bits):
        p = self.p
        w = p.in_fmt.width
        codes = _code_py(_field(bits, 0, w), bits[:, w], p.in_fmt)
        vectors, lo = [], 0
        for nb in (self._vector_bits(self.bist) if self.affine else {}).values():
            vectors.append(_sext_py(_field(load_bits, lo, nb), nb))
            lo += nb
        wo = p.out_fmt.width
        words = []
        for row in self.rows(bits):
            x = codes[row]
            d = len(x)
            y = self.golden.emulate(p, x, *(v[:d] for v in vectors))
            flags = np.zeros(d, dtype=np.int64)
            flags[0] |= 1 << wo
            flags[-1] |= 1 << (wo + 1)
            words.append(p.out_fmt.to_bits(y) | flags)
        return np.concatenate(words)


class _MacStim(Stimulus):
    """Beats of ``lanes`` (weight pattern, format, activation), dot products framed at random."""

    def __init__(self, bist):
        p = bist.params
        if bist.row_max * p.lanes > p.max_terms:
            raise ValueError(
                f"bist row_max * lanes must be at most the {bist.op} max_terms {p.max_terms}, "
                f"not {bist.row_max * p.lanes}"
            )
        fields = registry.get(bist.op).golden.dot_fields(p)
        self.mixed = fields.formats_used
        self.a_bits, self.a_signed = fields.a_bits, fields.a_signed
        bits = p.lanes * (4 + self.a_bits + (1 if self.mixed else 0)) + FRAME_BITS
        super().__init__(bist, beat_bits=bits, out_width=p.acc_fmt.width, framed=True)

    def _offsets(self):
        lanes = self.p.lanes
        return 0, 4 * lanes, 4 * lanes + self.a_bits * lanes  # w, a, fmt

    def drive(self, m, dut, beat, ctx):
        lanes = self.p.lanes
        ow, oa, of = self._offsets()
        pl = dut.i.payload
        for k in range(lanes):
            m.d.comb += pl.w[k].eq(beat[ow + 4 * k : ow + 4 * k + 4])
            a_raw = beat[oa + self.a_bits * k : oa + self.a_bits * (k + 1)]
            m.d.comb += pl.a[k].eq(a_raw)
        m.d.comb += [
            pl.w_is_posit.eq(beat[of : of + lanes] if self.mixed else 0),
            pl.first.eq(ctx.first),
            pl.last.eq(ctx.last),
        ]

    def expected_words(self, load_bits, bits):
        p = self.p
        lanes = p.lanes
        ow, oa, of = self._offsets()
        w = np.stack([_field(bits, ow + 4 * k, 4) for k in range(lanes)], axis=1)
        a_raw = np.stack([_field(bits, oa + self.a_bits * k, self.a_bits) for k in range(lanes)], 1)
        a = _sext_py(a_raw, self.a_bits) if self.a_signed else a_raw
        fmt = bits[:, of : of + lanes].astype(bool) if self.mixed else None
        words = []
        for row in self.rows(bits):
            f = fmt[row].ravel() if fmt is not None else None
            acc = self.golden.emulate(p, w[row].ravel(), a[row].ravel(), f)
            words.append(int(p.acc_fmt.to_bits(acc)))
        return np.array(words, dtype=np.int64)


def stimulus(bist: BistParams) -> Stimulus:
    """The stimulus adapter of ``bist.op``, chosen by its interface kind (:mod:`hwgen.registry`):
    one code per beat for an element stream, random rows for the row kinds (``row_param``:
    the vectors of its ``affine`` port loaded first), random dot products of ``lanes`` terms
    a beat for a dot-product stream. :class:`SelfTest` checks the ports agree."""
    kind = registry.get(bist.op).interface
    if kind is Interface.DOT:
        return _MacStim(bist)
    if kind.rows:
        return _RowStim(bist, affine=kind is Interface.ROW_PARAM)
    return _ElementStim(bist)


def _check_ports(stim: Stimulus, dut) -> None:
    """Raise unless the component's ports are the ones ``stim`` drives."""
    members = dut.signature.members
    shape = members["i"].signature.members["payload"].shape
    fields = set(shape.members) if isinstance(shape, data.StructLayout) else set()
    want = {
        _ElementStim: set(),
        _RowStim: {"data", "last"},
        _MacStim: {"w", "w_is_posit", "a", "first", "last"},
    }[type(stim)]
    affine = isinstance(stim, _RowStim) and stim.affine
    if fields != want or affine != ("affine" in members):
        raise ValueError(
            f"the {stim.bist.op} component's ports do not match its self-test stimulus: input "
            f"payload fields {sorted(fields)}, expected {sorted(want)}"
            + (" and an affine port" if affine else "")
        )


# -- the prediction ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What the golden model says the self-test must end with.

    Members
    -------
    signature : int
        The MISR value after the last output.
    outputs : int
        Number of output words.
    words : ndarray
        The output words themselves (for diagnosis).
    """

    signature: int
    outputs: int
    words: np.ndarray


@functools.lru_cache(maxsize=16)
def predict(bist: BistParams) -> Prediction:
    """Run the LFSR model, the operator's ``emulate`` and the MISR model for ``bist``
    (cached: the board top and the self-test inside it ask for the same one)."""
    stim = stimulus(bist)
    n_total = stim.load_beats + bist.beats
    bits = lfsr_bits(bist.seed, n_total * stim.beat_bits).reshape(n_total, stim.beat_bits)
    words = stim.expected_words(bits[: stim.load_beats], bits[stim.load_beats :])
    return Prediction(misr_signature(words, stim.out_width), int(len(words)), words)


# -- hardware ---------------------------------------------------------------------------------


def _hex_digit(nibble):
    return Mux(nibble < 10, nibble + ord("0"), nibble + (ord("A") - 10))[:8]


def report_text(status: str, name: str, signature: int, expected: int, cycles: int) -> str:
    """The UART line the self-test sends (Python rendering of the hardware's message)."""
    return (
        f"{status} {name} signature={signature:08X} expected={expected:08X} cycles={cycles:08X}\r\n"
    )


class SelfTest(wiring.Component):
    """Self-test top: LFSR stimulus, the operator at full rate, MISR, verdict and UART report.

    Parameters
    ----------
    bist : BistParams
        Operator, configuration and sequence.
    expected : int, optional
        Signature to compare with; default :func:`predict`'s. A wrong value must show fail
        (the simulation checks that).
    uart_divisor : int
        Clocks per UART bit (clock frequency / baud rate).
    uart_gap : int
        Idle clocks between two repetitions of the report line.
    component : wiring.Component, optional
        The operator instance (default a fresh ``registry.component``); for mutation tests.

    Members
    -------
    running, passed, failed, hang : Out(1)
        Verdict: running until the last output arrived; then passed or failed (``failed``
        also when the watchdog saw no handshake for 2^16 clocks, which sets ``hang``).
    done : Out(1)
        The last expected output has been absorbed.
    misr : Out(32)
        The MISR (the signature so far).
    cycles : Out(32)
        Clocks from the end of reset to ``done``.
    tx : Out(1)
        UART (8N1) report, repeated: :func:`report_text`.
    """

    def __init__(
        self,
        bist: BistParams,
        *,
        expected: int | None = None,
        uart_divisor: int = 217,
        uart_gap: int = 1 << 20,
        component=None,
    ):
        if not isinstance(bist, BistParams):
            raise TypeError(f"bist must be a BistParams, not {bist!r}")
        for name, value in (("uart_divisor", uart_divisor), ("uart_gap", uart_gap)):
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer of at least 2, not {value!r}")
        self.bist = bist
        self.stim = stimulus(bist)
        self.prediction = predict(bist)
        self.expected = self.prediction.signature if expected is None else expected
        if not 0 <= self.expected < 1 << MISR_WIDTH:
            raise ValueError(f"expected signature must be a 32-bit value, not {expected!r}")
        self.uart_divisor = uart_divisor
        self.uart_gap = uart_gap
        self._component = component
        super().__init__(
            {
                "running": Out(1),
                "passed": Out(1),
                "failed": Out(1),
                "hang": Out(1),
                "done": Out(1),
                "misr": Out(MISR_WIDTH),
                "cycles": Out(32),
                "tx": Out(1, init=1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bist, stim = self.bist, self.stim
        dut = self._component or registry.component(bist.op, bist.params)
        _check_ports(stim, dut)
        m.submodules.dut = dut

        # ---- LFSR: one beat of B bits per accepted handshake --------------------------------
        m.submodules.lfsr = lfsr = Lfsr(stim.beat_bits, bist.seed)
        beat = lfsr.bits
        advance = lfsr.advance

        # ---- load phase (gamma / beta), then the run ----------------------------------------
        loading = Signal(init=int(stim.load_beats > 0))
        load_idx = Signal(range(max(stim.load_beats, 1) + 1))
        # (combinational signals are plain expressions, not assignments under m.If: Icarus
        # leaves such a process at its initial value until one of its inputs changes)
        load_step = Signal()
        if stim.load_beats:
            m.d.comb += [dut.affine.valid.eq(loading), load_step.eq(loading & dut.affine.ready)]
            stim.load(m, dut, beat, load_idx)
            with m.If(load_step):
                m.d.sync += load_idx.eq(load_idx + 1)
                with m.If(load_idx == stim.load_beats - 1):
                    m.d.sync += loading.eq(0)
        elif "affine" in dut.signature.members:
            m.d.comb += dut.affine.valid.eq(0)

        sent = Signal(range(bist.beats + 1))
        sending = ~loading & (sent < bist.beats)
        accept = Signal()
        m.d.comb += [
            dut.i.valid.eq(sending),
            accept.eq(sending & dut.i.ready),
            advance.eq(load_step | accept),
        ]
        with m.If(accept):
            m.d.sync += sent.eq(sent + 1)

        # row (dot product) framing from the beat's top bits and the position in the row
        ctx = _Framing(last=Signal(name="frame_last"), first=Signal(name="frame_first", init=1))
        if stim.framed:
            row_idx = Signal(range(bist.row_max))
            frame = beat[stim.beat_bits - FRAME_BITS :]
            m.d.comb += ctx.last.eq(
                (frame == 0) | (row_idx == bist.row_max - 1) | (sent == bist.beats - 1)
            )
            with m.If(accept):
                m.d.sync += [
                    row_idx.eq(Mux(ctx.last, 0, row_idx + 1)),
                    ctx.first.eq(ctx.last),
                ]
        stim.drive(m, dut, beat, ctx)

        # ---- outputs: always ready, each one into the MISR ----------------------------------
        word = Value.cast(dut.o.payload)
        m.submodules.misr = misr_unit = Misr(len(word))
        misr = misr_unit.value
        received = Signal(range(self.prediction.outputs + 1))
        done = Signal()
        m.d.comb += [dut.o.ready.eq(1), misr_unit.en.eq(dut.o.valid), misr_unit.data.eq(word)]
        with m.If(dut.o.valid):
            with m.If(~done):
                m.d.sync += received.eq(received + 1)
                with m.If(received == self.prediction.outputs - 1):
                    m.d.sync += done.eq(1)

        # ---- watchdog, clock count, verdict -------------------------------------------------
        quiet = Signal(WATCHDOG_BITS)
        hang = Signal()
        with m.If(accept | dut.o.valid | advance | done):
            m.d.sync += quiet.eq(0)
        with m.Else():
            m.d.sync += quiet.eq(quiet + 1)
            with m.If(quiet.all()):
                m.d.sync += hang.eq(1)
        cycles = Signal(32)
        with m.If(~done & ~hang):
            m.d.sync += cycles.eq(cycles + 1)
        match = misr == self.expected
        m.d.comb += [
            self.done.eq(done),
            self.hang.eq(hang),
            self.running.eq(~done & ~hang),
            self.passed.eq(done & ~hang & match),
            self.failed.eq(hang | (done & ~match)),
            self.misr.eq(misr),
            self.cycles.eq(cycles),
        ]

        self._uart(m, report=done | hang)
        return m

    def _uart(self, m, report):
        """8N1 transmitter repeating the report line once the verdict is known."""
        sig_l = Signal(MISR_WIDTH)
        cyc_l = Signal(32)
        status_l = Signal(2)  # 0 PASS, 1 FAIL, 2 HANG
        status = Mux(self.hang, 2, Mux(self.passed, 0, 1))
        names = ["PASS", "FAIL", "HANG", "HANG"]
        line = report_text("PASS", self.bist.name, 0, self.expected, 0)
        sig_at = line.index("signature=") + len("signature=")
        cyc_at = line.index("cycles=") + len("cycles=")
        items = []
        for pos, ch in enumerate(line):
            if pos < 4:
                items.append(mux_tree([Const(ord(n[pos]), 8) for n in names], status_l))
            elif sig_at <= pos < sig_at + 8:
                nib = 7 - (pos - sig_at)
                items.append(_hex_digit(sig_l[4 * nib : 4 * nib + 4]))
            elif cyc_at <= pos < cyc_at + 8:
                nib = 7 - (pos - cyc_at)
                items.append(_hex_digit(cyc_l[4 * nib : 4 * nib + 4]))
            else:
                items.append(Const(ord(ch), 8))
        n = len(items)
        m.submodules.uart = uart = UartTx(self.uart_divisor)
        pos = Signal(range(n))
        # the gap before each line ends with a snapshot of the values the line shows
        gap = Signal(range(self.uart_gap + 1), init=1)
        m.d.comb += [
            uart.i.payload.eq(mux_tree(items, pos)),
            uart.i.valid.eq(report & (gap == 0)),
            self.tx.eq(uart.tx),
        ]
        with m.If(uart.i.ready & report & (gap != 0)):
            m.d.sync += gap.eq(gap - 1)
            with m.If(gap == 1):
                m.d.sync += [
                    sig_l.eq(self.misr),
                    cyc_l.eq(self.cycles),
                    status_l.eq(status),
                ]
        with m.Elif(uart.i.ready & uart.i.valid):
            with m.If(pos == n - 1):
                m.d.sync += [pos.eq(0), gap.eq(self.uart_gap)]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)


@dataclass
class _Framing:
    last: Signal
    first: Signal
