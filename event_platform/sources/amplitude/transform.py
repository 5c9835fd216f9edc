"""Typed, deduplicated Amplitude events from a landed day, streamed as Arrow: no Dagster here.

The day goes through the shared ingestion path (`event_platform.ingest`, which says how) with this
source's `SPEC`: every one of the export's keys read as text (nested objects as JSON text) and typed
after by `schema.COLUMNS`, so a value that does not convert nulls its field and is counted as malformed
rather than failing its line. A row without `uuid` or a parseable `event_time` is bad: its line goes
byte for byte to `quarantine/amplitude/events/date=D/<member without .gz>`, blank lines included. The
first upload of each `uuid` is kept (`server_upload_time`, never `event_id`, which is not unique); rows
tying on upload time and member are retries of one line.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from event_platform.ingest import (
    DEFAULT_MEMORY_LIMIT,
    FILE_NAME,
    IngestSpec,
    IngestSummary,
    LandedFile,
    Landing,
    TypedDay,
    UnreconciledFileError,
    identifier,
    read_day,
)
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path
from event_platform.sources.amplitude import SOURCE
from event_platform.sources.amplitude.schema import (
    COLUMNS,
    EVENT_SCHEMA,
    PREVIEW_COLUMNS,
    SOURCE_FILE,
    TIMESTAMP_FORMATS,
    Column,
    Kind,
)
from event_platform.staging import sql_text

SOURCE_NAME = SOURCE.name
TABLE = "amplitude/events"
PRIMARY_KEY = "uuid"
_SQL_TYPES = {Kind.INTEGER: "BIGINT", Kind.FLOAT: "DOUBLE", Kind.BOOLEAN: "BOOLEAN"}

TransformSummary = IngestSummary
TypedEvents = TypedDay
UnreconciledMemberError = UnreconciledFileError


def raw_members(lake: Lake, day: str) -> Landing:
    """The landed members of `day`, with their line counts, from the raw manifest."""
    partition = raw_path(SOURCE_NAME, day)
    manifest = lake.read_manifest(partition)
    if manifest is None:
        raise FileNotFoundError(
            f"No Amplitude export landed for {day} at {lake.uri(partition)}: materialize "
            "amplitude/raw_export for that day first."
        )
    members = tuple(
        LandedFile(
            entry.extra.get("member", entry.name), f"{partition}/{entry.path}", int(entry.extra["lines"])
        )
        for entry in manifest.files
    )
    return Landing(members, manifest.version)


def _raw_type(column: Column) -> str:
    return "JSON" if column.kind is Kind.JSON else "VARCHAR"


def _typed_expression(column: Column) -> str:
    """SQL typing the column's value, read as text by `read_json`."""
    raw = identifier(column.key)
    if column.kind is Kind.TIMESTAMP:
        formats = ", ".join(sql_text(f) for f in TIMESTAMP_FORMATS)
        return f"try_strptime({raw}, [{formats}])::TIMESTAMPTZ"
    if column.kind is Kind.JSON:
        return f"{raw}::VARCHAR"
    if column.kind in _SQL_TYPES:
        return f"TRY_CAST({raw} AS {_SQL_TYPES[column.kind]})"
    if column.key == PRIMARY_KEY:
        return f"NULLIF(trim({raw}), '')"
    return raw


SPEC = IngestSpec(
    source=SOURCE_NAME,
    table=TABLE,
    schema=EVENT_SCHEMA,
    raw_columns={column.key: _raw_type(column) for column in COLUMNS},
    typing={**{c.name: _typed_expression(c) for c in COLUMNS}, SOURCE_FILE: FILE_NAME},
    required=(PRIMARY_KEY, "event_time"),
    key=PRIMARY_KEY,
    first_by=("server_upload_time NULLS LAST", SOURCE_FILE),
    time_column="event_time",
    landing=raw_members,
    unreconciled_hint="Re-land the day (amplitude/raw_export) or inspect the member.",
    preview_columns=PREVIEW_COLUMNS,
    blank_lines_quarantined=True,
    malformed={c.name: identifier(c.key) for c in COLUMNS if c.typed},
)


def read_events(
    lake: Lake,
    day: str,
    *,
    tmp_dir: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> TypedDay:
    """Type, quarantine and deduplicate the landed `day` (`ingest.read_day` with this source's spec)."""
    return read_day(SPEC, lake, day, tmp_dir=tmp_dir, memory_limit=memory_limit, threads=threads)


def write_events(lake: Lake, day: dt.date | str, tmp_dir: Path | None = None) -> IngestSummary:
    """`read_events` written to `amplitude/events/date=D/` as the IO manager writes it (for the CLI)."""
    key = day.isoformat() if isinstance(day, dt.date) else day
    typed = read_events(lake, key, tmp_dir=tmp_dir)
    delta.write(lake, TABLE, typed.reader, partition=key)
    return typed.summary
