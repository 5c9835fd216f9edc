"""Typed, deduplicated Amplitude events from a landed day, streamed as Arrow: no Dagster here.

A day can be 10 GB of JSON, so every byte is decompressed and parsed in C++ (DuckDB), memory is capped
(DuckDB's `memory_limit`, spilling to a local temporary directory) and the result leaves as a
`pyarrow.RecordBatchReader` the IO manager writes to Parquet batch by batch. The steps:

1. Fast pass. DuckDB's `read_json` reads all of the day's members in parallel and types every line with
   the projection built from `schema.COLUMNS`; the batches are spooled to an LZ4 Arrow IPC file on local
   disk, each row numbered (`_row`). A line that is not JSON reads as an all-null row, a blank line as no
   row at all.
2. Per member, the spooled rows are counted against the raw manifest's `lines`. A member whose count
   differs, or that holds a row without `uuid` or a parseable `event_time`, is *dirty*: those are what
   this pass cannot quarantine byte-for-byte, because DuckDB has parsed the line away.
3. Exact pass, dirty members only. Python splits the member into lines keeping their bytes, DuckDB
   types them with the same projection (over `from_json`), good rows go to a second spool and bad lines,
   byte-for-byte, to `quarantine/amplitude/events/date=D/<member without .gz>`.
4. DuckDB ranks rows by `uuid` over a few spooled columns (not the whole rows), keeping the first by
   `server_upload_time` (never deduping on `event_id`, which is not unique), and summarises the kept rows.
5. The output reader streams the spools minus the dirty members' fast-pass rows and the duplicates.

Lines in the raw manifest == rows + duplicates + quarantined lines, always. The quarantine partition's
manifest records that reconciliation, so checks can verify it from the lake alone.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.ipc as ipc

from event_platform.defs.amplitude.schema import (
    COLUMNS,
    EVENT_SCHEMA,
    PREVIEW_COLUMNS,
    SOURCE_FILE,
    TIMESTAMP_FORMATS,
    Column,
    Kind,
)
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import write_parquet_partition
from event_platform.lake.layout import partition_path, quarantine_path, raw_path
from event_platform.lake.publish import PartitionWriter

SOURCE = "amplitude"
TABLE = "amplitude/events"
PRIMARY_KEY = "uuid"
ROW = "_row"
MALFORMED = "_malformed"
QUARANTINED = "_quarantined"
BATCH_ROWS = 8_192
"""Rows per spooled batch: about 12 MB of typed events, small enough to keep memory flat."""
EXACT_BATCH_LINES = 8_192
COPY_CHUNK_BYTES = 8 * 1024 * 1024
PREVIEW_ROWS = 5
DEFAULT_MEMORY_LIMIT = "256MB"
SPOOL_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
_SQL_TYPES = {Kind.INTEGER: "BIGINT", Kind.FLOAT: "DOUBLE", Kind.BOOLEAN: "BOOLEAN"}
_TYPED_COLUMNS: tuple[Column, ...] = tuple(column for column in COLUMNS if column.typed)


@dataclass(frozen=True)
class RawMember:
    name: str
    """The member's path in the export ZIP, e.g. `374182/374182_2026-11-01_0#0.json.gz`."""
    path: str
    """Where its bytes are, relative to the lake root."""
    lines: int


@dataclass(frozen=True)
class TransformSummary:
    """What typing one day did; every count comes from the data, none is estimated."""

    day: str
    files: int
    raw_lines: int
    rows: int
    duplicates: int
    quarantined: int
    malformed_by_column: dict[str, int]
    """Values that did not convert (null in their row), per column, over the kept rows."""
    min_event_time: dt.datetime | None
    max_event_time: dt.datetime | None
    late_events: int
    """Kept rows whose `event_time` is before the partition's day (the export windows on upload time)."""
    dirty_files: int
    """Members that needed the exact, line-by-line pass."""
    preview: list[dict[str, Any]]
    """The earliest kept events, only the columns of `schema.PREVIEW_COLUMNS` (no personal data)."""

    @property
    def malformed_values(self) -> int:
        return sum(self.malformed_by_column.values())

    @property
    def late_share(self) -> float:
        return self.late_events / self.rows if self.rows else 0.0

    @property
    def reconciles(self) -> bool:
        return self.rows + self.duplicates + self.quarantined == self.raw_lines

    def __str__(self) -> str:
        return (
            f"{self.rows} rows, {self.duplicates} duplicates, {self.quarantined} lines quarantined, "
            f"{self.malformed_values} malformed values, {self.late_share:.1%} late"
        )


@dataclass(frozen=True)
class TypedEvents:
    """The day's typed rows (read once, in batches) and their summary, known before the first batch."""

    summary: TransformSummary
    reader: pa.RecordBatchReader


def raw_members(lake: Lake, day: str) -> tuple[list[RawMember], str]:
    """The landed members of `day` from the raw manifest, and the manifest's version."""
    partition = raw_path(SOURCE, day)
    manifest = lake.read_manifest(partition)
    if manifest is None:
        raise FileNotFoundError(
            f"No Amplitude export landed for {day} at {lake.uri(partition)}: materialize "
            "amplitude/raw_export for that day first."
        )
    members = [
        RawMember(
            entry.extra.get("member", entry.name), f"{partition}/{entry.path}", int(entry.extra["lines"])
        )
        for entry in manifest.files
    ]
    return members, manifest.version


def read_events(
    lake: Lake,
    day: str,
    *,
    tmp_dir: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> TypedEvents:
    """Type, quarantine and deduplicate the landed `day`; commits the day's quarantine partition.

    The returned reader owns a temporary directory (under `tmp_dir`) that it removes once read to the
    end or closed; the summary is complete before it is returned.
    """
    members, raw_version = raw_members(lake, day)
    work = Path(tempfile.mkdtemp(prefix=f"amplitude-events-{day}-", dir=tmp_dir))
    try:
        local = _local_copies(lake, members, work / "raw")
        fast, exact = work / "fast.arrow", work / "exact.arrow"
        with _duckdb(work, memory_limit, threads) as con:
            schema, fast_rows = _fast_pass(con, members, local, fast)
            dirty = _dirty_members(con, members, fast)
            with lake.write_partition(quarantine_path(TABLE, day)) as quarantine:
                # Line order matters in the quarantine; the fast pass did not need it.
                con.execute("SET preserve_insertion_order = true")
                dirty_members = [m for m in members if m.name in dirty]
                quarantined = _exact_pass(
                    con, dirty_members, local, exact, schema, first_row=fast_rows, quarantine=quarantine
                )
                typed_rows = _spools(con, fast, exact, dirty)
                dropped = _duplicates(con, typed_rows)
                summary = _summarise(con, day, members, typed_rows, dirty, len(dropped), quarantined)
                quarantine.metadata.update(reconciliation_record(summary, raw_version))
        reader = pa.RecordBatchReader.from_batches(
            EVENT_SCHEMA, _kept_batches(work, fast, exact, dirty, dropped)
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return TypedEvents(summary=summary, reader=reader)


def write_events(lake: Lake, day: dt.date | str, tmp_dir: Path | None = None) -> TransformSummary:
    """`read_events` written to `amplitude/events/date=D/` as the IO manager writes it (for the CLI)."""
    key = day.isoformat() if isinstance(day, dt.date) else day
    typed = read_events(lake, key, tmp_dir=tmp_dir)
    write_parquet_partition(lake, partition_path(TABLE, key), typed.reader)
    return typed.summary


def reconciliation_record(summary: TransformSummary, raw_version: str) -> dict[str, Any]:
    """What the quarantine manifest keeps so a check can reconcile the day from the lake alone."""
    return {
        "raw_version": raw_version,
        "raw_lines": summary.raw_lines,
        "rows": summary.rows,
        "duplicates": summary.duplicates,
        "quarantined": summary.quarantined,
        "malformed_values": summary.malformed_values,
    }


# --- SQL --------------------------------------------------------------------------------------------


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw_type(column: Column) -> str:
    """How DuckDB reads a key: nested values as JSON text, all else as text (typed after, so a bad
    value nulls one field instead of failing the line)."""
    return "JSON" if column.kind is Kind.JSON else "VARCHAR"


def _typed_expression(column: Column) -> str:
    raw = _identifier(column.key)
    if column.kind is Kind.TIMESTAMP:
        formats = ", ".join(_literal(f) for f in TIMESTAMP_FORMATS)
        return f"try_strptime({raw}, [{formats}])::TIMESTAMPTZ"
    if column.kind is Kind.JSON:
        return f"{raw}::VARCHAR"
    if column.kind in _SQL_TYPES:
        return f"TRY_CAST({raw} AS {_SQL_TYPES[column.kind]})"
    if column.key == PRIMARY_KEY:
        return f"NULLIF(trim({raw}), '')"
    return raw


def typed_select(raw_relation: str, carried: tuple[str, ...] = ()) -> str:
    """A SELECT typing the export keys of `raw_relation` into the schema's columns.

    Adds `_malformed`, a bit per typed column set when a present value did not convert, and passes the
    `carried` columns through.
    """
    typed = [f"{_typed_expression(c)} AS {_identifier(c.name)}" for c in COLUMNS]
    originals = [f"{_identifier(c.key)} AS {_identifier('raw ' + c.name)}" for c in _TYPED_COLUMNS]
    carry = [_identifier(name) for name in carried]
    bits = " | ".join(
        f"(CASE WHEN {_identifier('raw ' + c.name)} IS NOT NULL AND {_identifier(c.name)} IS NULL "
        f"THEN {1 << i} ELSE 0 END)"
        for i, c in enumerate(_TYPED_COLUMNS)
    )
    names = [_identifier(c.name) for c in COLUMNS]
    return (
        f"SELECT {', '.join(names + carry)}, ({bits})::INTEGER AS {MALFORMED} "
        f"FROM (SELECT {', '.join(typed + originals + carry)} FROM {raw_relation})"
    )


def _read_json_columns() -> str:
    return "{" + ", ".join(f"{_literal(c.key)}: {_literal(_raw_type(c))}" for c in COLUMNS) + "}"


def _from_json_structure() -> str:
    return "{" + ", ".join(f'"{c.key}": "{_raw_type(c)}"' for c in COLUMNS) + "}"


BAD_ROW = f"({_identifier(PRIMARY_KEY)} IS NULL OR event_time IS NULL)"


# --- passes -----------------------------------------------------------------------------------------


@contextmanager
def _duckdb(work: Path, memory_limit: str, threads: int | None) -> Iterator[duckdb.DuckDBPyConnection]:
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "temp_directory": str(work / "spill"),
        "preserve_insertion_order": False,
    }
    if threads:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    # Timestamps leave DuckDB as timestamp[us, tz=UTC] only when the session's zone is UTC.
    con.execute("SET TimeZone = 'UTC'")
    try:
        yield con
    finally:
        con.close()


def _local_copies(lake: Lake, members: list[RawMember], directory: Path) -> dict[str, Path]:
    """Member name -> a local copy DuckDB can read, streamed from the lake (disk or S3) chunk by chunk.

    Always through `Lake.open_input`, never the lake's own path: that is the one reading of the bytes
    the lake promises to give back exactly as they were written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    local = {}
    for index, member in enumerate(members):
        target = directory / f"{index:05d}.json.gz"
        with lake.open_input(member.path) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)
        local[member.name] = target
    return local


def _spool(batches: Iterator[pa.RecordBatch], path: Path, schema: pa.Schema, first_row: int) -> int:
    """Write `batches` to an Arrow IPC file with a `_row` number each; returns the rows written."""
    row = first_row
    with ipc.new_file(str(path), schema.append(pa.field(ROW, pa.int64())), options=SPOOL_OPTIONS) as spool:
        for batch in batches:
            numbers = pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64))
            spool.write_batch(batch.append_column(ROW, numbers))
            row += batch.num_rows
    return row - first_row


def _fast_pass(
    con: duckdb.DuckDBPyConnection, members: list[RawMember], local: dict[str, Path], spool: Path
) -> tuple[pa.Schema, int]:
    """Every member through `read_json` into `spool`; returns the typed schema and the rows spooled."""
    con.register("members", pa.table({"path": [str(local[m.name]) for m in members],
                                      "member": [m.name for m in members]}))  # fmt: skip
    files = "[" + ", ".join(_literal(str(local[m.name])) for m in members) + "]"
    # Every member is read even when empty; an empty day still spools an (empty) file of the right shape.
    source = (
        f"(SELECT j.*, m.member AS {SOURCE_FILE} FROM read_json({files}, format='newline_delimited', "
        f"columns={_read_json_columns()}, compression='gzip', ignore_errors=true, filename=true) AS j "
        f"JOIN members AS m ON m.path = j.filename)"
    )
    if not members:
        source = f"(SELECT {', '.join(f'NULL::{_raw_type(c)} AS {_identifier(c.key)}' for c in COLUMNS)}, "
        source += f"NULL::VARCHAR AS {SOURCE_FILE} WHERE false)"
    result = con.sql(typed_select(source, (SOURCE_FILE,))).to_arrow_reader(BATCH_ROWS)
    return result.schema, _spool(iter(result), spool, result.schema, 0)


def _dirty_members(con: duckdb.DuckDBPyConnection, members: list[RawMember], spool: Path) -> set[str]:
    """Members whose fast rows do not account for every line with a good row."""
    con.register("fast_pass", ds.dataset(str(spool), format="ipc"))
    counts = {
        name: (rows, bad)
        for name, rows, bad in con.sql(
            f"SELECT {SOURCE_FILE}, count(*), count(*) FILTER (WHERE {BAD_ROW}) FROM fast_pass GROUP BY ALL"
        ).fetchall()
    }
    return {m.name for m in members if counts.get(m.name, (0, 0)) != (m.lines, 0)}


def _member_lines(path: Path) -> Iterator[pa.RecordBatch]:
    """The member's lines as batches of (bytes as received, text or null when not UTF-8)."""
    with gzip.open(path, "rb") as stream:
        raw: list[bytes] = []
        for line in stream:
            raw.append(line)
            if len(raw) == EXACT_BATCH_LINES:
                yield _lines_batch(raw)
                raw = []
        if raw:
            yield _lines_batch(raw)


def _lines_batch(raw: list[bytes]) -> pa.RecordBatch:
    text: list[str | None] = []
    for line in raw:
        try:
            text.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            text.append(None)
    return pa.record_batch({"_raw": pa.array(raw, pa.binary()), "_text": pa.array(text, pa.string())})


def _exact_pass(
    con: duckdb.DuckDBPyConnection,
    dirty: list[RawMember],
    local: dict[str, Path],
    spool: Path,
    schema: pa.Schema,
    *,
    first_row: int,
    quarantine: PartitionWriter,
) -> int:
    """Type the dirty members line by line into `spool`; bad lines go to `quarantine` as received.

    Returns the number of quarantined lines.
    """
    keys = ", ".join(f"j[{_literal(c.key)}] AS {_identifier(c.key)}" for c in COLUMNS)
    structure = _literal(_from_json_structure())
    parsed = (
        f"(SELECT {keys}, _raw FROM (SELECT _raw, CASE WHEN json_valid(_text) AND "
        f"json_type(_text) = 'OBJECT' THEN from_json(_text, {structure}) END AS j FROM member_lines))"
    )
    query = (
        f"SELECT * EXCLUDE (_raw), CASE WHEN {BAD_ROW} THEN _raw END AS {QUARANTINED} "
        f"FROM ({typed_select(parsed, ('_raw',))})"
    )
    quarantined = 0

    def good_rows() -> Iterator[pa.RecordBatch]:
        nonlocal quarantined
        for index, member in enumerate(dirty):
            bad_lines = 0
            held = spool.parent / f"quarantine-{index:05d}.jsonl"
            with held.open("wb") as bad_out:
                for lines in _member_lines(local[member.name]):
                    typed = _query_batch(con, query, lines)
                    bad = typed.filter(pc.is_valid(typed[QUARANTINED]))[QUARANTINED]
                    for value in bad.to_pylist():
                        bad_out.write(value)
                    bad_lines += len(bad)
                    good = typed.filter(pc.is_null(typed[QUARANTINED]))
                    source = pa.array([member.name] * good.num_rows, pa.string())
                    columns = [good[c.name] for c in COLUMNS] + [source, good[MALFORMED]]
                    yield from pa.Table.from_arrays(columns, schema=schema).to_batches()
            if bad_lines:
                # Named like the member, without .gz: the lines are kept exactly as they were received.
                with (
                    held.open("rb") as source_file,
                    quarantine.open(
                        member.name.removesuffix(".gz"), lines=bad_lines, source_file=member.name
                    ) as target,
                ):
                    shutil.copyfileobj(source_file, target, 1024 * 1024)
            held.unlink()
            quarantined += bad_lines

    _spool(good_rows(), spool, schema, first_row)
    return quarantined


def _query_batch(con: duckdb.DuckDBPyConnection, query: str, lines: pa.RecordBatch) -> pa.Table:
    """One batch of lines through `query`, rows in line order."""
    con.register("member_lines", lines)
    try:
        return con.sql(query).to_arrow_table()
    finally:
        con.unregister("member_lines")


def _spools(con: duckdb.DuckDBPyConnection, fast: Path, exact: Path, dirty: set[str]) -> str:
    """A relation over every typed row that survives the quarantine: clean fast rows and exact rows."""
    con.register("fast", ds.dataset(str(fast), format="ipc"))
    con.register("exact", ds.dataset(str(exact), format="ipc"))
    con.register("dirty", pa.table({"member": pa.array(sorted(dirty), pa.string())}))
    return (
        f"(SELECT * FROM fast WHERE {SOURCE_FILE} NOT IN (SELECT member FROM dirty) "
        f"UNION ALL SELECT * FROM exact)"
    )


def _duplicates(con: duckdb.DuckDBPyConnection, typed_rows: str) -> pa.Array:
    """`_row`s of every row whose `uuid` an earlier-uploaded row already has (the first upload wins;
    rows tying on upload time and member are retries of one line)."""
    ranked = (
        f"SELECT {ROW} FROM (SELECT {ROW}, uuid, server_upload_time, {SOURCE_FILE} FROM {typed_rows}) "
        f"QUALIFY row_number() OVER (PARTITION BY uuid ORDER BY server_upload_time NULLS LAST, "
        f"{SOURCE_FILE}, {ROW}) > 1"
    )
    dropped = con.sql(ranked).to_arrow_table()[ROW].combine_chunks()
    con.register("dropped", pa.table({ROW: dropped}))
    return dropped


def _summarise(
    con: duckdb.DuckDBPyConnection,
    day: str,
    members: list[RawMember],
    typed_rows: str,
    dirty: set[str],
    duplicates: int,
    quarantined: int,
) -> TransformSummary:
    day_start = _literal(f"{day} 00:00:00+00")
    per_bit = ", ".join(f"sum(({MALFORMED} >> {i}) & 1)" for i in range(len(_TYPED_COLUMNS)))
    ((rows, first, last, late, *per_column),) = con.sql(
        f"SELECT count(*), min(event_time), max(event_time), "
        f"count(*) FILTER (WHERE event_time < {day_start}::TIMESTAMPTZ), {per_bit} "
        f"FROM {typed_rows} WHERE {ROW} NOT IN (SELECT {ROW} FROM dropped)"
    ).fetchall()
    malformed = {c.name: int(n) for c, n in zip(_TYPED_COLUMNS, per_column, strict=True) if n}
    preview = con.sql(
        f"SELECT {', '.join(_identifier(name) for name in PREVIEW_COLUMNS)} FROM {typed_rows} "
        f"WHERE {ROW} NOT IN (SELECT {ROW} FROM dropped) ORDER BY event_time, uuid LIMIT {PREVIEW_ROWS}"
    ).to_arrow_table()
    return TransformSummary(
        day=day, files=len(members), raw_lines=sum(m.lines for m in members), rows=rows,
        duplicates=duplicates, quarantined=quarantined,
        malformed_by_column=malformed,
        min_event_time=first, max_event_time=last, late_events=late, dirty_files=len(dirty),
        preview=preview.to_pylist(),
    )  # fmt: skip


def _kept_batches(
    work: Path, fast: Path, exact: Path, dirty: set[str], dropped: pa.Array
) -> Iterator[pa.RecordBatch]:
    """The spooled rows minus the dirty members' fast rows and the duplicates, in the events schema.

    Removes the work directory when done, whether read to the end, closed or collected.
    """
    dirty_members = pa.array(sorted(dirty), pa.string())
    try:
        for path, skip_dirty in ((fast, bool(dirty)), (exact, False)):
            with pa.OSFile(str(path)) as file:
                spool = ipc.open_file(file)
                for index in range(spool.num_record_batches):
                    batch = spool.get_batch(index)
                    keep = pc.invert(pc.is_in(batch[ROW], value_set=dropped)) if len(dropped) else None
                    if skip_dirty:
                        clean = pc.invert(pc.is_in(batch[SOURCE_FILE], value_set=dirty_members))
                        keep = clean if keep is None else pc.and_(keep, clean)
                    if keep is not None:
                        batch = batch.filter(keep)
                    if batch.num_rows:
                        yield pa.RecordBatch.from_arrays(
                            [batch[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
