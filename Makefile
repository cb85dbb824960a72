# `make run`: set up and serve on 127.0.0.1:8000 with the embedded broker (no Redis needed).
# `make test`: set up and run lint, types, import contracts and the whole test suite.
# `make test-fast`: the same checks with the unit tests only (no real processes).
#
# The virtualenv is large (torch), so like any CI it is cached outside the clone, keyed by a
# hash of requirements.lock; a fresh machine builds it from scratch.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
VENV_CACHE ?= $(HOME)/.cache/shears/venv-$(LOCK_HASH)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test venv lint typecheck bench clean openapi

# The stamp lives in the clone, not in the shared cache: every clone's first `make` points
# the cached venv's `shears` command (an editable install) at its own sources.
VENV_STAMP := .shears-venv-ready

venv: $(VENV_STAMP)
	@# Another clone may have re-pointed the shared venv's editable install since: take it back
	@# (-I: without the current directory on sys.path, so the installed one is what answers).
	owner=$$($(PY) -I -c 'import os, shears_cli; print(os.path.dirname(shears_cli.__file__))' 2>/dev/null || true)
	if [ "$$owner" != "$(CURDIR)" ]; then
	  $(PY) -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
	    || $(PY) -m pip install --no-deps --no-build-isolation -e .
	fi

$(VENV_STAMP): requirements.lock pyproject.toml
	@if [ ! -f "$(VENV_CACHE)/.complete" ]; then
	  echo "building the virtualenv in $(VENV_CACHE) (torch is large: a few minutes)"
	  rm -rf "$(VENV_CACHE)"
	  $(PYTHON) -m venv "$(VENV_CACHE)"
	  "$(VENV_CACHE)/bin/pip" install --quiet --upgrade pip
	  "$(VENV_CACHE)/bin/pip" install --quiet -r requirements.lock
	  touch "$(VENV_CACHE)/.complete"
	fi
	rm -rf $(VENV)
	ln -sfn "$(VENV_CACHE)" $(VENV)
	# --no-deps: the lock already installed everything; this only adds the `shears` command.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
	  || $(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

run: venv
	$(VENV)/bin/shears serve

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

test: venv system-deps node-deps lint typecheck
	$(PY) -m pytest

# The unit tests only: no redis-server, PostgreSQL, uvicorn or Celery process (tests/conftest.py
# marks every test that uses a process-starting fixture `integration`); about 2 minutes.
.PHONY: test-fast
test-fast: venv node-deps lint typecheck
	$(PY) -m pytest -m "not integration"

# Integration tests start a private redis-server (and PostgreSQL when none answers on 5432),
# and the report test opens the page in a real headless Chromium: CI must fail, not skip,
# without them, so install them if we can.
.PHONY: system-deps
system-deps:
	@missing=""
	command -v redis-server >/dev/null || missing="$$missing redis-server"
	command -v chromium >/dev/null || missing="$$missing chromium"
	# PostgreSQL: the tests use the local server on 5432 when one answers, else start their own.
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || missing="$$missing postgresql"
	# The TypeScript client test runs openapi-typescript and tsc (tests/clients/).
	command -v node >/dev/null || missing="$$missing nodejs npm"
	command -v node >/dev/null && { command -v npm >/dev/null || missing="$$missing npm"; }
	[ -z "$$missing" ] && exit 0
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing
	else
	  echo "the tests need:$$missing (apt-get install$$missing)" >&2
	  exit 1
	fi

# openapi-typescript and tsc, pinned by clients/typescript/package-lock.json; reinstalled
# when the lock changes.
TS_CLIENT := clients/typescript
.PHONY: node-deps
node-deps: system-deps $(TS_CLIENT)/node_modules/.shears-ready

$(TS_CLIENT)/node_modules/.shears-ready: $(TS_CLIENT)/package-lock.json $(TS_CLIENT)/package.json
	(cd $(TS_CLIENT) && npm ci --no-audit --no-fund)
	touch $@

# Clients are generated from the committed spec; a test fails when the app and the file differ.
openapi: venv
	$(PY) -m service.openapi > openapi.json

bench: venv
	$(PY) bench/global_magnitude.py

clean:
	rm -rf $(VENV) $(VENV_STAMP) data .pytest_cache .mypy_cache .ruff_cache
