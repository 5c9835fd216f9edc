"""Publishing the lake into the analysts' `warehouse.duckdb`, so `duckdb data/warehouse.duckdb -c
"from experiment_results"` just works.

Each table is a Delta Lake table; its view reads exactly the Parquet files of the table's current
snapshot (DuckDB's delta extension cannot be installed offline, so the view lists the files the Delta
log names): a glob over the directory would also read replaced versions, a version being written or a
killed writer's leftovers. A view therefore shows one Delta version, recorded in `catalog_versions`
(table, Delta version, files, when published); the catalog is re-published after materializations (it
is cheap: it reads the logs, not data). The views and tables are replaced in one transaction, so an
analyst sees the previous catalog or the new one.

On S3 a view would need DuckDB's httpfs extension and credentials inside the analysts' file; httpfs
cannot be installed offline, so there the marts (the small `warehouse` tables analysts query most)
are copied in as tables through the lake's own filesystem, and the other tables are listed as not
published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from deltalake import DeltaTable

from event_platform.columns import column_description
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY
from event_platform.sources import registry
from event_platform.staging import sql_text

if TYPE_CHECKING:
    import duckdb

VERSIONS_TABLE = "catalog_versions"
VERSIONS_DESCRIPTION = "Which Delta version of which lake table each published view or table shows, and when."


@dataclass(frozen=True)
class CatalogTable:
    name: str
    """The name analysts query."""
    lake_path: str
    description: str
    """What a row is: the relation's `COMMENT` in warehouse.duckdb (its columns' come from the schema)."""
    partitioned: bool = True
    mart: bool = False
    """Copied as a table where views cannot reach the lake (S3)."""


def source_tables() -> tuple[CatalogTable, ...]:
    """Every registered source's lake tables, as their registration describes them."""
    return tuple(
        CatalogTable(
            f"{source.name}_{table.name}", f"{source.name}/{table.name}", table.description, table.partitioned
        )
        for source in registry.sources()
        for table in source.tables
    )


WAREHOUSE_TABLES: tuple[CatalogTable, ...] = (
    CatalogTable(
        "events",
        "warehouse/events",
        "Every source's events in one shape, each with the pseudonymous person_key it resolves to.",
    ),
    CatalogTable(
        "identity_links",
        "warehouse/identity_links",
        "Identity references seen together on one row (a device with a user), by day: how people resolve.",
    ),
    CatalogTable(
        "experiment_exposures",
        "warehouse/experiment_exposures",
        "Per experiment, person and day: the first Optimizely decision of the day and every variation shown.",
    ),
    CatalogTable(
        "experiment_conversions",
        "warehouse/experiment_conversions",
        "Events of exposed people at or after their first exposure and within the attribution window.",
    ),
    CatalogTable(
        "daily_active_users",
        "warehouse/daily_active_users",
        "People active per day and source, and across all sources (source `all`, each person once).",
        mart=True,
    ),
    CatalogTable(
        "experiment_results",
        "warehouse/experiment_results",
        "Per experiment, variation and defined metric (named, with its role): units, value, lift against "
        "control with its interval, p-value, the sample-ratio check and a decision.",
        partitioned=False,
        mart=True,
    ),
    CatalogTable(
        "experiment_results_daily",
        "warehouse/experiment_results_daily",
        "experiment_results as of each day (`date`): what an analyst saw that morning, sequential tests "
        "continued day to day; how each lift and its interval evolved.",
        mart=True,
    ),
    CatalogTable(
        "experiment_exploration",
        "warehouse/experiment_exploration",
        "Exploratory: every event type of every source as a conversion metric per experiment and variation, "
        "uncorrected; not for decisions.",
        partitioned=False,
        mart=True,
    ),
)


def catalog_tables() -> tuple[CatalogTable, ...]:
    """What the catalog publishes: the sources' tables, then the warehouse's."""
    return (*source_tables(), *WAREHOUSE_TABLES)


@dataclass
class PublishReport:
    views: dict[str, int] = field(default_factory=dict)
    """name -> number of Parquet files behind it."""
    versions: dict[str, int] = field(default_factory=dict)
    """name -> the Delta version its view or table shows."""
    tables: dict[str, int] = field(default_factory=dict)
    """name -> rows copied."""
    empty: list[str] = field(default_factory=list)
    not_published: list[str] = field(default_factory=list)


def snapshot_files(lake: Lake, table: CatalogTable, snapshot: DeltaTable) -> list[str]:
    """Lake paths of the snapshot's files. A view reads `date` from their hive-style directories, which
    delta-rs writes (and migration keeps); a file anywhere else would lose its partition, so it is refused."""
    files = []
    for data_file in delta.data_files(snapshot):
        if table.partitioned and not data_file.path.startswith(f"{PARTITION_KEY}={data_file.partition}/"):
            raise ValueError(
                f"{lake.uri(table.lake_path)}: {data_file.path} is not under {PARTITION_KEY}="
                f"{data_file.partition}/, so a view could not tell its partition; rewrite the partition."
            )
        files.append(f"{table.lake_path}/{data_file.path}")
    return files


def publish(lake: Lake, warehouse: Path, tables: tuple[CatalogTable, ...] | None = None) -> PublishReport:
    """Replace the catalog's views and tables (by default `catalog_tables()`) in one transaction."""
    # Imported when a connection opens: duckdb would add 0.15 CPU-s to every definitions load.
    import duckdb

    tables = catalog_tables() if tables is None else tables
    report = PublishReport()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(warehouse))
    try:
        connection.execute("BEGIN TRANSACTION")
        for table in tables:
            snapshot = delta.open_table(lake, table.lake_path)
            files = snapshot_files(lake, table, snapshot) if snapshot is not None else []
            if snapshot is None or not files:
                report.empty.append(table.name)
                continue
            if lake.is_local:
                paths = ", ".join(sql_text(lake.path(f)) for f in files)
                hive = "true" if table.partitioned else "false"
                # union_by_name: a table's partitions may differ by columns added over time.
                connection.execute(
                    f'CREATE OR REPLACE VIEW "{table.name}" AS SELECT * FROM '
                    f"read_parquet([{paths}], hive_partitioning = {hive}, union_by_name = true)"
                )
                describe(connection, "VIEW", table, delta.dataset(lake, table.lake_path, snapshot).schema)
                report.views[table.name] = len(files)
                report.versions[table.name] = snapshot.version()
            elif table.mart:
                dataset = delta.dataset(lake, table.lake_path, snapshot)
                connection.register("mart_source", dataset)
                connection.execute(f'CREATE OR REPLACE TABLE "{table.name}" AS SELECT * FROM mart_source')
                describe(connection, "TABLE", table, dataset.schema)
                connection.unregister("mart_source")
                [(count,)] = connection.execute(f'SELECT count(*) FROM "{table.name}"').fetchall()
                report.tables[table.name] = int(count)
                report.versions[table.name] = snapshot.version()
            else:
                report.not_published.append(table.name)
        record_versions(connection, lake, tables, report)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return report


def record_versions(
    connection: duckdb.DuckDBPyConnection,
    lake: Lake,
    tables: tuple[CatalogTable, ...],
    report: PublishReport,
) -> None:
    """`catalog_versions`: which Delta version of which lake table each published name shows."""
    connection.execute(
        f'CREATE OR REPLACE TABLE "{VERSIONS_TABLE}" (name VARCHAR, lake_table VARCHAR, '
        "delta_version BIGINT, files BIGINT, published_at TIMESTAMPTZ)"
    )
    connection.execute(f'COMMENT ON TABLE "{VERSIONS_TABLE}" IS {sql_text(VERSIONS_DESCRIPTION)}')
    rows = [
        (table.name, lake.uri(table.lake_path), report.versions[table.name], report.views.get(table.name))
        for table in tables
        if table.name in report.versions
    ]
    if rows:
        connection.executemany(f'INSERT INTO "{VERSIONS_TABLE}" VALUES (?, ?, ?, ?, current_timestamp)', rows)


def describe(
    connection: duckdb.DuckDBPyConnection,
    kind: Literal["VIEW", "TABLE"],
    table: CatalogTable,
    schema: pa.Schema,
) -> None:
    """`COMMENT ON` the published relation and each of its columns, from the table's description and the
    column descriptions its stored schema carries (`event_platform.columns`), so `duckdb_views()`,
    `duckdb_tables()` and `duckdb_columns()` say what each one is."""
    connection.execute(f'COMMENT ON {kind} "{table.name}" IS {sql_text(table.description)}')
    descriptions = {stored.name: column_description(stored) for stored in schema}
    if table.partitioned:
        descriptions[PARTITION_KEY] = "The day (UTC) the row is filed under: its partition in the lake."
    for name, description in descriptions.items():
        if description:
            connection.execute(f'COMMENT ON COLUMN "{table.name}"."{name}" IS {sql_text(description)}')
