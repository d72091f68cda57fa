"""The cocotb runner's checks that run before any simulator starts."""

from __future__ import annotations

import pytest

from sim import runner


def test_missing_icarus_names_the_fix(monkeypatch):
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(
        runner.SimulatorMissingError, match=r"^iverilog not found on PATH; run `make install`"
    ):
        runner.check_simulator("icarus")


def test_unknown_simulator_is_rejected():
    with pytest.raises(
        ValueError, match=r"^unknown simulator 'questa'; use one of icarus, verilator$"
    ):
        runner.check_simulator("questa")


def test_build_folders_are_per_simulator_and_variant():
    p = runner.sweep("gelu")[0]
    folders = {
        runner.build_dir_for(p, "icarus"),
        runner.build_dir_for(p, "verilator"),
        runner.build_dir_for(p, "icarus", "mutant"),
    }
    assert len(folders) == 3
