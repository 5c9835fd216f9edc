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

import duckdb

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import partition_keys, partition_path
from event_platform.staging import sql_text


@dataclass(frozen=True)
class CatalogTable:
    name: str
    """The name analysts query."""
    lake_path: str
    partitioned: bool = True
    mart: bool = False
    """Copied as a table where views cannot reach the lake (S3)."""


CATALOG_TABLES: tuple[CatalogTable, ...] = (
    CatalogTable("amplitude_events", "amplitude/events"),
    CatalogTable("optimizely_decisions", "optimizely/decisions"),
    CatalogTable("optimizely_conversions", "optimizely/conversions"),
    CatalogTable("optimizely_experiments", "optimizely/experiments"),
    CatalogTable("optimizely_experiment_metrics", "optimizely/experiment_metrics"),
    CatalogTable("profile_store_events", "profile_store/events"),
    CatalogTable("tracking_events", "tracking/events"),
    CatalogTable("events", "warehouse/events"),
    CatalogTable("identity_links", "warehouse/identity_links"),
    CatalogTable("experiment_exposures", "warehouse/experiment_exposures"),
    CatalogTable("experiment_conversions", "warehouse/experiment_conversions"),
    CatalogTable("daily_active_users", "warehouse/daily_active_users", mart=True),
    CatalogTable("experiment_results", "warehouse/experiment_results", partitioned=False, mart=True),
    CatalogTable("experiment_exploration", "warehouse/experiment_exploration", partitioned=False, mart=True),
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
                report.views[table.name] = len(files)
            elif table.mart:
                dataset = lake.parquet_dataset(
                    files, partition_base=table.lake_path if table.partitioned else None
                )
                connection.register("mart_source", dataset)
                connection.execute(f'CREATE OR REPLACE TABLE "{table.name}" AS SELECT * FROM mart_source')
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
