"""Publishing the lake into warehouse.duckdb: views over exactly the committed files locally, the marts
copied as tables on S3 (no httpfs offline), all in one transaction."""

from pathlib import Path

import duckdb
import pyarrow as pa

from event_platform.defs.warehouse.catalog import CATALOG_TABLES, publish
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, write_parquet_partition
from event_platform.lake.layout import partition_path


def write(lake: Lake, directory: str, values: list[int]) -> None:
    write_parquet_partition(lake, directory, pa.table({"n": values}).to_reader())


def test_views_read_only_the_committed_version_of_each_partition(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    write(lake, partition_path("warehouse/daily_active_users", "2025-03-01"), [1, 2])
    write(lake, partition_path("warehouse/daily_active_users", "2025-03-02"), [3])
    # A re-materialization replaces the day; a killed writer's file lies beside it, named by no manifest.
    write(lake, partition_path("warehouse/daily_active_users", "2025-03-02"), [4, 5, 6])
    lake.write_bytes("warehouse/daily_active_users/date=2025-03-02/part-00000-stray.parquet", b"not parquet")
    write(lake, "warehouse/experiment_results", [7])
    warehouse = tmp_path / "analysts" / "warehouse.duckdb"

    report = publish(lake, warehouse)

    assert report.views == {"daily_active_users": 2, "experiment_results": 1}
    assert set(report.empty) == {t.name for t in CATALOG_TABLES} - set(report.views)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT CAST(date AS VARCHAR), sum(n) FROM daily_active_users GROUP BY 1 ORDER BY 1"
        )
        assert rows.fetchall() == [("2025-03-01", 3), ("2025-03-02", 15)]
        assert connection.execute("FROM experiment_results").fetchall() == [(7,)]


def test_republishing_replaces_views(lake_resource: LakeResource, tmp_path: Path) -> None:
    lake = lake_resource.lake()
    warehouse = tmp_path / "warehouse.duckdb"
    write(lake, "warehouse/experiment_results", [1])
    publish(lake, warehouse)
    write(lake, "warehouse/experiment_results", [2])
    publish(lake, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("FROM experiment_results").fetchall() == [(2,)]


def test_on_s3_the_marts_are_tables_and_the_rest_is_listed(
    s3_lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = s3_lake_resource.lake()
    write(lake, partition_path("warehouse/daily_active_users", "2025-03-01"), [1, 2])
    write(lake, "warehouse/experiment_results", [7])
    write(lake, partition_path("warehouse/events", "2025-03-01"), [9])
    warehouse = tmp_path / "warehouse.duckdb"

    report = publish(lake, warehouse)

    assert report.tables == {"daily_active_users": 2, "experiment_results": 1}
    assert report.not_published == ["events"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("SELECT sum(n), any_value(date) FROM daily_active_users").fetchone() == (
            3,
            "2025-03-01",
        )
