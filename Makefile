# One entry point for every task. `make test` needs nothing but Python >= 3.11:
# it creates .venv and installs the project with its extras on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install test lint bench generate demo clean format control-plane

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The real control plane the `cluster` tests run against: built from upstream sources on
# first use (5-10 minutes on 2 cores), a no-op after. A failed build does not stop the
# unit tests: the cluster tests then skip with the build's message (CI fails instead).
control-plane:
	bash devcluster/build-control-plane.sh

test: $(STAMP)
	-bash devcluster/build-control-plane.sh
	$(PY) -m pytest -n auto -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy sdk/incluster operator/incluster_operator devcluster tools
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m bench

generate: $(STAMP)
	$(PY) -m tools.generate

demo: $(STAMP)
	$(PY) -m devcluster.demo

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
