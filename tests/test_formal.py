"""Proofs of the stream rules (hwgen.flows.formal), and broken components that must fail.

The default run (about 90 s on a loaded 2-core machine) proves ``stable`` (k-induction) and
``reset`` (bounded, two full rows deep) for every streaming component of the registry, every
property of the GELU pipeline and the counting properties that take seconds
(:data:`FAST_COUNTING`), and shows that broken components fail; the other counting properties
take far longer (some do not finish) and carry the ``formal`` marker (``make formal`` or
``pytest -m formal``).
"""

from __future__ import annotations

import json

import pytest
from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring

from golden.gelu import GeluParams
from hwgen.cores.gelu import GeluPWL
from hwgen.cores.layernorm import _RowUnit
from hwgen.flows import formal

MISSING = formal.solver_missing()
needs_solver = pytest.mark.skipif(
    MISSING is not None, reason=f"formal proofs need SymbiYosys and Boolector: {MISSING}"
)


class _Unstable(wiring.Component):
    """GELU whose output word changes while it waits for ``o.ready`` (breaks ``stable``)."""

    def __init__(self):
        self.inner = GeluPWL(GeluParams())
        self.latency = self.inner.latency
        super().__init__(self.inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        flip = Signal()
        with m.If(self.o.valid & ~self.o.ready):
            m.d.sync += flip.eq(~flip)
        m.d.comb += [
            self.o.valid.eq(inner.o.valid),
            self.o.payload.eq(inner.o.payload ^ flip),
            inner.o.ready.eq(self.o.ready),
        ]
        return m


class _Dropper(wiring.Component):
    """GELU that silently swallows its second result (breaks ``drain``, no loss)."""

    def __init__(self):
        self.inner = GeluPWL(GeluParams())
        self.latency = self.inner.latency
        super().__init__(self.inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        emitted = Signal(2)
        drop = inner.o.valid & (emitted == 1)
        with m.If(inner.o.valid & inner.o.ready & (emitted != 3)):
            m.d.sync += emitted.eq(emitted + 1)
        m.d.comb += [
            self.o.valid.eq(inner.o.valid & ~drop),
            self.o.payload.eq(inner.o.payload),
            inner.o.ready.eq(Mux(drop, 1, self.o.ready)),
        ]
        return m


class _EagerValid(wiring.Component):
    """GELU that raises ``o.valid`` two clocks after reset with no input (breaks ``reset``)."""

    def __init__(self):
        self.inner = GeluPWL(GeluParams())
        self.latency = self.inner.latency
        super().__init__(self.inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        clocks = Signal(2)
        with m.If(clocks != 3):
            m.d.sync += clocks.eq(clocks + 1)
        m.d.comb += [
            self.o.valid.eq(inner.o.valid | (clocks == 2)),
            self.o.payload.eq(inner.o.payload),
            inner.o.ready.eq(self.o.ready),
        ]
        return m


def test_components_come_from_the_registry():
    names = formal.components()
    assert {"gelu", "softmax", "layernorm", "posit_mac"} <= set(names)
    kinds = {name: formal.setup(name).kind for name in ("gelu", "softmax", "posit_mac")}
    assert kinds == {"gelu": "element", "softmax": "row", "posit_mac": "reduce"}


def test_row_operators_run_at_a_small_max_len_and_say_so():
    fs = formal.setup("layernorm")
    assert fs.max_len == formal.FORMAL_MAX_LEN == 2
    default, used, why = fs.changed["max_len"]
    assert (default, used) == (1024, 2) and "two full rows" in why
    # the depth lets two full rows in, through the per-row unit, and out
    unit_clocks = _RowUnit.clocks(fs.params)  # 69 at max_len 2
    assert fs.depth == fs.needed_depth > 2 * fs.params.max_len + 2 * unit_clocks
    assert formal.setup("gelu").changed == {}


def test_unknown_names_get_one_line_errors():
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        formal.setup("nope")
    with pytest.raises(ValueError, match=r"gelu \(element\) has no properties \['rows'\]"):
        formal.prove(formal.setup("gelu"), ["rows"])


@needs_solver
def test_gelu_every_property_passes(tmp_path):
    fs = formal.setup("gelu")
    results = formal.prove(fs, work=tmp_path)
    assert [r.prop for r in results] == list(fs.properties)
    statuses = {r.prop: r.status for r in results}
    assert statuses == dict.fromkeys(fs.properties, "PASS"), [(r.prop, r.detail) for r in results]
    report = formal.write_report(fs, results, "boolector", tmp_path)
    doc = json.loads(report.read_text())
    assert doc["passed"] and doc["depth"] == fs.depth and doc["kind"] == "element"


@needs_solver
def test_payload_changing_while_stalled_fails_stable(tmp_path):
    fs = formal.setup("gelu")
    (result,) = formal.prove(fs, ["stable"], work=tmp_path, dut=_Unstable)
    assert result.status == "FAIL", result
    assert "stable" in result.detail and result.trace and result.trace.endswith(".vcd")


@needs_solver
def test_swallowed_result_fails_drain(tmp_path):
    fs = formal.setup("gelu")
    stable, drain = formal.prove(fs, ["stable", "drain"], work=tmp_path, dut=_Dropper)
    assert stable.status == "PASS", stable  # what it does emit is well-behaved ...
    assert drain.status == "FAIL", drain  # ... but an element is lost
    assert "drain" in drain.detail and drain.trace


@needs_solver
def test_output_valid_without_input_fails_reset(tmp_path):
    fs = formal.setup("gelu")
    (result,) = formal.prove(fs, ["reset"], work=tmp_path, dut=_EagerValid)
    assert result.status == "FAIL", result
    assert "reset" in result.detail and result.step is not None and result.step <= 3


def _baselines_behind_marker(names):
    """The baselines' proofs (the comparison designs) run under ``pytest -m formal`` and
    ``make formal``; the operators' stay in ``make test`` (its 15 minutes)."""
    return [pytest.param(n, marks=pytest.mark.formal) if n.endswith("_base") else n for n in names]


@needs_solver
@pytest.mark.parametrize("name", _baselines_behind_marker(formal.components()))
def test_stable_and_reset_pass_for_every_component(name, tmp_path):
    fs = formal.setup(name)
    stable, reset = formal.prove(fs, ["stable", "reset"], work=tmp_path, timeout=300)
    # stable: base case and k-induction, so it holds at every depth
    assert (stable.status, stable.method) == ("PASS", "prove"), stable
    # reset: bounded, to the depth that lets two full rows through
    assert (reset.status, reset.method, reset.depth) == ("PASS", "bmc", fs.needed_depth), reset


#: Counting properties that pass within seconds (the others are behind the ``formal`` marker).
FAST_COUNTING = {
    "gelu_base": ("no_extra", "drain", "reach"),
    "posit_mac": ("no_extra", "drain", "reach"),
    "softmax": ("drain", "reach"),
    "softmax_base": ("drain", "reach"),
    # per-row unit replaced by its free-latency stand-in (see test_row_units_keep_the_protocol)
    "layernorm": ("no_extra",),
}


@needs_solver
@pytest.mark.parametrize("name", _baselines_behind_marker(FAST_COUNTING))
def test_fast_counting_properties_pass(name, tmp_path):
    fs = formal.setup(name)
    props = FAST_COUNTING[name]
    results = formal.prove(fs, props, work=tmp_path, timeout=300)
    assert {r.prop: r.status for r in results} == dict.fromkeys(props, "PASS"), results
    assert all(r.depth == fs.depth_for(r.prop) for r in results)
    assert all(fs.through_depth < r.depth == fs.needed_depth for r in results if r.prop == "drain")


def test_cut_levels_and_limits_are_stated():
    assert "cutpoint" not in formal.cut_script("none")
    assert "cutpoint top.dut*/t:$mul" in formal.cut_script("mul")
    script = formal.cut_script("datapath")
    assert "memory_nordff" in script and "t:$mem_v2" in script and "r:Y_WIDTH>=12 %i" in script
    with pytest.raises(ValueError, match="unknown cut level 'all'; choose from none, mul"):
        formal.cut_script("all")
    fs = formal.setup("softmax")
    lines = formal.limits(fs)
    assert lines[0].startswith("datapath cut")
    assert any(line.startswith("max_len 256 -> 2") for line in lines)
    assert any("at most 3 elements owed" in line for line in lines)
    assert lines[-1] == f"bounded: BMC to depth {fs.depth} clocks from reset (needed {fs.depth})"


@needs_solver
@pytest.mark.formal
@pytest.mark.parametrize(
    "name",
    # those whose every counting property is in the fast set have nothing left to prove here
    [n for n in formal.components() if n not in ("gelu", "gelu_base", "posit_mac")],
)
def test_counting_properties_pass(name, tmp_path):
    fs = formal.setup(name)
    props = [
        p for p in fs.properties if p in formal.COUNTING and p not in FAST_COUNTING.get(name, ())
    ]
    assert props, f"{name}: every counting property is in the fast set"
    results = formal.prove(fs, props, work=tmp_path, timeout=900)
    assert {r.prop: r.status for r in results} == dict.fromkeys(props, "PASS")


@needs_solver
@pytest.mark.parametrize("name", ["layernorm", "layernorm_base"])
def test_row_units_keep_the_protocol(name, tmp_path):
    fs = formal.setup(name)
    assert fs.unit is not None and "unit" in fs.properties
    assert fs.abstracted("no_extra") and not fs.abstracted("drain")
    (unit,) = formal.prove(fs, ["unit"], work=tmp_path, timeout=300)
    assert (unit.status, unit.method) == ("PASS", "prove"), unit


class _LingeringUnit(Elaboratable):
    """A per-row unit whose ``done`` lasts two clocks (breaks the stand-in's protocol)."""

    RESULTS = ("a",)

    def __init__(self, params):
        self.start = Signal()
        self.idle = Signal()
        self.done = Signal()
        self.a = Signal(4)

    def elaborate(self, platform):
        m = Module()
        state = Signal(2)
        with m.If((state == 0) & self.start):
            m.d.sync += state.eq(1)
        with m.Elif(state != 0):
            m.d.sync += state.eq(state + 1)
        m.d.comb += [self.idle.eq(state == 0), self.done.eq(state >= 2)]
        return m


@needs_solver
def test_unit_that_breaks_the_protocol_fails(tmp_path):
    from hwgen.cores.layernorm import LayerNorm

    fs = formal.setup("layernorm")
    dut = LayerNorm(fs.params)
    dut.row_unit_factory = _LingeringUnit
    (unit,) = formal.prove(fs, ["unit"], work=tmp_path, dut=dut, timeout=300)
    assert unit.status == "FAIL", unit
