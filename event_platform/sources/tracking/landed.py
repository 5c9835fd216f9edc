"""The collector's landing, and from it the typed, deduplicated `tracking/events` table (no Dagster).

A day's landing (`raw/tracking/date=D/`) grows by one group commit at a time, up to 172,800 a day at
the collector's flush rate, so a commit must cost the same at the end of the day as at its start:

    events-<version>.ndjson.gz     one group commit's events, gzip NDJSON
    _commits/<version>.json        its commit record: path, bytes, sha256, lines, first/last received_at
    _manifest.json                 the index: the records folded in by `compact_day` (optional)

`commit_events` lands the data file durably, then its record (`write_committed_by_record`: both staged
and fsynced, then renamed in that order locally; one PUT each on S3). The record is the commit, so a
collector killed before it leaves at most a whole, uncommitted data file that no reader counts (and
`compact_day` deletes once it is `STRAY_AGE` old, with dead staging), and the client, never
acknowledged, sends again.
No commit reads or rewrites anything day-wide. Readers (`landed_files`) take the index plus every
record not folded into it; `compact_day` folds the records into the index and deletes them, so a
closed day is read from one file. A record deleted between a reader's listing and its read is in the
index by then (the index is written first), so the reader retries with the new index.

The landed files go through the shared ingestion path (`event_platform.ingest`) with this source's
schema and typing (`SPEC`): lines that cannot be typed go to `quarantine/tracking/events/date=D/` as
they were, and DuckDB keeps the first copy of each `uuid` (earliest `received_at`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.ingest import IngestSpec, LandedFile, Landing, SqlFunction, identifier, sorted_json_sql
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import partition_keys, quarantine_path, raw_path
from event_platform.lake.publish import (
    STRAY_AGE,
    Manifest,
    ManifestFile,
    new_version,
    remove_dead_staging,
    version_time,
    write_committed_by_record,
    write_manifest,
)
from event_platform.sources.tracking import SOURCE
from event_platform.sources.tracking.events import CONTEXT_FIELDS
from event_platform.staging import sql_text

SOURCE_NAME = SOURCE.name
TABLE = "tracking/events"
QUARANTINE_FILE = "lines.ndjson.gz"

UTC_MICROS = pa.timestamp("us", tz="UTC")
CONTEXT_DESCRIPTIONS: dict[str, str] = {
    "course_slug": "The course the event happened in.",
    "course_run": "The run (edition) of that course.",
    "unit_node_slug": "The course unit's node in the course outline.",
    "course_unit_id": "The course unit's id, as text (the LMS sends integers or strings).",
    "course_unit_slug": "The course unit's slug.",
    "block_uuid": "The content block within the unit the event concerns.",
    "page_url": "The LMS page the event happened on.",
}
EVENTS_SCHEMA = pa.schema(
    [
        column("uuid", pa.string(), "The event's id, set by the Tracker: one row per uuid.", nullable=False),
        column(
            "event_type",
            pa.string(),
            "The namespaced event type, e.g. `kinesinlms.course.content.page_view`.",
            nullable=False,
        ),
        column("time", UTC_MICROS, "When the event happened on the LMS (UTC).", nullable=False),
        column(
            "received_at",
            UTC_MICROS,
            "When the collector received it (UTC): the partition's day is this day.",
            nullable=False,
        ),
        column(
            "anon_username",
            pa.string(),
            "The learner's anonymous id on the LMS, never a name or an email: the platform's account id.",
            nullable=False,
        ),
        *(column(name, pa.string(), CONTEXT_DESCRIPTIONS[name]) for name in CONTEXT_FIELDS),
        column(
            "event_data",
            pa.string(),
            "What the event type carries, e.g. `{video_id, video_event_type}` (JSON text).",
            nullable=False,
            metadata={"format": "JSON text"},
        ),
    ]
)
"""`course_unit_id` is a string: the LMS sends integer or string ids, and a string holds both."""


COMMITS_DIR = "_commits"
DATA_PREFIX = "events-"
DATA_SUFFIX = ".ndjson.gz"
RECORD_SUFFIX = ".json"
READ_ATTEMPTS = 3


def commit_events(
    lake: Lake, day: str, data: bytes, *, lines: int, first_received: str, last_received: str
) -> str:
    """Land one group commit's gzip NDJSON for `day`, durably, at a constant cost; its version."""
    version = new_version()
    directory = raw_path(SOURCE_NAME, day)
    path = f"{DATA_PREFIX}{version}{DATA_SUFFIX}"
    record = {
        "path": path,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "lines": lines,
        "first_received": first_received,
        "last_received": last_received,
    }
    write_committed_by_record(
        lake,
        f"{directory}/{path}",
        data,
        f"{directory}/{COMMITS_DIR}/{version}{RECORD_SUFFIX}",
        json.dumps(record).encode(),
    )
    return version


def _record_paths(lake: Lake, directory: str) -> dict[str, str]:
    """Data path -> its record's lake path, for every record present (one listing, no reads)."""
    records = {}
    for relative in lake.list_files(f"{directory}/{COMMITS_DIR}"):
        name = relative.rpartition("/")[2]
        if name.endswith(RECORD_SUFFIX):
            records[f"{DATA_PREFIX}{name.removesuffix(RECORD_SUFFIX)}{DATA_SUFFIX}"] = relative
    return records


def landed_entries(lake: Lake, day: str) -> list[ManifestFile]:
    """Every committed file of the day: the index's entries and the records not folded into it."""
    directory = raw_path(SOURCE_NAME, day)
    for _ in range(READ_ATTEMPTS):
        records = _record_paths(lake, directory)
        index = lake.read_manifest(directory)  # after the listing: see the module's docstring
        entries = {entry.path: entry for entry in (index.files if index else [])}
        try:
            for path, record_path in records.items():
                if path not in entries:
                    entries[path] = _entry(json.loads(lake.read_bytes(record_path)))
        except FileNotFoundError:
            continue  # folded into a newer index since the listing
        return sorted(entries.values(), key=lambda entry: entry.path)
    raise RuntimeError(f"{lake.uri(directory)} kept changing while it was read; try again")


def _entry(record: dict[str, Any]) -> ManifestFile:
    extra = {name: record[name] for name in ("lines", "first_received", "last_received")}
    return ManifestFile(record["path"], record["path"], int(record["bytes"]), record["sha256"], extra)


def landed_files(lake: Lake, day: str) -> list[str]:
    """Lake-relative paths of the day's committed files."""
    directory = raw_path(SOURCE_NAME, day)
    return [f"{directory}/{entry.path}" for entry in landed_entries(lake, day)]


def landing(lake: Lake, day: str) -> Landing:
    """The day's committed files with the lines each commit recorded: what the ingestion reads."""
    directory = raw_path(SOURCE_NAME, day)
    entries = landed_entries(lake, day)
    files = tuple(
        LandedFile(entry.path, f"{directory}/{entry.path}", int(entry.extra.get("lines", 0)))
        for entry in entries
    )
    return Landing(files, _version(entry.path for entry in entries))


def landed_line_count(lake: Lake, day: str) -> int:
    """What the collector acknowledged for the day: each commit records its lines."""
    return sum(int(entry.extra.get("lines", 0)) for entry in landed_entries(lake, day))


def landing_version(lake: Lake, day: str) -> str | None:
    """Changes whenever a commit lands, not when one is folded into the index; None if nothing landed.
    One listing and the index: no record is read."""
    directory = raw_path(SOURCE_NAME, day)
    records = _record_paths(lake, directory)
    index = lake.read_manifest(directory)
    committed = {entry.path for entry in index.files} if index else set()
    return _version(committed | records.keys())


def _version(committed: Iterable[str]) -> str | None:
    paths = set(committed)
    return f"{len(paths)}:{max(paths)}" if paths else None


def compact_day(lake: Lake, day: str) -> int:
    """Fold the day's commit records into its index and delete them; how many were folded. Data files
    no commit names and staging, left by a collector killed mid-commit, go once they are `STRAY_AGE` old."""
    directory = raw_path(SOURCE_NAME, day)
    records = _record_paths(lake, directory)
    entries = landed_entries(lake, day)
    _remove_uncommitted(lake, directory, {entry.path for entry in entries})
    remove_dead_staging(lake, directory)
    index = lake.read_manifest(directory)
    folded = {entry.path for entry in index.files} if index else set()
    if not records:
        return 0
    latest = max(entry.path for entry in entries).removeprefix(DATA_PREFIX).removesuffix(DATA_SUFFIX)
    lines = sum(int(entry.extra.get("lines", 0)) for entry in entries)
    now = dt.datetime.now(dt.UTC).isoformat()
    write_manifest(lake, directory, Manifest(latest, now, entries, {"lines": lines}))
    for record_path in records.values():
        lake.delete(record_path)
    return len(records.keys() - folded)


def _remove_uncommitted(lake: Lake, directory: str, committed: set[str]) -> None:
    # A commit in progress wrote its data file moments ago: only those started long before are dead.
    dead_before = dt.datetime.now(dt.UTC) - STRAY_AGE
    for info in lake.file_infos(directory):
        name = info.base_name
        if name in committed or not (name.startswith(DATA_PREFIX) and name.endswith(DATA_SUFFIX)):
            continue
        started = version_time(name.removeprefix(DATA_PREFIX).removesuffix(DATA_SUFFIX))
        if started is not None and started < dead_before:
            lake.delete(lake.relative(info.path))


def quarantined_line_count(lake: Lake, day: str) -> int:
    manifest = lake.read_manifest(quarantine_path(TABLE, day))
    return sum(int(entry.extra.get("lines", 0)) for entry in manifest.files) if manifest else 0


ISO_WITH_OFFSET = (
    r"[1-9]\d{3}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
"""What the collector writes (`events.format_time`), which DuckDB converts itself exactly as Python's
`datetime.fromisoformat` does; any other shape goes through `fromisoformat`."""


def _utc_of_any_shape(values: pa.Array) -> pa.Array:
    """ISO 8601 timestamps with an offset as UTC; null for anything `fromisoformat` refuses, or naive."""
    return pa.array([_utc(value) for value in values.to_pylist()], UTC_MICROS)


def _utc(value: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value) if value is not None else None
        return moment.astimezone(dt.UTC) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _python_text(values: pa.Array) -> pa.Array:
    """JSON values as Python's `str` of them (`True`, `1.5`, `[1, 2]`): what an LMS's odd id became."""
    return pa.array([None if v is None else str(json.loads(v)) for v in values.to_pylist()], pa.string())


def _canonical_json(values: pa.Array) -> pa.Array:
    """JSON text with sorted keys and no spaces, byte for byte as `json.dumps` writes it, for the
    objects SQL cannot write so (`sorted_json_sql`): nested ones, floats, escapes."""
    return pa.array(
        [None if v is None else json.dumps(json.loads(v), separators=(",", ":"), ensure_ascii=False,
                                           sort_keys=True) for v in values.to_pylist()],
        pa.string(),
    )  # fmt: skip


def _string(key: str) -> str:
    """A JSON string value (null for any other type)."""
    return f"CASE WHEN json_type({identifier(key)}) = 'VARCHAR' THEN {identifier(key)} ->> '$' END"


def _required_text(key: str) -> str:
    return f"nullif({_string(key)}, '')"


def _utc_timestamp(key: str) -> str:
    text = _string(key)
    return (
        f"CASE WHEN regexp_full_match({text}, {sql_text(ISO_WITH_OFFSET)}) "
        f"THEN try_cast({text} AS TIMESTAMPTZ) "
        f"ELSE tracking_utc({text}) END"
    )


def _context_text(key: str) -> str:
    """A context field as text: strings as they are, integers in decimal, anything else as Python's `str`."""
    value, kind = identifier(key), f"json_type({identifier(key)})"
    return (
        f"CASE WHEN {kind} IS NULL OR {kind} = 'NULL' THEN NULL WHEN {kind} = 'VARCHAR' THEN {value} ->> '$' "
        f"WHEN {kind} = 'BIGINT' THEN CAST({value} AS BIGINT)::VARCHAR "
        f"WHEN {kind} = 'UBIGINT' THEN CAST({value} AS UBIGINT)::VARCHAR "
        f"ELSE tracking_text({value}::VARCHAR) END"
    )


def _event_data(value: str) -> str:
    """An object as sorted JSON text: in SQL where it is flat and plain, else through `json.dumps`."""
    return (
        f"CASE WHEN json_type({value}) = 'OBJECT' THEN coalesce("
        f"{sorted_json_sql(value, item_separator=',', key_separator=':')}, "
        f"tracking_json({value}::VARCHAR)) END"
    )


SPEC = IngestSpec(
    source=SOURCE_NAME,
    table=TABLE,
    schema=EVENTS_SCHEMA,
    raw_columns=dict.fromkeys(EVENTS_SCHEMA.names, "JSON"),
    typing={
        **{name: _required_text(name) for name in ("uuid", "event_type", "anon_username")},
        **{name: _utc_timestamp(name) for name in ("time", "received_at")},
        **{name: _context_text(name) for name in CONTEXT_FIELDS},
        "event_data": _event_data(identifier("event_data")),
    },
    required=("uuid", "event_type", "anon_username", "time", "received_at", "event_data"),
    key="uuid",
    first_by=("received_at", "time"),
    order_by=("time", "uuid"),
    time_column="time",
    landing=landing,
    unreconciled_hint="Compare the file with the sha256 and lines of its commit record, or inspect it.",
    preview_columns=("time", "event_type", "course_slug", "event_data"),
    quarantine_file=QUARANTINE_FILE,
    functions=(
        SqlFunction("tracking_utc", _utc_of_any_shape, ("VARCHAR",), "TIMESTAMPTZ"),
        SqlFunction("tracking_text", _python_text, ("VARCHAR",), "VARCHAR"),
        SqlFunction("tracking_json", _canonical_json, ("VARCHAR",), "VARCHAR"),
    ),
)
"""A line is typed with `uuid`, `event_type` and `anon_username` non-empty strings, `time` and
`received_at` ISO 8601 with an offset (stored in UTC), `event_data` an object (stored as sorted JSON
text); else it is quarantined. The first copy of each uuid (earliest `received_at`) is kept, in time
order; blank lines are no lines."""


def new_landings(lake: Lake, seen_versions: dict[str, str], open_days: set[str]) -> list[tuple[str, str]]:
    """(day, manifest version) of every open day whose landing changed since `seen_versions`.

    Days not in `open_days` (today, until it is over; days before the start date) wait: they are
    reported once they open, because their version is not yet in `seen_versions`.
    """
    changed = []
    for day in partition_keys(lake.list_dirs(f"raw/{SOURCE_NAME}")):
        if day not in open_days:
            continue
        version = landing_version(lake, day)
        if version is not None and seen_versions.get(day) != version:
            changed.append((day, version))
    return changed
