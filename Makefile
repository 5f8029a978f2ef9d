# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast check bench golden clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q compiler runtime stdlib > /dev/null  # bytecode once, read by every party (PYTHONDONTWRITEBYTECODE only stops writing)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/iq run examples/victims_by_exploitation.iq --catalog examples/catalog.toml \
	  --data police=examples/data/police_victims.csv --data ngo=examples/data/ngo_clients.csv \
	  --data helpline=examples/data/helpline_reports.csv
	$(BIN)/iq run examples/htcds/victims_by_region_and_age.iq --catalog examples/htcds/catalog.toml \
	  --data ngo=examples/htcds/data/ngo_cases.csv --data police=examples/htcds/data/police_cases.csv

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	IQ_TEST_TIER=fast $(BIN)/python -m pytest -m "not mpc"

check: $(STAMP)
	$(BIN)/iq check examples/

golden: $(STAMP)
	$(BIN)/python tests/make_golden.py
	$(BIN)/python tests/make_schemas.py

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
