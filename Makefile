# Two commands on a fresh machine: `make up` (set up + run) and `make test` (set up + test).
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= inferwatch.yaml

.PHONY: up test lint fmt install-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(CONFIG):
	cp inferwatch.example.yaml $(CONFIG)
	@echo "created $(CONFIG) from inferwatch.example.yaml: edit it to watch your own models"

## Set up, validate the config, then run the monitor (Ctrl-C stops it; data in inferwatch.db).
up: $(STAMP) $(CONFIG)
	$(BIN)/inferwatch check --config $(CONFIG)
	$(BIN)/inferwatch run --config $(CONFIG)

## Set up and run the whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## A plain (non-editable) install in a throwaway venv, as a user would do it.
install-check:
	rm -rf build/install-check && $(PYTHON) -m venv build/install-check
	build/install-check/bin/python -m pip install --quiet .
	cd build/install-check && ./bin/inferwatch check --config ../../inferwatch.example.yaml
	cd build/install-check && ./bin/inferwatch db upgrade --config ../../inferwatch.example.yaml
	@echo "install-check: a plain pip install works, migrations included"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
