# amaranth: UnusedElaboratable=no
"""The operator contract and its registry.

(Components built here only to read their signature or latency are never elaborated: the first
line is Amaranth's per-file switch for the warning it would give.)

Every flow (the CLI, Verilog emission, synthesis, the energy estimate, the report, the self-test,
the formal proofs, the cocotb runner) reaches operators through :data:`OPERATORS` and works from
an :class:`Operator` record and its :class:`Interface` alone: no flow names an operator or probes
its Params.

What an operator provides
-------------------------
Golden side, a module (``golden.<name>``) with NumPy functions only:

``<Params>``
    the frozen Params dataclass (:class:`golden.params.ParamsBase`), named by ``params_name``;
``emulate(p, ...)``
    the bit-exact model; its arguments are the interface's case (below);
``reference(p, x)``
    the float64 ideal math;
``tables(p)``
    every constant the hardware bakes in;
``error_stats(p)``
    ``{"max_abs": ..., "mean_abs": ..., ...}`` of ``emulate`` against ``reference``;
``standard_cases(p)``
    ``{name: case}``, named corner cases;
``random_cases(p, n, seed=0)``
    ``n`` biased random cases (a list, or a code array for the element stream);
``param_sweep()``
    configurations worth testing, the default first;
``workload(p, n, seed=0)``
    a :class:`golden.params.Workload`: realistic cases (DeiT-like values) of about ``n``
    elements for the energy estimate, with a line saying what they are;
``pareto_sweep()`` (optional)
    the configurations of the report's Pareto plot (default ``param_sweep()``);
``options()`` (optional)
    alternatives to the default that the report treats like it (every unit, compared with the
    baselines), e.g. the softmax's base-2 table exponential.

Hardware side, a module (``hwgen.cores.<name>``) with the ``wiring.Component`` named by
``component_name``, built from the Params alone, with a ``latency`` attribute (clocks from an
accepted input to its output with no back-pressure) and the ports of its interface kind:

=============  =================================================  ==========================
interface      ports (payload fields)                             one case is
=============  =================================================  ==========================
``element``    ``i``: code, ``o``: code                           a 1-D code array
``row``        ``i``: {data, last}, ``o``: {data, first, last}    one row (1-D code array)
``row_param``  ``row`` plus ``affine``: {addr, <vectors>}         one row; ``row_params``
``dot``        ``i``: {w[lanes], w_is_posit, a[lanes], first,     ``(w, a, w_is_posit)``
               last}, ``o``: accumulator                          arrays of the terms
=============  =================================================  ==========================

Row kinds take ``max_len`` from their Params; ``row_param`` operators also give
``row_params(p, length, seed=None)``, the per-channel vectors loaded through the ``affine``
port in its field order (``seed=None``: the identity), passed to ``emulate`` after the row. A
``dot`` component's Params give ``lanes`` and ``max_terms``, its ``emulate(p, w, a, w_is_posit)``
returns one accumulator code per dot product, and ``dot_fields(p)`` says how wide an
activation field is and whether the format bits are used.

Adding an operator means a golden module, a core, an :class:`Operator` entry (``register`` for
one that lives outside this package) and the operator's own tests; ``tests/test_contract.py``
checks every registered operator against this contract.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = [
    "Interface",
    "Operator",
    "OPERATORS",
    "GOLDEN_FUNCTIONS",
    "register",
    "unregister",
    "get",
    "params_from_text",
    "component",
    "verilog_text",
    "write_verilog",
    "Emitted",
]


class Interface(enum.Enum):
    """The kind of ports a component has; flows pick their stimulus and checks by it."""

    #: one code in, one code out per beat
    ELEMENT = "element"
    #: row-framed codes in, a row of results out
    ROW = "row"
    #: a row stream plus an ``affine`` port loading per-channel vectors
    ROW_PARAM = "row_param"
    #: dot-product beats of ``lanes`` (weight, activation) pairs in, one accumulator out
    DOT = "dot"

    @property
    def framed(self) -> bool:
        """Whether the input carries framing (rows or dot products)."""
        return self is not Interface.ELEMENT

    @property
    def rows(self) -> bool:
        """Whether the operator maps rows to rows (its Params have ``max_len``)."""
        return self in (Interface.ROW, Interface.ROW_PARAM)


#: Functions every golden module provides (see the module documentation).
GOLDEN_FUNCTIONS = (
    "emulate",
    "reference",
    "tables",
    "error_stats",
    "standard_cases",
    "random_cases",
    "param_sweep",
    "workload",
)


@dataclass(frozen=True)
class Operator:
    """One operator or baseline: where its golden model and component live, and what it is.

    Members
    -------
    name : str
        The stem shared by golden/, hwgen/cores/, sim/ and tests/ (``gelu``).
    params_name : str
        Class name of the Params in the golden module.
    component_name : str
        Class name of the component in the core module.
    interface : Interface
        The kind of ports; every flow chooses its stimulus by it.
    summary : str
        One line for ``hwgen list``.
    baseline_for : str or None
        For a conventional baseline, the approximate operator it is compared with.
    peano_vit : float or None
        PEANO-ViT's published power-efficiency factor of this approximate operator over a
        conventional design (the report sets its ratios beside it).
    golden_module, core_module : str
        Module paths; default ``golden.<name>`` and ``hwgen.cores.<name>``.
    """

    name: str
    params_name: str
    component_name: str
    interface: Interface
    summary: str
    baseline_for: str | None = None
    peano_vit: float | None = None
    golden_module: str = ""
    core_module: str = ""

    def __post_init__(self):
        if not isinstance(self.interface, Interface):
            raise TypeError(f"interface must be an Interface, not {self.interface!r}")
        if not self.golden_module:
            object.__setattr__(self, "golden_module", f"golden.{self.name}")
        if not self.core_module:
            object.__setattr__(self, "core_module", f"hwgen.cores.{self.name}")

    @property
    def golden(self) -> ModuleType:
        return importlib.import_module(self.golden_module)

    @property
    def params(self) -> type:
        return getattr(self.golden, self.params_name)

    @property
    def component(self) -> type:
        return getattr(importlib.import_module(self.core_module), self.component_name)

    @property
    def family(self) -> str:
        """The approximate operator whose interface and role this one shares (itself or the
        operator it is a baseline for)."""
        return self.baseline_for or self.name

    def pareto_sweep(self) -> list:
        """The report's Pareto-sweep configurations (``pareto_sweep()`` or ``param_sweep()``)."""
        make = getattr(self.golden, "pareto_sweep", None) or self.golden.param_sweep
        return make()

    def inspect(self, params=None):
        """A component built only to read its signature or latency (never elaborated)."""
        return self.component(params if params is not None else self.params())

    def to_dict(self) -> dict:
        """The record as JSON-able values (subprocesses rebuild it with :func:`register`)."""
        return {
            "name": self.name,
            "params_name": self.params_name,
            "component_name": self.component_name,
            "interface": self.interface.value,
            "summary": self.summary,
            "baseline_for": self.baseline_for,
            "peano_vit": self.peano_vit,
            "golden_module": self.golden_module,
            "core_module": self.core_module,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Operator:
        return cls(**{**d, "interface": Interface(d["interface"])})


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator(
            "gelu",
            "GeluParams",
            "GeluPWL",
            Interface.ELEMENT,
            "piecewise-linear GELU, multiplier-free or one small multiplier",
            peano_vit=8.01,
        ),
        Operator(
            "softmax",
            "SoftmaxParams",
            "Softmax",
            Interface.ROW,
            "row softmax: Padé exponential, table + Newton reciprocal, no divider",
            peano_vit=1.39,
        ),
        Operator(
            "layernorm",
            "LayerNormParams",
            "LayerNorm",
            Interface.ROW_PARAM,
            "row LayerNorm: exact statistics, table + Newton 1/sqrt, no divider or sqrt",
            peano_vit=1.91,
        ),
        Operator(
            "posit_mac",
            "MacParams",
            "MacEngine",
            Interface.DOT,
            "Posit4 / FixP4 x fixed-point dot-product engine (and its baselines), no multiplier",
        ),
        Operator(
            "softmax_base",
            "SoftmaxBaseParams",
            "SoftmaxBase",
            Interface.ROW,
            "softmax baselines: table exp + pipelined divider (div), hls4ml-style tables (lut)",
            baseline_for="softmax",
        ),
        Operator(
            "gelu_base",
            "GeluBaseParams",
            "GeluBase",
            Interface.ELEMENT,
            "GELU baselines: block-RAM table (table), x * Phi(x) by Horner with DSPs (poly)",
            baseline_for="gelu",
        ),
        Operator(
            "layernorm_base",
            "LayerNormBaseParams",
            "LayerNormBase",
            Interface.ROW_PARAM,
            "LayerNorm baselines: dividers + square root (div), hls4ml-style 1/sqrt table (lut)",
            baseline_for="layernorm",
        ),
    ]
}


def register(op: Operator) -> Operator:
    """Add an operator that lives outside this package (its modules importable by path)."""
    if op.name in OPERATORS and OPERATORS[op.name] != op:
        raise ValueError(f"operator {op.name!r} is registered already")
    OPERATORS[op.name] = op
    return op


def unregister(name: str) -> None:
    """Remove an operator added by :func:`register`."""
    OPERATORS.pop(name, None)


def get(name: str) -> Operator:
    """The registry entry of ``name``, or a one-line error listing the known operators."""
    try:
        return OPERATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown operator {name!r}; known operators: {', '.join(OPERATORS)}"
        ) from None


def params_from_text(name: str, text: str = ""):
    """Params of operator ``name`` from ``key=value,...`` text (empty: the defaults)."""
    return get(name).params.parse(text or "")


def component(name: str, params=None):
    """A fresh component of operator ``name`` for ``params`` (default parameters if None)."""
    op = get(name)
    return op.component(params if params is not None else op.params())


def verilog_text(dut, name: str) -> str:
    """Verilog of a component with module name ``name``, reproducible (no source locations)."""
    from amaranth.back import verilog

    return verilog.convert(dut, name=name, emit_src=False)


@dataclass(frozen=True)
class Emitted:
    """A Verilog file written by :func:`write_verilog` and the latency of its design."""

    path: Path
    latency: int


def write_verilog(name: str, params, out_dir: Path | str) -> Emitted:
    """Write ``<out_dir>/<params.name>.v`` for operator ``name``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{params.name}.v"
    dut = component(name, params)
    path.write_text(verilog_text(dut, params.name))
    return Emitted(path, dut.latency)
