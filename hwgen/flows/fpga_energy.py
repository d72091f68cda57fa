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

from dataclasses import dataclass

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
