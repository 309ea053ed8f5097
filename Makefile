# Every target installs what it needs into .venv first: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROMTOOL := $(BIN)/promtool

.PHONY: install run migrate test chaos lint format bench clean system-deps image-check
BENCH_STAMP := $(VENV)/.bench-stamp

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run the gateway (embedded PostgreSQL unless DATABASE_URL or PG_HOST is set; the
## gateway itself starts one only when asked, QIWI_EMBEDDED_DB=true, which these two do)
run: $(STAMP)
	QIWI_EMBEDDED_DB="$${QIWI_EMBEDDED_DB:-true}" $(BIN)/qiwi-gw serve

## apply pending migrations to the configured (or embedded) database
migrate: $(STAMP)
	QIWI_EMBEDDED_DB="$${QIWI_EMBEDDED_DB:-true}" $(BIN)/qiwi-gw migrate

## the test suite, on TEST_DATABASE_URL's server or an embedded one; ARGS go to pytest
test: $(STAMP) system-deps
	$(BIN)/pytest $(ARGS)

## fault-injection scenarios alone, at full load; writes docs/reliability.md
chaos: $(STAMP) system-deps
	rm -f .chaos-results.jsonl
	CHAOS_FULL=1 CHAOS_REPORT=$(CURDIR)/.chaos-results.jsonl $(BIN)/pytest -m chaos -s $(ARGS)
	$(BIN)/python -m tests.support.chaos .chaos-results.jsonl docs/reliability.md

## PgBouncer for its chaos scenario and Chromium for the console's browser test, from
## Debian's packages when this is a root Debian machine (CI is); elsewhere those tests
## are skipped and say why. Playwright drives Debian's Chromium: its own browser
## download is never used.
system-deps:
	@command -v pgbouncer >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
	  apt-get install -y -q pgbouncer >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q pgbouncer >/dev/null 2>&1) || \
	  echo "could not install pgbouncer; its scenario will be skipped"
	@[ -x /usr/bin/chromium ] || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
	  apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
	  echo "could not install chromium; the console's browser test will be skipped"

# Every complete manifest under deploy/kubernetes (kustomizations and *-patch.yaml are not
# resources), offline, against the oldest and newest schemas kubernetes-validate ships;
# strict: an unknown field is an error. A kind it has no schema for is only a warning
# there, so any output at all fails the target.
KUBERNETES_VERSIONS := 1.25.0 1.37.0
KUBERNETES_MANIFESTS = $(filter-out %/kustomization.yaml %-patch.yaml,\
  $(wildcard deploy/kubernetes/*/*.yaml deploy/kubernetes/*/*/*.yaml))

lint: $(STAMP) $(PROMTOOL)
	$(BIN)/ruff check src tests bench docker
	$(BIN)/ruff format --check src tests bench docker
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	! $(BIN)/kubernetes-validate --strict --quiet $(addprefix -k ,$(KUBERNETES_VERSIONS)) \
	  $(KUBERNETES_MANIFESTS) 2>&1 | grep .
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts.test.yml

# promtool from Debian's prometheus package, unpacked into the venv: installing the package
# would also start a Prometheus server. apt-get download needs no root; the lists may.
$(PROMTOOL): | $(STAMP)
	@set -e; work="$$(mktemp -d)"; trap 'rm -rf "$$work"' EXIT; cd "$$work"; \
	  apt-get download prometheus >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; } || \
	    { echo "promtool: could not get Debian's prometheus package (apt-get download prometheus)" >&2; exit 1; }; \
	  dpkg-deb -x prometheus_*.deb root; \
	  install -m 0755 root/usr/bin/promtool "$(CURDIR)/$@"
	@$@ --version 2>&1 | head -n 1

## build the image with podman and run its file system as its USER (tests/support/image_check.py);
## installs podman and debootstrap on a root Debian machine, skips in one line elsewhere
image-check: $(STAMP)
	@{ command -v podman >/dev/null && command -v debootstrap >/dev/null; } || \
	  ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman debootstrap >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman debootstrap >/dev/null 2>&1; } || \
	  true  # the check itself says in one line why it cannot run
	$(BIN)/python -m tests.support.image_check

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench docker
	$(BIN)/ruff format src tests bench docker

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	# wrk is the load generator when it can be had; bench/run.py falls back to an asyncio client.
	command -v wrk >/dev/null || (apt-get install -y -q wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1)) || true
	touch $(BENCH_STAMP)

## benchmarks with same-run baselines; writes bench/results.md and bench/results.json
bench: $(BENCH_STAMP) bench-capacity bench-reconcile
	$(BIN)/python -m bench.run $(ARGS)

## CPU seconds and WAL bytes per payment, gateway and PostgreSQL (3 runs at 2 load levels);
## rewrites the measured block of docs/scaling.md. CAPACITY_ARGS go to bench/capacity.py.
.PHONY: bench-capacity
bench-capacity: $(STAMP)
	$(BIN)/python -m bench.capacity --write docs/scaling.md $(CAPACITY_ARGS)

## reconcile of a 1,000,000-line registry: wall time and peak RSS (docs/reconciliation.md).
## RECONCILE_ARGS go to bench/reconcile.py, e.g. RECONCILE_ARGS="--repeat 3 --before <commit>".
.PHONY: bench-reconcile
bench-reconcile: $(STAMP)
	$(BIN)/python -m bench.reconcile $(RECONCILE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Operator commands on the configured (or embedded) database; ARGS pass through,
# e.g. make pending ARGS="--limit 5", make export ARGS="--from 2026-11-01 --to 2026-11-30".
# Recipes are silent so that stdout is only the command's answer (make export > file.csv).
# make itself exits 2 on any failure: for the command's own exit code run .venv/bin/qiwi-gw.
.PHONY: status pending attempts resend export reconcile prune-log

## operator commands: status, pending, attempts, resend, export, reconcile, prune-log
## (on the embedded database of `make run` when none is configured, as run and migrate)
status pending attempts resend export reconcile prune-log: $(STAMP)
	@QIWI_EMBEDDED_DB="$${QIWI_EMBEDDED_DB:-true}" $(BIN)/qiwi-gw $@ $(ARGS)
