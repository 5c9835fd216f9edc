"""Landing a day of Profile Store track events: pseudonymised pages to `raw/`, then typed Parquet.

`land_day` reads the day through the client and writes each batch, pseudonymised, as one gzip JSON-lines
page of a new `raw/profile_store/date=…/` version; clear personal data never reaches the lake. The API's
`total` for the day and what the reading cost go into that version's manifest. `SPEC` is what the
shared ingestion path (`event_platform.ingest`) needs to type the landed pages (untypable events go to
quarantine) and keep one row per `event_key`, in the API's order.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from event_platform import ingest
from event_platform.dates import day_window
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sources.profile_store import SOURCE
from event_platform.sources.profile_store.client import ProfileStoreClient, ReadStats
from event_platform.sources.profile_store.transform import (
    DERIVED,
    EVENTS_SCHEMA,
    FUNCTIONS,
    RAW_KEYS,
    TYPING,
    VALID,
    WHOLE_EVENT,
)

SOURCE_NAME = SOURCE.name
TABLE = "profile_store/events"
QUARANTINE_FILE = "untypable.ndjson.gz"
TOTAL_REPORTED = "total_reported"
"""Raw manifest metadata: the API's `total` for the day, less events forgotten since."""


@dataclass
class Landing:
    pages: int = 0
    events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stats: ReadStats = field(default_factory=ReadStats)


def write_lines(writer_open: Any, name: str, lines: Iterable[bytes], /, **extra: Any) -> int:
    """One gzip JSON-lines file through a partition writer's `open`; returns the bytes written.
    `extra` (per-file counts such as lines=) goes into the manifest entry, hence positional-only."""
    with writer_open(name, **extra) as target:
        with gzip.GzipFile(fileobj=target, mode="wb", mtime=0) as page:
            for line in lines:
                page.write(line + b"\n")
        return int(target.size)


def write_page(writer_open: Any, name: str, events: list[dict[str, Any]]) -> int:
    lines = (json.dumps(event, ensure_ascii=False).encode() for event in events)
    return write_lines(writer_open, name, lines, events=len(events))


def land_day(client: ProfileStoreClient, pseudonymiser: Pseudonymiser, lake: Lake, day: str) -> Landing:
    """Read `day` (UTC) and publish it, pseudonymised, as a new version of its raw partition."""
    landing = Landing(stats=client.stats)
    started = time.monotonic()
    start, end = day_window(dt.date.fromisoformat(day))
    with lake.write_partition(raw_path(SOURCE_NAME, day)) as partition:
        for batch in client.track_events(start, end):
            safe = [pseudonymiser.event(event) for event in batch]
            landing.bytes += write_page(partition.open, f"page-{landing.pages:06d}.json.gz", safe)
            landing.pages += 1
            landing.events += len(safe)
        landing.seconds = time.monotonic() - started
        partition.metadata.update(
            {
                TOTAL_REPORTED: client.stats.total_reported or 0,
                "events": landing.events,
                "requests": client.stats.requests,
                "windows_split": client.stats.windows_split,
                "window": [start.isoformat(), end.isoformat()],
            }
        )
    return landing


def landed_pages(lake: Lake, day: str) -> ingest.Landing:
    """The pages of the day's current raw version, with the events each holds (a line apiece)."""
    partition = raw_path(SOURCE_NAME, day)
    manifest = lake.read_manifest(partition)
    if manifest is None:
        return ingest.Landing((), None)
    pages = tuple(
        ingest.LandedFile(entry.name, f"{partition}/{entry.path}", int(entry.extra["events"]))
        for entry in manifest.files
    )
    return ingest.Landing(pages, manifest.version)


SPEC = ingest.IngestSpec(
    source=SOURCE_NAME,
    table=TABLE,
    schema=EVENTS_SCHEMA,
    raw_columns=dict.fromkeys(RAW_KEYS, "JSON"),
    typing=TYPING,
    required=("event_key", "event_time", "event_time_ticks"),
    valid=VALID,
    key="event_key",
    first_by=("event_time_ticks",),
    order_by=("event_time_ticks", "event_key"),
    time_column="event_time",
    landing=landed_pages,
    unreconciled_hint="Materialize profile_store/events again (it lands the day anew) or inspect the page.",
    preview_columns=("event_time", "event_type", "page_title", "country_code", "device_id"),
    quarantine_file=QUARANTINE_FILE,
    whole_line=WHOLE_EVENT,
    functions=FUNCTIONS,
    derived=DERIVED,
)
"""One row per event_key, in the API's (time) order; blank lines are no lines."""
