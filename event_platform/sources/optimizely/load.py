"""Land one E3 date byte-identical in the lake, then type and de-duplicate it with DuckDB.

Two steps, each atomic:
1. `land_day`: every part file goes S3 -> temporary file -> full Parquet decode, with `user_ip` hashed
   by the platform's keyed pseudonym (`Pseudonymiser.ip_column`; raw is in the lake, so clear addresses
   never reach it) -> `raw/optimizely/type=<t>/date=<d>/<folder>/<part>` inside one
   `lake.write_partition`. Every other column and row is the vendor's; the manifest entry keeps the
   vendor's `vendor_sha256`, `vendor_bytes` and `etag` and names the `pseudonymised` columns. A corrupt
   part fails the whole date (the previous raw version stays); the quarantine records its S3 key, etag,
   size, sha256 and the error, not its bytes (they may hold clear addresses, and S3 keeps them).
2. `type_day`: the landed parts' key columns are staged in DuckDB (in memory, spilling), which finds
   the duplicates on the case-folded `uuid` (the earliest `timestamp` stays) and the metadata; then
   the landed parts stream out once more as record batches cast to the exact E3 schema (extra vendor
   columns carried), minus the duplicates, as a `RecordBatchReader`.
Memory stays bounded by a record batch and DuckDB's memory limit (it spills to disk beyond it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.pseudonymise import Pseudonymiser
from event_platform.scratch import scratch_dir
from event_platform.sources.optimizely.schema import (
    SOURCE_FILE_COLUMN,
    SOURCE_FILE_FIELD,
    E3Type,
    SchemaDifference,
    compare_schema,
)
from event_platform.staging import scratch_duckdb

if TYPE_CHECKING:
    import duckdb

    from event_platform.sources.optimizely.client import DayListing, E3Client, E3Object

log = logging.getLogger(__name__)

PERSONAL_COLUMNS = ("user_ip",)
"""Hashed in raw and everywhere after: the visitor's address."""
ROW_INDEX_COLUMN = "_row"
"""Staging only: a row's position in its part, the last tie-breaker of 'keep the first'."""
BATCH_ROWS = 64 * 1024
DUCKDB_MEMORY_LIMIT = "1GB"


class CorruptPartError(RuntimeError):
    """A part file is not readable Parquet; nothing of its date was published."""


class E3NotReadyError(RuntimeError):
    """The date has no part files and no `_SUCCESS` marker (yet): nothing to land."""


class SchemaMismatchError(RuntimeError):
    """A part file lacks E3 columns (or carries them in a type that cannot be cast)."""


def raw_dir(e3: E3Type, day: dt.date) -> str:
    return raw_path(f"optimizely/type={e3.name}", day.isoformat())


def quarantine_dir(e3: E3Type, day: dt.date) -> str:
    return quarantine_path(f"optimizely/{e3.asset_name}", day.isoformat())


@dataclass(frozen=True)
class LandedPart:
    name: str
    """The vendor's path below the date folder, e.g. `experiment=123/part-00000-….c000.snappy.parquet`."""
    lake_path: str
    bytes: int
    """The vendor's bytes of the part (what S3 lists); the stored file differs by its hashed addresses."""
    rows: int
    schema: SchemaDifference


@dataclass(frozen=True)
class Landing:
    e3: E3Type
    day: dt.date
    listing: DayListing
    parts: list[LandedPart]
    raw_dir: str

    @property
    def part_rows(self) -> int:
        return sum(part.rows for part in self.parts)

    @property
    def bytes(self) -> int:
        return sum(part.bytes for part in self.parts)

    @property
    def extra_columns(self) -> list[str]:
        return sorted({column for part in self.parts for column in part.schema.extra})

    @property
    def schema_problems(self) -> dict[str, str]:
        """Part name -> what is missing or mistyped, for parts that cannot be typed."""
        return {
            part.name: part.schema.describe()
            for part in self.parts
            if part.schema.missing or part.schema.mistyped
        }


def land_day(client: E3Client, lake: Lake, e3: E3Type, day: dt.date, pseudonymiser: Pseudonymiser) -> Landing:
    """Copy every part of one date, pseudonymised, into a new version of its raw partition, or change
    nothing."""
    listing = client.list_day(e3, day)
    if not listing.parts and not listing.has_success:
        raise E3NotReadyError(
            f"E3 has no {e3.name} files for {day} under {client.location.s3_path}: the export may not have "
            "run yet (its dates are processing dates, filled during the day)."
        )
    target = raw_dir(e3, day)
    checked: dict[str, tuple[int, SchemaDifference]] = {}
    with scratch_dir("e3-land") as scratch, lake.write_partition(target) as writer:
        local = scratch / "part.parquet"
        for part in listing.parts:
            client.download(part, local)
            vendor = {
                "etag": part.etag,
                "vendor_bytes": local.stat().st_size,
                "vendor_sha256": _sha256(local),
            }
            try:
                schema = pq.read_schema(local)
                replaced = [name for name in PERSONAL_COLUMNS if name in schema.names]
                with writer.open(part.relative_path, **vendor, pseudonymised=replaced) as sink:
                    rows = copy_pseudonymised(local, sink, pseudonymiser)
            except (pa.ArrowException, OSError) as error:
                kept = quarantine_part(lake, e3, day, part, vendor, error)
                raise CorruptPartError(
                    f"E3 {e3.name} part {part.relative_path} of {day} "
                    f"(s3://{client.location.bucket}/{part.key}) is not readable Parquet ({error}); "
                    f"nothing of {e3.name} {day} was published, the previous version stays. "
                    f"What was wrong with it is recorded at {kept}; its bytes stay on S3."
                ) from error
            writer.files[-1].extra["rows"] = rows  # counted while copying: the file's manifest entry
            checked[part.relative_path] = (rows, compare_schema(schema, e3.schema))
        writer.metadata.update(
            listed_files=len(listing.parts), listed_bytes=listing.total_bytes, has_success=listing.has_success
        )
    # What was committed, read back from the manifest: the files_landed check compares it with S3's listing.
    manifest = lake.read_manifest(target)
    parts = [
        LandedPart(
            entry.name, f"{target}/{entry.path}", int(entry.extra["vendor_bytes"]), *checked[entry.name]
        )
        for entry in (manifest.files if manifest else [])
    ]
    return Landing(e3, day, listing, parts, target)


def copy_pseudonymised(path: Path, sink: Any, pseudonymiser: Pseudonymiser) -> int:
    """Decode every page of a Parquet part (a damaged page fails here) and write it to `sink` as it
    was but for `PERSONAL_COLUMNS`, hashed; returns the rows."""
    rows = 0
    with pq.ParquetFile(path) as parquet:
        schema = parquet.schema_arrow
        personal = [schema.get_field_index(name) for name in PERSONAL_COLUMNS if name in schema.names]
        with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                for index in personal:
                    hashed = pseudonymiser.ip_column(batch.column(index).cast(pa.string()))
                    batch = batch.set_column(
                        index, schema.field(index), hashed.cast(schema.field(index).type)
                    )
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def quarantine_part(
    lake: Lake, e3: E3Type, day: dt.date, part: E3Object, vendor: dict[str, Any], error: Exception
) -> str:
    """Record a part that could not be read beside the table: where it is and what was wrong."""
    directory = quarantine_dir(e3, day)
    note = {"s3_key": part.key, **vendor, "error": str(error)}
    with lake.write_partition(directory, mode="append") as writer:
        with writer.open(f"{part.relative_path}.json") as sink:
            sink.write(json.dumps(note, indent=1).encode())
        stored = writer.files[-1].path
    return lake.uri(f"{directory}/{stored}")


@dataclass
class RowCounter:
    rows: int = 0


@dataclass(frozen=True)
class DayStats:
    staged_rows: int
    rows: int
    rows_by_folder: dict[str, int]
    timestamp_range: tuple[dt.datetime | None, dt.datetime | None]
    process_timestamp_range: tuple[dt.datetime | None, dt.datetime | None]
    lag_seconds_p50: float | None
    lag_seconds_max: float | None
    preview: list[dict[str, Any]]

    @property
    def duplicates(self) -> int:
        return self.staged_rows - self.rows


@dataclass(frozen=True)
class TypedDay:
    """The de-duplicated rows of one date as a stream, what the platform reports about them, and a
    count of the rows actually handed out (final once the reader is exhausted)."""

    reader: pa.RecordBatchReader
    stats: DayStats
    streamed: RowCounter


def output_schema(e3: E3Type, extra_columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """E3's columns in E3's order, then extra vendor columns, then the lineage column."""
    extras = [pa.field(name, data_type) for name, data_type in extra_columns]
    return pa.schema([*e3.schema, *extras, SOURCE_FILE_FIELD])


def type_day(lake: Lake, landing: Landing) -> TypedDay:
    """Type and de-duplicate a landed date. Raises SchemaMismatchError naming each untypable part.

    Duplicates are found on a narrow projection (uuid, timestamps, a few columns for the metadata)
    staged in DuckDB; the wide rows then stream from the landed parts once, minus the duplicates.
    """
    problems = landing.schema_problems
    if problems:
        listed = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        raise SchemaMismatchError(
            f"E3 {landing.e3.name} {landing.day} does not match the E3 schema ({listed}). The raw files are "
            f"kept at {lake.uri(landing.raw_dir)}; the previous typed version stays."
        )
    schema = output_schema(landing.e3, _extra_column_types(lake, landing))
    keys_schema = pa.schema(
        [schema.field(name) for name in _key_columns(landing.e3)]
        + [pa.field(SOURCE_FILE_COLUMN, pa.string()), pa.field(ROW_INDEX_COLUMN, pa.int64())]
    )
    with scratch_duckdb(memory_limit=DUCKDB_MEMORY_LIMIT) as connection:
        connection.execute("SET preserve_insertion_order = false")
        staged = RowCounter()
        keys = pa.RecordBatchReader.from_batches(
            keys_schema, _typed_batches(lake, landing, keys_schema, staged)
        )
        connection.register("staged_keys", keys)
        connection.execute("CREATE TABLE day_keys AS SELECT * FROM staged_keys")
        connection.unregister("staged_keys")
        dedupe_key = f"coalesce(lower(uuid), {SOURCE_FILE_COLUMN} || '#' || {ROW_INDEX_COLUMN})"
        connection.execute(
            f"""
            CREATE TABLE later_copies AS
            SELECT {SOURCE_FILE_COLUMN}, {ROW_INDEX_COLUMN} FROM day_keys
            QUALIFY row_number() OVER (
                PARTITION BY {dedupe_key}
                ORDER BY timestamp NULLS LAST, {SOURCE_FILE_COLUMN}, {ROW_INDEX_COLUMN}
            ) > 1
            """
        )
        connection.execute(
            f"CREATE VIEW kept AS SELECT * FROM day_keys ANTI JOIN later_copies "
            f"USING ({SOURCE_FILE_COLUMN}, {ROW_INDEX_COLUMN})"
        )
        stats = _describe(connection, landing.e3, staged.rows)
        dropped = _rows_to_drop(connection)
    streamed = RowCounter()
    batches = _without(
        _typed_batches(lake, landing, schema.append(ROW_INDEX_FIELD), RowCounter()), dropped, streamed
    )
    return TypedDay(pa.RecordBatchReader.from_batches(schema, batches), stats, streamed)


ROW_INDEX_FIELD = pa.field(ROW_INDEX_COLUMN, pa.int64())


def _key_columns(e3: E3Type) -> list[str]:
    """What de-duplication and the metadata need; the rest of a row is read once, on output."""
    preview = "variation_id" if e3.folder_column == "experiment_id" else "revenue"
    return ["uuid", "timestamp", "process_timestamp", "visitor_id", e3.folder_column, preview]


def _extra_column_types(lake: Lake, landing: Landing) -> list[tuple[str, pa.DataType]]:
    """Extra vendor columns with the type of their first appearance."""
    wanted = set(landing.extra_columns)
    found: dict[str, pa.DataType] = {}
    for part in landing.parts:
        if not wanted - found.keys():
            break
        if part.schema.extra:
            with lake.open_input_file(part.lake_path) as file:
                schema = pq.ParquetFile(file).schema_arrow
            for name in part.schema.extra:
                found.setdefault(name, schema.field(name).type)
    return [(name, found[name]) for name in landing.extra_columns]


def _typed_batches(
    lake: Lake, landing: Landing, schema: pa.Schema, counter: RowCounter
) -> Iterator[pa.RecordBatch]:
    """Every landed row in `schema`: E3 types, the path's folder value where the row has none, lineage."""
    folder_column = landing.e3.folder_column
    wanted = [name for name in schema.names if name not in (SOURCE_FILE_COLUMN, ROW_INDEX_COLUMN)]
    for part in landing.parts:
        folder_value = part.name.split("/", 1)[0].partition("=")[2]
        offset = 0
        with lake.open_input_file(part.lake_path) as file:
            parquet = pq.ParquetFile(file)
            present = [name for name in wanted if name in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
                columns = []
                for target in schema:
                    if target.name == SOURCE_FILE_COLUMN:
                        column = pa.repeat(pa.scalar(part.name, pa.string()), batch.num_rows)
                    elif target.name == ROW_INDEX_COLUMN:
                        column = pa.array(range(offset, offset + batch.num_rows), pa.int64())
                    elif target.name in present:
                        column = batch.column(target.name).cast(target.type)
                    else:
                        column = pa.nulls(batch.num_rows, target.type)
                    if target.name == folder_column and folder_value:
                        # The path names the experiment / event; fill it where the row left it empty.
                        column = pc.fill_null(column, folder_value)
                    columns.append(column)
                offset += batch.num_rows
                counter.rows += batch.num_rows
                yield pa.RecordBatch.from_arrays(columns, schema=schema)


def _rows_to_drop(connection: duckdb.DuckDBPyConnection) -> dict[str, pa.Array]:
    """Part name -> row indexes of its later copies (few: E3 duplicates are rare)."""
    table = connection.sql(
        f"SELECT {SOURCE_FILE_COLUMN}, list({ROW_INDEX_COLUMN}) FROM later_copies GROUP BY 1"
    ).to_arrow_table()
    return {name: pa.array(rows, pa.int64()) for name, rows in zip(*table.to_pydict().values(), strict=True)}


def _without(
    batches: Iterator[pa.RecordBatch], dropped: dict[str, pa.Array], streamed: RowCounter
) -> Iterator[pa.RecordBatch]:
    """The batches minus the later copies, without the row index; counts what leaves."""
    for batch in batches:
        source = batch.column(SOURCE_FILE_COLUMN)[0].as_py() if batch.num_rows else None
        if source in dropped:
            keep = pc.invert(pc.is_in(batch.column(ROW_INDEX_COLUMN), value_set=dropped[source]))
            batch = batch.filter(keep)
        streamed.rows += batch.num_rows
        yield batch.drop_columns([ROW_INDEX_COLUMN])


def _describe(connection: duckdb.DuckDBPyConnection, e3: E3Type, staged_rows: int) -> DayStats:
    folder = e3.folder_column
    summary = connection.execute(
        """
        SELECT count(*), min(timestamp), max(timestamp), min(process_timestamp), max(process_timestamp),
               quantile_cont(epoch_ms(process_timestamp) - epoch_ms(timestamp), 0.5) / 1000.0,
               max(epoch_ms(process_timestamp) - epoch_ms(timestamp)) / 1000.0
        FROM kept
        """
    ).fetchone()
    assert summary is not None
    by_folder = connection.execute(
        f"SELECT coalesce({folder}, '(none)'), count(*) FROM kept GROUP BY 1 ORDER BY 1"
    ).fetchall()
    preview_columns = [name for name in _key_columns(e3) if name != "process_timestamp"]
    preview = (
        connection.sql(f"SELECT {', '.join(preview_columns)} FROM kept ORDER BY timestamp, uuid LIMIT 5")
        .to_arrow_table()
        .to_pylist()
    )
    return DayStats(
        staged_rows=staged_rows,
        rows=int(summary[0]),
        rows_by_folder={str(name): int(count) for name, count in by_folder},
        timestamp_range=(summary[1], summary[2]),
        process_timestamp_range=(summary[3], summary[4]),
        lag_seconds_p50=None if summary[5] is None else float(summary[5]),
        lag_seconds_max=None if summary[6] is None else float(summary[6]),
        preview=preview,
    )
