"""cocotb testbench of an operator's AXI4-Stream top level (``hwgen verilog --axis``).

Drives every slave interface with cocotbext-axi's ``AxiStreamSource`` and reads ``m_axis`` with
its ``AxiStreamSink``, under random TVALID gaps and TREADY back-pressure. Beats and expected
outputs come from :func:`hwgen.flows.streams.beats` (the cases through ``golden.<op>.emulate``);
they are packed into TDATA and read back from it by the field offsets of the design's JSON
sidecar (``HWGEN_SIDECAR``), so the test also checks that the sidecar describes the wrapper. A
slave's padding bits are filled with random bits (they must be ignored); a master's fields are
read over their whole slot (the padding must extend them). Knobs (``HWGEN_KNOBS``):

``elements``
    elements (terms of dot products) per run (default 300);
``stalls``
    ``[idle, backpressure]`` probabilities (default ``[0.3, 0.3]``).
"""

from __future__ import annotations

import json
import logging
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from hwgen.flows import streams
from hwgen.registry import Interface
from sim.streaming import record, setup, stats


def _sidecar() -> dict:
    with open(os.environ["HWGEN_SIDECAR"]) as f:
        return json.load(f)


def _pauses(rng, probability: float):
    """An endless pause pattern: True (pause) with ``probability`` per clock."""
    while True:
        yield bool(rng.random() < probability)


def _pack(layout: dict, fields: dict, rng) -> list[int]:
    """TDATA words of a slave interface from ``{field: array}`` (core field names), the
    padding filled with random bits."""
    n = len(next(iter(fields.values())))
    nbytes = layout["tdata_bytes"]
    words = [int.from_bytes(rng.bytes(nbytes), "little") for _ in range(n)]  # random padding
    for f in layout["fields"]:
        key = "" if f["field"] == "data" and "" in fields else f["field"]
        mask = (1 << f["width"]) - 1
        for k, v in enumerate(np.asarray(fields[key], dtype=np.int64).tolist()):
            words[k] = (words[k] & ~(mask << f["offset"])) | ((v & mask) << f["offset"])
    return words


def _unpack(layout: dict, words: list[int]) -> dict:
    """``{field: array}`` of a master interface, each field read over its whole slot."""
    out = {}
    for f in layout["fields"]:
        bits = f["slot_end"] - f["offset"]
        col = np.array([(w >> f["offset"]) & ((1 << bits) - 1) for w in words], dtype=np.int64)
        if f["signed"]:
            col = col - ((col >> (bits - 1)) << bits)
        out[f["field"]] = col
    return out


def _cases(s, n: int, rng):
    """Cases of about ``n`` elements from the golden module's ``random_cases``, and the vectors
    of a parameter port (None without one)."""
    kind, p = s.op.interface, s.params
    if kind is Interface.ELEMENT:
        return s.golden.random_cases(p, n, seed=int(rng.integers(1 << 30))), None
    if kind is Interface.DOT:
        return s.golden.random_cases(p, max(1, n // p.lanes), seed=int(rng.integers(1 << 30))), None
    rows, total = [], 0
    for row in s.golden.random_cases(p, 64, seed=int(rng.integers(1 << 30))):
        row = np.asarray(row)[: max(1, n - total)]
        rows.append(row)
        total += len(row)
        if total >= n:
            break
    vectors = None
    if kind is Interface.ROW_PARAM:
        width = max(len(r) for r in rows)
        vectors = s.golden.row_params(p, width, int(rng.integers(1 << 30)))
    return rows, vectors


@cocotb.test()
async def axis_random_stalls(dut):
    """Random cases through the AXI4-Stream ports with random TVALID gaps and TREADY
    back-pressure: every output field, TLAST and TUSER equal ``emulate``'s, and nothing more
    comes out."""
    for name in ("cocotb.axis", "cocotbext.axi"):
        logging.getLogger(name).setLevel(logging.WARNING)
    s = setup()
    side = _sidecar()
    layouts = side["streams"]
    rng = np.random.default_rng(s.knob("seed", 21))
    idle, backpressure = s.knob("stalls", [0.3, 0.3])
    cases, vectors = _cases(s, s.knob("elements", 300), rng)
    beats = streams.beats(s.op, s.params, cases, vectors)

    Clock(dut.aclk, 10, unit="ns").start()
    sources = {}
    for prefix, layout in layouts.items():
        if layout["mode"] == "slave":
            bus = AxiStreamBus.from_prefix(dut, prefix)
            sources[layout["core_port"]] = (
                AxiStreamSource(bus, dut.aclk, dut.aresetn, reset_active_level=False, byte_lanes=1),
                layout,
            )
    m_layout = layouts["m_axis"]
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "m_axis"),
        dut.aclk,
        dut.aresetn,
        reset_active_level=False,
        byte_lanes=1,
    )
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 4)
    dut.aresetn.value = 1
    await RisingEdge(dut.aclk)

    # parameter ports first (their words must be in before the rows that read them)
    for port, (source, layout) in sources.items():
        if port == "i":
            continue
        words = _pack(layout, beats.streams[port], rng)
        await source.send(AxiStreamFrame(words, tuser=[0] * len(words)))
        await source.wait()
    source, layout = sources["i"]
    source.set_pause_generator(_pauses(rng, idle))
    sink.set_pause_generator(_pauses(rng, backpressure))
    fields = beats.streams["i"]
    words = _pack(layout, fields, rng)
    last = fields.get("last", np.zeros(len(words), np.int64)).copy()
    if "last" not in fields:
        last[-1] = 1  # no TLAST: one frame of every word
    user = fields.get("first", np.zeros(len(words), np.int64))
    start = 0
    for end in np.flatnonzero(last) + 1:
        frame = AxiStreamFrame(words[start:end], tuser=[int(u) for u in user[start:end]])
        await source.send(frame)
        start = end

    got_words, got_last, got_user = [], [], []
    has_last = "m_axis_tlast" in {p["name"] for p in side["ports"]}
    while len(got_words) < beats.outputs:
        frame = await sink.recv(compact=False)
        got_words += list(frame.tdata)
        got_user += list(frame.tuser) if frame.tuser else [0] * len(frame.tdata)
        got_last += [0] * (len(frame.tdata) - 1) + [1]
    await ClockCycles(dut.aclk, 40)
    assert sink.empty(), "outputs arrived after every input was answered"
    assert len(got_words) == beats.outputs, f"{len(got_words)} outputs for {beats.outputs}"

    got = _unpack(m_layout, got_words)
    if "" in beats.expected:  # a plain payload is the sidecar's "data"
        got[""] = got.pop("data")
    if has_last:
        got["last"] = np.array(got_last)
    if "first" in beats.expected:
        got["first"] = np.array(got_user)
    assert set(beats.expected) <= set(got), f"fields {set(beats.expected) - set(got)} not read"
    codes = beats.streams["i"].get("data", beats.streams["i"].get(""))
    one_each = codes is not None and len(codes) == beats.outputs
    inputs = codes if one_each else np.arange(beats.outputs)
    record("axis_random_stalls", stats(np.asarray(inputs), got, beats.expected, side["module"]))
