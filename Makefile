# Two commands on a fresh machine with Python 3.11+:  make demo  and  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lab bench clean-demo help

help:
	@echo "make demo   set up .venv, generate the synthetic 7-site demo and run it"
	@echo "make test   set up .venv, check style (ruff) and run every test and doctest"
	@echo "make test-fast  the unit tests and doctests only (about two minutes)"
	@echo "make lab    set up .venv with JupyterLab and open it"
	@echo "make bench  run the scale benchmarks (minutes; not part of make test)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "linkeval needs Python 3.11 or newer: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/linkeval demo

test: $(STAMP)
	$(BIN)/ruff check linkeval tests benchmarks
	$(BIN)/ruff format --check linkeval tests benchmarks
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" tests/unit linkeval

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lab,dev]"
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_clean.py
	$(BIN)/python benchmarks/bench_reports.py

clean-demo:
	rm -rf data/raw/demo data/processed/demo data/processed/.linkeval/demo reports/demo
