# The two commands of the README: `make demo` and `make test`. Everything else here serves them.
# The virtualenv lives in .venv; pip's cache (and later the services' builds) under ~/.cache.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck contracts unit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,all]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/conveyor demo

test: check unit

check: lint typecheck contracts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	# The tests, the benchmarks and the shipped example are held to the same --strict (pyproject.toml [tool.mypy]);
	# tests/typing/misuse.py, which must fail, is excluded there and checked by tests/test_typing.py.
	$(BIN)/mypy tests bench examples

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
