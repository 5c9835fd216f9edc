"""Landing a day of Profile Store track events: pseudonymised pages to `raw/`, then typed Parquet.

`land_day` reads the day through the client and writes each batch, pseudonymised, as one gzip JSON-lines
page of a new `raw/profile_store/date=…/` version; clear personal data never reaches the lake. The API's
`total` for the day and what the reading cost go into that version's manifest. `stage_day` types the
landed pages into a staging Parquet file (untypable events go to quarantine) and `deduplicate` keeps one
row per `event_key` (DuckDB, within a memory limit), in the API's order.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from event_platform.dates import day_window
from event_platform.defs.profile_store.client import ProfileStoreClient, ReadStats
from event_platform.defs.profile_store.pseudonymise import Pseudonymiser
from event_platform.defs.profile_store.transform import EVENTS_SCHEMA, UntypableEventError, typed_row
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import quarantine_path, raw_path

SOURCE = "profile_store"
TABLE = "profile_store/events"
QUARANTINE_FILE = "untypable.ndjson.gz"
BATCH_ROWS = 65_536
PREVIEW_ROWS = 5
TOTAL_REPORTED = "total_reported"
"""Raw manifest metadata: the API's `total` for the day, less events forgotten since."""


@dataclass
class Landing:
    pages: int = 0
    events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stats: ReadStats = field(default_factory=ReadStats)


@dataclass
class DayStats:
    landed_events: int = 0
    quarantined: int = 0
    rows: int = 0
    duplicates: int = 0
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    event_type_counts: list[tuple[str, int]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)


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
    with lake.write_partition(raw_path(SOURCE, day)) as partition:
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


def raw_pages(lake: Lake, day: str) -> list[str]:
    return lake.current_files(raw_path(SOURCE, day))


def page_lines(lake: Lake, relative: str) -> Iterator[bytes]:
    with lake.open_input(relative) as raw, gzip.GzipFile(fileobj=raw) as lines:
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\n")


def stage_day(lake: Lake, day: str, staging: Path) -> tuple[Path, DayStats]:
    """Type the day's landed events into `staging/landed.parquet`, quarantine the rest; (file, stats)."""
    stats = DayStats()
    staged = staging / "landed.parquet"
    rejected = staging / "quarantine.ndjson.gz"
    columns: dict[str, list[Any]] = {name: [] for name in EVENTS_SCHEMA.names}
    with pq.ParquetWriter(staged, EVENTS_SCHEMA) as writer, gzip.open(rejected, "wb") as quarantine:
        for page in raw_pages(lake, day):
            for line in page_lines(lake, page):
                stats.landed_events += 1
                try:
                    row = typed_row(json.loads(line))
                except (ValueError, UntypableEventError):
                    stats.quarantined += 1
                    quarantine.write(line + b"\n")
                    continue
                for name, value in row.items():
                    columns[name].append(value)
                if len(columns["event_key"]) >= BATCH_ROWS:
                    writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=EVENTS_SCHEMA))
                    columns = {name: [] for name in EVENTS_SCHEMA.names}
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=EVENTS_SCHEMA))
    publish_quarantine(lake, day, rejected, stats.quarantined)
    return staged, stats


def publish_quarantine(lake: Lake, day: str, rejected: Path, count: int) -> None:
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
            SELECT *, row_number() OVER (PARTITION BY event_key ORDER BY event_time_ticks) AS copy
            FROM read_parquet({staged})
        ) WHERE copy = 1
        ORDER BY event_time_ticks, event_key
    ) TO {deduplicated} (FORMAT parquet, COMPRESSION zstd)
"""


def deduplicate(staged: Path, staging: Path, stats: DayStats) -> pa.RecordBatchReader:
    """One row per event_key in time order, as batches of EVENTS_SCHEMA; fills in the stats."""
    result = staging / "deduplicated.parquet"
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET memory_limit = '1GB'")
        connection.execute(f"SET temp_directory = {sql_text(staging / 'spill')}")
        connection.execute(DEDUPLICATE_SQL.format(staged=sql_text(staged), deduplicated=sql_text(result)))
        source = f"read_parquet({sql_text(result)})"
        summary_sql = f"SELECT count(*), min(event_time), max(event_time) FROM {source}"
        summary = connection.execute(summary_sql).fetchone()
        assert summary is not None  # an aggregate always returns one row
        stats.rows, stats.first_time, stats.last_time = summary
        stats.event_type_counts = connection.execute(
            f"SELECT coalesce(event_type, '(none)'), count(*) FROM {source} GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    stats.duplicates = stats.landed_events - stats.quarantined - stats.rows
    parquet = pq.ParquetFile(result)
    if parquet.metadata.num_rows:
        stats.preview = parquet.read_row_group(0).slice(0, PREVIEW_ROWS).cast(EVENTS_SCHEMA).to_pylist()
    batches = (batch.cast(EVENTS_SCHEMA) for batch in parquet.iter_batches(batch_size=BATCH_ROWS))
    return pa.RecordBatchReader.from_batches(EVENTS_SCHEMA, batches)


def sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
