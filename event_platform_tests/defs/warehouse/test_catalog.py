"""Publishing the lake into warehouse.duckdb: views over exactly the files of each Delta table's current
snapshot locally, the marts copied as tables on S3 (no httpfs offline), all in one transaction, with the
Delta version each one shows."""

from pathlib import Path

import duckdb
import pyarrow as pa

from event_platform.defs.warehouse.catalog import CATALOG_TABLES, publish
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource


def write(lake: Lake, table: str, values: list[int], partition: str | None = None) -> None:
    delta.write(lake, table, pa.table({"n": values}).to_reader(), partition=partition)


def test_views_read_only_the_committed_version_of_each_partition(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    write(lake, "warehouse/daily_active_users", [1, 2], "2025-03-01")
    write(lake, "warehouse/daily_active_users", [3], "2025-03-02")
    # A re-materialization replaces the day (its old file stays for readers); a killed writer's file lies
    # beside them, named by no version.
    write(lake, "warehouse/daily_active_users", [4, 5, 6], "2025-03-02")
    lake.write_bytes("warehouse/daily_active_users/date=2025-03-02/part-00000-stray.parquet", b"not parquet")
    write(lake, "warehouse/experiment_results", [7])
    warehouse = tmp_path / "analysts" / "warehouse.duckdb"

    report = publish(lake, warehouse)

    assert report.views == {"daily_active_users": 2, "experiment_results": 1}
    assert report.versions == {"daily_active_users": 3, "experiment_results": 1}
    assert set(report.empty) == {t.name for t in CATALOG_TABLES} - set(report.views)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT CAST(date AS VARCHAR), sum(n) FROM daily_active_users GROUP BY 1 ORDER BY 1"
        )
        assert rows.fetchall() == [("2025-03-01", 3), ("2025-03-02", 15)]
        assert connection.execute("FROM experiment_results").fetchall() == [(7,)]
        versions = connection.execute(
            "SELECT name, delta_version, files FROM catalog_versions ORDER BY name"
        ).fetchall()
        assert versions == [("daily_active_users", 3, 2), ("experiment_results", 1, 1)]


def test_republishing_replaces_views(lake_resource: LakeResource, tmp_path: Path) -> None:
    lake = lake_resource.lake()
    warehouse = tmp_path / "warehouse.duckdb"
    write(lake, "warehouse/experiment_results", [1])
    publish(lake, warehouse)
    write(lake, "warehouse/experiment_results", [2])
    publish(lake, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("FROM experiment_results").fetchall() == [(2,)]
        assert connection.execute("SELECT delta_version FROM catalog_versions").fetchall() == [(2,)]


def test_on_s3_the_marts_are_tables_and_the_rest_is_listed(
    s3_lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = s3_lake_resource.lake()
    write(lake, "warehouse/daily_active_users", [1, 2], "2025-03-01")
    write(lake, "warehouse/experiment_results", [7])
    write(lake, "warehouse/events", [9], "2025-03-01")
    warehouse = tmp_path / "warehouse.duckdb"

    report = publish(lake, warehouse)

    assert report.tables == {"daily_active_users": 2, "experiment_results": 1}
    assert report.not_published == ["events"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("SELECT sum(n), any_value(date) FROM daily_active_users").fetchone() == (
            3,
            "2025-03-01",
        )
