# The two commands that set everything up on a fresh machine:
#   make demo   # builds .venv if needed, generates the demo data, trains the demo
#   make test   # builds .venv if needed, runs the whole test suite
# Any target on the older stack that GPU users run (torch 2.1.2, .venv-torch2.1):
#   make test STACK=torch2.1
# CI (.ci/run) runs `make test` on both stacks.
STACK ?= torch2.14
ifeq ($(STACK),torch2.1)
VENV ?= .venv-torch2.1
else
VENV ?= .venv
endif
PYTHON := $(VENV)/bin/python
DEMO_DATA ?= data/demo
WORK_DIR ?= work_dirs/demo
# pytest-xdist workers for `make test` (0: in this process, one test at a time)
TEST_WORKERS ?= 2

.PHONY: env demo-data demo test test-fast

env:
	STACK=$(STACK) VENV=$(VENV) bash tools/setup_env.sh

demo-data: env
	$(PYTHON) tools/make_demo_data.py --out $(DEMO_DATA)

demo: demo-data
	$(PYTHON) tools/run_demo.py --work-dir $(WORK_DIR)

test: env
	$(PYTHON) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup -v -rs --durations=15

# Everything but the end-to-end runs marked slow.
test-fast: env
	$(PYTHON) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup -q -m "not slow"
