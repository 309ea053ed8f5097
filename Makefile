# Every target installs what it needs into .venv first: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run migrate test chaos lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run the gateway (embedded PostgreSQL unless DATABASE_URL or PG_HOST is set)
run: $(STAMP)
	$(BIN)/qiwi-gw serve

## apply pending migrations to the configured (or embedded) database
migrate: $(STAMP)
	$(BIN)/qiwi-gw migrate

## the test suite, on TEST_DATABASE_URL's server or an embedded one; ARGS go to pytest
test: $(STAMP)
	$(BIN)/pytest $(ARGS)

## fault-injection scenarios alone
chaos: $(STAMP)
	$(BIN)/pytest -m chaos $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
