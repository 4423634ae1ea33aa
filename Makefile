# lethe: the README's commands. Each target sets up what it needs (.venv, Debian packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lethe-installed
DEBS ?= dataset-fashion-mnist postgresql
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
IMAGE ?= ghcr.io/lethe-unlearning/lethe:0.1.0

.PHONY: setup debs demo test check test-unit test-integration test-pipelines bench bench-quick compile lint images clean

setup: $(STAMP) debs

# The venv is (re)built when missing or older than pyproject.toml (the pinned dependencies).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Fashion-MNIST and PostgreSQL come from Debian; installed when missing and apt is usable.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1; apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	      echo "warning: could not install$$missing"; \
	  else echo "note: Debian packages missing:$$missing (install them with apt-get)"; fi; \
	fi

demo: setup
	$(BIN)/lethe demo

# Everything CI needs: lint, then every tier on 2 workers (tests/integration is one xdist group: its
# servers start once, on the worker that runs it) with the coverage of src/lethe, subprocesses included.
test: setup lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --cov --cov-report= $(PYTEST_ARGS) tests
	@echo "coverage of src/lethe: $$($(BIN)/python -m coverage report --format=total)%"

# The inner loop: the unit tier without the tests marked slow, on 2 workers, no coverage (<= 90 s).
check: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS) tests/unit

test-unit: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests/unit

test-integration: setup
	$(BIN)/python -m pytest -q tests/integration

test-pipelines: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests/pipelines

bench: setup
	$(BIN)/python -m benchmarks.run --full

bench-quick: setup
	$(BIN)/python -m benchmarks.run --quick

compile: setup
	$(BIN)/lethe pipeline compile --out pipelines/compiled

# ruff, yamllint, hadolint, shellcheck, and every offline kustomize overlay rendered and validated.
lint: setup
	bash tools/lint.sh

images:
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine here" >&2; exit 1; }
	docker build -f docker/Dockerfile.cpu -t $(IMAGE) .
	docker build -f docker/Dockerfile.cuda -t $(IMAGE)-cuda .

clean:
	rm -rf .lethe .pytest_cache .ruff_cache .coverage .coverage.*
