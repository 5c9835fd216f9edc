"""The lake's typed tables as Delta Lake tables, through delta-rs (`deltalake`): plain Python, no Dagster.

A table lives at `<lake>/<table>/` (e.g. `amplitude/events/`): Parquet files under `date=YYYY-MM-DD/` and
the transaction log under `_delta_log/`, so Spark, Trino, Athena, DuckDB and Polars read exactly the
committed snapshot. Writing a partition is one Delta commit that replaces exactly that partition
(`mode="overwrite"` with the predicate `date = 'D'`), streamed from a `RecordBatchReader`; readers see the
previous version until it commits, and a write that fails or is killed leaves the table as it was.
Concurrent writers of different partitions of one table are safe: delta-rs commits with put-if-absent
(an atomic link on local disk, `If-None-Match: *` on S3) and retries a commit that lost the race after
checking that the winner touched other partitions.

Files a commit replaces stay for `REMOVED_FILES_KEPT_FOR` (the table's `deletedFileRetentionDuration`), so
a run that resolved the previous snapshot (another day's look-back, say) finishes reading it; `vacuum`
deletes them after that. `erase` is the exception: a person's rows go with a Delta DELETE, then every
file and log entry that still held them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction

from event_platform import settings
from event_platform.columns import column
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import OUTSIDE_TABLES, PARTITION_KEY, partition_path

LOG_DIR = "_delta_log"
REMOVED_FILES_KEPT_FOR = dt.timedelta(hours=6)
"""How long a replaced version's files stay readable: longer than any step reads its inputs."""
HISTORY_KEPT_FOR = dt.timedelta(days=30)
"""How far back time travel reaches: the log entries kept (the files of old versions go sooner)."""
TABLE_PROPERTIES = {
    "delta.deletedFileRetentionDuration": f"interval {REMOVED_FILES_KEPT_FOR.seconds // 3600} hours",
    "delta.logRetentionDuration": f"interval {HISTORY_KEPT_FOR.days} days",
}
WRITE_ID = "event_platform.write_id"
"""Commit metadata naming the write that made a version, unique per write."""
MAX_COMMIT_RETRIES = 100
"""A backfill commits many partitions of one table at once; each lost race is a cheap retry."""
ROW_GROUP_ROWS = 64 * 1024
"""Rows per Parquet row group: the writer holds one encoded row group in memory, so this bounds it."""
WRITER_PROPERTIES = WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)
PARTITION_FIELD = column(PARTITION_KEY, pa.string(), "The partition: a UTC day, YYYY-MM-DD.")


@dataclass(frozen=True)
class Written:
    """What one commit stored: the partition's (or table's) rows, bytes and files, and the version."""

    rows: int
    bytes: int
    files: int
    version: int


def storage_options(lake: Lake) -> dict[str, str]:
    """delta-rs's options for the lake: the same place `Lake` reads. Credentials come from the standard
    AWS chain (environment, profile, instance or pod role), never from here."""
    if lake.is_local:
        return {}
    options = {"AWS_REGION": settings.S3.read().region}
    if lake.s3_endpoint_url:
        options["AWS_ENDPOINT_URL"] = lake.s3_endpoint_url
        if urlparse(lake.s3_endpoint_url).scheme == "http":
            # MinIO or moto on 127.0.0.1; AWS itself is always https.
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def table_uri(lake: Lake, table: str) -> str:
    return lake.path(table) if lake.is_local else lake.uri(table)


def is_table(lake: Lake, table: str) -> bool:
    return lake.exists(f"{table.strip('/')}/{LOG_DIR}")


def open_table(lake: Lake, table: str, version: int | None = None) -> DeltaTable | None:
    """The table's current snapshot (or `version`), or None when it was never written."""
    if not is_table(lake, table):
        return None
    return DeltaTable(table_uri(lake, table), version=version, storage_options=storage_options(lake))


def tables(lake: Lake, under: str = "") -> list[str]:
    """Every Delta table below `under` (raw landings, quarantine and staged writes aside), lake-relative,
    sorted."""
    names = lake.list_dirs(under)
    if LOG_DIR in names:
        return [under]
    found: list[str] = []
    for name in names:
        if (not under and name in OUTSIDE_TABLES) or name.startswith(f"{PARTITION_KEY}="):
            continue
        found += tables(lake, f"{under}/{name}".strip("/"))
    return sorted(found)


# --- writing -----------------------------------------------------------------------------------------


def write(
    lake: Lake,
    table: str,
    batches: pa.RecordBatchReader,
    *,
    partition: str | None = None,
    commit_metadata: Mapping[str, Any] | None = None,
) -> Written:
    """Stream `batches` into one commit replacing the `partition` (a `date`) of `table`, or the whole
    table when it is unpartitioned (`partition=None`).

    Columns may be added over time (missing ones read as null); a column whose type changes is refused.
    The table is created on its first write, with the retention settings above.
    """
    if PARTITION_KEY in batches.schema.names:
        raise ValueError(
            f"{table}: the stream has a `{PARTITION_KEY}` column; the lake adds it from the partition key, "
            "so drop it from the asset's output."
        )
    schema = batches.schema.append(PARTITION_FIELD) if partition is not None else batches.schema
    snapshot = _create_if_missing(lake, table, schema, partitioned=partition is not None)
    reading = _Reading()
    stream = pa.RecordBatchReader.from_batches(schema, _with_partition(batches, schema, partition, reading))
    first = _first_rows(stream)
    replaces = bool(_files_of(snapshot, partition))
    write_id = uuid.uuid4().hex
    properties = CommitProperties(
        custom_metadata={**(commit_metadata or {}), WRITE_ID: write_id}, max_commit_retries=MAX_COMMIT_RETRIES
    )
    if first is None:
        # delta-rs writes no file for no rows, which would make a day that had no events look never
        # materialized; an empty Parquet file says "this day is empty" to every reader.
        _commit_empty(lake, table, snapshot, partition, properties)
        snapshot.load_as_version(_version_of(snapshot, write_id))
    else:
        try:
            write_deltalake(
                snapshot,
                first,
                mode="overwrite",
                predicate=_partition_predicate(partition),
                schema_mode="merge",
                writer_properties=WRITER_PROPERTIES,
                commit_properties=properties,
            )
        except Exception as error:
            # delta-rs reports an error raised while reading the stream as its own; the asset's own
            # (a dagster.Failure that allows no retry, say) is the one that says what went wrong.
            if reading.error is not None:
                raise reading.error from error
            raise
    files = _files_of(snapshot, partition)
    written = Written(reading.rows, sum(f.size for f in files), len(files), snapshot.version())
    if replaces:
        # As a commit replaces files, those replaced long enough ago go (see REMOVED_FILES_KEPT_FOR).
        vacuum(lake, table)
    return written


def _partition_predicate(partition: str | None) -> str | None:
    if partition is None:
        return None
    return f"{PARTITION_KEY} = '" + partition.replace("'", "''") + "'"


@dataclass
class _Reading:
    rows: int = 0
    error: Exception | None = None


def _with_partition(
    batches: pa.RecordBatchReader, schema: pa.Schema, partition: str | None, reading: _Reading
) -> Iterator[pa.RecordBatch]:
    try:
        for batch in batches:
            reading.rows += batch.num_rows
            columns = batch.columns
            if partition is not None:
                columns = [*columns, pa.repeat(pa.scalar(partition, pa.string()), batch.num_rows)]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
    except Exception as error:
        reading.error = error
        raise


def _first_rows(stream: pa.RecordBatchReader) -> pa.RecordBatchReader | None:
    """The stream again, or None when it holds no rows (its empty batches are read, nothing else)."""
    for batch in stream:
        if batch.num_rows:
            return pa.RecordBatchReader.from_batches(stream.schema, _chain(batch, stream))
    return None


def _chain(first: pa.RecordBatch, rest: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _create_if_missing(lake: Lake, table: str, schema: pa.Schema, *, partitioned: bool) -> DeltaTable:
    uri, options = table_uri(lake, table), storage_options(lake)
    if not is_table(lake, table):
        # Another writer of the same new table may create it first (a backfill starting): use theirs.
        # No commit retries: a losing create retried would commit a second version of the table's
        # metadata, and every writer that loaded the first would then fail with "Metadata changed".
        with contextlib.suppress(CommitFailedError):
            DeltaTable.create(
                uri,
                schema,
                mode="ignore",
                partition_by=[PARTITION_KEY] if partitioned else None,
                name=table,
                configuration=TABLE_PROPERTIES,
                storage_options=options,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
    return DeltaTable(uri, storage_options=options)


def _commit_empty(
    lake: Lake, table: str, snapshot: DeltaTable, partition: str | None, properties: CommitProperties
) -> None:
    stored = pa.schema(snapshot.schema().to_arrow())
    schema = pa.schema([field for field in stored if field.name != PARTITION_KEY])
    directory = partition_path(table, partition) if partition is not None else table.strip("/")
    name = f"part-00000-{uuid.uuid4()}-empty.zstd.parquet"
    with lake.open_output(f"{directory}/{name}") as stream:
        pq.write_table(schema.empty_table(), stream, compression="zstd")
    size = lake.fs.get_file_info(lake.path(f"{directory}/{name}")).size
    relative = f"{directory[len(table.strip('/')) :].strip('/')}/{name}".lstrip("/")
    snapshot.create_write_transaction(
        [
            AddAction(
                relative,
                size,
                {PARTITION_KEY: partition} if partition is not None else {},
                int(time.time() * 1000),
                True,
                json.dumps({"numRecords": 0}),
            )
        ],
        mode="overwrite",
        schema=snapshot.schema(),
        partition_by=[PARTITION_KEY] if partition is not None else None,
        partition_filters=[(PARTITION_KEY, "=", partition)] if partition is not None else None,
        commit_properties=properties,
    )


def _version_of(snapshot: DeltaTable, write_id: str) -> int:
    """The version our commit became (delta-rs reports it for `write_deltalake`, not for this API)."""
    snapshot.update_incremental()
    for commit in snapshot.history(limit=MAX_COMMIT_RETRIES + 1):
        if commit.get(WRITE_ID) == write_id:
            return int(commit["version"])
    raise RuntimeError(f"{snapshot.table_uri}: commit {write_id} is not among the latest versions.")


@dataclass(frozen=True)
class DataFile:
    path: str
    """Relative to the table's directory."""
    size: int
    partition: str | None


def data_files(snapshot: DeltaTable) -> list[DataFile]:
    """The files of the loaded snapshot, with their partition (`date`) when the table has one."""
    actions = pa.table(snapshot.get_add_actions(flatten=True))
    key = f"partition.{PARTITION_KEY}"
    partitions = actions[key].to_pylist() if key in actions.column_names else [None] * actions.num_rows
    return [
        DataFile(path, size, key)
        for path, size, key in zip(
            actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), partitions, strict=True
        )
    ]


def _files_of(snapshot: DeltaTable, partition: str | None) -> list[DataFile]:
    return [f for f in data_files(snapshot) if partition is None or f.partition == partition]


# --- reading -----------------------------------------------------------------------------------------


def read(
    lake: Lake,
    table: str,
    partitions: Collection[str] | None = None,
    *,
    allow_missing: bool = False,
    version: int | None = None,
) -> ds.Dataset:
    """A lazy dataset of the table's current snapshot (or `version`): the `partitions` asked for (all
    when None), with `date` as a column. Missing partitions raise `MissingPartitionsError` unless
    `allow_missing`; a table never written is an empty dataset then."""
    snapshot = open_table(lake, table, version)
    if snapshot is None:
        if allow_missing or (partitions is not None and not partitions):
            return ds.dataset([], format="parquet")
        raise MissingPartitionsError(lake, table, sorted(partitions or []))
    if partitions is not None and not allow_missing:
        present = {row[PARTITION_KEY] for row in snapshot.partitions()}
        if missing := sorted(set(partitions) - present):
            raise MissingPartitionsError(lake, table, missing)
    return dataset(lake, table, snapshot, partitions)


def dataset(
    lake: Lake, table: str, snapshot: DeltaTable, partitions: Collection[str] | None = None
) -> ds.Dataset:
    """The loaded snapshot's files as a pyarrow dataset, read through the lake's own filesystem."""
    pruning = [(PARTITION_KEY, "in", sorted(partitions))] if partitions is not None else None
    if partitions is not None and not partitions:
        pruning = [(PARTITION_KEY, "in", [""])]
    filesystem = pafs.SubTreeFileSystem(lake.path(table), lake.fs)
    return snapshot.to_pyarrow_dataset(filesystem=filesystem, file_pruning_predicate=pruning)


def read_partition(lake: Lake, table: str, partition: str) -> ds.Dataset:
    """One day of a table as stored now, for checks: empty when the day (or the table) is not there."""
    return read(lake, table, [partition], allow_missing=True)


class MissingPartitionsError(FileNotFoundError):
    def __init__(self, lake: Lake, table: str, partitions: list[str]) -> None:
        self.shown = ", ".join(partitions[:5]) + (
            f" and {len(partitions) - 5} more" if len(partitions) > 5 else ""
        )
        what = f"partition {self.shown}" if len(partitions) == 1 else f"partitions {self.shown}"
        self.where = f"has no {what} in {lake.uri(table)}"
        super().__init__(f"{table} {self.where}: materialize it first.")


def partition_keys(lake: Lake, table: str) -> list[str]:
    """The partitions the current snapshot holds, sorted; [] for a table never written."""
    snapshot = open_table(lake, table)
    return sorted(row[PARTITION_KEY] for row in snapshot.partitions()) if snapshot is not None else []


# --- retention and erasure ---------------------------------------------------------------------------


def vacuum(lake: Lake, table: str) -> list[str]:
    """Delete the files that versions replaced more than `REMOVED_FILES_KEPT_FOR` ago, and files no
    version names (a killed writer's) as old; the files deleted, relative to the table."""
    snapshot = open_table(lake, table)
    if snapshot is None:
        return []
    return snapshot.vacuum(dry_run=False, full=True, commit_properties=_retrying())


def erase(lake: Lake, table: str, predicate: str) -> int:
    """Delete the rows matching `predicate` (a SQL condition) in one commit, then every file and log
    entry that may still hold them; the rows deleted.

    Earlier versions' files and the log (the DELETE's own predicate, the statistics of replaced files)
    may hold the rows' values even when the current snapshot no longer does, so whatever the DELETE
    found, the replaced files go at once and the log is checkpointed and its older entries removed:
    time travel then starts at that checkpoint.
    """
    snapshot = open_table(lake, table)
    if snapshot is None:
        return 0
    metrics = snapshot.delete(predicate, commit_properties=_retrying())
    snapshot.vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False, commit_properties=_retrying()
    )
    _drop_history(snapshot)
    return int(metrics.get("num_deleted_rows") or 0)


def _drop_history(snapshot: DeltaTable) -> None:
    """Checkpoint now and delete every log entry before it (the log's retention set to zero for it)."""
    snapshot.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    snapshot.create_checkpoint()
    snapshot.cleanup_metadata()
    snapshot.alter.set_table_properties(
        {"delta.logRetentionDuration": TABLE_PROPERTIES["delta.logRetentionDuration"]}
    )


def _retrying() -> CommitProperties:
    return CommitProperties(max_commit_retries=MAX_COMMIT_RETRIES)
