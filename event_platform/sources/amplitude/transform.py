"""Typed, deduplicated Amplitude events from a landed day, streamed as Arrow: no Dagster here.

A day can be 10 GB of JSON, so every byte is decompressed and parsed in C++ (DuckDB), memory is capped
(DuckDB's `memory_limit`, spilling to a local temporary directory) and the result leaves as a
`pyarrow.RecordBatchReader` the IO manager writes to Parquet batch by batch. The steps:

1. Typing. DuckDB's `read_json` reads all of the day's members in parallel and types every line with
   the projection built from `schema.COLUMNS`; the batches are spooled to an LZ4 Arrow IPC file on local
   disk, each row numbered (`_row`). A line that is not a JSON object reads as an all-null row, a blank
   line as no row at all; a row without `uuid` or a parseable `event_time` is *bad*.
2. Per member, good rows are counted against the raw manifest's `lines`. A member with fewer is
   *dirty*: some of its lines must be quarantined, but `read_json` has parsed their bytes away.
3. Quarantine, dirty members only. Python splits the member into lines keeping their bytes, DuckDB
   classifies each line with the same rules (JSON object, `uuid`, `event_time`) without typing it, and the
   bad lines go byte-for-byte to `quarantine/amplitude/events/date=D/<member without .gz>`. The good
   lines must number exactly the member's good rows from step 1, else the day fails loudly.
4. DuckDB ranks the good rows by `uuid` over a few spooled columns (not the whole rows), keeping the
   first by `server_upload_time` (never deduping on `event_id`, which is not unique), and summarises the
   kept rows.
5. The output reader streams the spool minus the bad rows and the duplicates.

Lines in the raw manifest == rows + duplicates + quarantined lines, always. The quarantine partition's
manifest records that reconciliation, so checks can verify it from the lake alone.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.ipc as ipc

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.lake.publish import PartitionWriter
from event_platform.scratch import new_scratch_dir
from event_platform.sources.amplitude.schema import (
    COLUMNS,
    EVENT_SCHEMA,
    PREVIEW_COLUMNS,
    SOURCE_FILE,
    TIMESTAMP_FORMATS,
    Column,
    Kind,
)
from event_platform.staging import scratch_duckdb, sql_text

SOURCE_NAME = "amplitude"
TABLE = "amplitude/events"
PRIMARY_KEY = "uuid"
ROW = "_row"
MALFORMED = "_malformed"
BATCH_ROWS = 8_192
"""Rows per spooled batch: about 12 MB of typed events, small enough to keep memory flat."""
QUARANTINE_BATCH_LINES = 4_096
COPY_CHUNK_BYTES = 8 * 1024 * 1024
PREVIEW_ROWS = 5
DEFAULT_MEMORY_LIMIT = "192MB"
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
    """Members with lines to quarantine (read a second time, line by line)."""
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
    partition = raw_path(SOURCE_NAME, day)
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
    work = new_scratch_dir(f"amplitude-events-{day}", tmp_dir)
    try:
        local = _local_copies(lake, members, work / "raw")
        spool = work / "typed.arrow"
        with scratch_duckdb(
            work, memory_limit=memory_limit, threads=threads, preserve_insertion_order=False
        ) as con:
            _type_members(con, members, local, spool)
            good_rows = _good_rows_per_member(con)
            dirty = [m for m in members if good_rows.get(m.name, 0) != m.lines]
            with lake.write_partition(quarantine_path(TABLE, day)) as quarantine:
                # Quarantined lines keep their order; typing did not need it.
                con.execute("SET preserve_insertion_order = true")
                quarantined = sum(
                    _quarantine_member(
                        con,
                        member,
                        local[member.name],
                        good_rows.get(member.name, 0),
                        quarantine=quarantine,
                        work=work,
                    )
                    for member in dirty
                )
                dropped = _dropped_rows(con)
                summary = _summarise(con, day, members, len(dirty), dropped.duplicates, quarantined)
                quarantine.metadata.update(reconciliation_record(summary, raw_version))
        reader = pa.RecordBatchReader.from_batches(EVENT_SCHEMA, _kept_batches(work, spool, dropped.rows))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return TypedEvents(summary=summary, reader=reader)


def write_events(lake: Lake, day: dt.date | str, tmp_dir: Path | None = None) -> TransformSummary:
    """`read_events` written to `amplitude/events/date=D/` as the IO manager writes it (for the CLI)."""
    key = day.isoformat() if isinstance(day, dt.date) else day
    typed = read_events(lake, key, tmp_dir=tmp_dir)
    delta.write(lake, TABLE, typed.reader, partition=key)
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


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw_type(column: Column) -> str:
    """How DuckDB reads a key: nested values as JSON text, all else as text (typed after, so a bad
    value nulls one field instead of failing the line)."""
    return "JSON" if column.kind is Kind.JSON else "VARCHAR"


def _typed_expression(column: Column, raw: str | None = None) -> str:
    """SQL typing the column's value, read as text by `read_json` (or given as the SQL `raw`)."""
    raw = raw or _identifier(column.key)
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


def read_json_sql(paths: Sequence[str], compression: str = "gzip") -> str:
    """DuckDB's `read_json` of `paths` as our raw columns (nested objects as JSON text) and each row's
    `filename`: step 1's reader, which the benchmark also times over decompressed copies."""
    files = "[" + ", ".join(sql_text(path) for path in paths) + "]"
    columns = "{" + ", ".join(f"{sql_text(c.key)}: {sql_text(_raw_type(c))}" for c in COLUMNS) + "}"
    return (
        f"read_json({files}, format='newline_delimited', columns={columns}, "
        f"compression='{compression}', ignore_errors=true, filename=true)"
    )


_REQUIRED = tuple(c for c in COLUMNS if c.key in (PRIMARY_KEY, "event_time"))
BAD_ROW = "(" + " OR ".join(f"{_identifier(c.name)} IS NULL" for c in _REQUIRED) + ")"
"""A typed row that cannot be kept: no `uuid` or no parseable `event_time`."""


def _bad_lines_query(lines: str) -> str:
    """SQL selecting `_index` of the lines of `lines` (`_index`, `_text`) that typing could not keep: not
    JSON, or without the required values as the typing reads them (an array or a string has none).
    Each line is parsed twice (validate, then extract), never typed whole."""
    paths = ", ".join(sql_text(f"$.{c.key}") for c in _REQUIRED)
    checks = " AND ".join(
        f"{_typed_expression(c, f'_values[{i}]')} IS NOT NULL" for i, c in enumerate(_REQUIRED, start=1)
    )
    return (
        f"SELECT _index FROM (SELECT _index, CASE WHEN json_valid(_text) THEN json_extract_string(_text, "
        f"[{paths}]) END AS _values FROM {lines}) WHERE NOT coalesce({checks}, false)"
    )


# --- passes -----------------------------------------------------------------------------------------


def _local_copies(lake: Lake, members: list[RawMember], directory: Path) -> dict[str, Path]:
    """Member name -> a local path DuckDB can read: the lake's own file on disk, a streamed copy from S3."""
    if lake.is_local:
        return {m.name: Path(lake.path(m.path)) for m in members}
    directory.mkdir(parents=True, exist_ok=True)
    local = {}
    for index, member in enumerate(members):
        target = directory / f"{index:05d}.json.gz"
        with lake.open_input(member.path) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)
        local[member.name] = target
    return local


def _spool(batches: Iterator[pa.RecordBatch], path: Path, schema: pa.Schema) -> None:
    """Write `batches` to an Arrow IPC file, numbering the rows (`_row`)."""
    row = 0
    with ipc.new_file(str(path), schema.append(pa.field(ROW, pa.int64())), options=SPOOL_OPTIONS) as spool:
        for batch in batches:
            numbers = pa.array(range(row, row + batch.num_rows), type=pa.int64())
            spool.write_batch(batch.append_column(ROW, numbers))
            row += batch.num_rows


def typed_batches(
    con: duckdb.DuckDBPyConnection, members: list[RawMember], local: dict[str, Path]
) -> pa.RecordBatchReader:
    """Every member through `read_json` and the typing projection, as Arrow batches in no set order
    (`_source_file` names each row's member). Step 1 without the spool: the benchmark times it alone."""
    con.register("members", pa.table({"path": [str(local[m.name]) for m in members],
                                      "member": [m.name for m in members]}))  # fmt: skip
    if members:
        raw = read_json_sql([str(local[m.name]) for m in members])
        source = (
            f"(SELECT j.*, m.member AS {SOURCE_FILE} FROM {raw} AS j "
            f"JOIN members AS m ON m.path = j.filename)"
        )
    else:  # a day without data still yields the right shape
        nulls = ", ".join(f"NULL::{_raw_type(c)} AS {_identifier(c.key)}" for c in COLUMNS)
        source = f"(SELECT {nulls}, NULL::VARCHAR AS {SOURCE_FILE} WHERE false)"
    return con.sql(typed_select(source, (SOURCE_FILE,))).to_arrow_reader(BATCH_ROWS)


def _type_members(
    con: duckdb.DuckDBPyConnection, members: list[RawMember], local: dict[str, Path], spool: Path
) -> None:
    """Step 1: the typed batches into `spool`, registered as `typed`."""
    result = typed_batches(con, members, local)
    _spool(iter(result), spool, result.schema)
    con.register("typed", ds.dataset(str(spool), format="ipc"))


def _good_rows_per_member(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = con.sql(f"SELECT {SOURCE_FILE}, count(*) FILTER (WHERE NOT {BAD_ROW}) FROM typed GROUP BY ALL")
    return {name: good for name, good in counts.fetchall()}


MEMBER_CHUNK_BYTES = 16 * 1024 * 1024
_NON_SPACE = re.compile(rb"\S")


@dataclass(frozen=True)
class _Segment:
    """A run of a member's bytes, in order: whitespace-only lines, or one line to classify."""

    data: bytes
    blank_lines: int
    """For a blank run, how many lines it holds; 0 for a line."""


def _member_segments(path: Path) -> Iterator[list[_Segment]]:
    """The member's bytes as it decompresses, chunk by chunk, cut into blank runs and other lines.

    A run of whitespace-only lines (a flood of newlines) stays one segment found by a byte search in
    C, never split into lines in Python; only lines with content become segments of their own."""
    with gzip.open(path, "rb") as stream:
        carried = b""
        while chunk := stream.read(MEMBER_CHUNK_BYTES):
            data = carried + chunk
            cut = data.rfind(b"\n") + 1
            carried = data[cut:]
            if cut:
                yield list(_segments(data[:cut]))
        if carried:
            yield list(_segments(carried))


def _segments(data: bytes) -> Iterator[_Segment]:
    position = 0
    while position < len(data):
        content = _NON_SPACE.search(data, position)
        start = (
            len(data) if content is None else max(position, data.rfind(b"\n", position, content.start()) + 1)
        )
        if start > position:
            # A member's last line may lack its newline: it is a line all the same.
            unterminated = content is None and not data.endswith(b"\n")
            yield _Segment(
                data[position:start], blank_lines=data.count(b"\n", position, start) + unterminated
            )
        if content is None:
            return
        end = data.find(b"\n", content.start())
        end = len(data) if end < 0 else end + 1
        yield _Segment(data[start:end], blank_lines=0)
        position = end


def _lines_batch(raw: list[bytes]) -> pa.RecordBatch:
    text: list[str | None] = []
    for line in raw:
        try:
            text.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            text.append(None)
    return pa.record_batch(
        {
            "_index": pa.array(range(len(raw)), pa.int64()),
            "_text": pa.array(text, pa.string()),
        }
    )


class UnreconciledMemberError(RuntimeError):
    """A member's lines are not all accounted for: its manifest miscounts them, or DuckDB's reader and
    its line validator disagree on a line. Nothing of the day is written."""


def _quarantine_member(
    con: duckdb.DuckDBPyConnection,
    member: RawMember,
    path: Path,
    good_rows: int,
    *,
    quarantine: PartitionWriter,
    work: Path,
) -> int:
    """Copy the member's bad lines, as received and in order, into the quarantine; returns how many.

    Blank lines are bad lines too (no event), kept byte for byte, but counted and copied a run at a
    time: a member of nothing but newlines costs a byte search, not a Python step per line."""
    query = _bad_lines_query("member_lines")
    held = work / "quarantine.jsonl"
    bad_lines = 0
    with held.open("wb") as bad_out:
        for segments in _member_segments(path):
            lines = [segment.data for segment in segments if not segment.blank_lines]
            bad: set[int] = set()
            for first in range(0, len(lines), QUARANTINE_BATCH_LINES):
                con.register("member_lines", _lines_batch(lines[first : first + QUARANTINE_BATCH_LINES]))
                try:
                    found = con.sql(query).to_arrow_table()["_index"].to_pylist()
                finally:
                    con.unregister("member_lines")
                bad.update(first + index for index in found)
            index = 0
            for segment in segments:
                if segment.blank_lines:
                    bad_out.write(segment.data)
                    bad_lines += segment.blank_lines
                    continue
                if index in bad:
                    bad_out.write(segment.data)
                    bad_lines += 1
                index += 1
    if member.lines - bad_lines != good_rows:
        raise UnreconciledMemberError(
            f"{member.name}: the raw manifest counts {member.lines} lines, {bad_lines} are bad and typing "
            f"kept {good_rows} rows, so {member.lines - bad_lines - good_rows} are unaccounted for; nothing "
            "of the day was written. Re-land the day (amplitude/raw_export) or inspect the member."
        )
    if bad_lines:
        # Named like the member without .gz: the lines are kept exactly as received, uncompressed.
        name = member.name.removesuffix(".gz")
        with (
            held.open("rb") as source,
            quarantine.open(name, lines=bad_lines, source_file=member.name) as target,
        ):
            shutil.copyfileobj(source, target, COPY_CHUNK_BYTES)
    held.unlink()
    return bad_lines


@dataclass(frozen=True)
class _Dropped:
    rows: pa.Array
    """`_row`s of the spool that are not output: bad rows and duplicates."""
    duplicates: int


def _dropped_rows(con: duckdb.DuckDBPyConnection) -> _Dropped:
    """Bad rows, and every row whose `uuid` an earlier-uploaded row already has (the first upload wins;
    rows tying on upload time and member are retries of one line).

    Only rows whose uuid's 64-bit hash occurs twice are ranked: grouping integers holds far less memory
    than ranking every uuid string of the day, and the ranking itself stays exact on the uuids.
    """
    good = f"typed WHERE NOT {BAD_ROW}"
    duplicates = con.sql(
        f"SELECT {ROW} FROM (SELECT {ROW}, uuid, server_upload_time, {SOURCE_FILE} FROM {good} "
        f"AND hash(uuid) IN (SELECT hash(uuid) FROM {good} GROUP BY 1 HAVING count(*) > 1)) "
        f"QUALIFY row_number() OVER "
        f"(PARTITION BY uuid ORDER BY server_upload_time NULLS LAST, {SOURCE_FILE}, {ROW}) > 1"
    ).to_arrow_table()[ROW]
    bad = con.sql(f"SELECT {ROW} FROM typed WHERE {BAD_ROW}").to_arrow_table()[ROW]
    rows = pa.chunked_array([*duplicates.chunks, *bad.chunks], pa.int64()).combine_chunks()
    con.register("dropped", pa.table({ROW: rows}))
    return _Dropped(rows=rows, duplicates=len(duplicates))


def _summarise(
    con: duckdb.DuckDBPyConnection,
    day: str,
    members: list[RawMember],
    dirty_files: int,
    duplicates: int,
    quarantined: int,
) -> TransformSummary:
    kept = f"typed WHERE {ROW} NOT IN (SELECT {ROW} FROM dropped)"
    day_start = sql_text(f"{day} 00:00:00+00")
    per_bit = ", ".join(f"sum(({MALFORMED} >> {i}) & 1)" for i in range(len(_TYPED_COLUMNS)))
    ((rows, first, last, late, *per_column),) = con.sql(
        f"SELECT count(*), min(event_time), max(event_time), "
        f"count(*) FILTER (WHERE event_time < {day_start}::TIMESTAMPTZ), {per_bit} FROM {kept}"
    ).fetchall()
    preview = con.sql(
        f"SELECT {', '.join(_identifier(name) for name in PREVIEW_COLUMNS)} FROM {kept} "
        f"ORDER BY event_time, uuid LIMIT {PREVIEW_ROWS}"
    ).to_arrow_table()
    malformed = {c.name: int(n) for c, n in zip(_TYPED_COLUMNS, per_column, strict=True) if n}
    return TransformSummary(
        day=day, files=len(members), raw_lines=sum(m.lines for m in members), rows=rows,
        duplicates=duplicates, quarantined=quarantined, malformed_by_column=malformed,
        min_event_time=first, max_event_time=last, late_events=late, dirty_files=dirty_files,
        preview=preview.to_pylist(),
    )  # fmt: skip


def _kept_batches(work: Path, spool: Path, dropped: pa.Array) -> Iterator[pa.RecordBatch]:
    """The spooled rows minus the dropped ones, in the events schema.

    Removes the work directory when done, whether read to the end, closed or collected.
    """
    try:
        with pa.OSFile(str(spool)) as file:
            typed = ipc.open_file(file)
            for index in range(typed.num_record_batches):
                batch = typed.get_batch(index)
                if len(dropped):
                    batch = batch.filter(pc.invert(pc.is_in(batch[ROW], value_set=dropped)))
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(
                        [batch[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
