# The one entry point: set-up, tests, lint, demo, bench.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# Prints REPRISE_BASE_IMAGE=... as its last line; everything else goes to stderr.
ENGINE := bash docker/engine.sh

.PHONY: help venv compile engine test unit integration lint fmt demo bench golden clean

help:
	@echo "make demo    bring up the engine, build the example, train, reproduce"
	@echo "make test    bring up the engine, run the whole test suite"
	@echo "make unit    unit tests only (no engine needed)"
	@echo "make lint    ruff + mypy --strict"
	@echo "make engine  install/start dockerd, the local registry and the base image"
	@echo "make golden  rewrite the golden files under tests/golden from the current code"
	@echo "make bench   speed and memory figures against their baselines"

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# Byte-compiled at install: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) every
# command would otherwise compile its imports from source, every time.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

compile: venv
	@$(VENV)/bin/python -m compileall -q src

venv: $(VENV)/.synced

engine:
	@$(ENGINE)

test: venv
	@line=$$($(ENGINE) | tail -n 1); export "$$line"; \
	  export REPRISE_REQUIRE_ENGINE=1; \
	  $(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

integration: venv
	@line=$$($(ENGINE) | tail -n 1); export "$$line"; \
	  export REPRISE_REQUIRE_ENGINE=1; \
	  $(VENV)/bin/pytest -p no:cacheprovider tests/integration $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff format src tests examples bench
	$(VENV)/bin/ruff check --fix src tests examples bench

golden: venv
	REPRISE_UPDATE_GOLDEN=1 $(VENV)/bin/pytest -p no:cacheprovider tests/unit -k golden -q

demo: venv compile
	@line=$$($(ENGINE) | tail -n 1); export "$$line"; \
	  bash examples/demo.sh

bench: venv compile
	@line=$$($(ENGINE) | tail -n 1); export "$$line"; \
	  $(PY) bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
