"""From the collector's landed files to the typed, deduplicated `tracking/events` table (no Dagster).

The landed gzip NDJSON of a day (`raw/tracking/date=D/`, the files its manifest names) streams line by
line into Arrow batches of an explicit schema, then into a local temporary Parquet file; lines that
cannot be typed go to `quarantine/tracking/events/date=D/` as they were. DuckDB then keeps the first
copy of each `uuid` (earliest `received_at`), spilling to disk if the day is large, and hands the result
back as a stream of record batches. Memory stays bounded by the batch size whatever the day's size.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from event_platform.defs.tracking.events import CONTEXT_FIELDS
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import partition_keys, quarantine_path, raw_path

SOURCE = "tracking"
TABLE = "tracking/events"
QUARANTINE_FILE = "lines.ndjson.gz"
BATCH_ROWS = 50_000

UTC_MICROS = pa.timestamp("us", tz="UTC")
EVENTS_SCHEMA = pa.schema([
    pa.field("uuid", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("time", UTC_MICROS, nullable=False),
    pa.field("received_at", UTC_MICROS, nullable=False),
    pa.field("anon_username", pa.string(), nullable=False),
    *(pa.field(name, pa.string()) for name in CONTEXT_FIELDS),
    pa.field("event_data", pa.string(), nullable=False, metadata={"format": "JSON text"}),
])
"""`course_unit_id` is a string: the LMS sends integer or string ids, and a string holds both."""


class LineError(ValueError):
    """A landed line that cannot be typed; it is quarantined, not dropped."""


@dataclass
class DayStats:
    landed_files: int = 0
    landed_lines: int = 0
    quarantined: int = 0
    rows: int = 0
    duplicates: int = 0
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    event_type_counts: list[tuple[str, int]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)


def landed_files(lake: Lake, day: str) -> list[str]:
    return lake.current_files(raw_path(SOURCE, day))


def landed_line_count(lake: Lake, day: str) -> int:
    """What the collector acknowledged for the day, from the manifest (each file records its lines)."""
    manifest = lake.read_manifest(raw_path(SOURCE, day))
    return sum(int(entry.extra.get("lines", 0)) for entry in manifest.files) if manifest else 0


def quarantined_line_count(lake: Lake, day: str) -> int:
    manifest = lake.read_manifest(quarantine_path(TABLE, day))
    return sum(int(entry.extra.get("lines", 0)) for entry in manifest.files) if manifest else 0


def typed_row(line: bytes) -> dict[str, Any]:
    """One landed line as a row of EVENTS_SCHEMA, or LineError saying what is wrong."""
    try:
        event = json.loads(line)
    except ValueError as error:
        raise LineError("not JSON") from error
    if not isinstance(event, dict):
        raise LineError("not a JSON object")
    row: dict[str, Any] = {}
    for name in ("uuid", "event_type", "anon_username"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise LineError(f"{name} is missing or not a string")
        row[name] = value
    for name in ("time", "received_at"):
        row[name] = _utc(event.get(name), name)
    for name in CONTEXT_FIELDS:
        value = event.get(name)
        row[name] = None if value is None else str(value)
    event_data = event.get("event_data")
    if not isinstance(event_data, dict):
        raise LineError("event_data is not an object")
    row["event_data"] = json.dumps(event_data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return row


def _utc(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise LineError(f"{name} is missing")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise LineError(f"{name} is not an ISO 8601 timestamp") from error
    if moment.tzinfo is None:
        raise LineError(f"{name} has no UTC offset")
    return moment.astimezone(dt.UTC)


def landed_lines(lake: Lake, files: list[str]) -> Iterator[bytes]:
    for relative in files:
        try:
            with lake.open_input(relative) as raw, gzip.GzipFile(fileobj=raw) as lines:
                for line in lines:
                    if line.strip():
                        yield line.rstrip(b"\n")
        except (EOFError, gzip.BadGzipFile) as error:
            raise ValueError(
                f"{lake.uri(relative)} is not a complete gzip file ({error}); the collector writes files "
                "whole, so compare it with the sha256 in its manifest and restore it"
            ) from error


def stage_day(lake: Lake, day: str, staging: Path) -> tuple[Path, DayStats]:
    """Type the day's landed lines into `staging/landed.parquet`, quarantine the rest; (file, stats)."""
    files = landed_files(lake, day)
    stats = DayStats(landed_files=len(files))
    staged = staging / "landed.parquet"
    rejected = staging / "quarantine.ndjson.gz"
    columns: dict[str, list[Any]] = {name: [] for name in EVENTS_SCHEMA.names}
    with pq.ParquetWriter(staged, EVENTS_SCHEMA) as writer, gzip.open(rejected, "wb") as quarantine:
        for line in landed_lines(lake, files):
            stats.landed_lines += 1
            try:
                row = typed_row(line)
            except LineError:
                stats.quarantined += 1
                quarantine.write(line + b"\n")
                continue
            for name, value in row.items():
                columns[name].append(value)
            if len(columns["uuid"]) >= BATCH_ROWS:
                writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=EVENTS_SCHEMA))
                columns = {name: [] for name in EVENTS_SCHEMA.names}
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=EVENTS_SCHEMA))
    _publish_quarantine(lake, day, rejected, stats.quarantined)
    return staged, stats


def _publish_quarantine(lake: Lake, day: str, rejected: Path, count: int) -> None:
    """Replace the day's quarantine; an empty version when nothing is bad now but something was before."""
    directory = quarantine_path(TABLE, day)
    if count == 0 and lake.read_manifest(directory) is None:
        return
    with lake.write_partition(directory) as partition:
        if count:
            with partition.open(QUARANTINE_FILE, lines=count) as target, rejected.open("rb") as source:
                shutil.copyfileobj(source, target)
        partition.metadata["lines"] = count


DEDUPLICATE_SQL = """
    COPY (
        SELECT * EXCLUDE (copy) FROM (
            SELECT *, row_number() OVER (PARTITION BY uuid ORDER BY received_at, time) AS copy
            FROM read_parquet({staged})
        ) WHERE copy = 1
        ORDER BY time, uuid
    ) TO {deduplicated} (FORMAT parquet, COMPRESSION zstd)
"""
"""The first copy of each uuid (earliest `received_at`), in time order."""


def deduplicate(staged: Path, staging: Path, stats: DayStats) -> pa.RecordBatchReader:
    """The staged day with one row per uuid, as record batches of EVENTS_SCHEMA; fills in the stats.

    DuckDB sorts and windows within a memory limit, spilling to `staging` for a large day.
    """
    result = staging / "deduplicated.parquet"
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET memory_limit = '1GB'")
        connection.execute(f"SET temp_directory = {_sql_text(staging / 'spill')}")
        connection.execute(DEDUPLICATE_SQL.format(staged=_sql_text(staged), deduplicated=_sql_text(result)))
        source = f"read_parquet({_sql_text(result)})"
        summary = f"SELECT count(*), min(time), max(time) FROM {source}"
        rows, first, last = connection.execute(summary).fetchone()
        stats.event_type_counts = connection.execute(
            f"SELECT event_type, count(*) FROM {source} GROUP BY event_type ORDER BY 2 DESC, 1"
        ).fetchall()
    stats.rows = rows
    stats.duplicates = stats.landed_lines - stats.quarantined - rows
    stats.first_time, stats.last_time = first, last
    parquet = pq.ParquetFile(result)
    if parquet.metadata.num_rows:
        stats.preview = parquet.read_row_group(0).slice(0, 5).cast(EVENTS_SCHEMA).to_pylist()
    batches = (batch.cast(EVENTS_SCHEMA) for batch in parquet.iter_batches(batch_size=BATCH_ROWS))
    return pa.RecordBatchReader.from_batches(EVENTS_SCHEMA, batches)


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def new_landings(lake: Lake, seen_versions: dict[str, str], open_days: set[str]) -> list[tuple[str, str]]:
    """(day, manifest version) of every open day whose landing changed since `seen_versions`.

    Days not in `open_days` (today, until it is over; days before the start date) wait: they are
    reported once they open, because their version is not yet in `seen_versions`.
    """
    changed = []
    for day in partition_keys(lake.list_dirs(f"raw/{SOURCE}")):
        if day not in open_days:
            continue
        manifest = lake.read_manifest(raw_path(SOURCE, day))
        if manifest is not None and seen_versions.get(day) != manifest.version:
            changed.append((day, manifest.version))
    return changed
