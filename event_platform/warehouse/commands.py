"""The analysts' warehouse from the command line, without Dagster, the lake or a DuckDB shell.

`event-platform experiments results [EXPERIMENT]` prints each experiment's summary (the text Dagit shows
in `experiment_results`' metadata), an experiment picked by name or id; `experiments check-metrics
[FILE]` loads a metrics file as the assets would and prints its problems by line. `event-platform
warehouse tables | query SQL` lists and queries `warehouse.duckdb`: the DuckDB shell is not a Python
package of the DuckDB version the platform writes with, so these open the file with the same `duckdb`
module, read-only, and print what DuckDB's own renderer prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import duckdb

from event_platform import settings
from event_platform.warehouse.metrics import SETTING as METRICS_FILE_SETTING
from event_platform.warehouse.metrics import MetricsFileError, load_config
from event_platform.warehouse.summary import results_summary

RESULTS_TABLE = "experiment_results"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    add_experiment_commands(subparsers)
    add_warehouse_commands(subparsers)


def add_experiment_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("experiments", help="experiment results and metric definitions")
    commands = group.add_subparsers(dest="experiments_command", required=True, metavar="COMMAND")

    results = commands.add_parser("results", help="print experiments' results summaries from the warehouse")
    results.add_argument("experiment", nargs="?", help="an experiment's name or id (default: all of them)")
    results.add_argument(
        "--warehouse",
        default=None,
        help="the analysts' DuckDB file "
        f"($EVENT_PLATFORM_WAREHOUSE, or {settings.Platform.model_fields['warehouse'].default})",
    )
    results.set_defaults(run=run_results)

    check = commands.add_parser("check-metrics", help="check a metrics file and list its metrics")
    check.add_argument("file", nargs="?", help=f"the YAML file (default: ${METRICS_FILE_SETTING})")
    check.set_defaults(run=run_check_metrics)


def warehouse_path(given: str | None) -> Path:
    return Path(given or settings.Platform.read().warehouse)


def read_results(warehouse: Path) -> list[dict[str, Any]]:
    """Every row of `experiment_results` in the analysts' file."""
    if not warehouse.exists():
        raise FileNotFoundError(
            f"No warehouse at {warehouse}: run `make demo` or materialize warehouse/catalog, or give "
            "--warehouse."
        )
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        names = "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
        tables = {row[0] for row in connection.execute(names).fetchall()}
        if RESULTS_TABLE not in tables:
            raise FileNotFoundError(
                f"{warehouse} has no {RESULTS_TABLE}: materialize warehouse/experiment_results, then "
                "warehouse/catalog."
            )
        return connection.sql(f"SELECT * FROM {RESULTS_TABLE}").to_arrow_table().to_pylist()


def select_experiment(rows: list[dict[str, Any]], wanted: str | None) -> list[dict[str, Any]]:
    """The rows of the experiment named or numbered `wanted` (names case-insensitively); all when None."""
    if wanted is None:
        return rows
    key = wanted.strip().casefold()
    chosen = [
        row
        for row in rows
        if row["experiment_id"] == wanted.strip() or (row["experiment_name"] or "").casefold() == key
    ]
    if not chosen:
        known = sorted({row["experiment_name"] or row["experiment_id"] for row in rows})
        raise LookupError(f"no experiment {wanted!r} in the results; there are: {', '.join(known) or 'none'}")
    return chosen


def print_results(warehouse: Path, experiment: str | None = None) -> None:
    rows = select_experiment(read_results(warehouse), experiment)
    print(results_summary(rows) if rows else "No experiment has results yet.")


def run_results(arguments: argparse.Namespace) -> int:
    try:
        print_results(warehouse_path(arguments.warehouse), arguments.experiment)
    except (FileNotFoundError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run_check_metrics(arguments: argparse.Namespace) -> int:
    path = arguments.file or settings.Experiments.read().metrics_file
    if not path:
        print(f"error: give a file, or set {METRICS_FILE_SETTING}", file=sys.stderr)
        return 2
    try:
        config = load_config(path, window_days=settings.Warehouse.read().attribution_window_days)
    except MetricsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for metric in config.metrics.values():
        print(f"metric {metric.name} ({metric.kind}, {metric.winning_direction}): {metric.definition()}")
    for experiment in config.experiments.values():
        assigned = (
            f"assigned by {experiment.assignment.source} {experiment.assignment.event}"
            if experiment.assignment
            else "Optimizely"
        )
        roles = ", ".join(f"{name} ({role})" for name, role in experiment.metrics) or "no extra metrics"
        print(f"experiment {experiment.name or experiment.id} [{experiment.id}], {assigned}: {roles}")
    return 0


RELATIONS_SQL = """
SELECT view_name AS name, 'view' AS kind, comment FROM duckdb_views() WHERE NOT internal
UNION ALL
SELECT table_name, 'table', comment FROM duckdb_tables()
ORDER BY name
"""


def add_warehouse_commands(subparsers: argparse._SubParsersAction) -> None:
    warehouse = subparsers.add_parser(
        "warehouse", help="query the analysts' warehouse.duckdb (EVENT_PLATFORM_WAREHOUSE)"
    )
    commands = warehouse.add_subparsers(dest="warehouse_command", required=True, metavar="COMMAND")
    tables = commands.add_parser("tables", help="the published tables and views, with what each holds")
    tables.add_argument(
        "--columns", metavar="TABLE", help="instead, the columns of TABLE, with what each means"
    )
    tables.set_defaults(run=_tables)
    query = commands.add_parser("query", help="run SQL, e.g. 'from experiment_results limit 10'")
    query.add_argument("sql")
    query.add_argument("--rows", type=int, default=40, help="rows to print at most (default 40)")
    query.set_defaults(run=_query)


def existing_warehouse() -> Path:
    path = warehouse_path(None)
    if not path.exists():
        raise SystemExit(f"No warehouse at {path}: run `make demo` or materialize warehouse/catalog first.")
    return path


def _tables(arguments: argparse.Namespace) -> int:
    with duckdb.connect(str(existing_warehouse()), read_only=True) as connection:
        if arguments.columns:
            connection.sql(
                "SELECT column_name AS name, data_type AS type, comment FROM duckdb_columns() "
                "WHERE table_name = $table ORDER BY column_index",
                params={"table": arguments.columns},
            ).show(max_width=200, max_rows=200)
        else:
            connection.sql(RELATIONS_SQL).show(max_width=200)
    return 0


def _query(arguments: argparse.Namespace) -> int:
    with duckdb.connect(str(existing_warehouse()), read_only=True) as connection:
        connection.sql(arguments.sql).show(max_width=200, max_rows=arguments.rows)
    return 0
