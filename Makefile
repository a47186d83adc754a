# npsim: two commands for a fresh machine (see README "Quick start").
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: quickstart test test-all lint bench bench-env bench-mm4 setup clean notebook student-labs

# `make test` runs the fast tests; in CI (CI set, as .ci/run does) every test, slow too
SLOW = $(if $(CI),,-m "not slow")

$(BIN)/npsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dask]'
	@touch $@

setup: $(BIN)/npsim

quickstart: setup  ## set up and run the bundled quick-start scenario
	$(BIN)/npsim run scenarios/quickstart.yaml

test: setup  ## set up and run ruff and the tests (the fast ones, unless CI is set)
	$(BIN)/ruff check npsim tests benchmarks scripts
	$(BIN)/pytest $(SLOW)

test-all: setup  ## ruff and every test, the slow ones too (what CI runs)
	$(MAKE) test CI=true

notebook: setup  ## install Jupyter (the [notebook] extra) and open the labs in notebooks/
	$(BIN)/pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/

student-labs: setup  ## the labs without their answer cells, in build/student-labs/ (to hand out)
	$(BIN)/python scripts/student_labs.py --out build/student-labs

bench: setup  ## benchmarks (by hand; figures go in benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_endpoints.py

# the benchmarks' own environment: npsim plus what it is compared with (Ciw), never a
# dependency of npsim itself
BENCH_VENV = benchmarks/.venv

$(BENCH_VENV)/bin/python: benchmarks/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -e . -r benchmarks/requirements.txt
	@touch $@

bench-env: $(BENCH_VENV)/bin/python  ## the benchmarks' environment (npsim, Ciw, SimPy)

bench-mm4: bench-env  ## M/M/4 against Ciw, SimPy and a heap loop; long horizons (MM4.md)
	$(BENCH_VENV)/bin/python benchmarks/bench_mm4.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
