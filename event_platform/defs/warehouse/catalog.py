"""Publishing the lake into the analysts' `warehouse.duckdb`, so `duckdb data/warehouse.duckdb -c
"from experiment_results"` just works.

Each table becomes a view over exactly the Parquet files its partitions' manifests name: a glob over
the hive layout would also read a version being written or a killed writer's leftovers. A view
therefore names files of one moment; the catalog is re-published after materializations (it is
cheap: it reads manifests, not data). The views and tables are replaced in one transaction, so an
analyst sees the previous catalog or the new one.

On S3 a view would need DuckDB's httpfs extension and credentials inside the analysts' file; httpfs
cannot be installed offline, so there the marts (the small `warehouse` tables analysts query most)
are copied in as tables through the lake's own filesystem, and the other tables are listed as not
published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from event_platform.columns import column_description
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY, partition_keys, partition_path
from event_platform.staging import sql_text


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


CATALOG_TABLES: tuple[CatalogTable, ...] = (
    CatalogTable(
        "amplitude_events",
        "amplitude/events",
        "Amplitude's exported events, one row per uuid, by the day Amplitude stored them (`date`).",
    ),
    CatalogTable(
        "optimizely_decisions",
        "optimizely/decisions",
        "Optimizely E3 decisions (a visitor bucketed into a variation), one row per uuid, by processing day.",
    ),
    CatalogTable(
        "optimizely_conversions",
        "optimizely/conversions",
        "Optimizely E3 conversion events, one row per uuid, by processing day (`date`).",
    ),
    CatalogTable(
        "profile_store_events",
        "profile_store/events",
        "Profile Store track events, personal fields as keyed hashes, one row per event_key, by event day.",
    ),
    CatalogTable(
        "tracking_events",
        "tracking/events",
        "The learning platform's tracking events, one row per uuid, by the day the collector received them.",
    ),
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
        "Per experiment, variation and metric: units, rate or mean, lift against control with its interval, "
        "p-value and the sample-ratio check.",
        partitioned=False,
        mart=True,
    ),
)


@dataclass
class PublishReport:
    views: dict[str, int] = field(default_factory=dict)
    """name -> number of Parquet files behind it."""
    tables: dict[str, int] = field(default_factory=dict)
    """name -> rows copied."""
    empty: list[str] = field(default_factory=list)
    not_published: list[str] = field(default_factory=list)


def current_files(lake: Lake, table: CatalogTable) -> list[str]:
    if not table.partitioned:
        return lake.current_files(table.lake_path)
    files: list[str] = []
    for key in partition_keys(lake.list_dirs(table.lake_path)):
        files.extend(lake.current_files(partition_path(table.lake_path, key)))
    return files


def publish(lake: Lake, warehouse: Path, tables: tuple[CatalogTable, ...] = CATALOG_TABLES) -> PublishReport:
    """Replace the catalog's views and tables in one transaction."""
    report = PublishReport()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(warehouse))
    try:
        connection.execute("BEGIN TRANSACTION")
        for table in tables:
            files = current_files(lake, table)
            if not files:
                report.empty.append(table.name)
                continue
            if lake.is_local:
                paths = ", ".join(sql_text(lake.path(f)) for f in files)
                hive = "true" if table.partitioned else "false"
                connection.execute(
                    f'CREATE OR REPLACE VIEW "{table.name}" AS '
                    f"SELECT * FROM read_parquet([{paths}], hive_partitioning = {hive})"
                )
                describe(connection, "VIEW", table, lake.parquet_dataset(files).schema)
                report.views[table.name] = len(files)
            elif table.mart:
                dataset = lake.parquet_dataset(
                    files, partition_base=table.lake_path if table.partitioned else None
                )
                connection.register("mart_source", dataset)
                connection.execute(f'CREATE OR REPLACE TABLE "{table.name}" AS SELECT * FROM mart_source')
                describe(connection, "TABLE", table, dataset.schema)
                connection.unregister("mart_source")
                [(count,)] = connection.execute(f'SELECT count(*) FROM "{table.name}"').fetchall()
                report.tables[table.name] = int(count)
            else:
                report.not_published.append(table.name)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return report


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
