# Every target installs what it needs into .venv first: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run migrate test chaos lint format bench clean
BENCH_STAMP := $(VENV)/.bench-stamp

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
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	# wrk is the load generator when it can be had; bench/run.py falls back to an asyncio client.
	command -v wrk >/dev/null || (apt-get install -y -q wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1)) || true
	touch $(BENCH_STAMP)

## benchmarks with same-run baselines; writes bench/results.md and bench/results.json
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
