# Every target sets up .venv itself, so a fresh clone needs nothing but Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): setup.cfg pyproject.toml seqapps/layers/recurrence_kernels.cc
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,serving]'
	# Compile the recurrent layer's training kernels now (about a minute, once per
	# TensorFlow version and CPU) rather than in the first training step.
	$(BIN)/python -c 'import sys, seqapps.layers.native as n; sys.exit(n.main())'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/seqapps demo --out demo_out

# Two test workers (CI has 2 cores; tracing and process start-up are single-threaded), each
# file on one worker so that its module fixtures are built once. A test that hangs fails
# after 15 min with every thread's stack (pytest-timeout) instead of using up the CI run.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --timeout 900

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
