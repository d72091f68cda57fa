# Doctests are collected from golden/ and hwgen/ (see pyproject.toml); running
# hwgen/__main__.py as a module would start the CLI.
collect_ignore = ["hwgen/__main__.py"]
