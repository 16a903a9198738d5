# Two entry points, both self-contained on a fresh clone (Python 3.11+ with venv):
#   make fairness   set up .venv and run the fairness gate on the embedded offline default
#   make test       set up .venv with the dev extras and run the project's own tests
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: fairness test test-all clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The core install (no torch): enough for the gate on the offline default, predictions and manifests.
$(VENV)/.core: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

# Everything the project's own tests need, model extras included (torch: a few GB, about a minute).
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.core

fairness: $(VENV)/.core
	$(PY) -m pytest fairness_tests

test: $(VENV)/.dev
	$(PY) -m ruff check src tests fairness_tests benchmarks simulations fixtures conftest.py
	$(PY) -m pytest tests -m "not slow"

test-all: $(VENV)/.dev
	$(PY) -m pytest tests

clean:
	rm -rf reports .fairness-cache
