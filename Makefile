# Every target sets up its own virtualenv from pyproject.toml; only Python 3.11+ and make needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help venv test quick lint demo bench ddl clean galera-up galera-down galera-status

help:
	@echo "make demo   - receive the bundled sample alerts on the embedded SQLite default and show the result"
	@echo "make test   - run the test suite (SQLite, plus MariaDB/MySQL when reachable)"
	@echo "make quick  - only the tests not marked slow (no process started), on 4 workers, fewer Hypothesis examples"
	@echo "make lint   - ruff and mypy, as configured in pyproject.toml"
	@echo "make bench  - run the benchmarks in bench/ (needs MariaDB; installs wrk when missing)"
	@echo "make ddl    - regenerate sql/schema.sql from incidentctl/db/schema.py"
	@echo "make galera-up / galera-down / galera-status - a local 3-node MariaDB Galera cluster (bench/galera)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The quick tests on 4 workers (on two cores: while one waits on a commit or a test's server, another
# runs), which steal queued tests from each other (--dist worksteal, pyproject's addopts) so no
# worker is left alone with a queue at the end; then the slow ones (processes, servers, the Galera
# cluster) in one process, in a fixed order. Exit code 5 (nothing collected: PYTEST_ARGS picked
# only quick or only slow tests) is fine. `make quick` runs the property tests with Hypothesis's
# "quick" profile, a quarter of their examples (tests/conftest.py); `make test`, what CI runs, runs
# every property with its full count.
NOT_SLOW := $(BIN)/python -m pytest -m "not slow" -n 4

test: $(STAMP)
	$(NOT_SLOW) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

quick: $(STAMP)
	$(NOT_SLOW) --hypothesis-profile=quick $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Both run, and either failing fails the target.
lint: $(STAMP)
	@status=0; $(BIN)/ruff check . || status=1; $(BIN)/mypy || status=1; exit $$status

demo: $(STAMP)
	$(BIN)/incidentctl demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

ddl: $(STAMP)
	$(BIN)/incidentctl db ddl > sql/schema.sql

galera-up:
	$(PYTHON) bench/galera/cluster.py up

galera-down:
	$(PYTHON) bench/galera/cluster.py down

galera-status:
	$(PYTHON) bench/galera/cluster.py status

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .hypothesis build *.egg-info
