# The README's commands. Everything runs from the project's own virtualenv, which `install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster

.PHONY: install demo test ui bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The Dagster instance lives in .dagster/ (DAGSTER_HOME), configured by .dagster/dagster.yaml.
demo: install
	$(BIN)/event-platform demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

# The UI at http://127.0.0.1:3000, with the sandbox (the demo's days) running behind it.
ui: install
	$(BIN)/event-platform sandbox -- $(BIN)/dagster dev --workspace workspace.yaml --host 127.0.0.1 --port 3000

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf data .dagster/storage .dagster/history .dagster/schedules .dagster/logs .dagster/demo benchmarks/.work
