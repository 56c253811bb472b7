# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test check bench bench-quick serve clean

# The stamp files re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,examples]'
	touch $@

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

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Every scenario against its baselines and limits; results in benchmarks/results/.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

# The same in under a minute; results in benchmarks/results/quick/.
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
