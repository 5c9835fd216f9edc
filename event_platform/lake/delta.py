"""The lake's typed tables as Delta Lake tables, through delta-rs (`deltalake`): plain Python, no Dagster.

A table lives at `<lake>/<table>/` (e.g. `amplitude/events/`): Parquet files under `date=YYYY-MM-DD/` and
the transaction log under `_delta_log/`, so Spark, Trino, Athena, DuckDB and Polars read exactly the
committed snapshot. Writing a partition streams a `RecordBatchReader` into Parquet files of its own
(pyarrow, zstd), one row group of `ROW_GROUP_ROWS` in memory at a time and a new file past
`TARGET_FILE_BYTES`, then commits them as one Delta version that replaces exactly that partition
(`create_write_transaction`, overwrite filtered to `date = D`), each file with the statistics readers
skip files by. Memory therefore stays the same whatever the day's size. delta-rs's `write_deltalake`
did not keep it so: on a partitioned table its plan hash-repartitions the stream by `date` over one
writer per core, all of a day's rows go to one of them, and DataFusion's repartition holds back its
input only while every writer has data queued, which the idle ones never have, so a day queued in
memory ahead of the Parquet encoder (about 600 MB of the 1,040 MB peak of a million Amplitude events).

Readers see the previous version until the commit, and a write that fails leaves the table as it was:
its files are deleted (a killed writer's are named by no version, and `vacuum` deletes them later).
Concurrent writers of different partitions of one table are safe: delta-rs commits with put-if-absent
(an atomic link on local disk, `If-None-Match: *` on S3), and a commit that lost the race is retried
once the winners are checked to have left its partition as it found it.

Files a commit replaces stay for `REMOVED_FILES_KEPT_FOR` (the table's `deletedFileRetentionDuration`), so
a run that resolved the previous snapshot (another day's look-back, say) finishes reading it; `vacuum`
deletes them after that. `erase` is the exception: a person's rows go with a Delta DELETE, then every
file and log entry that still held them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from arro3.core import Schema as Arro3Schema
from deltalake import CommitProperties, DeltaTable, Field, Schema
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction
from deltalake.writer._conversion import _convert_arro3_schema_to_delta

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
"""Rows per Parquet row group: a write holds one row group in memory, so this bounds it."""
TARGET_FILE_BYTES = 128 * 1024 * 1024
"""Where a write closes a data file and starts the next: a day of a million events is one file."""
STATS_STRING_CHARS = 64
"""String bounds in the log are cut to this (ids and names fit; JSON documents would bloat it)."""
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

    Columns may be added over time (missing ones read as null); a column whose type changes is refused
    before anything is written. The table is created on its first write, with the retention settings
    above. A stream without rows stores one empty file, so that the day reads as materialized and empty.
    """
    if PARTITION_KEY in batches.schema.names:
        raise ValueError(
            f"{table}: the stream has a `{PARTITION_KEY}` column; the lake adds it from the partition key, "
            "so drop it from the asset's output."
        )
    schema = batches.schema.append(PARTITION_FIELD) if partition is not None else batches.schema
    snapshot = _create_if_missing(lake, table, schema, partitioned=partition is not None)
    columns = _delta_schema(batches.schema, snapshot)
    merged = pa.schema(_merged_schema(table, snapshot, columns).to_arrow())  # refuses a changed type
    # Files hold every column of the table, so that each file's statistics count a column it lacked
    # as null (delta-rs's pyarrow reader takes a column without statistics to be bounded by null).
    file_schema = pa.schema([field for field in merged if field.name != PARTITION_KEY])
    replaced = _paths_of(snapshot, partition)
    write_id = uuid.uuid4().hex
    files = _ParquetFiles(lake, table, partition, write_id, file_schema)
    try:
        stored = files.write(batches)
        version = _commit(
            table,
            snapshot,
            [add_action(f.path, f.size, partition, f.metadata, file_schema.names) for f in stored],
            columns,
            partition,
            replaced,
            {**(commit_metadata or {}), WRITE_ID: write_id},
        )
    except BaseException:
        files.close_quietly()
        # No version names the files unless the commit landed before an interrupt reached us; when
        # the table cannot be read to tell, they stay for `vacuum`, which deletes files no version names.
        with contextlib.suppress(Exception):
            snapshot.update_incremental()
            if not set(files.created) & _paths_of(snapshot, partition):
                files.delete()
        raise
    written = Written(
        sum(f.metadata.num_rows for f in stored), sum(f.size for f in stored), len(stored), version
    )
    if replaced:
        # As a commit replaces files, those replaced long enough ago go (see REMOVED_FILES_KEPT_FOR).
        vacuum(lake, table)
    return written


def _create_if_missing(lake: Lake, table: str, schema: pa.Schema, *, partitioned: bool) -> DeltaTable:
    uri, options = table_uri(lake, table), storage_options(lake)
    if not is_table(lake, table):
        # Another writer of the same new table may create it first (a backfill starting): use theirs.
        # No commit retries: a losing create retried would commit a second version of the table's
        # metadata, and every writer that loaded the first would then fail with "Metadata changed".
        with contextlib.suppress(CommitFailedError):
            DeltaTable.create(
                uri,
                _delta_schema(schema),
                mode="ignore",
                partition_by=[PARTITION_KEY] if partitioned else None,
                name=table,
                configuration=TABLE_PROPERTIES,
                storage_options=options,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
    return DeltaTable(uri, storage_options=options)


def _delta_schema(schema: pa.Schema, snapshot: DeltaTable | None = None) -> Schema:
    """A stream's schema in Delta types, converted as `write_deltalake` converts a stream: timestamps to
    microseconds, unsigned to signed integers, a column of nulls to the table's type of it."""
    stored = snapshot.schema().to_arrow() if snapshot is not None else None
    return Schema.from_arrow(_convert_arro3_schema_to_delta(Arro3Schema.from_arrow(schema), stored))


def _merged_schema(table: str, snapshot: DeltaTable, columns: Schema) -> Schema:
    """The table's schema with the stream's new columns appended, or the stored schema itself when
    nothing is new: delta-rs commits any other schema as a metadata change."""
    stored = snapshot.schema()
    types = {field.name: field.type for field in stored.fields}
    for field in columns.fields:
        if field.name in types and field.type != types[field.name]:
            raise ValueError(
                f"{table}: column `{field.name}` is {types[field.name]} in the table but {field.type} in "
                "this write. A column's type cannot change: write the new type under a new column name."
            )
    names = {field.name for field in columns.fields} | {PARTITION_KEY}
    if lacking := [field.name for field in stored.fields if not field.nullable and field.name not in names]:
        raise ValueError(
            f"{table}: this write lacks {', '.join(lacking)}, which the table holds as not null."
        )
    added = [
        Field(field.name, field.type, nullable=True, metadata=field.metadata)
        for field in columns.fields
        if field.name not in types
    ]
    return Schema([*stored.fields, *added]) if added else stored


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with the table's columns, in its types and order: a column it lacks is null."""
    if batch.schema.equals(schema):
        return batch
    arrays = [
        pa.nulls(batch.num_rows, field.type)
        if field.name not in batch.schema.names
        else batch.column(field.name).cast(field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class _StoredFile:
    path: str
    """Relative to the table's directory, as the log names it."""
    size: int
    metadata: pq.FileMetaData


class _ParquetFiles:
    """A write's Parquet files in its partition's directory, each named once (the write's id) and
    closed at about TARGET_FILE_BYTES; a row group is written to storage as soon as it is whole."""

    def __init__(self, lake: Lake, table: str, partition: str | None, write_id: str, schema: pa.Schema):
        self.lake, self.table, self.write_id, self.schema = lake, table.strip("/"), write_id, schema
        # Relative to the table's directory, like the paths the log names.
        self.directory = f"{partition_path('', partition).strip('/')}/" if partition is not None else ""
        self.stored: list[_StoredFile] = []
        self.created: list[str] = []
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, batches: pa.RecordBatchReader) -> list[_StoredFile]:
        """Write the stream, in the table's types; the files, at least one (empty for no rows)."""
        pending: list[pa.RecordBatch] = []
        count = 0
        for batch in batches:
            if batch.num_rows:
                pending.append(_conformed(batch, self.schema))
                count += batch.num_rows
            if count >= ROW_GROUP_ROWS:
                pending = self._write_row_groups(pending)
                count = sum(b.num_rows for b in pending)
        if pending:
            self._write_row_groups(pending, last=True)
        if self._writer is None and not self.stored:
            self._open()
        if self._writer is not None:
            self._close()
        return self.stored

    def _write_row_groups(self, batches: list[pa.RecordBatch], *, last: bool = False) -> list[pa.RecordBatch]:
        """Write the whole row groups `batches` hold (all of them when `last`); the rows left over.
        pyarrow ends a row group with every table it writes, hence the rows wait for a whole one."""
        rows = pa.Table.from_batches(batches, self.schema)
        whole = rows.num_rows if last else rows.num_rows - rows.num_rows % ROW_GROUP_ROWS
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._sink is not None
        self._writer.write_table(rows.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        if self._sink.tell() >= TARGET_FILE_BYTES:
            self._close()
        return rows.slice(whole).to_batches()

    def close_quietly(self) -> None:
        """After a failure: close the file being written, whatever state the failure left it in."""
        for opened in (self._writer, self._sink):
            with contextlib.suppress(Exception):
                if opened is not None:
                    opened.close()

    def delete(self) -> None:
        for path in self.created:
            with contextlib.suppress(FileNotFoundError):
                self.lake.delete(f"{self.table}/{path}")

    def _open(self) -> None:
        path = f"{self.directory}part-{len(self.stored):05d}-{self.write_id}.zstd.parquet"
        self.created.append(path)
        self._sink = self.lake.open_output(f"{self.table}/{path}")
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")

    def _close(self) -> None:
        assert self._writer is not None and self._sink is not None
        self._writer.close()
        self.stored.append(_StoredFile(self.created[-1], self._sink.tell(), self._writer.writer.metadata))
        self._sink.close()
        self._writer = self._sink = None


def _commit(
    table: str,
    snapshot: DeltaTable,
    actions: list[AddAction],
    columns: Schema,
    partition: str | None,
    replaced: set[str],
    metadata: Mapping[str, Any],
) -> int:
    """Commit `actions` replacing the partition (the whole table when None) in one version: its number.

    delta-rs's own retries would take this transaction, which has no predicate, to have read every file,
    so a concurrent write replacing another partition would fail it. Instead each attempt commits only
    onto the version loaded (no retries), and a lost race reloads, checks that the winners left this
    partition as this write found it, and tries again with the schema merged anew.
    """
    properties = CommitProperties(custom_metadata=dict(metadata), max_commit_retries=0)
    for _ in range(MAX_COMMIT_RETRIES + 1):
        loaded = snapshot.version()
        try:
            snapshot.create_write_transaction(
                actions,
                mode="overwrite",
                schema=_merged_schema(table, snapshot, columns),
                partition_by=[PARTITION_KEY] if partition is not None else None,
                partition_filters=[(PARTITION_KEY, "=", partition)] if partition is not None else None,
                commit_properties=properties,
            )
            return loaded + 1  # without retries, a commit either follows the loaded version or fails
        except CommitFailedError:
            snapshot.update_incremental()
            if snapshot.version() == loaded:
                raise  # not a lost race
        if _paths_of(snapshot, partition) != replaced:
            what = f"partition {partition}" if partition is not None else "the table"
            raise CommitFailedError(
                f"{table}: another write replaced {what} while this one ran; run it again."
            )
    raise CommitFailedError(f"{table}: {MAX_COMMIT_RETRIES + 1} attempts to commit lost the race to others.")


def add_action(
    path: str, size: int, partition: str | None, metadata: pq.FileMetaData, columns: Collection[str]
) -> AddAction:
    """The log's entry adding a data file (`path` relative to the table, `columns` the table's, its
    partition column aside), with the statistics readers skip files by."""
    return AddAction(
        path,
        size,
        {PARTITION_KEY: partition} if partition is not None else {},
        int(time.time() * 1000),
        True,
        json.dumps(file_stats(metadata, columns)),
    )


def file_stats(metadata: pq.FileMetaData, columns: Collection[str]) -> dict[str, Any]:
    """A data file's Delta statistics from its Parquet footer: `numRecords`, every column's `nullCount`
    (lists and maps aside) and its `minValues` and `maxValues`, strings cut to STATS_STRING_CHARS.

    Bounds are all or none: delta-rs's pyarrow reader takes a top-level column without them to be
    bounded by null and skips the file for any filter on it, so a file with a column whose values
    have no bounds (a string past the writer's 4 kB statistics, a decimal), or without one of the
    table's `columns`, gets none. A column holding only nulls has none either way: its `nullCount`
    says so.
    """
    stats: dict[str, Any] = {"numRecords": metadata.num_rows, "nullCount": {}}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    bounded = set(columns) <= set(metadata.schema.to_arrow_schema().names)
    groups = [metadata.row_group(group) for group in range(metadata.num_row_groups)]
    for index in range(metadata.num_columns):
        leaf = metadata.schema.column(index)
        if leaf.max_repetition_level > 0:
            continue
        path = leaf.path.split(".")
        chunks = [group.column(index).statistics for group in groups]
        nested = len(path) > 1
        if any(chunk is None or not chunk.has_null_count for chunk in chunks):
            bounded = bounded and nested
            continue
        nulls = sum(chunk.null_count for chunk in chunks)
        _put(stats["nullCount"], path, nulls)
        if nulls == metadata.num_rows:
            continue
        known = all(
            chunk.has_min_max or chunk.null_count == group.num_rows
            for chunk, group in zip(chunks, groups, strict=True)
        )
        bounds = [(chunk.min, chunk.max) for chunk in chunks if chunk.has_min_max]
        lowest = _bound(min(b for b, _ in bounds), upper=False) if known else None
        highest = _bound(max(b for _, b in bounds), upper=True) if known else None
        if lowest is None or highest is None:
            bounded = bounded and nested
            continue
        _put(low, path, lowest)
        _put(high, path, highest)
    if bounded and low:
        stats |= {"minValues": low, "maxValues": high}
    return stats


def _bound(value: Any, *, upper: bool) -> Any:
    """A footer's bound as Delta's statistics hold it, or None for one they cannot hold exactly."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _bounding_prefix(value, upper=upper)
    return value if isinstance(value, bool | int) else None


def _bounding_prefix(value: str, *, upper: bool) -> str | None:
    """At most STATS_STRING_CHARS characters still bounding `value` (an upper bound ends one character
    higher), or None when no such string exists."""
    if len(value) <= STATS_STRING_CHARS:
        return value
    if not upper:
        return value[:STATS_STRING_CHARS]
    prefix = value[:STATS_STRING_CHARS]
    for end in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[end]) + 1
        code = 0xE000 if 0xD800 <= code <= 0xDFFF else code  # surrogates are no characters
        if code <= 0x10FFFF:
            return prefix[:end] + chr(code)
    return None


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


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


def _paths_of(snapshot: DeltaTable, partition: str | None) -> set[str]:
    """The files of the loaded snapshot in `partition` (all of them when None)."""
    return {f.path for f in data_files(snapshot) if partition is None or f.partition == partition}


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
