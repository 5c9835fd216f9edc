"""From landed gzip JSON-lines to a typed, deduplicated day, for any source that lands lines (no Dagster).

`stage_day` streams the landed files line by line into Arrow batches of the source's explicit schema,
then into a local temporary Parquet file; lines the source cannot type go to its quarantine partition as
they were. `deduplicate` then keeps one row per key in DuckDB, within a memory limit and spilling to disk
for a large day, and hands the result back as a stream of record batches. Memory stays bounded by the
batch size whatever the day's size. Each source brings its own `StagingSpec` (schema, typing, key, order).
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.scratch import scratch_dir

MEMORY_LIMIT = "1GB"
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class StagingSpec:
    """What makes one source's day: how a line becomes a row, and which copy of a key is kept."""

    source: str
    """Whose landing is staged: the files of `raw/<source>/date=D/`."""
    table: str
    """The lake table, e.g. "tracking/events"; its quarantine is `quarantine/<table>/date=D/`."""
    schema: pa.Schema
    typed_row: Callable[[bytes], dict[str, Any]]
    """One landed line as a row of `schema`; raises one of `untypable` for a line to quarantine."""
    untypable: tuple[type[Exception], ...]
    key: str
    first_by: tuple[str, ...]
    """The copy of a key that is kept is the first in this order."""
    order_by: tuple[str, ...]
    """The order of the result's rows."""
    time_column: str
    quarantine_file: str
    batch_rows: int
    event_type_column: str = "event_type"
    landed_files: Callable[[Lake, str], list[str]] | None = None
    """The day's landed files, for a source whose landing is not one manifest (default: the manifest's)."""


@dataclass
class DayStats:
    landed_files: int = 0
    landed_events: int = 0
    quarantined: int = 0
    rows: int = 0
    duplicates: int = 0
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    event_type_counts: list[tuple[str, int]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)


def raw_files(lake: Lake, source: str, day: str) -> list[str]:
    """The files of the day's current landing (what its manifest names)."""
    return lake.current_files(raw_path(source, day))


def gzip_lines(lake: Lake, files: Iterable[str]) -> Iterator[bytes]:
    """The non-blank lines of gzip JSON-lines files in the lake, without their newlines."""
    for relative in files:
        try:
            with lake.open_input(relative) as raw, gzip.GzipFile(fileobj=raw) as lines:
                for line in lines:
                    if line.strip():
                        yield line.rstrip(b"\n")
        except (EOFError, gzip.BadGzipFile) as error:
            raise damaged_gzip_error(lake.uri(relative), error) from error


def damaged_gzip_error(uri: str, error: Exception) -> ValueError:
    """The error for a landed file that does not decompress: which file, and what to do about it."""
    return ValueError(
        f"{uri} is not a complete gzip file ({error}); landed files are written whole, so compare it with "
        "the sha256 in its manifest and restore it"
    )


def stage_day(spec: StagingSpec, lake: Lake, day: str, staging: Path) -> tuple[Path, DayStats]:
    """Type the day's landed lines into `staging/landed.parquet`, quarantine the rest; (file, stats)."""
    files = spec.landed_files(lake, day) if spec.landed_files else raw_files(lake, spec.source, day)
    stats = DayStats(landed_files=len(files))
    staged = staging / "landed.parquet"
    rejected = staging / "quarantine.ndjson.gz"
    columns: dict[str, list[Any]] = {name: [] for name in spec.schema.names}
    batched = 0
    with pq.ParquetWriter(staged, spec.schema) as writer, gzip.open(rejected, "wb") as quarantine:
        for line in gzip_lines(lake, files):
            stats.landed_events += 1
            try:
                row = spec.typed_row(line)
            except spec.untypable:
                stats.quarantined += 1
                quarantine.write(line + b"\n")
                continue
            for name, value in row.items():
                columns[name].append(value)
            batched += 1
            if batched >= spec.batch_rows:
                writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=spec.schema))
                columns = {name: [] for name in spec.schema.names}
                batched = 0
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=spec.schema))
    publish_quarantine(lake, spec.table, day, rejected, stats.quarantined, spec.quarantine_file)
    return staged, stats


def publish_quarantine(lake: Lake, table: str, day: str, rejected: Path, count: int, file_name: str) -> None:
    """Replace the day's quarantine; an empty version when nothing is bad now but something was before."""
    directory = quarantine_path(table, day)
    if count == 0 and lake.read_manifest(directory) is None:
        return
    with lake.write_partition(directory) as partition:
        if count:
            with partition.open(file_name, lines=count) as target, rejected.open("rb") as source:
                shutil.copyfileobj(source, target)
        partition.metadata["lines"] = count


DEDUPLICATE_SQL = """
    COPY (
        SELECT * EXCLUDE (copy) FROM (
            SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {first_by}) AS copy
            FROM read_parquet({staged})
        ) WHERE copy = 1
        ORDER BY {order_by}
    ) TO {deduplicated} (FORMAT parquet, COMPRESSION zstd)
"""
"""The first copy of each key (in `first_by` order), in `order_by` order."""


def deduplicate(spec: StagingSpec, staged: Path, staging: Path, stats: DayStats) -> pa.RecordBatchReader:
    """The staged day with one row per key, as record batches of the spec's schema; fills in the stats.

    DuckDB sorts and windows within a memory limit, spilling to `staging` for a large day.
    """
    result = staging / "deduplicated.parquet"
    with scratch_duckdb(staging) as connection:
        connection.execute(
            DEDUPLICATE_SQL.format(
                key=spec.key,
                first_by=", ".join(spec.first_by),
                order_by=", ".join(spec.order_by),
                staged=sql_text(staged),
                deduplicated=sql_text(result),
            )
        )
        source = f"read_parquet({sql_text(result)})"
        summary = connection.execute(
            f"SELECT count(*), min({spec.time_column}), max({spec.time_column}) FROM {source}"
        ).fetchone()
        assert summary is not None  # an aggregate always returns one row
        stats.rows, stats.first_time, stats.last_time = summary
        stats.event_type_counts = connection.execute(
            f"SELECT coalesce({spec.event_type_column}, '(none)'), count(*) FROM {source} "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    stats.duplicates = stats.landed_events - stats.quarantined - stats.rows
    parquet = pq.ParquetFile(result)
    if parquet.metadata.num_rows:
        stats.preview = parquet.read_row_group(0).slice(0, PREVIEW_ROWS).cast(spec.schema).to_pylist()
    batches = (batch.cast(spec.schema) for batch in parquet.iter_batches(batch_size=spec.batch_rows))
    return pa.RecordBatchReader.from_batches(spec.schema, batches)


@contextmanager
def scratch_duckdb(
    work_dir: Path | None = None,
    *,
    memory_limit: str = MEMORY_LIMIT,
    threads: int | None = None,
    preserve_insertion_order: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB in UTC that stays within `memory_limit`, spilling to `work_dir/spill`
    (a temporary directory, removed afterwards, when `work_dir` is None). `threads` defaults to DuckDB's
    (all cores); without `preserve_insertion_order` results stream in any order and use less memory."""
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "preserve_insertion_order": preserve_insertion_order,
    }
    if threads:
        config["threads"] = threads
    with ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(scratch_dir("duckdb-scratch")))
        config["temp_directory"] = str(work_dir / "spill")
        # Entered after the directory, so closed before it goes.
        connection = stack.enter_context(duckdb.connect(config=config))
        # Timestamps leave DuckDB as timestamp[us, tz=UTC] only when the session's zone is UTC.
        connection.execute("SET TimeZone = 'UTC'")
        yield connection


def sql_text(value: str | Path) -> str:
    """`value` as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
