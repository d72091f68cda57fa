"""The FPGA energy model: primitive counts of tiny designs against hand counts, the table."""

from __future__ import annotations

import random

import pytest

from hwgen.flows import fpga_energy, synth, tools

pytestmark = pytest.mark.skipif(
    not (tools.shutil.which("iverilog") and tools.shutil.which("vvp")),
    reason="Icarus Verilog is not installed (make install)",
)

# Stream ports as hwgen.flows.power.make_testbench drives them: i__payload changes after each
# clock edge, outputs are counted while o__valid is 1 (here always, so N words take N clocks).
_ADDER = """
module add8(input clk, input rst, input [15:0] i__payload, input i__valid, output i__ready,
            output [8:0] o__payload, output o__valid, input o__ready);
  reg [7:0] ra = 0;
  reg [7:0] rb = 0;
  reg [8:0] s = 0;
  always @(posedge clk) begin
    ra <= i__payload[7:0];
    rb <= i__payload[15:8];
    s <= ra + rb;
  end
  assign o__payload = s;
  assign o__valid = 1'b1;
  assign i__ready = 1'b1;
endmodule
"""

_MULT = """
module mul16(input clk, input rst, input [31:0] i__payload, input i__valid, output i__ready,
             output [31:0] o__payload, output o__valid, input o__ready);
  reg [31:0] p = 0;
  always @(posedge clk) p <= i__payload[15:0] * i__payload[31:16];
  assign o__payload = p;
  assign o__valid = 1'b1;
  assign i__ready = 1'b1;
endmodule
"""

# a 1024 x 16 table read once per clock (the write port is never enabled by the data below)
_TABLE = """
module tab(input clk, input rst, input [26:0] i__payload, input i__valid, output i__ready,
           output [15:0] o__payload, output o__valid, input o__ready);
  reg [15:0] mem [0:1023];
  reg [15:0] q = 0;
  integer k;
  initial for (k = 0; k < 1024; k = k + 1) mem[k] = k * 37 + 5;
  always @(posedge clk) begin
    if (i__payload[26]) mem[i__payload[25:16]] <= i__payload[15:0];
    q <= mem[i__payload[25:16]];
  end
  assign o__payload = q;
  assign o__valid = 1'b1;
  assign i__ready = 1'b1;
endmodule
"""

# a 1024 x 16 memory with a write-only port (bit 26 enables it) and a read port (bit 37)
_SDP = """
module sdp(input clk, input rst, input [37:0] i__payload, input i__valid, output i__ready,
           output [15:0] o__payload, output o__valid, input o__ready);
  reg [15:0] mem [0:1023];
  reg [15:0] q = 0;
  always @(posedge clk) begin
    if (i__payload[26]) mem[i__payload[25:16]] <= i__payload[15:0];
    if (i__payload[37]) q <= mem[i__payload[36:27]];
  end
  assign o__payload = q;
  assign o__valid = 1'b1;
  assign i__ready = 1'b1;
endmodule
"""

N = 40


def _pc(x: int) -> int:
    return bin(x).count("1")


def _changes(seq) -> int:
    """Bits that differ between consecutive values: settled transitions of a register."""
    return sum(_pc(a ^ b) for a, b in zip(seq[:-1], seq[1:], strict=True))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One folder per design and family for the module: a design is mapped once."""
    return tmp_path_factory.mktemp("fpga_energy")


def _run(work, text, top, family, words):
    src = work / f"{top}.v"
    src.write_text(text)
    return fpga_energy.measure_netlist(
        src, top, family, work / f"{top}_{family}", {"i": words}, len(words), len(words)
    )


@pytest.mark.parametrize("family", fpga_energy.FAMILIES)
def test_registered_adder_counts_by_hand(work, family):
    rng = random.Random(1)
    words = [rng.randrange(1 << 16) for _ in range(N)]
    a = [w & 0xFF for w in words]
    b = [w >> 8 for w in words]
    total = [x + y for x, y in zip(a, b, strict=True)]
    carry_in = [(x + y) ^ x ^ y for x, y in zip(a, b, strict=True)]  # bit k: carry into bit k
    r = _run(work, _ADDER, "add8", family, words)
    t = r["totals"]
    # the word on the bus during reset is word 0; edge k loads word k - 1 into ra/rb, so ra and
    # rb step through all N words and s (one clock later) through the sums of words 0..N-2
    assert r["cycles"] == N
    assert t["clocked_ffs"] == 25 * N
    assert t["ff_transitions"] == _changes(a) + _changes(b) + _changes(total[:-1])
    assert t["in_loads"] == _changes(words)  # every input bit drives one flip-flop
    if family == "xc7":
        # 8 LUT2 (a ^ b) into two CARRY4 (O: sum bits, CO: carries out of bits 0..7) and a
        # third CARRY4 whose O[0] is the ninth sum bit (its CO outputs are constant)
        assert r["cells"] == {"BUFG": 1, "LUT2": 8, "CARRY4": 3, "FDRE": 25}
        assert t["lut_transitions"] == _changes([x ^ y for x, y in zip(a, b, strict=True)])
        assert t["carry_transitions"] == _changes(total) + _changes([c >> 1 for c in carry_in])
    else:
        # five CCU2C (two bits each, their LUT4s inside): S outputs are the nine sum bits (the
        # first cell injects the carry-in, the last gives bit 8), COUT the carries into bits
        # 2, 4, 6 and 8
        assert r["cells"] == {"TRELLIS_FF": 25, "CCU2C": 5}
        odd = [sum(((c >> k) & 1) << n for n, k in enumerate((2, 4, 6, 8))) for c in carry_in]
        assert t["lut_transitions"] == 0
        assert t["carry_transitions"] == _changes(total) + _changes(odd)


@pytest.mark.parametrize("family", fpga_energy.FAMILIES)
def test_constant_input_costs_only_the_clock(work, family):
    r = _run(work, _ADDER, "add8", family, [0x5A3C] * N)
    e = r["energy_per_element"]
    clock = 0.03 * 25  # u per flip-flop per clock, 25 flip-flops, one element per clock
    assert e["clock"] == pytest.approx(clock)
    assert e["total"] == pytest.approx(clock)


def _width_factor(area: int, full: int) -> float:
    """UG440's points by hand: 144 -> 0.8, 324 -> 0.86, 450 -> 1, straight lines between."""
    if area <= 144:
        f = 0.8
    elif area <= 324:
        f = 0.8 + 0.06 * (area - 144) / 180
    else:
        f = 0.86 + 0.14 * (area - 324) / 126
    return f / (0.86 if full == 324 else 1.0)


@pytest.mark.parametrize(
    ("family", "cell", "coef"), [("xc7", "DSP48E1", 70.0), ("ecp5", "MULT18X18D", 60.0)]
)
def test_single_multiply_counts_its_input_activity(work, family, cell, coef):
    rng = random.Random(2)
    words = [rng.randrange(1 << 32) for _ in range(N)]
    r = _run(work, _MULT, "mul16", family, words)
    (dsp,) = r["totals"]["dsps"]
    assert r["cells"][cell] == 1
    # both 16-bit operands come straight from the input bus: 32 data pins in use
    assert (dsp["wa"], dsp["wb"], dsp["pins"]) == (16, 16, 32)
    assert dsp["input_toggles"] == _changes(words)
    full = 450 if family == "xc7" else 324
    ops = _changes(words) / (32 * 0.38)  # multiplies at the reference activity of 38 %
    want = coef * _width_factor(16 * 16, full) * ops / N
    e = r["energy_per_element"]
    net = 0.2 * r["per_element"]["dsp_loads"]  # the product's nets into the flip-flops
    assert e["dsp"] - net == pytest.approx(want)


@pytest.mark.parametrize(
    ("family", "cell", "read"), [("xc7", "RAMB18E1", 60.0), ("ecp5", "DP16KD", 50.0)]
)
def test_table_read_once_per_clock(work, family, cell, read):
    rng = random.Random(3)
    addrs = [rng.randrange(1024) for _ in range(N)]
    words = [a << 16 for a in addrs]  # write enable (bit 26) low throughout
    r = _run(work, _TABLE, "tab", family, words)
    t = r["totals"]
    assert r["cells"][cell] == 1
    assert (t["bram_reads"], t["bram_writes"]) == (N, 0)
    bram = r["energy_per_element"]["bram"] - 0.2 * r["per_element"]["bram_loads"]
    assert bram == pytest.approx(read)
    # the cell model reads what the initial block wrote: out k is the word read at edge k - 1
    got = [int(w, 16) for w in (work / f"tab_{family}" / "outputs.txt").read_text().split()]
    want = [(a * 37 + 5) & 0xFFFF for a in [addrs[0]] + addrs[:-1]]
    assert got == want


@pytest.mark.parametrize("family", fpga_energy.FAMILIES)
def test_block_ram_counts_only_enabled_accesses(work, family):
    # a port that only writes must not read on the clocks it does not write (Yosys ties a
    # DP16KD write port's CE to 1; the flow gates it with the write enable)
    rng = random.Random(4)
    # idle in the first word (on the bus during reset too) and the last (never clocked in)
    we = [0 < k < N - 1 and rng.random() < 0.3 for k in range(N)]
    re = [0 < k < N - 1 and rng.random() < 0.5 for k in range(N)]
    words = [
        (r << 37) | (rng.randrange(1024) << 27) | (w << 26) | rng.randrange(1 << 26)
        for w, r in zip(we, re, strict=True)
    ]
    r = _run(work, _SDP, "sdp", family, words)
    t = r["totals"]
    assert r["cells"][{"xc7": "RAMB18E1", "ecp5": "DP16KD"}[family]] == 1
    assert (t["bram_reads"], t["bram_writes"]) == (sum(re), sum(we))


def _dp16kd(ce, we, dout):
    return {
        "type": "DP16KD",
        "port_directions": {"CEA": "input", "WEA": "input", "DOA0": "output"},
        "connections": {"CEA": [ce], "WEA": [we], "DOA0": [dout]},
    }


def test_gating_leaves_ports_whose_data_is_used():
    sink = {"type": "LUT4", "port_directions": {"A": "input"}, "connections": {"A": [7]}}
    netlist = {
        "modules": {
            "top": {
                "ports": {"y": {"direction": "output", "bits": [8]}},
                "cells": {
                    "write_only": _dp16kd("1", 2, 3),
                    "read_by_lut": _dp16kd("1", 4, 7),
                    "read_by_port": _dp16kd("1", 5, 8),
                    "rom": _dp16kd("1", "0", 9),
                    "sink": sink,
                },
            }
        }
    }
    assert synth.gate_write_only_ports(netlist) == 1
    cells = netlist["modules"]["top"]["cells"]
    assert [cells[n]["connections"]["CEA"] for n in ("write_only", "read_by_lut")] == [[2], ["1"]]
    assert cells["read_by_port"]["connections"]["CEA"] == ["1"]
    assert cells["rom"]["connections"]["CEA"] == ["1"]


def test_every_coefficient_has_a_source_and_a_unit():
    names = set()
    for c in fpga_energy.COEFFICIENTS:
        assert c.source.strip() and c.unit.strip(), c.name
        assert c.family in ("all", *fpga_energy.FAMILIES), c.name
        assert c.value > 0, c.name
        assert (c.name, c.family) not in names, c.name
        names.add((c.name, c.family))
    for family in fpga_energy.FAMILIES:
        for name in ("lut_output", "net_per_load", "ff_output", "clock_per_ff", "carry_output"):
            fpga_energy.coefficient(name, family)


def test_unknown_family_is_one_line():
    with pytest.raises(ValueError, match=r"^unknown family 'ice40'; choose from xc7, ecp5$"):
        fpga_energy.energy({}, "ice40")


def test_energy_cli_rejects_an_unknown_family(capsys):
    from hwgen import cli

    assert cli.main(["energy", "gelu", "--family", "ice40"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "hwgen: error: unknown family 'ice40'; choose from xc7, ecp5"
