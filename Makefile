# The two commands that set everything up on a fresh machine:
#   make demo   # builds .venv if needed, generates the demo data, trains the demo
#   make test   # builds .venv if needed, runs the whole test suite
VENV ?= .venv
PYTHON := $(VENV)/bin/python
DEMO_DATA ?= data/demo
WORK_DIR ?= work_dirs/demo

.PHONY: env demo-data demo test test-fast

env:
	bash tools/setup_env.sh

demo-data: env
	$(PYTHON) tools/make_demo_data.py --out $(DEMO_DATA)

demo: demo-data
	$(PYTHON) tools/run_demo.py --work-dir $(WORK_DIR)

test: env
	$(PYTHON) -m pytest tests -v -rs --durations=15

# Everything but the end-to-end runs marked slow.
test-fast: env
	$(PYTHON) -m pytest tests -q -m "not slow"
