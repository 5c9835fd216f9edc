# The README's commands. Everything runs from the project's own virtualenv, which `install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster
# Absolute, so `make ui` (which runs inside .dagster/) and `make demo` use the same lake and warehouse.
export EVENT_PLATFORM_LAKE ?= $(CURDIR)/data/lake
export EVENT_PLATFORM_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb

.PHONY: install bytecode instance demo test ui bench lint settings-docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Bytecode compiled ahead, as a wheel install leaves it: an editable install compiles nothing, and with
# PYTHONDONTWRITEBYTECODE set every run worker the daemon launches compiles the package again (0.15-0.25
# CPU-s each). Up-to-date files are skipped.
bytecode: install
	$(BIN)/python -m compileall -q event_platform

# The Dagster instance lives in .dagster/ (DAGSTER_HOME); its configuration is the repository's dagster.yaml.
instance:
	mkdir -p .dagster
	ln -sfn ../dagster.yaml .dagster/dagster.yaml

demo: install instance bytecode
	$(BIN)/event-platform demo

# Three workers on two cores (pyproject.toml keeps each test file on one worker): the two slowest tests
# mostly wait on dagster-daemon, each on a worker of its own, and the third runs the rest meanwhile.
# Measured on two cores (fresh clones): 5.7 minutes quiet, 9.8-10.0 under load, 15-20 in one process.
# `make test PYTEST_WORKERS=0`: one
# process.
PYTEST_WORKERS ?= 3

test: install bytecode
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# The UI at http://127.0.0.1:3000, with the sandbox (the demo's days) running behind it.
# Started inside DAGSTER_HOME: dagster dev warns about a dagster.yaml in its folder that is not DAGSTER_HOME's.
ui: install instance
	cd .dagster && ../$(BIN)/event-platform sandbox -- ../$(BIN)/dagster dev --workspace ../workspace.yaml \
		--host 127.0.0.1 --port 3000

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# .env.example and the README's settings table, from the declarations in event_platform/settings.py.
settings-docs: install
	$(BIN)/python -m event_platform.settings write

clean:
	rm -rf data .dagster/storage .dagster/history .dagster/schedules .dagster/logs .dagster/demo benchmarks/.work
