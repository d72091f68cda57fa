"""``python -m hwgen``: subcommands, outputs, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwgen.cli import main


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_shows_operators_and_defaults(capsys):
    rc, out, _ = run_cli(capsys, "list")
    assert rc == 0
    assert out.startswith("gelu: ")
    assert "segments = 16" in out and "slope_mode = shift_add" in out


def test_verilog_defaults_and_named_configuration(capsys, tmp_path, monkeypatch):
    rc, out, _ = run_cli(capsys, "verilog", "--out", str(tmp_path))
    assert rc == 0
    assert (tmp_path / "gelu_i16f10_o16f10_s16.v").exists()
    rc, out, _ = run_cli(
        capsys, "verilog", "gelu", "--params", "segments=8,slope_mode=mult", "--out", str(tmp_path)
    )
    assert rc == 0
    path = tmp_path / "gelu_i16f10_o16f10_s8_mult.v"
    written = [
        tmp_path / f"gelu_i16f10_o16f10_s8_mult{s}" for s in (".v", ".vlt", ".json", ".core")
    ]
    assert out.splitlines() == [f"wrote {p}" for p in written]
    assert "module gelu_i16f10_o16f10_s8_mult(" in path.read_text()
    # without --out: the current folder
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run_cli(capsys, "verilog", "gelu")[0] == 0
    assert (here / "gelu_i16f10_o16f10_s16.v").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verilog", "softmux"], "unknown operator 'softmux'; known operators: gelu"),
        (["verilog", "gelu", "--params", "segments=3"], "gelu segments must be 4 to 64, not 3"),
        (["verilog", "gelu", "--params", "segs=8"], "unknown gelu parameter 'segs'; known: in_fmt"),
        (["verilog", "gelu", "--params", "slope_mode=fast"], "allowed: mult, shift_add"),
        (
            ["verilog", "gelu", "--params", "in_fmt=16f20"],
            "fractional bits (20) must not exceed the word width (16)",
        ),
        (["synth", "gelu", "--families", "xc9"], "unknown family 'xc9'; choose from xc7, ecp5"),
    ],
)
def test_bad_input_gives_one_line_error(capsys, tmp_path, argv, message):
    rc, out, err = run_cli(
        capsys, *argv, *(["--out", str(tmp_path)] if argv[0] == "verilog" else [])
    )
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("hwgen: error: ")
    assert message in err


def test_errors_subcommand_writes_json(capsys, tmp_path):
    dest = tmp_path / "err.json"
    rc, out, _ = run_cli(capsys, "errors", "gelu", "--params", "segments=8", "--json", str(dest))
    assert rc == 0
    rows = json.loads(dest.read_text())
    assert rows[0]["config"] == "gelu_i16f10_o16f10_s8"
    assert rows[0]["inputs"] == 65536
    assert 0 < rows[0]["max_abs"] <= rows[0]["bound"]


@pytest.mark.parametrize("command", [[], ["verilog"], ["synth"], ["errors"], ["list"]])
def test_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "hwgen", *command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m hwgen")
