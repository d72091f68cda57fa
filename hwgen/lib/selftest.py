"""Self-test gateware: a leaping LFSR, a MISR and an 8N1 UART transmitter, with their models.

Reusable on their own; :class:`hwgen.flows.bist.SelfTest` puts them around an operator.

Sequence (shared by :class:`Lfsr` and :func:`lfsr_bits`): bits ``s[0..30]`` are the seed (bit
``i`` of ``seed`` is ``s[i]``) and ``s[n] = s[n-31] ^ s[n-28]`` (x^31 + x^28 + 1, primitive,
period 2^31 - 1). Step ``t`` of an LFSR of ``width`` bits shows ``s[t*width .. t*width+width-1]``.

Signature (shared by :class:`Misr` and :func:`misr_signature`): ``m[0] = 0xFFFFFFFF``,
``m[k] = m[k-1] * x + d[k] mod P`` over GF(2) with P = x^32 + x^22 + x^2 + x + 1 (primitive),
``d[k]`` the k-th word (wider words folded by XOR of their 32-bit pieces). The hardware steps a
Galois register once per word; :func:`misr_signature` evaluates the closed form
``m[0] x^N + sum d[k] x^(N-k) mod P`` instead, an independent computation of the same value.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "LFSR_DEGREE",
    "LFSR_TAP",
    "MISR_WIDTH",
    "MISR_POLY",
    "MISR_INIT",
    "Lfsr",
    "Misr",
    "UartTx",
    "lfsr_bits",
    "fold_words",
    "misr_signature",
    "mux_tree",
]

#: LFSR recurrence s[n] = s[n - LFSR_DEGREE] ^ s[n - LFSR_TAP]
LFSR_DEGREE = 31
LFSR_TAP = 28
#: MISR width and its polynomial without the x^32 term: x^32 + x^22 + x^2 + x + 1
MISR_WIDTH = 32
MISR_POLY = (1 << 22) | (1 << 2) | (1 << 1) | 1
MISR_INIT = (1 << MISR_WIDTH) - 1


# -- models ------------------------------------------------------------------------------------


def lfsr_bits(seed: int, n: int) -> np.ndarray:
    """The first ``n`` bits of the LFSR sequence as a uint8 array.

    >>> lfsr_bits(1, 34).tolist()[28:]
    [0, 0, 0, 1, 0, 0]
    """
    s = np.zeros(max(n, LFSR_DEGREE) + LFSR_TAP, dtype=np.uint8)
    s[:LFSR_DEGREE] = [(seed >> i) & 1 for i in range(LFSR_DEGREE)]
    k = LFSR_DEGREE
    while k < n:  # LFSR_TAP new bits at once: each depends only on bits before k
        s[k : k + LFSR_TAP] = s[k - LFSR_DEGREE : k - LFSR_DEGREE + LFSR_TAP] ^ s[k - LFSR_TAP : k]
        k += LFSR_TAP
    return s[:n]


def fold_words(words, width: int) -> np.ndarray:
    """Words of ``width`` bits folded to :data:`MISR_WIDTH` bits (XOR of the pieces)."""
    words = [int(w) for w in np.asarray(words, dtype=object).ravel()]
    mask = (1 << MISR_WIDTH) - 1
    out = []
    for w in words:
        acc = 0
        for lo in range(0, max(width, 1), MISR_WIDTH):
            acc ^= (w >> lo) & mask
        out.append(acc)
    return np.array(out, dtype=np.uint64)


def _gf2_mod_table() -> list[int]:
    """(b * x^32) mod P for every byte b: the reduction of the top byte."""
    table = []
    for b in range(256):
        r = b << MISR_WIDTH
        for bit in range(MISR_WIDTH + 7, MISR_WIDTH - 1, -1):
            if r >> bit & 1:
                r ^= ((1 << MISR_WIDTH) | MISR_POLY) << (bit - MISR_WIDTH)
        table.append(r)
    return table


_MOD_TABLE = _gf2_mod_table()


def _gf2_mod(q: int) -> int:
    """Polynomial ``q`` (bit i: coefficient of x^i) modulo P, byte by byte from the top."""
    r = 0
    for byte in q.to_bytes((q.bit_length() + 7) // 8 or 1, "big"):
        top = r >> (MISR_WIDTH - 8)
        r = ((r << 8) & ((1 << MISR_WIDTH) - 1)) ^ _MOD_TABLE[top] ^ byte
    return r


def misr_signature(words, width: int = MISR_WIDTH, init: int = MISR_INIT) -> int:
    """Signature of words of ``width`` bits, from the closed form modulo P.

    The polynomial ``init x^N + sum_k d_k x^(N-k)`` is assembled one bit plane at a time
    (bit b of every word is one long bit string, shifted by b) and reduced once.

    >>> hex(misr_signature([], 8))
    '0xffffffff'
    >>> hex(misr_signature([1], 8))  # 0xffffffff * x + 1 mod P: the top bit feeds back
    '0xffbffff8'
    """
    d = fold_words(words, width)
    n = d.size
    q = init << n
    for b in range(MISR_WIDTH):
        plane = ((d >> np.uint64(b)) & np.uint64(1)).astype(np.uint8)[::-1]  # bit n-k: word k
        if plane.any():
            q ^= int.from_bytes(np.packbits(plane, bitorder="little").tobytes(), "little") << b
    return _gf2_mod(q)


# -- gateware ----------------------------------------------------------------------------------


def mux_tree(items: list, sel):
    """``items[sel]`` as a tree of 2:1 multiplexers on the bits of ``sel`` (combinational).

    Continuous assignments rather than the ``case`` process of an ``Array``, which Icarus
    leaves at X until one of its inputs changes.
    """
    if len(items) == 1:
        return items[0]
    even, odd = items[0::2], items[1::2] or items[-1:]
    return Mux(sel[0], mux_tree(odd, sel[1:]), mux_tree(even, sel[1:]))


class Lfsr(wiring.Component):
    """The sequence of :func:`lfsr_bits`, ``width`` new bits per step.

    The window of 31 sequence bits leaps ``width`` bits at once through an XOR network, so a
    step costs one clock whatever the width.

    Parameters
    ----------
    width : int
        Bits shown per step.
    seed : int
        Nonzero 31-bit seed.

    Members
    -------
    advance : In(1)
        Step to the next ``width`` bits at the next clock edge.
    bits : Out(width)
        The current step's bits (combinational from the window register).
    """

    def __init__(self, width: int, seed: int = 1):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"LFSR width must be a positive integer, not {width!r}")
        if not isinstance(seed, int) or not 0 < seed < 1 << LFSR_DEGREE:
            raise ValueError(f"LFSR seed must be a nonzero {LFSR_DEGREE}-bit integer, not {seed!r}")
        self.width, self.seed = width, seed
        super().__init__({"advance": In(1), "bits": Out(width)})

    def elaborate(self, platform):
        m = Module()
        window = Signal(LFSR_DEGREE, init=self.seed)
        seq = [window[i] for i in range(LFSR_DEGREE)]
        while len(seq) < self.width + LFSR_DEGREE:
            k = len(seq)
            seq.append(seq[k - LFSR_DEGREE] ^ seq[k - LFSR_TAP])
        m.d.comb += self.bits.eq(Cat(*seq[: self.width]))
        with m.If(self.advance):
            m.d.sync += window.eq(Cat(*seq[self.width : self.width + LFSR_DEGREE]))
        return m


class Misr(wiring.Component):
    """Multiple-input signature register: :func:`misr_signature` of the words it is given.

    Parameters
    ----------
    data_width : int
        Bits of an input word; wider than 32 bits, it is folded by XOR of its 32-bit pieces.

    Members
    -------
    en : In(1)
        Take ``data`` at the next clock edge.
    data : In(data_width)
        The word.
    value : Out(32)
        The signature so far (``0xFFFFFFFF`` after reset).
    """

    def __init__(self, data_width: int):
        self.data_width = data_width
        super().__init__({"en": In(1), "data": In(data_width), "value": Out(MISR_WIDTH)})

    def elaborate(self, platform):
        m = Module()
        misr = Signal(MISR_WIDTH, init=MISR_INIT)
        folded = Const(0, MISR_WIDTH)
        for lo in range(0, self.data_width, MISR_WIDTH):
            folded = folded ^ self.data[lo : lo + MISR_WIDTH]
        shifted = Cat(Const(0, 1), misr[: MISR_WIDTH - 1]) ^ Mux(misr[-1], MISR_POLY, 0)
        with m.If(self.en):
            m.d.sync += misr.eq(shifted ^ folded)
        m.d.comb += self.value.eq(misr)
        return m


class UartTx(wiring.Component):
    """8N1 UART transmitter: one byte from a stream at a time, LSB first.

    Parameters
    ----------
    divisor : int
        Clocks per bit (clock frequency / baud rate), at least 2.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ready while the line is idle (a byte is taken the clock it is offered).
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or divisor < 2:
            raise ValueError(f"UART divisor must be an integer of at least 2, not {divisor!r}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        baud = Signal(range(div))
        shreg = Signal(10, init=0x3FF)
        bits_left = Signal(range(11))
        m.d.comb += self.i.ready.eq(bits_left == 0)
        with m.If(bits_left != 0):
            with m.If(baud == 0):
                m.d.sync += [
                    baud.eq(div - 1),
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits_left.eq(bits_left - 1),
                ]
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        with m.Elif(self.i.valid):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                bits_left.eq(10),
                baud.eq(div - 1),
            ]
        m.d.comb += self.tx.eq(Mux(bits_left != 0, shreg[0], 1))
        return m
