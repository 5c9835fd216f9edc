"""The typed lake as Delta Lake tables, as engines other than ours see it, on local disk and on S3.

Readers here never go through `event_platform`: deltalake with DuckDB, Polars, and pyarrow reading the
files the Delta log names straight from storage. Writers are killed mid-write and run sixteen at once.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import boto3
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from dagster import AssetExecutionContext, DailyPartitionsDefinition, asset, materialize
from deltalake import DeltaTable

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource, ParquetLakeIOManager

days = DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")
DAY = "2026-11-03"
ROUNDS = {"first": [1, 2, 3], "second": [10, 20]}


@asset(key_prefix=["src"], partitions_def=days, config_schema={"round": str})
def readings(context: AssetExecutionContext) -> pa.Table:
    values = ROUNDS[context.op_config["round"]]
    return pa.table({"value": values, "round": [context.op_config["round"]] * len(values)})


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> LakeResource:
    return request.getfixturevalue("lake_resource" if request.param == "local" else "s3_lake_resource")


def engine_options(lake: Lake) -> dict[str, str]:
    """What any engine needs to reach the lake: the endpoint, credentials from the environment."""
    if lake.is_local:
        return {}
    return {
        "AWS_ENDPOINT_URL": lake.s3_endpoint_url or "",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": os.environ["AWS_REGION"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


def materialize_round(lake: LakeResource, name: str) -> None:
    result = materialize(
        [readings],
        partition_key=DAY,
        resources={"io_manager": ParquetLakeIOManager(lake=lake)},
        run_config={"ops": {"src__readings": {"config": {"round": name}}}},
    )
    assert result.success


def test_other_engines_read_exactly_the_new_version_and_the_old_one_by_time_travel(
    lake: LakeResource,
) -> None:
    store = lake.lake()
    materialize_round(lake, "first")
    materialize_round(lake, "second")
    uri, options = delta.table_uri(store, "src/readings"), engine_options(store)
    expected = [(10, "second", DAY), (20, "second", DAY)]

    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 2
    with duckdb.connect() as connection:
        connection.register("snapshot", table.to_pyarrow_dataset())
        rows = connection.execute("SELECT value, round, date FROM snapshot ORDER BY value").fetchall()
    assert rows == expected, "deltalake + DuckDB"

    polars = pl.read_delta(uri, storage_options=options).sort("value")
    assert polars.select(["value", "round", "date"]).rows() == expected, "Polars"

    # pyarrow alone, on the files the log names, from storage: no replaced file among them.
    filesystem, root = (
        pafs.FileSystem.from_uri(uri) if store.is_local else (store.fs, store.path("src/readings"))
    )
    files = [f"{root}/{path}" for path in pa.table(table.get_add_actions()).column("path").to_pylist()]
    direct = ds.dataset(files, filesystem=filesystem, partitioning="hive", partition_base_dir=root).to_table()
    assert sorted(zip(direct["value"].to_pylist(), direct["date"].to_pylist(), strict=True)) == [
        (10, DAY),
        (20, DAY),
    ], "pyarrow from storage"

    previous = DeltaTable(uri, version=1, storage_options=options).to_pyarrow_table()
    assert sorted(previous["value"].to_pylist()) == [1, 2, 3], "time travel to the replaced version"
    assert pl.read_delta(uri, version=1, storage_options=options)["value"].sort().to_list() == [1, 2, 3]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from event_platform.lake import delta
    from event_platform.lake.filesystem import Lake

    lake = Lake.from_uri(sys.argv[1], s3_endpoint_url=sys.argv[2] or None)
    schema = pa.schema([("value", pa.int64())])

    def endless():
        for batch in range(100_000):
            yield pa.record_batch([pa.array(range(50_000), pa.int64())], schema=schema)
            if batch == 20:
                print("writing", flush=True)
            time.sleep(0.01)

    stream = pa.RecordBatchReader.from_batches(schema, endless())
    delta.write(lake, "src/killed", stream, partition=sys.argv[3])
    """
)


def test_a_writer_killed_mid_partition_leaves_the_previous_version_readable(
    lake: LakeResource, tmp_path: Path
) -> None:
    store = lake.lake()
    delta.write(store, "src/killed", pa.table({"value": [7, 8]}).to_reader(), partition=DAY)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(script), lake.root, lake.s3_endpoint_url or "", DAY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL

    table = delta.open_table(store, "src/killed")
    assert table is not None and table.version() == 1
    assert delta.read(store, "src/killed", [DAY]).to_table()["value"].to_pylist() == [7, 8]
    # The next write of the day commits as usual.
    written = delta.write(store, "src/killed", pa.table({"value": [9]}).to_reader(), partition=DAY)
    assert written.version == 2 and delta.read(store, "src/killed", [DAY]).count_rows() == 1


PARALLEL = 16
ROWS_PER_DAY = 1000


def write_one_day(root: str, endpoint: str | None, index: int) -> int:
    """One backfill run's write: a day of `src/parallel`, in a process of its own; the Delta version."""
    lake = Lake.from_uri(root, s3_endpoint_url=endpoint)
    key = f"2026-11-{index + 1:02d}"
    values = pa.table({"value": pa.array(range(ROWS_PER_DAY), pa.int64()), "day": [index] * ROWS_PER_DAY})
    return delta.write(lake, "src/parallel", values.to_reader(), partition=key).version


def test_sixteen_runs_writing_partitions_of_one_table_at_once_all_commit(lake: LakeResource) -> None:
    store = lake.lake()
    if not store.is_local:
        # The store refuses to overwrite an existing key when asked not to: what delta-rs commits with.
        s3 = boto3.client("s3", endpoint_url=lake.s3_endpoint_url)
        bucket = store.root.split("/")[0]
        s3.put_object(Bucket=bucket, Key="probe", Body=b"1", IfNoneMatch="*")
        with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
            s3.put_object(Bucket=bucket, Key="probe", Body=b"2", IfNoneMatch="*")

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PARALLEL, mp_context=spawn) as pool:
        versions = list(
            pool.map(
                write_one_day, [lake.root] * PARALLEL, [lake.s3_endpoint_url] * PARALLEL, range(PARALLEL)
            )
        )

    table = delta.open_table(store, "src/parallel")
    assert table is not None
    writes = [commit for commit in table.history() if commit["operation"] == "WRITE"]
    assert len(writes) == PARALLEL and len(set(versions)) == PARALLEL
    assert sorted(versions) == sorted(commit["version"] for commit in writes)
    stored = delta.read(store, "src/parallel").to_table()
    assert stored.num_rows == PARALLEL * ROWS_PER_DAY
    per_day = stored.group_by("date").aggregate([("value", "count"), ("day", "min")]).to_pylist()
    assert sorted((row["day_min"], row["value_count"]) for row in per_day) == [
        (index, ROWS_PER_DAY) for index in range(PARALLEL)
    ]


def test_replaced_files_stay_for_their_readers_until_vacuum_finds_them_old(
    lake_resource: LakeResource,
) -> None:
    store = lake_resource.lake()
    for values in ([1, 2], [3]):
        delta.write(store, "src/kept", pa.table({"value": values}).to_reader(), partition=DAY)
    old = delta.read(store, "src/kept", [DAY])  # a reader that resolved version 1 ...
    delta.write(store, "src/kept", pa.table({"value": [4]}).to_reader(), partition=DAY)
    assert delta.vacuum(store, "src/kept") == []
    assert old.count_rows() == 1, "... still reads it after the partition was replaced twice"

    table = delta.open_table(store, "src/kept")
    assert table is not None
    assert table.metadata().configuration["delta.deletedFileRetentionDuration"] == "interval 6 hours"
    expired = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=True)
    assert len(expired) == 2, "the two replaced versions' files, and only they, are due once old"


def test_a_partition_stream_may_not_bring_its_own_date_column(lake_resource: LakeResource) -> None:
    with pytest.raises(ValueError, match="the lake adds it from the partition key"):
        delta.write(lake_resource.lake(), "src/dated", pa.table({"date": ["x"]}).to_reader(), partition=DAY)


def test_a_missing_partition_names_the_table_and_the_fix(lake_resource: LakeResource) -> None:
    store = lake_resource.lake()
    delta.write(store, "src/sparse", pa.table({"value": [1]}).to_reader(), partition=DAY)
    with pytest.raises(
        FileNotFoundError, match=r"src/sparse has no partition 2026-11-04 .*materialize it first"
    ):
        delta.read(store, "src/sparse", [DAY, "2026-11-04"])
    assert delta.read(store, "src/sparse", [DAY, "2026-11-04"], allow_missing=True).count_rows() == 1
    assert delta.read(store, "src/never", [DAY], allow_missing=True).count_rows() == 0
