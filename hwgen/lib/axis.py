"""AXI4-Stream top level around any registered core, derived from its signature alone.

Each stream port of a core becomes one AXI4-Stream interface: the input ``i`` the slave
``s_axis``, the output ``o`` the master ``m_axis``, any other input port ``X`` (LayerNorm's
``affine``) the slave ``s_axis_X``. The payload's framing bits go to the side-band signals
(``last`` to TLAST, ``first`` to TUSER[0]); every other top-level payload field gets a slot of
whole bytes in TDATA, in the core's field order, starting at bit 0 (:func:`axis_ports`). So
TDATA is a whole number of bytes, as the AXI4-Stream specification requires, and each field
starts on a byte lane where a driver can write or read it. Padding bits of a slave's TDATA are
ignored; a master's signed field is sign-extended to the end of its slot, an unsigned one
zero-extended, so a 16-bit slot reads as an ``int16``/``uint16``.

The clock is ``aclk``, the reset ``aresetn`` (active low, synchronous to ``aclk`` as the
specification says), and the ports carry Vivado's ``X_INTERFACE_INFO`` /
``X_INTERFACE_PARAMETER`` attributes so that IP packager and block designs infer the
interfaces. The core is an ``Instance`` of its own module: the wrapper's Verilog holds only
wiring and is used beside the core's file.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import C, Cat, Instance, Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..flows.streams import payload_fields

__all__ = ["AxisField", "AxisPort", "axis_ports", "AxisTop", "FRAMING"]

#: payload framing bits and the AXI4-Stream side-band signal each goes to
FRAMING = {"last": "tlast", "first": "tuser"}

_XIL_AXIS = "xilinx.com:interface:axis:1.0"


def _bytes(bits: int) -> int:
    """``bits`` rounded up to whole bytes (at least one)."""
    return max(8, -(-bits // 8) * 8)


@dataclass(frozen=True)
class AxisField:
    """One leaf field of a core payload and where it sits in TDATA.

    Members
    -------
    name : str
        Dotted path in the core payload (``""``: a plain payload; ``"w.3"``: lane 3 of ``w``).
    offset : int
        Its lowest bit in TDATA.
    width : int
        Bits.
    signed : bool
        Whether it is two's complement.
    core_offset : int
        Its lowest bit in the core's payload.
    slot_end : int
        One past the last TDATA bit that belongs to it (its own bits plus the padding up to
        the next byte boundary, when it is alone in its slot; else ``offset + width``).
    """

    name: str
    offset: int
    width: int
    signed: bool
    core_offset: int
    slot_end: int


@dataclass(frozen=True)
class AxisPort:
    """One AXI4-Stream interface of the wrapper and the core stream port behind it.

    Members
    -------
    core_port : str
        The core's stream member (``i``, ``o``, ``affine``).
    prefix : str
        ``s_axis``, ``m_axis`` or ``s_axis_<core_port>``.
    master : bool
        Whether the wrapper drives TDATA (the core's output).
    tdata_width : int
        TDATA bits, a multiple of 8.
    fields : tuple of AxisField
        The payload fields in TDATA.
    tlast, tuser : int or None
        Bit of the core payload carried by TLAST (``last``) and TUSER (``first``), if any.
    payload_width : int
        Bits of the core payload.
    """

    core_port: str
    prefix: str
    master: bool
    tdata_width: int
    fields: tuple[AxisField, ...]
    tlast: int | None
    tuser: int | None
    payload_width: int

    def signals(self) -> dict[str, tuple[str, int]]:
        """``{port name: (direction "in"/"out" of the wrapper, width)}`` in AXI order."""
        out, back = ("out", "in") if self.master else ("in", "out")
        sig = {f"{self.prefix}_tdata": (out, self.tdata_width), f"{self.prefix}_tvalid": (out, 1)}
        sig[f"{self.prefix}_tready"] = (back, 1)
        if self.tlast is not None:
            sig[f"{self.prefix}_tlast"] = (out, 1)
        if self.tuser is not None:
            sig[f"{self.prefix}_tuser"] = (out, 1)
        return sig


def _port(core_port: str, master: bool, shape) -> AxisPort:
    """The AXI4-Stream form of one core stream with payload ``shape``."""
    prefix = (
        "m_axis" if core_port == "o" else "s_axis" if core_port == "i" else f"s_axis_{core_port}"
    )
    groups = []  # (name, core offset, shape) of each top-level field
    framing = {}
    if isinstance(shape, data.Layout):
        for key, fld in shape:
            if key in FRAMING and Shape.cast(fld.shape).width == 1:
                framing[key] = fld.offset
            else:
                groups.append((str(key), fld.offset, fld.shape))
    else:
        groups.append(("", 0, shape))
    fields, cursor = [], 0
    for key, core_off, fshape in groups:
        leaves = payload_fields(fshape)
        width = sum(w for _, _, w, _ in leaves)
        end = _bytes(width) + cursor
        for sub, off, w, signed in leaves:
            name = key if not sub else (f"{key}.{sub}" if key else sub)
            slot_end = end if len(leaves) == 1 else cursor + off + w
            fields.append(AxisField(name, cursor + off, w, signed, core_off + off, slot_end))
        cursor = end
    return AxisPort(
        core_port=core_port,
        prefix=prefix,
        master=master,
        tdata_width=_bytes(cursor),
        fields=tuple(fields),
        tlast=framing.get("last"),
        tuser=framing.get("first"),
        payload_width=Shape.cast(shape).width,
    )


def axis_ports(signature: wiring.Signature) -> list[AxisPort]:
    """The AXI4-Stream interfaces of a core with ``signature``: slaves first, then ``m_axis``.

    Raises ``ValueError`` for a core without the contract's ``i`` and ``o`` stream ports.

    >>> from amaranth.hdl import signed
    >>> from amaranth.lib import stream
    >>> layout = data.StructLayout({"data": signed(12), "first": 1, "last": 1})
    >>> sig = wiring.Signature({"i": In(stream.Signature(signed(12))),
    ...                         "o": Out(stream.Signature(layout))})
    >>> [(p.prefix, p.tdata_width, p.tlast, p.tuser) for p in axis_ports(sig)]
    [('s_axis', 16, None, None), ('m_axis', 16, 13, 12)]
    """
    ports = []
    for name, member in signature.members.items():
        if not member.is_signature or "payload" not in member.signature.members:
            continue
        master = member.flow is Out
        if master and name != "o":
            raise ValueError(f"core output stream {name!r}: only one output stream, 'o', is known")
        ports.append(_port(name, master, member.signature.members["payload"].shape))
    names = [p.core_port for p in ports]
    if "i" not in names or "o" not in names:
        raise ValueError(f"a core needs stream ports 'i' and 'o' for AXI4-Stream, not {names}")
    return sorted(ports, key=lambda p: (p.master, p.core_port != "i", p.core_port))


class AxisTop(wiring.Component):
    """AXI4-Stream ports around an instance of core module ``core_name``.

    Pure wiring (combinational): no register is added, so latency and throughput are the
    core's. TVALID/TREADY are the core's valid/ready, so the AXI4-Stream rules (TVALID held
    until TREADY, no combinational path from TREADY to TVALID) hold as the stream contract of
    the core guarantees them.

    Parameters
    ----------
    core_signature : wiring.Signature
        The core's signature (its stream ports ``i``, ``o`` and any parameter port).
    core_name : str
        The core's Verilog module name.

    Members
    -------
    aclk : In(1)
        Clock of every interface.
    aresetn : In(1)
        Synchronous reset, active low; the core sees ``rst = ~aresetn``.
    <prefix>_tdata, _tvalid, _tready, _tlast, _tuser
        One AXI4-Stream interface per :class:`AxisPort` of :func:`axis_ports`.
    ports : list of AxisPort
        The interfaces and their TDATA layouts.
    """

    def __init__(self, core_signature: wiring.Signature, core_name: str):
        self.core_name = core_name
        self.ports = axis_ports(core_signature)
        members = {"aclk": In(1), "aresetn": In(1)}
        for port in self.ports:
            for name, (direction, width) in port.signals().items():
                members[name] = (Out if direction == "out" else In)(width)
        super().__init__(members)
        self._vivado_attributes()

    def _vivado_attributes(self) -> None:
        """Vivado's interface attributes on every port."""
        buses = ":".join(p.prefix for p in self.ports)
        self.aclk.attrs["X_INTERFACE_INFO"] = "xilinx.com:signal:clock:1.0 aclk CLK"
        self.aclk.attrs["X_INTERFACE_PARAMETER"] = (
            f"ASSOCIATED_BUSIF {buses}, ASSOCIATED_RESET aresetn"
        )
        self.aresetn.attrs["X_INTERFACE_INFO"] = "xilinx.com:signal:reset:1.0 aresetn RST"
        self.aresetn.attrs["X_INTERFACE_PARAMETER"] = "POLARITY ACTIVE_LOW"
        for port in self.ports:
            for name in port.signals():
                role = name.rsplit("_", 1)[1].upper()
                getattr(self, name).attrs["X_INTERFACE_INFO"] = f"{_XIL_AXIS} {port.prefix} {role}"

    def elaborate(self, platform):
        m = Module()
        core_rst = Signal(name="core_rst")
        m.d.comb += core_rst.eq(~self.aresetn)
        conns = {"i_clk": self.aclk, "i_rst": core_rst}
        for port in self.ports:
            pre, cp = port.prefix, port.core_port
            tdata = getattr(self, f"{pre}_tdata")
            valid, ready = getattr(self, f"{pre}_tvalid"), getattr(self, f"{pre}_tready")
            # the core payload as the concatenation of TDATA slices and side-band bits, in its
            # own bit order: no intermediate wire, and assignable for the master
            pieces = [(f.core_offset, tdata[f.offset : f.offset + f.width]) for f in port.fields]
            if port.tlast is not None:
                pieces.append((port.tlast, getattr(self, f"{pre}_tlast")))
            if port.tuser is not None:
                pieces.append((port.tuser, getattr(self, f"{pre}_tuser")))
            payload = Cat(*(value for _, value in sorted(pieces, key=lambda p: p[0])))
            assert len(payload) == port.payload_width
            if port.master:
                padded = [f for f in port.fields if f.slot_end > f.offset + f.width]
                if padded:  # a named wire rather than Yosys's `$1` for the core's output
                    core_payload = Signal(port.payload_width, name=f"core_{cp}_payload")
                    m.d.comb += payload.eq(core_payload)
                    payload = core_payload
                for f in padded:  # sign- or zero-extend over the field's padding
                    fill = tdata[f.offset + f.width - 1] if f.signed else C(0, 1)
                    pad = f.slot_end - f.offset - f.width
                    m.d.comb += tdata[f.offset + f.width : f.slot_end].eq(fill.replicate(pad))
                conns |= {f"o_{cp}__payload": payload, f"o_{cp}__valid": valid}
                conns[f"i_{cp}__ready"] = ready
            else:
                conns |= {f"i_{cp}__payload": payload, f"i_{cp}__valid": valid}
                conns[f"o_{cp}__ready"] = ready
        m.submodules.core = Instance(self.core_name, **conns)
        return m
