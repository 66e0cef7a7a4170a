# Two commands: `make run` (the whole gateway on this machine) and `make test` (the suite).
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCKS := requirements/runtime.lock requirements/test.lock
# `make lock` keeps every pin it can; `make lock LOCK_ARGS=--upgrade` (or --upgrade-package NAME) moves them.
LOCK_ARGS ?=
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --build-deps-for editable $(LOCK_ARGS)

.PHONY: install lock lint run test test-fast test-hosts bench mutate clean

# Everything from the hashed lock (pip, setuptools and wheel included: pip checks every file and
# resolves nothing beyond it), then the project itself without a download (no build isolation).
$(VENV)/.installed: $(LOCKS) pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/test.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed

# The locks for Python 3.11 on Linux, from pyproject.toml: runtime (the image) and runtime + the test extra.
lock: install
	$(PIP_COMPILE) --output-file requirements/runtime.lock pyproject.toml
	$(PIP_COMPILE) --extra test --output-file requirements/test.lock pyproject.toml

# Both run whatever the first finds; fails on any finding.
lint: install
	$(VENV)/bin/ruff check .; ruff=$$?; $(VENV)/bin/mypy; mypy=$$?; $(VENV)/bin/lint-imports --no-cache && [ $$ruff -eq 0 ] && [ $$mypy -eq 0 ]

run: install
	$(PY) scripts/devstack.py

test: install
	$(PY) -m pytest

# The guarantees on several hosts (network namespaces: needs root): tests/test_hosts_e2e.py,
# its Redis-broker and RabbitMQ halves side by side (scripts/test_hosts.py); ARGS go to pytest.
test-hosts: install
	$(PY) scripts/test_hosts.py $(ARGS)

bench: install
	$(PY) -m bench

test-fast: install
	$(PY) -m pytest -m "not e2e"

# Mutation testing of the pure core ([tool.mutmut] in pyproject.toml), two children on a
# 2-core machine; the summary lands in docs/mutation.md, and below 90 % killed the target fails.
# Not part of `make test` or .ci/run (a few minutes).
MUTATE_CHILDREN ?= 2
mutate: install
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN)
	$(PY) scripts/mutation_report.py > docs/mutation.md

clean:
	rm -rf $(VENV) var .pytest_cache mutants
