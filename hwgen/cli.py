"""``python -m hwgen``: emit Verilog, synthesize, and measure error, per operator.

Every failure the user can fix (unknown operator, bad parameter, missing tool) ends the
program with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import ops

ROOT = Path(__file__).resolve().parent.parent


def _configs(args) -> list[tuple[str, object]]:
    """(operator, params) pairs named by the command line."""
    names = args.op or list(ops.OPERATORS)
    if args.params and len(names) != 1:
        raise ValueError("--params needs exactly one operator, e.g. `gelu --params segments=8`")
    configs = []
    for name in names:
        op = ops.get(name)
        if getattr(args, "sweep", False):
            # synthesis may have its own study (e.g. the MAC's lanes x modes grid)
            sweep = getattr(op.golden, "synth_sweep", None) if args.command == "synth" else None
            configs += [(name, p) for p in (sweep or op.golden.param_sweep)()]
        else:
            configs.append((name, ops.params_from_text(name, args.params)))
    return configs


def cmd_verilog(args) -> None:
    for name, params in _configs(args):
        print(f"wrote {ops.write_verilog(name, params, args.out).path}")


def cmd_synth(args) -> None:
    from . import synth

    families = tuple(f for f in args.families.split(",") if f)
    for fam in families:
        if fam not in synth.FAMILIES:
            raise ValueError(f"unknown family {fam!r}; choose from {', '.join(synth.FAMILIES)}")
    results = {}
    configs = _configs(args)
    for n, (name, params) in enumerate(configs, 1):
        print(f"[{n}/{len(configs)}] {params.name}", flush=True)
        work = ROOT / "build" / "synth" / params.name
        emitted = ops.write_verilog(name, params, work)
        t0 = time.monotonic()
        result = synth.synthesize(
            emitted.path,
            params.name,
            work,
            families=families,
            fmax_mhz_target=args.freq,
            place_route=not args.no_pnr,
            progress=lambda msg: print(f"    {msg}", flush=True),
        )
        result["op"] = name
        result["params"] = params.to_dict()
        result["latency"] = emitted.latency
        result["seconds"] = round(time.monotonic() - t0, 1)
        out = Path(args.report_dir) / f"{params.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        results[params.name] = result
    print()
    print(synth.format_table(results))
    print(f"\nper-configuration JSON in {args.report_dir}/")


def cmd_errors(args) -> None:
    rows = []
    for name, params in _configs(args):
        stats = ops.get(name).golden.error_stats(params)
        rows.append({"config": params.name, **stats})
        extra = "  ".join(
            f"{k} {v:.3e}"
            for k, v in stats.items()
            if isinstance(v, float) and k not in ("max_abs", "mean_abs")
        )
        print(
            f"{params.name:40s} max {stats['max_abs']:.3e}  mean {stats['mean_abs']:.3e}  "
            f"{extra}  ({stats['inputs']} outputs)",
            flush=True,
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")


def cmd_list(args) -> None:
    for op in ops.OPERATORS.values():
        print(f"{op.name}: {op.summary}")
        defaults = op.params()
        for field, value in defaults.to_dict().items():
            print(f"    {field} = {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hwgen",
        description="FPGA generator for vision-transformer nonlinear operators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p, sweep_help):
        p.add_argument(
            "op", nargs="*", help=f"operators (default: all of {', '.join(ops.OPERATORS)})"
        )
        p.add_argument(
            "--params",
            default="",
            metavar="K=V,...",
            help="parameters of the one operator named, e.g. segments=8,slope_mode=mult",
        )
        p.add_argument("--sweep", action="store_true", help=sweep_help)

    p = sub.add_parser("verilog", help="write Verilog for operators into rtl_out/")
    with_config(p, "every configuration of the operator's param_sweep()")
    p.add_argument("--out", default=str(ROOT / "rtl_out"), help="output folder (rtl_out/)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "synth", help="Yosys resource counts (xc7, ECP5, iCE40) and nextpnr ECP5 Fmax"
    )
    with_config(p, "synthesize the operator's synth_sweep() (if any) or param_sweep()")
    p.add_argument("--families", default="xc7,ecp5,ice40", help="comma-separated families")
    p.add_argument("--freq", type=float, default=150.0, help="nextpnr target clock in MHz")
    p.add_argument("--no-pnr", action="store_true", help="skip place and route (no Fmax)")
    p.add_argument(
        "--report-dir",
        default=str(ROOT / "reports" / "synth"),
        help="where the per-configuration JSON goes (reports/synth/)",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("errors", help="error of the golden model against float64, all inputs")
    with_config(p, "every configuration of the operator's param_sweep()")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=cmd_errors)

    p = sub.add_parser("list", help="operators and their default parameters")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        # bad parameters, unknown names, a missing or failing tool: one line, no traceback
        # (HWGEN_DEBUG=1 shows the traceback when the message is not enough)
        if os.environ.get("HWGEN_DEBUG"):
            raise
        print(f"hwgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwgen: interrupted", file=sys.stderr)
        return 130
    return 0
