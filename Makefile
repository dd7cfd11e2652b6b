# The two commands of the README: `make local` runs the bridge here, `make test` tests it.
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
# `make local` installs only what the bot needs to run here (requirements-local.txt, ~170 MB);
# the tests, the Pulumi program and the benchmarks add the rest (requirements.txt).
LOCAL_STAMP := $(VENV)/.local-$(shell cat requirements-local.txt | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(shell cat requirements-local.txt requirements.txt | cksum | cut -d' ' -f1)

.PHONY: local test test-slow reliability-report lint format bench package clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LOCAL_STAMP): requirements-local.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-local.txt
	@rm -f $(VENV)/.local-* && touch $@

$(STAMP): requirements-local.txt requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-* $(VENV)/.local-* && touch $@ $(LOCAL_STAMP)

local: $(LOCAL_STAMP)
	$(BIN)/python -m local $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

# The long runs too; also rewrites docs/RELIABILITY.md from the reliability suite's results.
test-slow: $(STAMP)
	RELIABILITY_REPORT=1 $(BIN)/python -m pytest --slow

# Only the reliability suite (quick profile), and docs/RELIABILITY.md written from it.
reliability-report: $(STAMP)
	RELIABILITY_REPORT=1 $(BIN)/python -m pytest tests/reliability $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

package: $(STAMP)
	$(BIN)/python -m infra.packaging --architecture arm64

clean:
	rm -rf $(VENV) .cache build .pytest_cache .ruff_cache
