# `make run`: set up and serve on 127.0.0.1:8000 with the embedded broker (no Redis needed).
# `make test`: set up and run lint, types, import contracts and the whole test suite.
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

.PHONY: run test venv lint typecheck bench clean

venv: $(VENV)/.shears-ready

$(VENV)/.shears-ready: requirements.lock pyproject.toml
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

test: venv redis-binary lint typecheck
	$(PY) -m pytest

# Integration tests start a private redis-server; CI must fail, not skip, without one.
.PHONY: redis-binary
redis-binary:
	@if ! command -v redis-server >/dev/null; then
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	    apt-get update -qq && apt-get install -y -qq redis-server
	  else
	    echo "redis-server is required by the integration tests: install it (apt-get install redis-server)" >&2
	    exit 1
	  fi
	fi

bench: venv
	$(PY) bench/global_magnitude.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
