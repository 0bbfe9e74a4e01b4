# Two commands matter: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run run-prod bench test lint migrate install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes, so a second `make run` starts fast.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	@mkdir -p var
	$(BIN)/formwright database upgrade --no-prompt

run: migrate
	$(BIN)/formwright run --host $(HOST) --port $(PORT)

# Production server: several uvicorn worker processes (WEB_CONCURRENCY, default the CPU count),
# uvloop + httptools, no access log (the app logs what matters, with a request id).
WEB_CONCURRENCY ?= $(shell nproc 2>/dev/null || echo 2)
export WEB_CONCURRENCY
run-prod: migrate
	$(BIN)/uvicorn webapp.asgi:app --host $(HOST) --port $(PORT) --workers $(WEB_CONCURRENCY) \
		--loop uvloop --http httptools --no-access-log --timeout-graceful-shutdown 20

# The load generator is Debian's wrk; pgbench comes with PostgreSQL.
bench: $(STAMP)
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y wrk; \
	  else echo "wrk is missing. Install it with: sudo apt-get install -y wrk" >&2; exit 1; fi; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# The browser tests drive Debian's Chromium; install it when missing (root), else say how.
CHROMIUM := /usr/bin/chromium
.PHONY: chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  else echo "Chromium is missing ($(CHROMIUM)). Install it with: sudo apt-get update && sudo apt-get install -y chromium" >&2; exit 1; fi; }

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/*.db*
