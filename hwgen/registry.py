"""The operator registry: one entry per operator stem, and Verilog emission.

Everything that loops over operators (the CLI, ``make verilog``, synthesis, the testbench
runner) goes through :data:`OPERATORS`, so adding an operator means adding one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = [
    "Operator",
    "OPERATORS",
    "get",
    "params_from_text",
    "component",
    "verilog_text",
    "write_verilog",
]


@dataclass(frozen=True)
class Operator:
    """How to reach one operator's Params, golden model and Amaranth component.

    Members
    -------
    name : str
        The stem shared by golden/, hwgen/, sim/ and tests/ (``gelu``).
    component_name : str
        Class name of the component in ``hwgen.cores.<name>``.
    summary : str
        One line for ``python -m hwgen list``.
    """

    name: str
    params_name: str
    component_name: str
    summary: str

    @property
    def golden(self) -> ModuleType:
        return importlib.import_module(f"golden.{self.name}")

    @property
    def params(self) -> type:
        return getattr(self.golden, self.params_name)

    @property
    def component(self) -> type:
        return getattr(importlib.import_module(f"hwgen.cores.{self.name}"), self.component_name)


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator(
            "gelu",
            "GeluParams",
            "GeluPWL",
            "piecewise-linear GELU, multiplier-free or one small multiplier",
        ),
        Operator(
            "softmax",
            "SoftmaxParams",
            "Softmax",
            "row softmax: Padé exponential, table + Newton reciprocal, no divider",
        ),
        Operator(
            "layernorm",
            "LayerNormParams",
            "LayerNorm",
            "row LayerNorm: exact statistics, table + Newton 1/sqrt, no divider or sqrt",
        ),
        Operator(
            "posit_mac",
            "MacParams",
            "MacEngine",
            "Posit4 / FixP4 x fixed-point dot-product engine (and its baselines), no multiplier",
        ),
        Operator(
            "softmax_base",
            "SoftmaxBaseParams",
            "SoftmaxBase",
            "softmax baselines: table exp + pipelined divider (div), hls4ml-style tables (lut)",
        ),
        Operator(
            "gelu_base",
            "GeluBaseParams",
            "GeluBase",
            "GELU baselines: block-RAM table (table), x * Phi(x) by Horner with DSPs (poly)",
        ),
        Operator(
            "layernorm_base",
            "LayerNormBaseParams",
            "LayerNormBase",
            "LayerNorm baselines: dividers + square root (div), hls4ml-style 1/sqrt table (lut)",
        ),
    ]
}


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
