# Two commands on a fresh machine: `make up` (set up + monitor + dashboard) and `make test`.
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= inferwatch.yaml
PORT   ?= 8501

.PHONY: up demo test lint fmt install-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(CONFIG):
	cp inferwatch.example.yaml $(CONFIG)
	@echo "created $(CONFIG) from inferwatch.example.yaml: edit it to watch your own models"

## Set up, validate the config, then run the monitor and the dashboard (Ctrl-C stops both).
up: $(STAMP) $(CONFIG)
	@echo "inferwatch is installed in $(VENV): call it as $(BIN)/inferwatch, or run '. $(BIN)/activate' first"
	$(BIN)/inferwatch check --config $(CONFIG)
	$(BIN)/inferwatch up --config $(CONFIG) --port $(PORT)

## Set up, then the two-minute offline demo: simulated provider, local mail, dashboard.
demo: $(STAMP)
	$(BIN)/inferwatch demo --port $(PORT)

## Set up and run the whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
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
	cd build/install-check && ./bin/python -c "from monitor.cli.dashboard_server import app_path; \
		assert app_path().is_file() and 'site-packages' in str(app_path()), app_path()"
	@echo "install-check: a plain pip install works, migrations and dashboard included"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
