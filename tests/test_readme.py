"""The README's Python example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 2
    # a separate interpreter: the example builds a component it never elaborates, which is
    # fine for a user but an UnusedElaboratable warning (an error here) under pytest
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, cwd=ROOT, check=True
    )
    bound, latency = proc.stdout.split()
    assert float(bound) <= 2.0**-9  # the stated bound
    claimed = re.search(r"print\(dut\.latency\) +# (\d+) clocks", blocks[0]).group(1)
    assert latency == claimed


def test_readme_patch_model_example_prints_what_it_says():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    proc = subprocess.run(
        [sys.executable, "-c", blocks[1]], capture_output=True, text=True, cwd=ROOT, check=True
    )
    printed = proc.stdout.strip()
    claimed = re.search(r"# (replaced .*)$", blocks[1], flags=re.M).group(1)
    assert printed == claimed
