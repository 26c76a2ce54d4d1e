# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deployconv-installed

.PHONY: run test lint setup

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-cpu.txt -e '.[export,dev]'
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/deployconv export --model lsnet_t --target onnx --force

test: $(STAMP)
	$(VENV)/bin/ruff check deployconv tests benchmarks tools
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check deployconv tests benchmarks tools
