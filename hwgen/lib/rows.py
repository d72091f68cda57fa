"""Row machinery shared by the row-stream operators (softmax, LayerNorm and their baselines).

A row-stream core stores each row in a bank of a block RAM while it gathers the row's
statistics, turns them into per-row constants once the row is complete, and streams the row
back out through a normalising pipeline with back-pressure. Each step works on its own bank,
so consecutive rows overlap. The steps, in the order a row meets them:

* :class:`RowWriter` (ingest) writes a row into a free bank; :class:`RowMax` tracks its
  maximum on the way.
* :class:`RowScan` streams complete rows through a free-running pipeline, claiming a bank of
  the next memory per row (softmax's exponential pass).
* :class:`RowSums` sums what leaves a pipeline, row by row, and latches the totals per bank.
* :class:`RowLaunch` (a pipelined unit) or :class:`RowUnitPort` (a sequential one with the
  start/idle/done protocol) computes the per-row constants, once per row, in bank order.
* :class:`RowReader` streams each row whose constants are known out through a
  :class:`~hwgen.lib.pipeline.StallPipeline`, with the first/last framing.

The hand-over between steps is a :class:`BankFlags` per condition ("full", "summed",
"ready", ...). Every pipeline here is a :class:`~hwgen.lib.pipeline.Levels` whose valid bit,
framing, element index and bank ride along as side-band values. :func:`row_ports` and
:class:`AffineMemories` give the ports and the LayerNorm gamma / beta memories.

Each family assembles them once: :class:`ScanRows` (the softmax cores) and :class:`StatRows`
(the LayerNorm cores), with the component bases :class:`ScanRowCore` and :class:`StatRowCore`
(on :class:`RowCore`), whose ``latency`` comes from the depths of the pipelines that
elaboration built (:func:`~hwgen.lib.pipeline.built`).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.formats import FixFormat

from .pipeline import Levels, Stages, StallPipeline, built, fix_shape, onehot, saturate

__all__ = [
    "index_width",
    "bank_memory",
    "TableRom",
    "bank_regs",
    "row_ports",
    "BankFlags",
    "RowWriter",
    "RowMax",
    "RowScan",
    "RowSums",
    "RowLaunch",
    "RowUnitPort",
    "RowReader",
    "AffineMemories",
    "RowCore",
    "ScanRows",
    "ScanRowCore",
    "StatRows",
    "StatRowCore",
]


def index_width(max_len: int) -> int:
    """Bits of an element index within a row of at most ``max_len`` elements."""
    return max(1, (max_len - 1).bit_length())


def bank_memory(shape, banks: int, idx_w: int) -> Memory:
    """A block RAM of ``banks`` row banks of ``2**idx_w`` entries, addressed ``Cat(index, bank)``.

    Its write port and read port never address the same bank in the same clock (a bank is
    written only while its flags keep every reader out, and read only once it is full), so a
    read/write collision cannot happen. The memory says so (``no_rw_check``): without it,
    Yosys adds soft logic that compares the two addresses every clock and muxes the write data
    past the block RAM, on the block RAM's slow output path.
    """
    return Memory(shape=shape, depth=banks << idx_w, init=[], attrs={"no_rw_check": 1})


#: Entries of one block RAM at 18 bits or less (RAMB18E1 and DP16KD as 1024 x 18).
_BLOCK_DEPTH = 1024


def _split_read(m: Module, name: str, mems, addr, en, data, lo_w: int) -> tuple[list, Signal]:
    """Read ports on ``mems`` (one block each, ``2**lo_w`` words) behind one address: the low
    ``lo_w`` bits address every block, the top bits enable only the one that holds the word,
    and ``data`` is the multiplexer over the blocks' outputs, selected by the top bits
    registered with the read. Returns the blocks' read data and the select register."""
    top = addr[lo_w:]
    sel = Signal(range(len(mems)), name=f"{name}_rsel")
    with m.If(en):
        m.d.sync += sel.eq(top)
    outs = []
    for k, mem in enumerate(mems):
        rp = mem.read_port()
        m.d.comb += [rp.addr.eq(addr[:lo_w]), rp.en.eq(en & (top == k))]
        outs.append(rp.data)
    m.d.comb += data.eq(Array(outs)[sel])
    return outs, sel


class BankedMemory:
    """Row banks in block RAM, with one write port and one read port addressed ``Cat(index,
    bank)`` (``addr``, ``data``, ``en`` as on a memory port; read data one clock after the
    address).

    Where a bank fills a block RAM (``2**idx_w`` of at least 1024 entries) each bank is a
    memory of its own and a port enables only the addressed bank's block: one block RAM
    access per element instead of one per block of a memory that Yosys splits by width (a
    4096 x 16 memory maps to four 4096 x 4 DP16KDs, all four enabled at every access; the
    split by depth is Vivado's ``RAM_DECOMP = "power"``). The read data is then a multiplexer
    over the banks, selected by the bank registered with the read. Smaller banks share one
    memory (:func:`bank_memory`), which takes one block for all of them.

    The multiplexer must not follow the block RAM's slow output in the same clock (on ECP5 a
    DP16KD's clock-to-output is 5.8 ns), so a reader registers the read data with
    :meth:`stage_read`: one level when the banks share a memory, two when they are split (the
    banks' outputs, then the multiplexer).

    Members
    -------
    wr, rd : SimpleNamespace
        The ports' ``addr``, ``data`` and ``en`` signals.
    split : bool
        One memory per bank.
    """

    def __init__(self, m: Module, name: str, shape, banks: int, idx_w: int):
        aw = idx_w + (banks - 1).bit_length()
        self.wr = SimpleNamespace(
            addr=Signal(aw, name=f"{name}_waddr"),
            data=Signal(shape, name=f"{name}_wdata"),
            en=Signal(name=f"{name}_wen"),
        )
        self.rd = SimpleNamespace(
            addr=Signal(aw, name=f"{name}_raddr"),
            data=Signal(shape, name=f"{name}_rdata"),
            en=Signal(name=f"{name}_ren"),
        )
        self.split = (1 << idx_w) >= _BLOCK_DEPTH
        if not self.split:
            m.submodules[name] = mem = bank_memory(shape, banks, idx_w)
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [
                wp.addr.eq(self.wr.addr),
                wp.data.eq(self.wr.data),
                wp.en.eq(self.wr.en),
                rp.addr.eq(self.rd.addr),
                rp.en.eq(self.rd.en),
                self.rd.data.eq(rp.data),
            ]
            return
        mems = []
        for b in range(banks):
            mem = Memory(shape=shape, depth=1 << idx_w, init=[], attrs={"no_rw_check": 1})
            m.submodules[f"{name}{b}"] = mem
            wp = mem.write_port()
            m.d.comb += [
                wp.addr.eq(self.wr.addr[:idx_w]),
                wp.data.eq(self.wr.data),
                wp.en.eq(self.wr.en & (self.wr.addr[idx_w:] == b)),
            ]
            mems.append(mem)
        outs, sel = _split_read(m, name, mems, self.rd.addr, self.rd.en, self.rd.data, idx_w)
        self._outs, self._sel = outs, sel

    def stage_read(self, lv: Levels, key: str, **values) -> SimpleNamespace:
        """Register the read data as ``key`` beside ``values`` on ``lv``, from the level after
        the read: one level, or two where the banks are split (see above)."""
        if not self.split:
            return lv.next(**{key: self.rd.data}, **values)
        banks = {f"{key}_bank{b}": data for b, data in enumerate(self._outs)}
        s = lv.next(**banks, **{f"{key}_sel": self._sel}, **values)
        data = Array(getattr(s, k) for k in banks)[getattr(s, f"{key}_sel")]
        return lv.next(**{key: data}, **{k: getattr(s, k) for k in values})


class TableRom:
    """A constant table in block RAM with one read port (``addr``, ``en``, ``data``: the data
    one clock after the address, held while ``en`` is low).

    A table deeper than one block RAM (1024 words of up to 18 bits) is split by depth, one
    memory per 1024 words, and a read enables only the block that holds the word: one block
    RAM access per read where Yosys would split a 2048 x 18 table by width into two 2048 x 9
    blocks and read both. The data is then a multiplexer selected by the registered top
    address bits.
    """

    def __init__(self, m: Module, name: str, shape, init):
        init = [int(v) for v in init]
        aw = max(1, (len(init) - 1).bit_length())
        self.addr = Signal(aw, name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(shape, name=f"{name}_data")
        parts = [init[k : k + _BLOCK_DEPTH] for k in range(0, len(init), _BLOCK_DEPTH)]
        if len(parts) == 1:
            m.submodules[name] = rom = Memory(shape=shape, depth=len(init), init=init)
            rp = rom.read_port()
            m.d.comb += [rp.addr.eq(self.addr), rp.en.eq(self.en), self.data.eq(rp.data)]
            return
        mems = []
        for k, part in enumerate(parts):
            m.submodules[f"{name}{k}"] = rom = Memory(shape=shape, depth=len(part), init=part)
            mems.append(rom)
        lo_w = (_BLOCK_DEPTH - 1).bit_length()
        _split_read(m, name, mems, self.addr, self.en, self.data, lo_w)


def bank_regs(n: int, shape, name: str) -> Array:
    """One register of ``shape`` per bank, indexable by a bank number."""
    return Array(Signal(shape, name=f"{name}{b}") for b in range(n))


def row_ports(p, *, affine: bool = False) -> dict:
    """Signature members of a row-stream core with Params ``p``.

    ``i`` takes ``in_fmt`` codes with ``last``; ``o`` gives ``out_fmt`` codes with ``first``
    and ``last``; with ``affine``, also the gamma / beta write stream of
    :class:`AffineMemories`.
    """
    in_layout = data.StructLayout({"data": fix_shape(p.in_fmt), "last": 1})
    out_layout = data.StructLayout({"data": fix_shape(p.out_fmt), "first": 1, "last": 1})
    ports = {"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))}
    if affine:
        affine_layout = data.StructLayout(
            {
                "addr": unsigned(index_width(p.max_len)),
                "gamma": fix_shape(p.gamma_fmt),
                "beta": fix_shape(p.beta_fmt),
            }
        )
        ports["affine"] = In(stream.Signature(affine_layout))
    return ports


class BankFlags:
    """One flag per bank, registered, set and cleared by one-hot strobes.

    :meth:`set` and :meth:`clear` return combinational assignments to the strobes (at most one
    place may drive each); a set and a clear of the same bank in one clock leave it set.

    Parameters
    ----------
    m : Module
    n : int
        Number of banks (a power of two, so bank pointers wrap by themselves).
    name : str
    """

    def __init__(self, m: Module, n: int, name: str):
        if n < 2 or n & (n - 1):
            raise ValueError(f"bank count must be a power of two of at least 2, not {n}")
        self.n = n
        self.bits = Signal(n, name=name)
        self._set = Signal(n, name=f"{name}_set")
        self._clr = Signal(n, name=f"{name}_clr")
        m.d.sync += self.bits.eq((self.bits & ~self._clr) | self._set)

    def __getitem__(self, bank):
        return self.bits.bit_select(bank, 1)

    def set(self, bank):
        return self._set.eq(onehot(bank, self.n))

    def clear(self, bank):
        return self._clr.eq(onehot(bank, self.n))

    def pointer(self, name: str) -> Signal:
        """A bank pointer for these banks (it wraps when incremented)."""
        return Signal(range(self.n), name=name)


class RowWriter:
    """Ingest: each accepted element of the row stream ``i`` goes into the bank being filled.

    The input is ready while that bank's ``full`` flag is low. A row ends at ``last`` or after
    ``max_len`` elements; then the bank's flag is set and the next bank is filled.

    Members
    -------
    bank, idx : Signal
        The bank being filled and the element's index in its row.
    x, take, first, last : Value
        The element, whether it is accepted this clock, and whether it starts / ends its row
        (combinational).
    """

    def __init__(self, m: Module, i: stream.Interface, port, full: BankFlags, *, max_len: int):
        self.full = full
        self.bank = full.pointer("in_bank")
        self.idx = Signal(index_width(max_len), name="in_idx")
        self.x = i.payload.data
        self.take = i.valid & i.ready
        self.first = self.idx == 0
        self.last = i.payload.last | (self.idx == max_len - 1)
        m.d.comb += [
            i.ready.eq(~full[self.bank]),
            port.addr.eq(Cat(self.idx, self.bank)),
            port.data.eq(self.x),
            port.en.eq(self.take),
        ]
        with m.If(self.take):
            with m.If(self.last):
                m.d.comb += full.set(self.bank)
                m.d.sync += [self.idx.eq(0), self.bank.eq(self.bank + 1)]
            with m.Else():
                m.d.sync += self.idx.eq(self.idx + 1)


def _greater(a, b):
    """``a > b`` for two values of one shape; signed ones are compared as offset binary (sign
    bit inverted), which maps to one unsigned carry chain instead of a subtraction whose sign
    and overflow are decoded after the chain."""
    if a.shape().signed:
        flip = 1 << (len(a) - 1)
        return (a.as_unsigned() ^ flip) > (b.as_unsigned() ^ flip)
    return a > b


class RowMax:
    """The running maximum of the rows that ``writer`` takes.

    At a row's end its last index is latched for its bank, and one clock later its maximum
    (so that the latch loads from the running register, not through its compare).

    Members
    -------
    max, end : Array
        Per bank: the row's maximum (valid from the second clock after the row's last
        element was taken) and its last index.
    """

    def __init__(self, m: Module, writer: RowWriter):
        x, n = writer.x, writer.full.n
        self.max = bank_regs(n, x.shape(), "x_max")
        self.end = bank_regs(n, len(writer.idx), "x_end")
        # one compare and one mux per clock, the tightest loop of the design; a one-bit
        # `first` flag (not an index compare) starts each row afresh
        run = Signal(x.shape(), name="run_max")
        first = Signal(init=1, name="run_first")
        done = Signal(name="run_done")
        done_bank = Signal.like(writer.bank, name="run_done_bank")
        m.d.sync += done.eq(writer.take & writer.last)
        with m.If(writer.take):
            m.d.sync += [run.eq(Mux(first | _greater(x, run), x, run)), first.eq(writer.last)]
            with m.If(writer.last):
                m.d.sync += [self.end[writer.bank].eq(writer.idx), done_bank.eq(writer.bank)]
        with m.If(done):
            m.d.sync += self.max[done_bank].eq(run)


class RowScan:
    """Streams each complete row out of a banked memory, one element per clock, into
    free-running :class:`~hwgen.lib.pipeline.Levels`.

    A row starts once its bank is ``full`` and the next bank of the destination (``claim``)
    is free; its first read claims that bank and its last read clears its own ``full`` flag.
    The read port's data appears one clock after the address, beside the first level.

    Parameters
    ----------
    m : Module
    port : read port
        Addressed by ``Cat(index, bank)``.
    full : BankFlags
        Rows ready to be read.
    ends : Array
        Per bank: the row's last index.
    claim : BankFlags
        Destination banks in use; the scan sets them.
    prefix : str

    Members
    -------
    bank : Signal
        The source bank being read (for per-row values such as :attr:`RowMax.max`).
    levels : Levels
        Free-running levels with side-band values ``first``, ``last``, ``pos`` (the index in
        the row) and ``bank`` (the destination bank) and the valid bit.
    """

    def __init__(
        self, m: Module, port, full: BankFlags, ends: Array, claim: BankFlags, prefix: str
    ):
        self.bank = full.pointer(f"{prefix}_src_bank")
        dest = claim.pointer(f"{prefix}_dst_bank")
        j = Signal(len(ends[0]), name=f"{prefix}_j")
        issue = Signal(name=f"{prefix}_issue")
        last = j == ends[self.bank]
        m.d.comb += [
            issue.eq(full[self.bank] & ((j != 0) | ~claim[dest])),
            port.addr.eq(Cat(j, self.bank)),
            port.en.eq(issue),  # no block RAM access in the gaps between rows
        ]
        with m.If(issue):
            with m.If(j == 0):
                m.d.comb += claim.set(dest)
            with m.If(last):
                m.d.comb += full.clear(self.bank)
                m.d.sync += [j.eq(0), self.bank.eq(self.bank + 1), dest.eq(dest + 1)]
            with m.Else():
                m.d.sync += j.eq(j + 1)
        self.levels = Levels(
            Stages(m), prefix, valid=issue, first=j == 0, last=last, pos=j, bank=dest
        )


class RowSums:
    """Running sums of the rows leaving ``levels``, latched per bank at each row's end.

    ``levels`` carry the valid bit and the side-band values ``first``, ``last``, ``pos`` and
    ``bank`` (as from :class:`RowScan`, or built beside a :class:`RowWriter`). Each term is
    ``name=(value, shape)``; at a row's last element its totals and its last index are
    latched for its bank and ``done`` is set for the bank.

    Members
    -------
    total : SimpleNamespace of Array
        Per term, per bank: the row's total.
    end : Array
        Per bank: the row's last index.
    """

    def __init__(self, m: Module, levels: Levels, done: BankFlags, name: str, **terms):
        s, valid = levels.side, levels.valid
        self.end = bank_regs(done.n, len(s.pos), f"{name}_end")
        totals, running, nexts = {}, [], []
        for key, (value, shape) in terms.items():
            acc = Signal(shape, name=f"{name}_{key}_acc")
            nxt = Mux(s.first, 0, acc) + value
            totals[key] = bank_regs(done.n, shape, f"{name}_{key}")
            running.append(acc.eq(nxt))
            nexts.append(totals[key][s.bank].eq(nxt))
        self.total = SimpleNamespace(**totals)
        with m.If(valid):
            m.d.sync += running
            with m.If(s.last):
                m.d.sync += [self.end[s.bank].eq(s.pos), *nexts]
                m.d.comb += done.set(s.bank)


def _store(m: Module, bank, ready: BankFlags, stores) -> None:
    """Latch each ``(regs, value)`` of ``stores`` for ``bank`` and set its ``ready`` flag."""
    m.d.sync += [regs[bank].eq(value) for regs, value in stores]
    m.d.comb += ready.set(bank)


class RowLaunch:
    """Starts a pipelined once-per-row unit on each bank whose row is ``pending``, in bank
    order (one row per clock at most), and clears the flag.

    The unit is built on :attr:`levels`, where the bank rides as a side-band value; then
    :meth:`finish` latches its results for the bank.

    Members
    -------
    bank : Signal
        The bank started next (index per-bank values with it at the first level).
    levels : Levels
        Free-running levels with the valid bit and the side-band value ``bank``.
    """

    def __init__(self, m: Module, pending: BankFlags, prefix: str):
        self._m = m
        self.bank = pending.pointer(f"{prefix}_bank")
        go = pending[self.bank]
        with m.If(go):
            m.d.comb += pending.clear(self.bank)
            m.d.sync += self.bank.eq(self.bank + 1)
        self.levels = Levels(Stages(m), prefix, valid=go, bank=self.bank)

    def finish(self, ready: BankFlags, *stores) -> int:
        """When a row leaves the levels, latch each ``(regs, value)`` for its bank and set its
        ``ready`` flag. Returns the depth of the unit."""
        with self._m.If(self.levels.valid):
            _store(self._m, self.levels.side.bank, ready, stores)
        return self.levels.depth


class RowUnitPort:
    """Feeds a sequential per-row unit from the :class:`RowSums` of each ``pending`` bank, in
    bank order.

    The unit's protocol: ``start`` while ``idle`` begins a row (its inputs are read then);
    ``idle`` and ``done`` stay low until ``done`` is high for one clock with the results.
    Each total of ``sums`` goes to the unit's input of the same name, and the row length to
    its input ``d``. :meth:`finish` latches the results for the bank.

    Members
    -------
    bank : Signal
        The bank the unit works on.
    """

    def __init__(self, m: Module, unit, sums: RowSums, pending: BankFlags):
        self._m, self._unit = m, unit
        self.bank = pending.pointer("unit_bank")
        m.d.comb += [
            unit.start.eq(pending[self.bank] & unit.idle),
            *(getattr(unit, key).eq(regs[self.bank]) for key, regs in vars(sums.total).items()),
            unit.d.eq(sums.end[self.bank] + 1),
        ]
        with m.If(unit.start):
            m.d.comb += pending.clear(self.bank)

    def finish(self, ready: BankFlags, *stores) -> None:
        """At ``done``, latch each ``(regs, value)`` for the bank, set its ``ready`` flag and
        go on to the next bank."""
        with self._m.If(self._unit.done):
            _store(self._m, self.bank, ready, stores)
            self._m.d.sync += self.bank.eq(self.bank + 1)


class RowReader:
    """The output pass: each row whose constants are known (``ready``) streams back out of its
    bank, one element per clock under back-pressure, through a
    :class:`~hwgen.lib.pipeline.StallPipeline` into ``o``.

    After a row's last read its ``ready`` flag and the ``release`` flags of its bank are
    cleared. The read ports are the caller's: address them with :attr:`bank` and :attr:`j`
    and enable them with :attr:`read`, so that their data registers load with the first level
    when it takes an element (and no block RAM is accessed in stalls or between rows).

    Members
    -------
    bank, j : Signal
        The bank read and the element's index in its row.
    read : Value
        An element is read this clock (enable of the read ports).
    pipe : StallPipeline
    levels : Levels
        The normalising levels, with the valid bit and the side-band values ``first`` and
        ``last``; :meth:`emit` drives ``o`` from the last one.
    """

    def __init__(self, m: Module, o, ready: BankFlags, ends: Array, *, release=(), prefix="norm"):
        self._o = o
        self.bank = ready.pointer(f"{prefix}_bank")
        self.j = Signal(len(ends[0]), name=f"{prefix}_j")
        src = SimpleNamespace(
            valid=Signal(name=f"{prefix}_src_valid"), ready=Signal(name=f"{prefix}_src_ready")
        )
        self.pipe = StallPipeline(m, src, o)
        last = self.j == ends[self.bank]
        m.d.comb += src.valid.eq(ready[self.bank])
        #: enable of the caller's read ports: an element is taken into the first level (the
        #: data registers hold in stalls and in the gaps between rows)
        self.read = src.valid & src.ready
        with m.If(self.read):
            with m.If(last):
                m.d.comb += [flags.clear(self.bank) for flags in (ready, *release)]
                m.d.sync += [self.j.eq(0), self.bank.eq(self.bank + 1)]
            with m.Else():
                m.d.sync += self.j.eq(self.j + 1)
        self._m = m
        self.levels = self.pipe.levels(prefix, first=self.j == 0, last=last)

    def emit(self, y) -> int:
        """Drive ``o`` with ``y`` (from the last level) and the framing; return the depth."""
        side = self.levels.side
        self._m.d.comb += [
            self._o.payload.data.eq(y),
            self._o.payload.first.eq(side.first),
            self._o.payload.last.eq(side.last),
        ]
        return self.pipe.finish(self.levels)


class AffineMemories:
    """LayerNorm's per-column gamma and beta, in block RAM, written through ``affine``.

    ``affine`` (from :func:`row_ports`) is always ready and writes gamma[addr] and beta[addr]
    in one clock; after reset every gamma is 1.0 and every beta 0 (the identity).

    Members
    -------
    gamma, beta : read ports
        Address and enable them with :meth:`read`.
    """

    def __init__(self, m: Module, affine, gamma_fmt: FixFormat, beta_fmt: FixFormat, max_len):
        self.gamma_fmt, self.beta_fmt = gamma_fmt, beta_fmt
        depth = 1 << index_width(max_len)
        one = 1 << gamma_fmt.frac_bits
        m.submodules.g_mem = g_mem = Memory(
            shape=fix_shape(gamma_fmt), depth=depth, init=[one] * depth
        )
        m.submodules.b_mem = b_mem = Memory(shape=fix_shape(beta_fmt), depth=depth, init=[])
        g_wr = g_mem.write_port()
        self.gamma = g_mem.read_port()
        b_wr = b_mem.write_port()
        self.beta = b_mem.read_port()
        m.d.comb += [
            affine.ready.eq(1),
            g_wr.addr.eq(affine.payload.addr),
            b_wr.addr.eq(affine.payload.addr),
            g_wr.data.eq(affine.payload.gamma),
            b_wr.data.eq(affine.payload.beta),
            g_wr.en.eq(affine.valid),
            b_wr.en.eq(affine.valid),
        ]

    def read(self, addr, en) -> list:
        """Combinational assignments reading column ``addr`` while ``en``."""
        return [
            self.gamma.addr.eq(addr),
            self.gamma.en.eq(en),
            self.beta.addr.eq(addr),
            self.beta.en.eq(en),
        ]

    def apply(self, lv: Levels, z, gamma, beta, z_fmt: FixFormat, out_fmt: FixFormat):
        """z saturated to ``z_fmt``, times gamma, plus beta, rounded half up and saturated to
        ``out_fmt``: four levels (saturate, multiply, add, round). Returns the output code."""
        s = lv.next(z=(saturate(z, z_fmt), fix_shape(z_fmt)), g=gamma, beta=beta)
        frac = z_fmt.frac_bits + self.gamma_fmt.frac_bits
        s = lv.next(zg=s.z * s.g, beta=s.beta)
        s = lv.next(acc=s.zg + (s.beta << (frac - self.beta_fmt.frac_bits)))
        sh = frac - out_fmt.frac_bits
        y = (s.acc + (1 << (sh - 1))) >> sh
        return lv.next(y=(saturate(y, out_fmt), fix_shape(out_fmt))).y


class RowCore(wiring.Component):
    """Base of the row-stream cores: checks the Params and builds the ports of :func:`row_ports`.

    Subclasses name their Params class in ``PARAMS`` and set ``AFFINE`` where they take the
    gamma / beta stream.
    """

    PARAMS: type
    AFFINE = False

    def __init__(self, params=None):
        cls = self.PARAMS
        if params is None:
            params = cls()
        if not isinstance(params, cls):
            raise TypeError(f"params must be a {cls.__name__}, not {params!r}")
        self.params = params
        super().__init__(row_ports(params, affine=self.AFFINE))


class ScanRows:
    """The row machinery of the softmax cores, up to the per-row unit.

    Logit rows (``p.in_fmt`` codes, at most ``p.max_len``) go into two banks
    (:class:`RowWriter`, :class:`RowMax`); each complete row is scanned (:class:`RowScan`)
    through the caller's free-running levels into one of ``banks`` result banks of
    ``p.exp_fmt`` codes, which :meth:`store` fills and sums; :meth:`reader` streams them out.

    Members
    -------
    levels : Levels
        The scan's levels; the first, built here, is the logit read.
    x, max : Value
        The logit read and its row's maximum, aligned with the first level.
    busy : BankFlags
        Result banks in use, from the scan's first read to the last output read.
    sums : RowSums
        After :meth:`store`.
    """

    def __init__(self, m: Module, i, p, *, banks: int):
        self._m = m
        idx_w, max_len = index_width(p.max_len), p.max_len
        x_mem = BankedMemory(m, "x_mem", fix_shape(p.in_fmt), 2, idx_w)
        e_mem = BankedMemory(m, "e_mem", fix_shape(p.exp_fmt), banks, idx_w)
        x_wr, x_rd = x_mem.wr, x_mem.rd
        self._e_wr, self._e_rd = e_mem.wr, e_mem.rd
        # per logit bank: holds a complete row not yet fully read
        x_full = BankFlags(m, 2, "x_full")
        self.busy = BankFlags(m, banks, "e_busy")
        ingest = RowMax(m, RowWriter(m, i, x_wr, x_full, max_len=max_len))
        scan = RowScan(m, x_rd, x_full, ingest.end, self.busy, "exp")
        self.levels = scan.levels
        # level 1 is the memory read; the row's maximum (latched a clock after the row's
        # end) is looked up from the bank carried beside it
        self.max = ingest.max[self.levels.next(src=scan.bank).src]
        self.x = x_rd.data

    def store(self, e, sum_shape, done: BankFlags) -> RowSums:
        """Write ``e`` (from the last level) into its row's bank and sum the row in
        ``sum_shape``; ``done`` is set for the bank with the row's sum."""
        lv = self.levels
        self._m.d.comb += [
            self._e_wr.addr.eq(Cat(lv.side.pos, lv.side.bank)),
            self._e_wr.data.eq(e),
            self._e_wr.en.eq(lv.valid),
        ]
        self.sums = RowSums(self._m, lv, done, "e", sum=(e, sum_shape))
        return self.sums

    def reader(self, o, ready: BankFlags) -> RowReader:
        """The output pass over the ``ready`` result banks; its ``e`` member is the read."""
        out = RowReader(self._m, o, ready, self.sums.end, release=[self.busy])
        self._m.d.comb += [self._e_rd.addr.eq(Cat(out.j, out.bank)), self._e_rd.en.eq(out.read)]
        out.e = self._e_rd.data
        return out


class StatRows:
    """The row machinery of the LayerNorm cores, around the caller's normalising levels.

    Rows go into ``banks`` banks (:class:`RowWriter`); beside the ingest, S1 = sum x and
    S2 = sum x^2 (input register, x^2 in two levels: one multiplier) are summed per row
    (:class:`RowSums`); the sequential per-row ``unit`` takes them in bank order
    (:class:`RowUnitPort`); :meth:`reader` streams each row whose constants are latched back
    out. gamma and beta are in :attr:`affine`.

    Members
    -------
    affine : AffineMemories
    depth : int
        The statistics levels.
    """

    def __init__(self, m: Module, core, unit, *, banks: int):
        p = core.params
        self._m = m
        width, idx_w = p.in_fmt.width, index_width(p.max_len)
        self.x_mem = x_mem = BankedMemory(m, "x_mem", fix_shape(p.in_fmt), banks, idx_w)
        x_wr, self._x_rd = x_mem.wr, x_mem.rd
        self.affine = AffineMemories(m, core.affine, p.gamma_fmt, p.beta_fmt, p.max_len)
        # bank flags: busy (ingest started .. last output read), stats (S1, S2 known),
        # ready (the row constants known)
        self.busy = BankFlags(m, banks, "busy")
        stats = BankFlags(m, banks, "stats")
        self.ready = BankFlags(m, banks, "ready")
        w = RowWriter(m, core.i, x_wr, self.busy, max_len=p.max_len)
        side = dict(first=w.first, last=w.last, pos=w.idx, bank=w.bank)
        sl = Levels(Stages(m), "stats", valid=w.take, **side)
        s = sl.next(x=w.x, mag=(Mux(w.x < 0, -w.x, w.x), unsigned(width)))
        s = sl.mul({"sq": (s.mag, s.mag)}, x=s.x)
        s1 = (s.x, signed(width + idx_w + 1))
        s2 = (s.sq, unsigned(2 * width + idx_w + 1))
        self.sums = RowSums(m, sl, stats, "row", s1=s1, s2=s2)
        self.depth = sl.depth
        m.submodules.row_unit = unit
        self._port = RowUnitPort(m, unit, self.sums, stats)

    def finish_unit(self, *stores) -> None:
        """At the unit's ``done``, latch each ``(regs, value)`` for its bank (see
        :meth:`RowUnitPort.finish`)."""
        self._port.finish(self.ready, *stores)

    def reader(self, o) -> RowReader:
        """The output pass; its ``x`` member is the element read back."""
        out = RowReader(self._m, o, self.ready, self.sums.end, release=[self.busy])
        self._m.d.comb += [self._x_rd.addr.eq(Cat(out.j, out.bank)), self._x_rd.en.eq(out.read)]
        out.x = self._x_rd.data
        return out


class ScanRowCore(RowCore):
    """Base of the softmax cores (:class:`ScanRows`): ``latency`` from the depths recorded
    while elaborating (:func:`~hwgen.lib.pipeline.built`): ``exp`` (the scan's levels),
    ``rcp`` (the per-row unit's levels, 0 for none) and ``norm`` (the output levels)."""

    @property
    def latency(self) -> int:
        d = built(self)
        # the scan's first read follows the row's last input (after the row's L reads); the
        # row is flagged summed one clock after the scan's levels, ready one after the unit's
        rcp = d.rcp + 1 if d.rcp else 0
        return d.exp + 1 + rcp + d.norm


class StatRowCore(RowCore):
    """Base of the LayerNorm cores (:class:`StatRows`): the ``affine`` port, the per-row unit
    ``ROW_UNIT`` (a class with ``clocks(params)``), ``row_clocks``, ``row_unit_factory`` and
    ``latency`` from the depths recorded while elaborating: ``stats`` and ``norm``.

    Members
    -------
    row_unit_factory : callable
        ``factory(params)`` returns the per-row unit (default: ``ROW_UNIT``). The unit's
        protocol: ``start`` while ``idle`` begins a row; ``idle`` and ``done`` stay low until
        ``done`` is high for one clock with the results, then ``idle`` is high again.
    """

    AFFINE = True
    ROW_UNIT: type

    def __init__(self, params=None):
        super().__init__(params)
        # the counting proofs of hwgen.flows.formal put a stand-in with the same
        # start/idle/done protocol and a free latency here
        self.row_unit_factory = self.ROW_UNIT

    @property
    def row_clocks(self) -> int:
        """Clocks the sequential per-row unit spends on one row."""
        return self.ROW_UNIT.clocks(self.params)

    @property
    def latency(self) -> int:
        """Clocks from a row's last input to its first output (per-row unit idle, no
        back-pressure): the statistics levels and the row's flag, the per-row unit and its
        results' latch, the normalising levels."""
        d = built(self)
        return d.stats + 1 + self.row_clocks + 1 + d.norm
