"""From the collector's landed files to the typed, deduplicated `tracking/events` table (no Dagster).

The landed gzip NDJSON of a day (`raw/tracking/date=D/`, the files its manifest names) goes through the
shared staging pipeline (`event_platform.staging`) with this source's schema and typing (`STAGING`):
lines that cannot be typed go to `quarantine/tracking/events/date=D/` as they were, and DuckDB keeps the
first copy of each `uuid` (earliest `received_at`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.defs.tracking.events import CONTEXT_FIELDS
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import partition_keys, quarantine_path, raw_path
from event_platform.staging import StagingSpec

SOURCE = "tracking"
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


STAGING = StagingSpec(
    source=SOURCE,
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
)
"""The first copy of each uuid (earliest `received_at`) is kept, in time order."""


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
