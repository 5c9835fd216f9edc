"""`event-platform warehouse tables | query SQL`: the analysts' warehouse.duckdb, without a DuckDB CLI.

The DuckDB command-line shell is not a Python package of the DuckDB version the platform writes
with, so these open the file with the same `duckdb` module, read-only, and print what DuckDB's own
renderer prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from event_platform import settings

RELATIONS_SQL = """
SELECT view_name AS name, 'view' AS kind, comment FROM duckdb_views() WHERE NOT internal
UNION ALL
SELECT table_name, 'table', comment FROM duckdb_tables()
ORDER BY name
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
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


def warehouse_path() -> Path:
    path = Path(settings.setting("EVENT_PLATFORM_WAREHOUSE", settings.DEFAULT_WAREHOUSE) or "")
    if not path.exists():
        raise SystemExit(f"No warehouse at {path}: run `make demo` or materialize warehouse/catalog first.")
    return path


def _tables(arguments: argparse.Namespace) -> int:
    with duckdb.connect(str(warehouse_path()), read_only=True) as connection:
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
    with duckdb.connect(str(warehouse_path()), read_only=True) as connection:
        connection.sql(arguments.sql).show(max_width=200, max_rows=arguments.rows)
    return 0
