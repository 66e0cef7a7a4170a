# Two commands: `make run` (the whole gateway on this machine) and `make test` (the suite).
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-fast bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) scripts/devstack.py

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m bench

test-fast: install
	$(PY) -m pytest -m "not e2e"

clean:
	rm -rf $(VENV) var .pytest_cache
