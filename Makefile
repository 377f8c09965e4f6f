# Two commands set everything up on a fresh machine with Python 3.11+:
#   make up    install, migrate and run the three services on SQLite (./var/), Ctrl-C stops them
#   make test  install and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test install lint format bench clean

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
	$(BIN)/mypy --strict shared services/*/rules.py
	$(BIN)/mypy services

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/coverage_checks.py
	$(BIN)/python bench/escalations.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
