# npsim: two commands for a fresh machine (see README "Quick start").
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: quickstart test lint bench setup clean notebook

$(BIN)/npsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dask]'
	@touch $@

setup: $(BIN)/npsim

quickstart: setup  ## set up and run the bundled quick-start scenario
	$(BIN)/npsim run scenarios/quickstart.yaml

test: setup  ## set up and run the tests (and ruff)
	$(BIN)/ruff check npsim tests benchmarks scripts
	$(BIN)/pytest

notebook: setup  ## install Jupyter (the [notebook] extra) and open the labs in notebooks/
	$(BIN)/pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/

bench: setup  ## benchmarks (by hand; figures go in benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_endpoints.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
