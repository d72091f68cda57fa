# Doctests are collected from golden/, hwtorch/ and hwgen/ (see pyproject.toml); running
# hwgen/__main__.py as a module would start the CLI, and golden/nn.py only aliases hwtorch.nn
# (whose doctests are collected there).
collect_ignore = ["hwgen/__main__.py", "golden/nn.py"]
