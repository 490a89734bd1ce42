# The test command a newcomer (and CI) runs: creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test lint-imports typecheck run bench clean

$(VENV)/.installed: pyproject.toml persistence/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./persistence -e '.[test]'
	touch $@

# The layer contracts and the type check run first: they take seconds, the suite minutes.
test: $(VENV)/.installed lint-imports typecheck
	$(PY) -m pytest

# import-linter contracts in pyproject.toml (layers, no cycles, graphs only under the CLI).
lint-imports: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-cache

# mypy on the public API (scope in pyproject.toml). The repository root is the package, so mypy
# reads it through a symlink named relaygraph in a temporary folder (mypy cannot follow the
# editable install's import hook); persistence/ holds langgraph.checkpoint.sqlalchemy.
typecheck: $(VENV)/.installed
	@link=$$(mktemp -d) && ln -s "$(CURDIR)" "$$link/relaygraph" && \
	MYPYPATH="$$link:$(CURDIR)/persistence" $(PY) -m mypy; status=$$?; \
	rm "$$link/relaygraph" && rmdir "$$link"; exit $$status

run: $(VENV)/.installed
	$(VENV)/bin/relaygraph run sequential

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf relaygraph-data relaygraph-out relaygraph.db* .pytest_cache .mypy_cache
