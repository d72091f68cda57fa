"""Test-suite settings: tests that synthesise the same design for the same family share one
Yosys run (:data:`hwgen.flows.synth.SYNTH_CACHE_ENV`, keyed by the Yosys version, the script
and the Verilog, so a changed design or flow is synthesised afresh)."""

from __future__ import annotations

import os

from hwgen.flows import synth
from hwgen.flows.tools import ROOT

os.environ.setdefault(synth.SYNTH_CACHE_ENV, str(ROOT / "build" / "test-synth-cache"))
