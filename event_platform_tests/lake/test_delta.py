"""The typed lake as Delta Lake tables, as engines other than ours see it, on local disk and on S3.

Readers here never go through `event_platform`: deltalake with DuckDB, Polars, and pyarrow reading the
files the Delta log names straight from storage. Writers are killed mid-write and run eight at once.
"""

import datetime as dt
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from dagster import AssetExecutionContext, DailyPartitionsDefinition, asset, materialize
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

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


PARALLEL = 8
ROWS_PER_DAY = 1000


def write_one_day(root: str, endpoint: str | None, index: int, rerun: bool) -> int:
    """One backfill run's write: a day of `src/parallel`, in a process of its own; the Delta version."""
    lake = Lake.from_uri(root, s3_endpoint_url=endpoint)
    key = f"2026-11-{index + 1:02d}"
    values = pa.table(
        {
            "value": pa.array(range(ROWS_PER_DAY), pa.int64()),
            "day": [index] * ROWS_PER_DAY,
            "rerun": [rerun] * ROWS_PER_DAY,
        }
    )
    return delta.write(lake, "src/parallel", values.to_reader(), partition=key).version


def test_eight_runs_writing_partitions_of_one_table_at_once_all_commit(lake: LakeResource) -> None:
    """First each run adds its day, then each replaces it: a replacement removes files, which a
    concurrent commit must not take for a conflict unless they were its own partition's."""
    store = lake.lake()
    if not store.is_local:
        # The store refuses to overwrite an existing key when asked not to: what delta-rs commits with.
        s3 = boto3.client("s3", endpoint_url=lake.s3_endpoint_url)
        bucket = store.root.split("/")[0]
        s3.put_object(Bucket=bucket, Key="probe", Body=b"1", IfNoneMatch="*")
        with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
            s3.put_object(Bucket=bucket, Key="probe", Body=b"2", IfNoneMatch="*")

    spawn = multiprocessing.get_context("spawn")
    versions = []
    with ProcessPoolExecutor(PARALLEL, mp_context=spawn) as pool:
        for rerun in (False, True):
            runs = (
                [lake.root] * PARALLEL,
                [lake.s3_endpoint_url] * PARALLEL,
                range(PARALLEL),
                [rerun] * PARALLEL,
            )
            versions += pool.map(write_one_day, *runs)

    table = delta.open_table(store, "src/parallel")
    assert table is not None
    writes = [commit for commit in table.history() if commit["operation"] == "WRITE"]
    assert len(writes) == 2 * PARALLEL and len(set(versions)) == 2 * PARALLEL
    assert sorted(versions) == sorted(commit["version"] for commit in writes)
    stored = delta.read(store, "src/parallel").to_table()
    assert stored.num_rows == PARALLEL * ROWS_PER_DAY and all(stored["rerun"].to_pylist())
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


def batches_of(values: range, size: int) -> pa.RecordBatchReader:
    schema = pa.schema([("value", pa.int64())])
    chunks = [
        pa.record_batch([pa.array(values[i : i + size], pa.int64())], schema)
        for i in range(0, len(values), size)
    ]
    return pa.RecordBatchReader.from_batches(schema, chunks)


def log_entry(store: Lake, table: str, version: int) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in store.read_bytes(f"{table}/_delta_log/{version:020d}.json").splitlines()
    ]


@pytest.mark.parametrize("partition", [DAY, None])
def test_a_stream_rolls_into_files_of_whole_row_groups_and_reads_back_exactly(
    lake: LakeResource, partition: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every row group closes a file here: 2,500 rows of 100-row batches are five files of 500 rows.
    monkeypatch.setattr(delta, "ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(delta, "TARGET_FILE_BYTES", 1)
    store = lake.lake()
    delta.write(store, "src/rolled", batches_of(range(7), 7), partition=partition)

    written = delta.write(store, "src/rolled", batches_of(range(2500), 100), partition=partition)

    table = delta.open_table(store, "src/rolled")
    assert table is not None and (written.version, written.rows, written.files) == (table.version(), 2500, 5)
    adds = [entry["add"] for entry in log_entry(store, "src/rolled", written.version) if "add" in entry]
    assert written.bytes == sum(add["size"] for add in adds)
    stats = sorted((json.loads(add["stats"]) for add in adds), key=lambda stat: stat["minValues"]["value"])
    assert [(s["numRecords"], s["minValues"], s["maxValues"], s["nullCount"]) for s in stats] == [
        (500, {"value": low}, {"value": low + 499}, {"value": 0}) for low in range(0, 2500, 500)
    ]
    for add in adds:
        metadata = pq.read_metadata(store.open_input_file(f"src/rolled/{add['path']}"))
        assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [500]
    stored = delta.read(store, "src/rolled").to_table()
    assert sorted(stored["value"].to_pylist()) == list(range(2500)), "exactly the stream, the old rows gone"


def failing(after: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, after, 100):
        yield pa.record_batch([pa.array(range(start, start + 100), pa.int64())], names=["value"])
    raise KeyError("the asset's own error")


def test_a_failed_stream_leaves_no_file_and_no_commit(
    lake: LakeResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delta, "ROW_GROUP_ROWS", 500)
    store = lake.lake()
    delta.write(store, "src/failed", batches_of(range(3), 3), partition=DAY)
    before = store.list_files("src/failed")

    stream = pa.RecordBatchReader.from_batches(pa.schema([("value", pa.int64())]), failing(1200))
    with pytest.raises(KeyError, match="the asset's own error"):
        delta.write(store, "src/failed", stream, partition=DAY)

    assert store.list_files("src/failed") == before, "the file it was writing (two row groups) is gone"
    assert delta.read(store, "src/failed", [DAY]).to_table()["value"].to_pylist() == [0, 1, 2]


def test_a_failed_commit_leaves_no_file(lake_resource: LakeResource, monkeypatch: pytest.MonkeyPatch) -> None:
    store = lake_resource.lake()
    delta.write(store, "src/uncommitted", batches_of(range(3), 3), partition=DAY)
    before = store.list_files("src/uncommitted")

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError("the store is gone")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refused)
    with pytest.raises(OSError, match="the store is gone"):
        delta.write(store, "src/uncommitted", batches_of(range(10), 5), partition=DAY)
    assert store.list_files("src/uncommitted") == before


def test_columns_may_be_added_but_never_change_type(lake_resource: LakeResource) -> None:
    store = lake_resource.lake()
    delta.write(store, "src/evolving", pa.table({"value": [1]}).to_reader(), partition="2026-11-01")
    with_note = pa.table({"value": [2], "note": ["new"]})
    delta.write(store, "src/evolving", with_note.to_reader(), partition="2026-11-02")
    delta.write(store, "src/evolving", pa.table({"value": [3]}).to_reader(), partition="2026-11-03")

    table = delta.open_table(store, "src/evolving")
    assert table is not None
    assert [field.name for field in table.schema().fields] == ["value", "date", "note"]
    rows = delta.read(store, "src/evolving").to_table().sort_by("value").select(["value", "note"])
    assert rows.to_pylist() == [
        {"value": 1, "note": None},
        {"value": 2, "note": "new"},
        {"value": 3, "note": None},
    ]
    # The last write's file holds the column as nulls and its statistics say so: a reader skipping
    # files by them keeps it for a filter on nulls. (delta-rs's pyarrow reader still skips the files
    # written before the column existed, which have no statistics of it.)
    unnoted = delta.read(store, "src/evolving").to_table(filter=ds.field("note").is_null())
    assert 3 in unnoted["value"].to_pylist()
    # Only the write that added a column changed the table's metadata: the others never conflict on it.
    assert [any("metaData" in entry for entry in log_entry(store, "src/evolving", v)) for v in (1, 2, 3)] == [
        False,
        True,
        False,
    ]

    before = store.list_files("src/evolving")
    with pytest.raises(
        ValueError, match=r"column `value` is .*long.* in the table but .*string.* in this write"
    ):
        delta.write(store, "src/evolving", pa.table({"value": ["4"]}).to_reader(), partition="2026-11-04")
    assert store.list_files("src/evolving") == before
    assert table.version() == delta.open_table(store, "src/evolving").version()  # type: ignore[union-attr]


def test_a_commit_that_lost_the_race_retries_unless_the_winner_wrote_its_partition(
    lake_resource: LakeResource,
) -> None:
    """Another write commits while this one streams: of another partition, this one still commits
    after it; of the same partition, this one fails and removes its files."""
    store = lake_resource.lake()
    for day in ("2026-11-01", "2026-11-02"):
        delta.write(store, "src/raced", pa.table({"value": [0]}).to_reader(), partition=day)

    def meanwhile(day: str, value: int) -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([value], pa.int64())], names=["value"])
        delta.write(store, "src/raced", pa.table({"value": [value + 1]}).to_reader(), partition=day)
        yield pa.record_batch([pa.array([value + 2], pa.int64())], names=["value"])

    schema = pa.schema([("value", pa.int64())])
    other = pa.RecordBatchReader.from_batches(schema, meanwhile("2026-11-02", 10))
    written = delta.write(store, "src/raced", other, partition="2026-11-01")
    assert written.version == 4
    assert delta.read(store, "src/raced", ["2026-11-01"]).to_table()["value"].to_pylist() == [10, 12]
    assert delta.read(store, "src/raced", ["2026-11-02"]).to_table()["value"].to_pylist() == [11]

    before = store.list_files("src/raced/date=2026-11-01")
    same = pa.RecordBatchReader.from_batches(schema, meanwhile("2026-11-01", 20))
    with pytest.raises(CommitFailedError, match="another write replaced partition 2026-11-01"):
        delta.write(store, "src/raced", same, partition="2026-11-01")
    assert delta.read(store, "src/raced", ["2026-11-01"]).to_table()["value"].to_pylist() == [21]
    assert len(store.list_files("src/raced/date=2026-11-01")) == len(before) + 1, "the winner's file alone"


def test_file_statistics_are_those_readers_skip_files_by(lake_resource: LakeResource) -> None:
    store = lake_resource.lake()
    stamp = dt.datetime(2026, 11, 1, 12, 30, 0, 123456, tzinfo=dt.UTC)
    rows = pa.table(
        {
            "n": pa.array([3, None, 1], pa.int64()),
            "at": pa.array([stamp, stamp + dt.timedelta(days=1), None], pa.timestamp("us", tz="UTC")),
            "name": ["b", "a", None],
            "document": ["x" * 100, "y" * 100, "w"],
            "tags": pa.array([["a"], [], None], pa.list_(pa.string())),
            "place": pa.array([{"city": "Oslo"}, {"city": None}, None]),
        }
    )
    written = delta.write(store, "src/stats", rows.to_reader(), partition="2026-11-01")

    [add] = [entry["add"] for entry in log_entry(store, "src/stats", written.version) if "add" in entry]
    assert json.loads(add["stats"]) == {
        "numRecords": 3,
        "minValues": {
            "n": 1,
            "at": "2026-11-01T12:30:00.123456Z",
            "name": "a",
            "document": "w",
            "place": {"city": "Oslo"},
        },
        "maxValues": {
            "n": 3,
            "at": "2026-11-02T12:30:00.123456Z",
            "name": "b",
            "document": "y" * 63 + "z",  # a prefix one character higher: still above the value
            "place": {"city": "Oslo"},
        },
        "nullCount": {"n": 1, "at": 1, "name": 1, "document": 0, "place": {"city": 2}},
    }
    table = delta.open_table(store, "src/stats")
    assert table is not None
    parsed = pa.table(table.get_add_actions(flatten=True))
    assert (parsed["min.at"][0].as_py(), parsed["max.n"][0].as_py()) == (stamp, 3), "as delta-rs reads them"

    # A value past the Parquet writer's 4 kB of statistics leaves its column unbounded, hence the file.
    huge = rows.set_column(3, "document", pa.array(["x" * 5000, "y", "z"]))
    written = delta.write(store, "src/stats", huge.to_reader(), partition="2026-11-02")
    [add] = [entry["add"] for entry in log_entry(store, "src/stats", written.version) if "add" in entry]
    assert sorted(json.loads(add["stats"])) == ["nullCount", "numRecords"]
    found = delta.read(store, "src/stats").to_table(filter=ds.field("name") == "a")
    assert sorted(found["date"].to_pylist()) == ["2026-11-01", "2026-11-02"], "no file skipped wrongly"


def test_a_stream_is_stored_in_the_types_delta_has(lake_resource: LakeResource) -> None:
    store = lake_resource.lake()
    stamp = dt.datetime(2026, 11, 3, 8, 0, 0, 1)
    rows = pa.table(
        {"at": pa.array([stamp], pa.timestamp("ns")), "count": pa.array([7], pa.uint32()), "note": ["x"]}
    )
    delta.write(store, "src/typed", rows.to_reader(), partition=DAY)
    # The second write finds the types the first stored; its column of nulls takes the stored type.
    delta.write(store, "src/typed", rows.set_column(2, "note", pa.nulls(1)).to_reader(), partition=DAY)

    table = delta.open_table(store, "src/typed")
    assert table is not None
    assert [(f.name, str(f.type)) for f in table.schema().fields] == [
        ("at", 'PrimitiveType("timestamp_ntz")'),
        ("count", 'PrimitiveType("integer")'),
        ("note", 'PrimitiveType("string")'),
        ("date", 'PrimitiveType("string")'),
    ]
    stored = delta.read(store, "src/typed").to_table()
    assert stored.select(["at", "count", "note"]).to_pylist() == [{"at": stamp, "count": 7, "note": None}]
