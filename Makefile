# The two commands: `make demo` and `make test`. Each sets up .venv first (created, or
# refreshed when pyproject.toml changes). torch is installed pinned before everything else:
# on a CPU-only machine that pin resolves to a local CPU build; an unpinned torch would pull
# gigabytes of CUDA wheels.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
DEMO_DIR ?= runs/demo
DEVICE ?= cpu
ONLY ?= edit,indicator,pack,select,augment,codecs
DTYPE ?=

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sdd-ray needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: setup
	$(PY) -m pipelines.demo --out $(DEMO_DIR)

test: setup
	$(PY) -m pytest tests

# every benchmark, one after another (about 25 min on 2 CPU cores); DEVICE=cuda on a GPU,
# ONLY=edit,indicator for a subset, DTYPE=bfloat16 (or float16 on a GPU) for the teacher's dtype
bench: setup
	$(PY) benchmarks/run_all.py --device $(DEVICE) --only $(ONLY) $(if $(DTYPE),--dtype $(DTYPE))

clean:
	rm -rf $(VENV) runs .pytest_cache
