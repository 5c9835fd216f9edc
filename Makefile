# The README's commands. Everything runs from the project's own virtualenv, which `install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster

.PHONY: install instance demo test ui bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The Dagster instance lives in .dagster/; its configuration is the repository's dagster.yaml.
instance:
	mkdir -p .dagster
	ln -sf ../dagster.yaml .dagster/dagster.yaml

demo: install instance
	$(BIN)/event-platform demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

ui: install instance
	$(BIN)/event-platform sandbox -- $(BIN)/dagster dev --workspace workspace.yaml

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf data .dagster/storage .dagster/history .dagster/schedules .dagster/logs benchmarks/.work
