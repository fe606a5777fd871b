# The two commands of the README:
#   make demo   sets up .venv (pip install -r requirements.txt) and runs the main job on the built-in sample
#   make test   sets up .venv with the test tools too and runs the whole test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# make test runs the suite in this many processes (pytest-xdist), one test file each at a time (some files'
# tests share a fixture and run in order); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

.PHONY: demo test venv dev-venv lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

demo: venv
	$(BIN)/dl1 demo data/demo

test: dev-venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/shellcheck setup/*.sh bench/*.sh .ci/run
