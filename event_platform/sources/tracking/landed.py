"""The collector's landing, and from it the typed, deduplicated `tracking/events` table (no Dagster).

A day's landing (`raw/tracking/date=D/`) grows by one group commit at a time, up to 172,800 a day at
the collector's flush rate, so a commit must cost the same at the end of the day as at its start:

    events-<version>.ndjson.gz     one group commit's events, gzip NDJSON
    _commits/<version>.json        its commit record: path, bytes, sha256, lines, first/last received_at
    _manifest.json                 the index: the records folded in by `compact_day` (optional)

`commit_events` writes the data file, then its record, each in one durable step (`write_atomically`:
fsync and rename locally, one PUT on S3); the record is the commit, so a collector killed between the
two leaves an uncommitted file that no reader counts and the client, never acknowledged, sends again.
No commit reads or rewrites anything day-wide. Readers (`landed_files`) take the index plus every
record not folded into it; `compact_day` folds the records into the index and deletes them, so a
closed day is read from one file. A record deleted between a reader's listing and its read is in the
index by then (the index is written first), so the reader retries with the new index.

The landed files go through the shared staging pipeline (`event_platform.staging`) with this source's
schema and typing (`STAGING`): lines that cannot be typed go to `quarantine/tracking/events/date=D/` as
they were, and DuckDB keeps the first copy of each `uuid` (earliest `received_at`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import partition_keys, quarantine_path, raw_path
from event_platform.lake.publish import Manifest, ManifestFile, new_version, write_atomically, write_manifest
from event_platform.sources.tracking.events import CONTEXT_FIELDS
from event_platform.staging import StagingSpec

SOURCE_NAME = "tracking"
TABLE = "tracking/events"
QUARANTINE_FILE = "lines.ndjson.gz"
BATCH_ROWS = 50_000

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


class LineError(ValueError):
    """A landed line that cannot be typed; it is quarantined, not dropped."""


COMMITS_DIR = "_commits"
DATA_PREFIX = "events-"
DATA_SUFFIX = ".ndjson.gz"
RECORD_SUFFIX = ".json"
READ_ATTEMPTS = 3


def commit_events(
    lake: Lake, day: str, data: bytes, *, lines: int, first_received: str, last_received: str
) -> str:
    """Land one group commit's gzip NDJSON for `day`, durably, in two constant-cost steps; its version."""
    version = new_version()
    directory = raw_path(SOURCE_NAME, day)
    path = f"{DATA_PREFIX}{version}{DATA_SUFFIX}"
    write_atomically(lake, f"{directory}/{path}", data)
    record = {
        "path": path,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "lines": lines,
        "first_received": first_received,
        "last_received": last_received,
    }
    write_atomically(lake, f"{directory}/{COMMITS_DIR}/{version}{RECORD_SUFFIX}", json.dumps(record).encode())
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
    """Lake-relative paths of the day's committed files (what staging reads)."""
    directory = raw_path(SOURCE_NAME, day)
    return [f"{directory}/{entry.path}" for entry in landed_entries(lake, day)]


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
    committed |= records.keys()
    return f"{len(committed)}:{max(committed)}" if committed else None


def compact_day(lake: Lake, day: str) -> int:
    """Fold the day's commit records into its index and delete them; how many were folded."""
    directory = raw_path(SOURCE_NAME, day)
    records = _record_paths(lake, directory)
    entries = landed_entries(lake, day)
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


STAGING = StagingSpec(
    source=SOURCE_NAME,
    table=TABLE,
    schema=EVENTS_SCHEMA,
    typed_row=typed_row,
    untypable=(LineError,),
    key="uuid",
    first_by=("received_at", "time"),
    order_by=("time", "uuid"),
    time_column="time",
    quarantine_file=QUARANTINE_FILE,
    batch_rows=BATCH_ROWS,
    landed_files=landed_files,
)
"""The first copy of each uuid (earliest `received_at`) is kept, in time order."""


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
