# The project's commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM_EXECUTABLE ?= /usr/bin/chromium
export CHROMIUM_EXECUTABLE

.PHONY: demo test install install-test chromium bench bench-peers screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# pyright (tests/test_typing.py) comes from the npm registry, into the venv, with Debian's node.
install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	npm install --prefix $(VENV) --no-save --no-audit --no-fund --loglevel=error 'pyright@>=1.1.414 <1.2'

# Debian's Chromium for the Playwright suite (Playwright cannot download browsers here).
chromium:
	@if [ ! -x "$(CHROMIUM_EXECUTABLE)" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

test: install-test chromium
	$(BIN)/python -m pytest tests
	@if ls e2e/test_*.py >/dev/null 2>&1; then $(BIN)/python -m pytest e2e; fi

# `make demo PORT=8766` serves on another port; the demo stops at once if its port is taken.
PORT ?= 8765
demo: install
	$(BIN)/python -m opto_dashboard.demo --port $(PORT)

# Every benchmark of docs/benchmarks.md but the peers' (bench-peers); each prints its ratios.
bench: install-test
	$(BIN)/python bench/overhead.py --instructions --metrics
	$(BIN)/python bench/seed_table.py
	$(BIN)/python bench/batch_memory.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/big_trace.py
	$(BIN)/python bench/optimize.py

# docs/images/*.png: every dashboard page, fed by the demo workload, photographed by Chromium.
screenshots: install-test chromium
	$(BIN)/python e2e/screenshots.py

# Side by side with Logfire, Langfuse and Arize Phoenix, offline, in a separate venv (never our deps).
PEERS_VENV := .venv-peers
$(PEERS_VENV)/bin/python:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip

bench-peers: $(PEERS_VENV)/bin/python
	$(PEERS_VENV)/bin/pip install --quiet -r bench/peers/requirements.txt -e '.[test]'
	$(PEERS_VENV)/bin/python bench/peers/overhead.py
	$(PEERS_VENV)/bin/python bench/peers/ingest.py
	$(PEERS_VENV)/bin/python bench/peers/visibility.py

clean:
	rm -rf $(VENV) build *.egg-info
