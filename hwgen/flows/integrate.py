"""What ``hwgen verilog`` writes for an FPGA project: Verilog, a JSON sidecar, a FuseSoC core.

For one configuration of an operator, :func:`emit` writes into the output folder

``<core>.v``
    the core (module name ``params.name``, or ``--name`` without ``--axis``), its submodules
    renamed from Amaranth's escaped ``\\<top>.<path>`` to plain ``<top>_<path>`` identifiers
    (:func:`plain_module_names`);
``<core>.json``, ``<core>.core``, ``<core>.vlt``
    its sidecar (:func:`sidecar`), FuseSoC CAPI2 description (:func:`core_description`) and
    Verilator lint waivers (:func:`lint_waivers`);

and with ``axis=True`` also the AXI4-Stream top level (:class:`hwgen.lib.axis.AxisTop`, module
name ``--name`` or ``<params.name>_axis``) as ``<top>.v`` with its own ``.json``, ``.core``
(whose file set holds both Verilog files) and ``.vlt``.

The sidecar says, for a build script or a driver: the module, every port with its direction,
width and role, every payload field's bit position and number format, the latency and
throughput, the parameters, the hwgen version and the golden model that predicts the outputs.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from amaranth.lib.wiring import In

from .. import registry
from ..lib.axis import AxisPort, AxisTop, axis_ports
from .streams import payload_fields

__all__ = [
    "check_name",
    "plain_module_names",
    "emit",
    "sidecar",
    "core_description",
    "hwgen_version",
    "LEGAL_NAME",
]

#: a module name that is a plain identifier in Verilog and in VHDL (no double or trailing
#: underscore, starts with a letter)
LEGAL_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?=[A-Za-z0-9]))*")


def check_name(name: str) -> str:
    """``name`` if it can name a module in Verilog and VHDL, else a one-line ``ValueError``."""
    if not LEGAL_NAME.fullmatch(name):
        raise ValueError(
            f"module name {name!r} is not a legal identifier; use letters, digits and single "
            "underscores, starting with a letter and not ending with an underscore"
        )
    return name


def hwgen_version() -> str:
    """The installed hwgen's version (``unknown`` when it runs from an uninstalled tree)."""
    try:
        return metadata.version("hwgen")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


def plain_module_names(text: str, top: str) -> str:
    """Rename Amaranth's submodules ``\\<top>.<a>.<b>`` to ``<top>_<a>_<b>`` in Verilog text.

    Raises ``ValueError`` if two submodules would get the same name.

    >>> plain_module_names("module \\\\t.u$0.x (a);\\n  \\\\t.u$0.x  x (", "t")
    'module t_u_0_x (a);\\n  t_u_0_x  x ('
    """
    escaped = re.compile(r"\\" + re.escape(top) + r"\.(\S+)\s")
    renamed: dict[str, str] = {}

    def plain(match: re.Match) -> str:
        path = match[1]
        name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]", "_", f"{top}_{path}")).strip("_")
        if renamed.setdefault(name, path) != path:
            raise ValueError(f"submodules {renamed[name]!r} and {path!r} would both be {name!r}")
        return name + " "

    return escaped.sub(plain, text)


#: Verilator ``-Wall`` rules waived in the Amaranth-generated core (never in the AXI4-Stream
#: top level), each a style rule whose findings there are no defect: registers with
#: ``initial`` values (PROCASSINIT), Yosys's ``full_case`` case statements (CASEINCOMPLETE),
#: implicit widening and truncation in Yosys's expressions, which follow Verilog's sizing rules
#: (WIDTHEXPAND, WIDTHTRUNC), unused bits of internal words (UNUSEDSIGNAL), submodules in the
#: top module's file (DECLFILENAME)
CORE_WAIVED = (
    "PROCASSINIT",
    "CASEINCOMPLETE",
    "WIDTHEXPAND",
    "WIDTHTRUNC",
    "UNUSEDSIGNAL",
    "DECLFILENAME",
)


def lint_waivers(core_module: str, top: str | None = None, slaves: tuple[str, ...] = ()) -> str:
    """A Verilator configuration file: :data:`CORE_WAIVED` in ``<core_module>.v``; with an
    AXI4-Stream top level ``top``, also the unused padding bits of its slaves' TDATA (null
    bits, ignored by definition), and nothing else in its file."""
    lines = ["`verilator_config", "// written by hwgen: the waivers and why are in its README"]
    lines += [f'lint_off -rule {rule} -file "*{core_module}.v"' for rule in CORE_WAIVED]
    for prefix in slaves:
        lines.append(f'lint_off -rule UNUSEDSIGNAL -file "*{top}.v" -match "*{prefix}_tdata*"')
    return "\n".join(lines) + "\n"


# -- number formats of the payload fields -------------------------------------------------


def _field_format(op: registry.Operator, params, core_port: str, field: str) -> str:
    """What the codes of one payload field mean, from the Params' named formats and the
    interface kind's fields (:mod:`hwgen.registry`)."""
    top, _, lane = field.partition(".")
    if top == "last":
        return "1: last element of a row (or last beat of a dot product)"
    if top == "first":
        if op.interface is registry.Interface.DOT:
            return "1: first beat of a dot product (clears the accumulator; 0 keeps adding)"
        return "1: first element of a row"
    if top == "addr":
        return "unsigned channel index (0 to max_len - 1)"
    if op.interface is registry.Interface.DOT:
        fields = op.golden.dot_fields(params)
        posit = f"posit<4,{getattr(params, 'es', '?')}>"
        if top == "w":
            fix = getattr(params, "w_fixp_fmt", "the fixed-point weight format")
            if not fields.formats_used:
                return f"4-bit weight pattern of lane {lane} (this engine's one weight format)"
            return f"4-bit weight pattern of lane {lane}: {posit} if w_is_posit[{lane}], else {fix}"
        if top == "w_is_posit":
            used = "" if fields.formats_used else " (ignored by this engine)"
            return f"bit k: lane k's weight is a posit{used}"
        if top == "a":
            if not fields.a_signed:
                return f"activation of lane {lane}: {posit} pattern"
            return f"activation of lane {lane}: {getattr(params, 'act_fmt', '?')}"
    names = [f"{top}_fmt"] if top not in ("", "data") else []
    names += ["in_fmt"] if core_port == "i" else ["out_fmt", "acc_fmt"]
    for name in names:
        fmt = getattr(params, name, None)
        if fmt is not None:
            return f"{fmt} ({name})"
    return "code (see the operator's documentation)"


def _doc_member(cls: type, member: str) -> str:
    """The text of ``member`` in a numpydoc ``Members`` section of ``cls``'s docstring."""
    lines = (cls.__doc__ or "").splitlines()
    for k, line in enumerate(lines):
        if re.fullmatch(rf"\s*{member} : .*", line):
            indent = len(line) - len(line.lstrip())
            text = []
            for more in lines[k + 1 :]:
                if more.strip() and len(more) - len(more.lstrip()) <= indent:
                    break
                text.append(more.strip())
            return " ".join(t for t in text if t)
    return ""


def _throughput(op: registry.Operator, core) -> str:
    kind = op.interface
    if kind is registry.Interface.DOT:
        return f"one beat ({core.params.lanes} terms) per clock"
    if kind is registry.Interface.ELEMENT:
        return "one element per clock"
    row_clocks = getattr(core, "row_clocks", 0)
    if row_clocks:
        return (
            f"one element per clock for rows longer than row_clocks = {row_clocks}; shorter "
            "rows wait for the per-row unit"
        )
    return "one element per clock"


# -- sidecar and core description --------------------------------------------------------


def _core_ports(op, params, core) -> tuple[list, dict]:
    """Ports and payload fields of the core itself (Amaranth's stream naming)."""
    ports = [
        {"name": "clk", "direction": "in", "width": 1, "role": "clock (rising edge)"},
        {"name": "rst", "direction": "in", "width": 1, "role": "reset, active high, synchronous"},
    ]
    fields = {}
    for name, member in core.signature.members.items():
        if not member.is_signature:
            continue
        into = member.flow is In
        shape = member.signature.members["payload"].shape
        width = sum(w for _, _, w, _ in payload_fields(shape))
        d_in, d_out = ("in", "out") if into else ("out", "in")
        ports += [
            {"name": f"{name}__payload", "direction": d_in, "width": width, "role": "payload"},
            {"name": f"{name}__valid", "direction": d_in, "width": 1, "role": "valid"},
            {"name": f"{name}__ready", "direction": d_out, "width": 1, "role": "ready"},
        ]
        fields[f"{name}__payload"] = [
            {
                "field": fld or "data",
                "offset": off,
                "width": w,
                "signed": signed,
                "format": _field_format(op, params, name, fld),
            }
            for fld, off, w, signed in payload_fields(shape)
        ]
    return ports, fields


def _axis_ports(op, params, ports: list[AxisPort]) -> tuple[list, dict]:
    """Ports and TDATA layouts of the AXI4-Stream top level."""
    rows = [
        {"name": "aclk", "direction": "in", "width": 1, "role": "clock (rising edge)"},
        {
            "name": "aresetn",
            "direction": "in",
            "width": 1,
            "role": "reset, active low, synchronous to aclk",
        },
    ]
    streams = {}
    for port in ports:
        for name, (direction, width) in port.signals().items():
            signal = name.rsplit("_", 1)[1]
            role = signal.upper()
            if signal == "tlast":
                role += ": " + _field_format(op, params, port.core_port, "last")
            elif signal == "tuser":
                role += "[0]: " + _field_format(op, params, port.core_port, "first")
            rows.append(
                {
                    "name": name,
                    "direction": direction,
                    "width": width,
                    "role": role,
                    "interface": port.prefix,
                }
            )
        streams[port.prefix] = {
            "mode": "master" if port.master else "slave",
            "core_port": port.core_port,
            "tdata_bytes": port.tdata_width // 8,
            "padding": (
                "signed fields sign-extended, unsigned zero-extended to the end of their slot"
                if port.master
                else "ignored"
            ),
            "fields": [
                {
                    "field": f.name or "data",
                    "offset": f.offset,
                    "width": f.width,
                    "signed": f.signed,
                    "slot_end": f.slot_end,
                    "format": _field_format(op, params, port.core_port, f.name),
                }
                for f in port.fields
            ],
        }
    return rows, streams


def sidecar(
    op_name: str,
    params,
    module: str,
    files: list[str],
    *,
    axis: bool,
    core_module: str | None = None,
) -> dict:
    """The JSON sidecar of one emitted design (see the module documentation).

    ``module`` is the design's top module; for the AXI4-Stream top level ``core_module`` names
    the core it instantiates.
    """
    op = registry.get(op_name)
    core = op.inspect(params)
    doc = {
        "module": module,
        "files": files,
        "kind": "axi4-stream top level" if axis else "core",
        "operator": op.name,
        "interface": op.interface.value,
        "summary": op.summary,
        "hwgen_version": hwgen_version(),
        "golden_model": f"{op.golden_module}.emulate",
        "params_class": f"{op.golden_module}.{op.params_name}",
        "params": params.to_dict(),
        "latency_clocks": core.latency,
        "latency": _doc_member(type(core), "latency"),
        "throughput": _throughput(op, core),
    }
    if getattr(core, "row_clocks", 0):
        doc["row_clocks"] = core.row_clocks
    if op.interface.rows:
        doc["max_len"] = params.max_len
    if axis:
        doc["core_module"] = core_module
        doc["ports"], doc["streams"] = _axis_ports(op, params, axis_ports(core.signature))
    else:
        doc["ports"], doc["payloads"] = _core_ports(op, params, core)
    return doc


def core_description(module: str, files: list[str], summary: str, version: str) -> str:
    """A FuseSoC CAPI2 core description: the Verilog files, the top module, and a ``lint``
    target (Verilator ``--lint-only -Wall`` with the ``.vlt`` waivers among ``files``)."""
    vlnv_version = re.sub(r"[^0-9A-Za-z.]", ".", version)
    listed = "\n".join(f"      - {f}" for f in files if not f.endswith(".vlt"))
    waivers = [f for f in files if f.endswith(".vlt")]
    vlt = "".join(f"      - {f}: {{file_type: vlt}}\n" for f in waivers)
    return (
        "CAPI=2:\n"
        f"# written by hwgen {version}; regenerate rather than edit\n"
        f"name: hwgen:ops:{module}:{vlnv_version}\n"
        f"description: {json.dumps(summary)}\n"
        "filesets:\n"
        "  rtl:\n"
        "    files:\n"
        f"{listed}\n"
        "    file_type: verilogSource\n"
        + ("  lint_waivers:\n    files:\n" + vlt if waivers else "")
        + "targets:\n"
        "  default: &default\n"
        "    filesets: [rtl]\n"
        f"    toplevel: {module}\n"
        "  lint:\n"
        "    <<: *default\n"
        f"    filesets: [rtl{', lint_waivers' if waivers else ''}]\n"
        "    default_tool: verilator\n"
        "    tools:\n"
        "      verilator:\n"
        "        mode: lint-only\n"
        "        verilator_options: [-Wall]\n"
    )


def emit(
    op_name: str, params, out_dir: Path | str, *, axis: bool = False, name: str | None = None
) -> list[Path]:
    """Write one configuration's Verilog, sidecar and core description; return the paths.

    Parameters
    ----------
    op_name : str
        The operator.
    params : Params
        Its configuration.
    out_dir : path
        The folder (created if missing).
    axis : bool
        Also write the AXI4-Stream top level.
    name : str, optional
        The top module's name: the AXI4-Stream top level's with ``axis`` (default
        ``<params.name>_axis``), else the core's (default ``params.name``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if name is not None:
        check_name(name)
    op = registry.get(op_name)
    version = hwgen_version()
    core_name = params.name if (axis or name is None) else name
    top = (name or f"{params.name}_axis") if axis else core_name
    if axis and top == core_name:
        raise ValueError(f"--name {top!r} is the core's own name; choose another")
    dut = registry.component(op_name, params)
    text = plain_module_names(registry.verilog_text(dut, core_name), core_name)
    written = [out / f"{core_name}.v"]
    written[0].write_text(text)
    (out / f"{core_name}.vlt").write_text(lint_waivers(core_name))
    written.append(out / f"{core_name}.vlt")
    designs = [(core_name, [f"{core_name}.v", f"{core_name}.vlt"], False)]
    if axis:
        wrapper = AxisTop(op.inspect(params).signature, core_name)
        (out / f"{top}.v").write_text(registry.verilog_text(wrapper, top))
        slaves = tuple(p.prefix for p in wrapper.ports if not p.master)
        (out / f"{top}.vlt").write_text(lint_waivers(core_name, top, slaves))
        written += [out / f"{top}.v", out / f"{top}.vlt"]
        designs.append((top, [f"{top}.v", f"{core_name}.v", f"{top}.vlt"], True))
    for module, files, is_axis in designs:
        doc = sidecar(op_name, params, module, files, axis=is_axis, core_module=core_name)
        (out / f"{module}.json").write_text(json.dumps(doc, indent=2) + "\n")
        summary = f"{op.summary} ({'AXI4-Stream top level' if is_axis else 'core'})"
        (out / f"{module}.core").write_text(core_description(module, files, summary, version))
        written += [out / f"{module}.json", out / f"{module}.core"]
    return written
