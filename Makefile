# The test command a newcomer (and CI) runs: creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test run bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./persistence -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

run: $(VENV)/.installed
	$(VENV)/bin/relaygraph run sequential

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf relaygraph-data relaygraph-out relaygraph.db* .pytest_cache
