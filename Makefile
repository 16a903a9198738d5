# Two entry points, both self-contained on a fresh clone (Python 3.11+ with venv):
#   make fairness   set up .venv and run the fairness gate on the embedded offline default
#   make test       set up .venv with the dev extras and run the project's own tests
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: fairness test test-all clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

fairness: $(VENV)/.installed
	$(PY) -m pytest fairness_tests

test: $(VENV)/.installed
	$(PY) -m ruff check src tests fairness_tests benchmarks conftest.py
	$(PY) -m pytest tests -m "not slow"

test-all: $(VENV)/.installed
	$(PY) -m pytest tests

clean:
	rm -rf reports .fairness-cache
