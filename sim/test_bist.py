"""cocotb simulation of the built-in self-test top (:class:`hwgen.flows.bist.SelfTest`).

The same logic that goes on the board (LFSR stimulus, the operator, MISR, verdict, UART) runs
in the simulator until it reports done; the test then checks that the signature equals the
one :func:`hwgen.flows.bist.predict` computed from ``golden.<op>.emulate`` and the Python MISR
model, that the verdict outputs say pass, and that the UART line carries the same values.
A second build of every operator bakes in a deliberately wrong expected signature (one bit
flipped); it must say fail, with the same (correct) signature on the UART.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwgen import registry
from hwgen.flows import bist
from sim import runner

ROOT = Path(__file__).resolve().parent.parent
#: clocks per UART bit and between report lines in simulation (the board uses clk / 115200)
UART_DIVISOR = 4
UART_GAP = 64

if runner.in_simulator():  # the cocotb half only exists inside a simulator
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

    def _uart_decode(samples: list[int], divisor: int) -> str:
        """8N1 characters from one tx sample per clock, from the first gap between lines on
        (tx high for more than a character): each start bit found by its falling edge, each
        bit read in its middle; a missing stop bit ends the text with '?'."""
        k, high = 0, 0
        while k < len(samples) and high <= 10 * divisor:
            high = high + 1 if samples[k] else 0
            k += 1
        text = []
        while k < len(samples):
            if samples[k - 1] == 1 and samples[k] == 0:
                mid = k + divisor // 2
                if mid + 9 * divisor >= len(samples):
                    break
                bits = [samples[mid + divisor * (j + 1)] for j in range(8)]
                if samples[mid + 9 * divisor] != 1:
                    text.append("?")
                    break
                text.append(chr(sum(b << j for j, b in enumerate(bits))))
                k = mid + 9 * divisor
            else:
                k += 1
        return "".join(text)

    @cocotb.test()
    async def self_test(dut):
        """Run to done; check signature, verdict, clock count and the UART report."""
        cfg = json.loads(os.environ["HWGEN_BIST"])
        predicted, expected = cfg["predicted"], cfg["expected"]
        Clock(dut.clk, 10, unit="ns", impl="gpi").start()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        assert int(dut.running.value) == 1, "not running after reset"
        limit, waited = cfg["clock_limit"], 0
        while not (int(dut.done.value) or int(dut.hang.value)):
            assert waited < limit, f"{cfg['name']}: no verdict after {limit} clocks"
            await ClockCycles(dut.clk, 64)
            waited += 64
        await FallingEdge(dut.clk)
        got = {
            "signature": int(dut.misr.value),
            "cycles": int(dut.cycles.value),
            "passed": int(dut.passed.value),
            "failed": int(dut.failed.value),
            "hang": int(dut.hang.value),
            "running": int(dut.running.value),
        }
        # the report line: sample tx once per clock for two lines' worth of time
        n_chars = len(bist.report_text("PASS", cfg["name"], 0, 0, 0))
        samples = []
        for _ in range(3 * (n_chars * 10 * UART_DIVISOR + UART_GAP)):
            samples.append(int(dut.tx.value))
            await FallingEdge(dut.clk)
        got["uart"] = _uart_decode(samples, UART_DIVISOR)
        summary = {"predicted": predicted, "expected": expected, **got}
        with open(os.environ["HWGEN_SUMMARY"], "w") as f:
            json.dump(summary, f, indent=1)

        name = cfg["name"]
        assert got["hang"] == 0 and got["running"] == 0, f"{name}: watchdog fired: {got}"
        assert got["signature"] == predicted, (
            f"{name}: signature {got['signature']:08X}, golden model predicts {predicted:08X}"
        )
        status = "PASS" if expected == predicted else "FAIL"
        assert (got["passed"], got["failed"]) == (int(status == "PASS"), int(status == "FAIL")), (
            f"{name}: expected {status}, LEDs say passed={got['passed']} failed={got['failed']}"
        )
        line = bist.report_text(status, name, predicted, expected, got["cycles"])
        assert got["uart"].startswith(line + line[: len(got["uart"]) - len(line)]), (
            f"{name}: UART sent {got['uart']!r}, expected {line!r} repeated"
        )
        beats = cfg["beats"]
        assert got["cycles"] >= beats, f"{name}: {beats} beats in {got['cycles']} clocks"
        if cfg["full_rate"]:  # one code per clock: the run takes beats + latency clocks
            assert got["cycles"] <= beats + cfg["latency"] + 4, (
                f"{name}: {beats} beats took {got['cycles']} clocks (latency {cfg['latency']})"
            )


# -- pytest side -----------------------------------------------------------------------------


def run(params: bist.BistParams, sim: str, *, expected: int | None = None, tag: str = "") -> dict:
    """Build the self-test top of ``params`` and simulate it; return the run's summary."""
    component = registry.component(params.op, params.params)
    top = bist.SelfTest(
        params,
        expected=expected,
        uart_divisor=UART_DIVISOR,
        uart_gap=UART_GAP,
        component=component,
    )
    name = params.name
    build_dir = ROOT / "build" / "bitstream" / "sim" / sim / (name + (f"-{tag}" if tag else ""))
    summary = build_dir / "summary.json"
    cfg = {
        "name": name,
        "beats": params.beats,
        "predicted": top.prediction.signature,
        "expected": top.expected,
        "latency": component.latency,
        # element operators take one code per clock: their run length is known
        "full_rate": isinstance(top.stim, bist._ElementStim),
        "clock_limit": 64 * (params.beats + top.stim.load_beats) + 100_000,
    }
    env = {"HWGEN_BIST": json.dumps(cfg), "HWGEN_SUMMARY": str(summary)}
    runner.simulate(top, name, build_dir, sim, "sim.test_bist", env)
    return json.loads(summary.read_text()) if summary.exists() else {}


OPS = [pytest.param(name, id=name) for name in registry.OPERATORS]


@pytest.mark.parametrize("op", OPS)
def test_self_test_passes(op):
    """The self-test of every operator's default configuration reports pass on Icarus."""
    params = bist.BistParams(op)
    summary = run(params, "icarus")
    assert summary["passed"] == 1 and summary["signature"] == summary["predicted"], summary


@pytest.mark.parametrize("op", OPS)
def test_wrong_expected_signature_fails(op):
    """A run with one bit of the baked-in expectation flipped reports fail (a short run: the
    verdict logic is what is under test)."""
    params = bist.BistParams(op, beats=256)
    wrong = bist.predict(params).signature ^ 1
    summary = run(params, "icarus", expected=wrong, tag="wrong")
    assert summary["failed"] == 1 and summary["passed"] == 0, summary
    assert summary["uart"].startswith("FAIL "), summary["uart"]


@pytest.mark.skipif(
    not os.environ.get("HWGEN_BIST_VERILATOR"),
    reason="Verilator compiles the self-test top for a minute; HWGEN_BIST_VERILATOR=1 runs it",
)
def test_self_test_passes_on_verilator():
    """The GELU self-test on the second simulator."""
    summary = run(bist.BistParams("gelu"), "verilator")
    assert summary["passed"] == 1, summary
