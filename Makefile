# The two commands of the README:
#   make demo   sets up .venv from requirements.lock and runs the main job on the built-in sample
#   make test   sets up .venv from requirements-dev.lock (the test tools too) and runs the whole test suite
#               (what .ci/run calls)
# and the one that refreshes the locks after a change to requirements*.txt or pyproject.toml:
#   make lock          pip-compile: new and changed requirements resolved, every other pin kept
#   make lock-upgrade  the same, every pin moved to the newest version the ranges allow
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# make test runs the suite in this many processes (pytest-xdist), one test file each at a time (some files'
# tests share a fixture and run in order); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

# the lock's torch pin, installed first (see .installed below)
TORCH_PIN = $(shell grep -E '^torch==' requirements.lock)
LOCK_FLAGS = --quiet --allow-unsafe --strip-extras --no-emit-find-links --no-emit-index-url
# pip-compile writes the torch it found here, the CPU wheel `2.13.0+cpu`; the lock says `torch==2.13.0`,
# which pip matches with that wheel here and with PyPI's CUDA build on a GPU box. It also writes the project
# itself (`-e file:///its/path`), which make installs on its own: both lines are rewritten.
UNLOCAL = sed -i -E -e 's/^(torch==[0-9.]+)\+[A-Za-z0-9.]+$$/\1/' -e '/^-e /,/^[^ ]/{/^-e /d;/^    \#/d}'

.PHONY: demo test venv dev-venv lint lock lock-upgrade

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Only the lock's versions, never a fresh resolution: torch first with its own dependencies constrained to the
# lock (on a GPU box that also brings the CUDA packages PyPI's torch pins, which a lock made on a CPU lacks),
# then every other package of the lock without resolving, then this project (built with the lock's setuptools,
# not one fetched for the build), then pip's consistency check.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) install -q -c requirements.lock $(TORCH_PIN)
	$(PIP) install -q --no-deps -r requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PIP) install -q --no-deps -r requirements-dev.lock
	$(PIP) check
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

demo: venv
	$(BIN)/dl1 demo data/demo

test: dev-venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/shellcheck setup/*.sh bench/*.sh .ci/run

# The test environment's lock is resolved first, from both files; the demo's lock takes the same versions for
# its subset (the test tools constrain some shared packages, e.g. botocore wants python-dateutil<3).
lock: export CUSTOM_COMPILE_COMMAND = make lock
lock: | $(BIN)/python
	$(BIN)/python -m piptools --version >/dev/null 2>&1 || $(PIP) install -q pip-tools
	$(BIN)/python -m piptools compile $(LOCK_FLAGS) $(LOCK_UPGRADE) \
		-o requirements-dev.lock requirements.txt requirements-dev.txt
	$(UNLOCAL) requirements-dev.lock
	$(BIN)/python -m piptools compile $(LOCK_FLAGS) $(LOCK_UPGRADE) -c requirements-dev.lock \
		-o requirements.lock requirements.txt
	$(UNLOCAL) requirements.lock

lock-upgrade: LOCK_UPGRADE = --upgrade
lock-upgrade: lock
