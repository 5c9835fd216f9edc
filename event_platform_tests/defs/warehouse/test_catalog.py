"""Publishing the lake into warehouse.duckdb: views over exactly the files of each Delta table's current
snapshot locally, the marts copied as tables on S3 (no httpfs offline), all in one transaction, with the
Delta version each one shows."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from event_platform import cli
from event_platform.columns import column
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.warehouse.catalog import (
    VERSIONS_DESCRIPTION,
    VERSIONS_TABLE,
    catalog_tables,
    publish,
)


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
    assert set(report.empty) == {t.name for t in catalog_tables()} - set(report.views)
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


def described(lake: Lake, table: str, day: str) -> None:
    schema = pa.schema([column("active_users", pa.int64(), "People active that day.")])
    delta.write(lake, table, pa.table({"active_users": [3]}, schema=schema).to_reader(), partition=day)


def comments(warehouse: Path) -> tuple[dict[str, str | None], dict[tuple[str, str], str | None]]:
    """Each relation's comment, and each column's, as DuckDB's catalog holds them."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        relations = connection.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal "
            "UNION ALL SELECT table_name, comment FROM duckdb_tables()"
        ).fetchall()
        columns = connection.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns()"
        ).fetchall()
    return dict(relations), {(table, name): comment for table, name, comment in columns}


def test_every_published_relation_and_column_says_what_it_is(
    lake_resource: LakeResource, s3_lake_resource: LakeResource, tmp_path: Path
) -> None:
    dau = next(table for table in catalog_tables() if table.name == "daily_active_users")
    for lake, kind in ((lake_resource.lake(), "view"), (s3_lake_resource.lake(), "table")):
        described(lake, dau.lake_path, "2025-03-01")
        warehouse = tmp_path / f"{kind}.duckdb"

        publish(lake, warehouse)

        relations, columns = comments(warehouse)
        assert relations == {"daily_active_users": dau.description, VERSIONS_TABLE: VERSIONS_DESCRIPTION}, (
            kind
        )
        assert columns[("daily_active_users", "active_users")] == "People active that day.", kind
        assert "partition" in (columns[("daily_active_users", "date")] or ""), kind
    assert all(table.description for table in catalog_tables())


def test_the_cli_lists_what_each_table_holds_and_queries_it(
    lake_resource: LakeResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`event-platform warehouse …`: the analysts' file without a DuckDB shell, read-only."""
    lake = lake_resource.lake()
    described(lake, "warehouse/daily_active_users", "2025-03-01")
    warehouse = tmp_path / "warehouse.duckdb"
    publish(lake, warehouse)
    monkeypatch.setenv("EVENT_PLATFORM_WAREHOUSE", str(warehouse))

    assert cli.main(["warehouse", "tables"]) == 0
    assert "daily_active_users" in capsys.readouterr().out
    assert cli.main(["warehouse", "tables", "--columns", "daily_active_users"]) == 0
    assert "People active that day." in capsys.readouterr().out
    assert cli.main(["warehouse", "query", "select sum(active_users) as people from daily_active_users"]) == 0
    shown = capsys.readouterr().out
    assert "people" in shown and "3" in shown

    monkeypatch.setenv("EVENT_PLATFORM_WAREHOUSE", str(tmp_path / "nowhere.duckdb"))
    with pytest.raises(SystemExit, match="make demo"):
        cli.main(["warehouse", "tables"])
