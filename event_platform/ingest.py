"""From a day's landed gzip JSON lines to a typed, deduplicated day, for every source that lands lines
(Amplitude, tracking, the Profile Store): no Dagster here.

A day can be 10 GB of JSON, so every byte is decompressed and parsed in C++ (DuckDB), memory is capped
(DuckDB's `memory_limit`, spilling to a local scratch directory) and the result leaves as a
`pyarrow.RecordBatchReader` the IO manager writes batch by batch. A source describes itself with an
`IngestSpec`, which is data: the keys DuckDB reads, each column's typing as SQL, what a row needs to be
kept, the key and which copy of it wins, the output order, how its landing is found and how its
quarantine is named. The steps:

1. Typing. DuckDB's `read_json` reads all of the day's files in parallel and types every line with the
   spec's projection; the batches are spooled to an LZ4 Arrow IPC file on local disk, each row numbered
   (`_row`), with its file (`_file`) and whether it is *bad* (`_bad`: not a JSON object, a required
   column null, a `valid` condition false). A blank line reads as no row at all.
2. Per file, good rows are counted against the landing's line count. A file with fewer is *dirty*: some
   of its lines must be quarantined, but `read_json` has parsed their bytes away.
3. Quarantine, dirty files only. Python splits the file into lines keeping their bytes, DuckDB types each
   line with the same SQL (over `json_transform` of the line instead of `read_json`, and only what
   `_bad` depends on), and the bad lines go byte for byte to `quarantine/<table>/date=D/`. The good
   lines must number exactly the file's good rows from step 1, else the day fails loudly.
4. DuckDB ranks the good rows by key, only those whose key's hash repeats (grouping integers holds far
   less memory than ranking every key of the day), and keeps the first by the spec's `first_by`.
5. The output streams the spool minus the bad rows and the duplicates, or, for a spec with an
   `order_by`, DuckDB's sort of them (spilling) through a second spool.

Landed lines == rows + duplicates + quarantined lines, for every source. The quarantine partition's
manifest records that reconciliation (`reconciliation_record`), so checks can verify it from the lake.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.ipc as ipc

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import quarantine_path
from event_platform.lake.publish import PartitionWriter
from event_platform.scratch import new_scratch_dir
from event_platform.staging import damaged_gzip_error, scratch_duckdb, sql_text

if TYPE_CHECKING:
    import duckdb

ROW = "_row"
FILE = "_file"
FILE_NAME = "_file_name"
"""The landed file's name, for a typing expression that keeps it (Amplitude's `_source_file`)."""
BAD = "_bad"
MALFORMED = "_malformed"
BATCH_ROWS = 8_192
"""Rows per spooled batch: about 12 MB of typed Amplitude events, small enough to keep memory flat."""
QUARANTINE_BATCH_LINES = 4_096
COPY_CHUNK_BYTES = 8 * 1024 * 1024
FILE_CHUNK_BYTES = 16 * 1024 * 1024
PREVIEW_ROWS = 5
DEFAULT_MEMORY_LIMIT = "256MB"
"""DuckDB's limit, spilling past it. The typing pass holds `read_json`'s 32 MB buffers per file in flight
on each thread beside its expressions' state: Amplitude's projection fit in 192 MB on 2 cores, the
Profile Store's, with several JSON functions per key, did not."""
SPOOL_OPTIONS = ipc.IpcWriteOptions(compression="lz4")


@dataclass(frozen=True)
class LandedFile:
    name: str
    """Its name in the landing (an export member's path, a page's or a commit's file name)."""
    path: str
    """Where its bytes are, relative to the lake root."""
    lines: int
    """The lines the landing counted in it when it was written."""


@dataclass(frozen=True)
class Landing:
    files: tuple[LandedFile, ...]
    version: str | None
    """What identifies this landing of the day (its manifest's version), kept with the reconciliation."""

    @property
    def lines(self) -> int:
        return sum(file.lines for file in self.files)


@dataclass(frozen=True)
class SqlFunction:
    """A vectorised Python function the typing SQL may call, for a value SQL cannot reproduce exactly
    (canonical JSON, a content hash). It gets an Arrow array per DuckDB vector and returns one, null
    where its input is null or is no value of the column."""

    name: str
    function: Callable[[pa.Array], pa.Array]
    parameters: tuple[str, ...]
    returns: str


@dataclass(frozen=True)
class IngestSpec:
    """What makes one source's day: how a line becomes a row, which lines are bad, which copy is kept."""

    source: str
    table: str
    """The lake table, e.g. "tracking/events"; its quarantine is `quarantine/<table>/date=D/`."""
    schema: pa.Schema
    raw_columns: Mapping[str, str]
    """Landed key -> the DuckDB type `read_json` reads it as (VARCHAR or JSON: typing comes after, so a
    bad value nulls one field instead of failing the line)."""
    typing: Mapping[str, str]
    """Output column -> its SQL over the raw columns (quoted keys), `_file_name` and `whole_line`."""
    required: tuple[str, ...]
    """Output columns a good row has (not null); a row without one is bad and its line quarantined."""
    key: str
    first_by: tuple[str, ...]
    """The copy of a key that is kept is the first in this SQL order (then by file and row)."""
    time_column: str
    landing: Callable[[Lake, str], Landing]
    unreconciled_hint: str
    """What to do about a file whose lines do not add up (ends the error that names it)."""
    preview_columns: tuple[str, ...]
    """What a materialization's preview shows: no person-level fields, few enough for whole rows."""
    quarantine_file: str | None = None
    """One gzip file holding the day's bad lines; None: a file per landed file, named like it without
    `.gz`, holding its bad lines exactly as received."""
    valid: tuple[str, ...] = ()
    """Further SQL conditions over the raw columns a good row meets (null counts as false)."""
    order_by: tuple[str, ...] = ()
    """The order of the output's rows; none: as typed, which costs no sort."""
    event_type_column: str | None = "event_type"
    blank_lines_quarantined: bool = False
    """Whether a blank line is a bad line (counted and quarantined) or no line at all."""
    whole_line: str | None = None
    """A raw column holding the whole line as JSON, for typing that needs all of it (a content hash)."""
    functions: tuple[SqlFunction, ...] = ()
    derived: Mapping[str, str] = field(default_factory=dict)
    """Columns computed once per row from the raw ones before typing (name -> SQL), for a value several
    typing expressions read: DuckDB evaluates an expression inside a list lambda once per element."""
    malformed: Mapping[str, str] = field(default_factory=dict)
    """Output column -> SQL of its raw value: counted as malformed when present but not typed."""


@dataclass(frozen=True)
class IngestSummary:
    """What typing one day did; every count comes from the data, none is estimated."""

    day: str
    raw_version: str | None
    files: int
    raw_lines: int
    """Lines of the landing, as it counted them."""
    rows: int
    duplicates: int
    quarantined: int
    malformed_by_column: dict[str, int]
    """Values that did not convert (null in their row), per column, over the kept rows."""
    min_event_time: dt.datetime | None
    max_event_time: dt.datetime | None
    late_events: int
    """Kept rows whose event time is before the partition's day."""
    dirty_files: int
    """Files with lines to quarantine (read a second time, line by line)."""
    event_type_counts: list[tuple[str, int]]
    preview: list[dict[str, Any]]
    """The earliest kept rows, only the spec's preview columns."""

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
class TypedDay:
    """The day's typed rows (read once, in batches) and their summary, known before the first batch."""

    summary: IngestSummary
    reader: pa.RecordBatchReader


class UnreconciledFileError(RuntimeError):
    """A landed file's lines are not all accounted for: its landing miscounts them, or DuckDB's reader
    and its line-by-line typing disagree on a line. Nothing of the day is written."""


def read_day(
    spec: IngestSpec,
    lake: Lake,
    day: str,
    *,
    tmp_dir: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> TypedDay:
    """Type, quarantine and deduplicate the landed `day`; commits the day's quarantine partition.

    The returned reader owns a scratch directory (under `tmp_dir`) that goes once the reader is read to
    the end or dropped; the summary is complete before it is returned.
    """
    landing = spec.landing(lake, day)
    work = new_scratch_dir(f"{spec.table.replace('/', '-')}-{day}", tmp_dir)
    try:
        local = _local_copies(lake, landing.files, work / "raw")
        spool = work / "typed.arrow"
        with scratch_duckdb(
            work, memory_limit=memory_limit, threads=threads, preserve_insertion_order=False
        ) as con:
            _type_files(con, spec, lake, landing, local, spool)
            good_rows = _good_rows_per_file(con)
            dirty = [i for i, file in enumerate(landing.files) if good_rows.get(i, 0) != file.lines]
            with lake.write_partition(quarantine_path(spec.table, day)) as quarantine:
                # Quarantined lines keep their order, and so does a sorted output; typing did not need it.
                con.execute("SET preserve_insertion_order = true")
                quarantined = _quarantine(
                    con, spec, lake, [(landing.files[i], local[i], good_rows.get(i, 0)) for i in dirty],
                    quarantine, work,
                )  # fmt: skip
                dropped = _drop_rows(con, spec)
                summary = _summarise(con, spec, day, landing, len(dirty), dropped.duplicates, quarantined)
                quarantine.metadata.update(reconciliation_record(summary))
            output = _ordered(con, spec, work) if spec.order_by else None
        batches = _output_batches(spec, work, output or spool, None if output else dropped.rows)
        # A reader closed or dropped before its first batch never runs the generator's cleanup.
        weakref.finalize(batches, shutil.rmtree, work, ignore_errors=True)
        reader = pa.RecordBatchReader.from_batches(spec.schema, batches)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return TypedDay(summary=summary, reader=reader)


def reconciliation_record(summary: IngestSummary) -> dict[str, Any]:
    """What the quarantine manifest keeps so a check can reconcile the day from the lake alone: landed
    lines (`raw_lines`) == `rows` + `duplicates` + `quarantined`, for the landing `raw_version`."""
    return {
        "raw_version": summary.raw_version,
        "raw_lines": summary.raw_lines,
        "rows": summary.rows,
        "duplicates": summary.duplicates,
        "quarantined": summary.quarantined,
        "lines": summary.quarantined,
        "malformed_values": summary.malformed_values,
    }


# --- SQL --------------------------------------------------------------------------------------------


def identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def read_json_sql(spec: IngestSpec, paths: Sequence[str], compression: str = "gzip") -> str:
    """DuckDB's `read_json` of `paths` as the spec's raw columns (or its whole line) and each row's
    `filename`: step 1's reader, which the Amplitude benchmark also times over decompressed copies."""
    files = "[" + ", ".join(sql_text(path) for path in paths) + "]"
    if spec.whole_line:
        shape = f"records=false, columns={{{sql_text(spec.whole_line)}: 'JSON'}}"
    else:
        shape = (
            "columns={"
            + ", ".join(f"{sql_text(k)}: {sql_text(t)}" for k, t in spec.raw_columns.items())
            + "}"
        )
    return (
        f"read_json({files}, format='newline_delimited', {shape}, compression='{compression}', "
        "ignore_errors=true, filename=true)"
    )


_PLAIN_KEY = r'"[^"\\\x00-\x1f\x7f]*"'
_PLAIN_VALUE = r'"[^"\\\x00-\x1f\x7f]*"|0|-?[1-9][0-9]{0,17}|true|false|null'
"""JSON that DuckDB writes byte for byte as Python's `json.dumps(..., ensure_ascii=False)` does:
strings needing no escape, integers DuckDB keeps exact, booleans and null."""


def sorted_json_sql(value: str, *, item_separator: str, key_separator: str) -> str:
    """SQL writing the JSON object `value` as `json.dumps(value, sort_keys=True, ensure_ascii=False,
    separators=(item_separator, key_separator))` does, where SQL can do it exactly: a flat object of
    plain keys and values (`_PLAIN_VALUE`) without a repeated key. Null for any other object, which a
    spec then hands to Python: most events' objects are flat, and Python's JSON costs several times
    DuckDB's per row, under the GIL."""
    keys = f"json_keys({value})"
    items = (
        f"list_transform(list_sort({keys}), lambda name: to_json(name)::VARCHAR || {sql_text(key_separator)} "
        f"|| json_extract({value}, '$.' || to_json(name)::VARCHAR)::VARCHAR)"
    )
    # The separators are commas, colons and spaces: nothing a regular expression reads specially.
    plain = sql_text(f"({_PLAIN_KEY}){key_separator}({_PLAIN_VALUE})")
    return (
        # An item is null where DuckDB cannot address its key (one holding an escape): not plain either.
        f"CASE WHEN coalesce(list_bool_and(list_transform({items}, lambda item: coalesce(regexp_full_match("
        f"item, {plain}), false))), true) AND len(list_distinct({keys})) = len({keys}) "
        f"THEN '{{' || array_to_string({items}, {sql_text(item_separator)}) || '}}' END"
    )


def _object_columns(spec: IngestSpec, value: str, keys: Sequence[str] | None = None) -> str:
    """The raw columns (or those of `keys`) of the JSON `value`, as `read_json` would read them from its
    line (null for a value that is not an object)."""
    structure = json.dumps(
        {key: spec.raw_columns[key] for key in (spec.raw_columns if keys is None else keys)}
    )
    an_object = f"CASE WHEN json_type({value}) = 'OBJECT' THEN {value} END"
    return f"unnest(json_transform({an_object}, {sql_text(structure)}))"


def _typed_select(
    spec: IngestSpec, raw_relation: str, carried: tuple[str, ...], *, only_bad: bool = False
) -> str:
    """A SELECT typing `raw_relation` into the schema's columns, passing `carried` through, with `_bad`
    and `_malformed` (a bit per column of `spec.malformed` set when a present value did not convert).
    `only_bad` types just what `_bad` needs: the line-by-line pass plans it once per batch of lines,
    and planning every column's SQL cost more than typing the lines."""
    columns = spec.required if only_bad else spec.schema.names
    malformed = {} if only_bad else spec.malformed
    typed = [f"{spec.typing[name]} AS {identifier(name)}" for name in columns]
    originals = [f"{raw} AS {identifier('raw ' + name)}" for name, raw in malformed.items()]
    valid = " AND ".join(f"coalesce({check}, false)" for check in spec.valid) or "true"
    carry = [identifier(name) for name in carried]
    kept = " AND ".join(["_valid", *(f"{identifier(name)} IS NOT NULL" for name in spec.required)])
    bits = (
        " | ".join(
            f"(CASE WHEN {identifier('raw ' + name)} IS NOT NULL AND {identifier(name)} IS NULL "
            f"THEN {1 << i} ELSE 0 END)"
            for i, name in enumerate(malformed)
        )
        or "0"
    )
    names = [identifier(name) for name in columns]
    if spec.derived:
        derived = ", ".join(f"{sql} AS {identifier(name)}" for name, sql in spec.derived.items())
        raw_relation = f"(SELECT *, {derived} FROM {raw_relation})"
    return (
        f"SELECT {', '.join(names + carry)}, NOT coalesce({kept}, false) AS {BAD}, ({bits})::INTEGER AS "
        f"{MALFORMED} FROM (SELECT {', '.join([*typed, *originals, *carry, f'({valid}) AS _valid'])} "
        f"FROM {raw_relation})"
    )


def _raw_files_relation(spec: IngestSpec, paths: Sequence[str]) -> str:
    """The raw columns of every line of `paths`, each row with its `_file` (index) and `_file_name`."""
    if not paths:  # a day without data still yields the right shape
        columns = [f"NULL::{kind} AS {identifier(key)}" for key, kind in spec.raw_columns.items()]
        if spec.whole_line:
            columns.append(f"NULL::JSON AS {identifier(spec.whole_line)}")
        columns += [f"NULL::INTEGER AS {FILE}", f"NULL::VARCHAR AS {FILE_NAME}"]
        return f"(SELECT {', '.join(columns)} WHERE false)"
    joined = (
        f"SELECT j.*, f.{FILE}, f.{FILE_NAME} FROM {read_json_sql(spec, paths)} AS j "
        f"JOIN files AS f ON f.path = j.filename"
    )
    if not spec.whole_line:
        return f"({joined})"
    whole = identifier(spec.whole_line)
    return f"(SELECT {whole}, {FILE}, {FILE_NAME}, {_object_columns(spec, whole)} FROM ({joined}))"


def _raw_lines_relation(spec: IngestSpec, file_name: str) -> str:
    """The raw columns a bad row depends on (`_bad_keys`), of the registered `lines` (`_index`,
    `_text`), as `_raw_files_relation` reads a file's lines: what is not JSON reads as nulls."""
    name = sql_text(file_name)
    keys = _bad_keys(spec)
    if not spec.whole_line:
        # One parse besides the validation: a JSON object starts with "{" after JSON's whitespace.
        structure = sql_text(json.dumps({key: spec.raw_columns[key] for key in keys}))
        an_object = r"json_valid(_text) AND regexp_matches(_text, '^[ \t\r\n]*\{')"
        return (
            f"(SELECT _index, {name} AS {FILE_NAME}, unnest(json_transform(CASE WHEN {an_object} "
            f"THEN _text END, {structure})) FROM lines)"
        )
    whole = identifier(spec.whole_line)
    parsed = f"SELECT _index, CASE WHEN json_valid(_text) THEN _text::JSON END AS {whole} FROM lines"
    columns = _object_columns(spec, whole, keys)
    return f"(SELECT _index, {name} AS {FILE_NAME}, {whole}, {columns} FROM ({parsed}))"


def _bad_keys(spec: IngestSpec) -> list[str]:
    """The raw keys the SQL of the required columns, the valid conditions and the derived columns names
    (quoted, as specs write them). DuckDB does not prune a struct's fields, so extracting all 55 of an
    Amplitude line's keys made the line-by-line pass cost more than typing the day; a key missed here
    fails the query loudly, never silently."""
    sql = " ".join([*(spec.typing[name] for name in spec.required), *spec.valid, *spec.derived.values()])
    return [key for key in spec.raw_columns if identifier(key) in sql]


def _register_functions(con: duckdb.DuckDBPyConnection, spec: IngestSpec) -> None:
    for function in spec.functions:
        # "special": nulls reach the function (which keeps them), and it may return null for a bad value.
        con.create_function(
            function.name, function.function, list(function.parameters), function.returns,
            type="arrow", null_handling="special",
        )  # fmt: skip


# --- passes -----------------------------------------------------------------------------------------


def _local_copies(lake: Lake, files: Sequence[LandedFile], directory: Path) -> list[Path]:
    """A local path DuckDB can read for each file: the lake's own file on disk, a streamed copy from S3."""
    if lake.is_local:
        return [Path(lake.path(file.path)) for file in files]
    directory.mkdir(parents=True, exist_ok=True)
    local = []
    for index, file in enumerate(files):
        target = directory / f"{index:05d}.json.gz"
        with lake.open_input(file.path) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)
        local.append(target)
    return local


def typed_batches(
    con: duckdb.DuckDBPyConnection, spec: IngestSpec, files: Sequence[LandedFile], local: Sequence[Path]
) -> pa.RecordBatchReader:
    """Every file through `read_json` and the typing projection, as Arrow batches in no set order.
    Step 1 without the spool: the Amplitude benchmark times it alone."""
    con.register(
        "files",
        pa.table(
            {
                "path": pa.array([str(path) for path in local], pa.string()),
                FILE: pa.array(range(len(files)), pa.int32()),
                FILE_NAME: pa.array([file.name for file in files], pa.string()),
            }
        ),
    )
    _register_functions(con, spec)
    relation = _raw_files_relation(spec, [str(path) for path in local])
    return con.sql(_typed_select(spec, relation, (FILE,))).to_arrow_reader(BATCH_ROWS)


def _type_files(
    con: duckdb.DuckDBPyConnection,
    spec: IngestSpec,
    lake: Lake,
    landing: Landing,
    local: Sequence[Path],
    spool: Path,
) -> None:
    """Step 1: the typed batches into `spool`, numbered, registered as `typed`."""
    import duckdb  # for its Error, loaded already with `con`: not at the top, as `scratch_duckdb` says

    try:
        result = typed_batches(con, spec, landing.files, local)
        row = 0
        schema = result.schema.append(pa.field(ROW, pa.int64()))
        with ipc.new_file(str(spool), schema, options=SPOOL_OPTIONS) as writer:
            for batch in result:
                numbers = pa.array(range(row, row + batch.num_rows), type=pa.int64())
                writer.write_batch(batch.append_column(ROW, numbers))
                row += batch.num_rows
    except duckdb.Error as error:
        # DuckDB's own message does not say which file is damaged, nor what to do about it.
        for file, path in zip(landing.files, local, strict=True):
            _check_gzip(lake, file, path)
        raise error
    con.register("typed", ds.dataset(str(spool), format="ipc"))


def _check_gzip(lake: Lake, file: LandedFile, path: Path) -> None:
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(FILE_CHUNK_BYTES):
                pass
    except (EOFError, gzip.BadGzipFile) as error:
        raise damaged_gzip_error(lake.uri(file.path), error) from error


def _good_rows_per_file(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    counts = con.sql(f"SELECT {FILE}, count(*) FILTER (WHERE NOT {BAD}) FROM typed GROUP BY ALL")
    return {index: good for index, good in counts.fetchall()}


_NON_SPACE = re.compile(rb"\S")


@dataclass(frozen=True)
class _Segment:
    """A run of a file's bytes, in order: whitespace-only lines, or one line to type."""

    data: bytes
    blank_lines: int
    """For a blank run, how many lines it holds; 0 for a line."""


def _file_segments(lake: Lake, file: LandedFile, path: Path) -> Iterator[list[_Segment]]:
    """The file's bytes as it decompresses, chunk by chunk, cut into blank runs and other lines.

    A run of whitespace-only lines (a flood of newlines) stays one segment found by a byte search in
    C, never split into lines in Python; only lines with content become segments of their own."""
    try:
        with gzip.open(path, "rb") as stream:
            carried = b""
            while chunk := stream.read(FILE_CHUNK_BYTES):
                data = carried + chunk
                cut = data.rfind(b"\n") + 1
                carried = data[cut:]
                if cut:
                    yield list(_segments(data[:cut]))
            if carried:
                yield list(_segments(carried))
    except (EOFError, gzip.BadGzipFile) as error:
        raise damaged_gzip_error(lake.uri(file.path), error) from error


def _segments(data: bytes) -> Iterator[_Segment]:
    position = 0
    while position < len(data):
        content = _NON_SPACE.search(data, position)
        start = (
            len(data) if content is None else max(position, data.rfind(b"\n", position, content.start()) + 1)
        )
        if start > position:
            # A file's last line may lack its newline: it is a line all the same.
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
        {"_index": pa.array(range(len(raw)), pa.int64()), "_text": pa.array(text, pa.string())}
    )


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    spec: IngestSpec,
    lake: Lake,
    dirty: list[tuple[LandedFile, Path, int]],
    partition: PartitionWriter,
    work: Path,
) -> int:
    """Copy the dirty files' bad lines, as received and in order, into the quarantine; how many."""
    held = work / "quarantine.jsonl"
    day_file = work / "quarantine.gz"
    total = 0
    with ExitStack() as stack:
        day_lines = stack.enter_context(gzip.open(day_file, "wb")) if spec.quarantine_file else None
        for file, path, good_rows in dirty:
            with held.open("wb") as bad_out:
                bad_lines = _bad_lines(con, spec, lake, file, path, bad_out)
            if file.lines - bad_lines != good_rows:
                raise UnreconciledFileError(
                    f"{file.name}: the landing counts {file.lines} lines, {bad_lines} are bad and typing "
                    f"kept {good_rows} rows, so {file.lines - bad_lines - good_rows} are unaccounted for; "
                    f"nothing of the day was written. {spec.unreconciled_hint}"
                )
            total += bad_lines
            if bad_lines and day_lines is not None:
                with held.open("rb") as source:
                    shutil.copyfileobj(source, day_lines, COPY_CHUNK_BYTES)
                if not _ends_with_newline(held):
                    day_lines.write(b"\n")  # one line per bad line, whichever file it ended
            elif bad_lines:
                # Named like the file without .gz: the lines are kept exactly as received, uncompressed.
                with (
                    held.open("rb") as source,
                    partition.open(
                        file.name.removesuffix(".gz"), lines=bad_lines, source_file=file.name
                    ) as target,
                ):
                    shutil.copyfileobj(source, target, COPY_CHUNK_BYTES)
        held.unlink(missing_ok=True)
    if total and spec.quarantine_file:
        with day_file.open("rb") as source, partition.open(spec.quarantine_file, lines=total) as target:
            shutil.copyfileobj(source, target, COPY_CHUNK_BYTES)
    day_file.unlink(missing_ok=True)
    return total


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as held:
        held.seek(-1, 2)
        return held.read(1) == b"\n"


def _bad_lines(
    con: duckdb.DuckDBPyConnection, spec: IngestSpec, lake: Lake, file: LandedFile, path: Path, out: IO[bytes]
) -> int:
    """Write the file's bad lines to `out` as received, in order; how many.

    Blank lines, where they are bad lines, are kept byte for byte but counted and copied a run at a
    time: a file of nothing but newlines costs a byte search, not a Python step per line."""
    typed = _typed_select(spec, _raw_lines_relation(spec, file.name), ("_index",), only_bad=True)
    query = f"SELECT _index FROM ({typed}) WHERE {BAD}"
    bad_lines = 0
    for segments in _file_segments(lake, file, path):
        lines = [segment.data for segment in segments if not segment.blank_lines]
        bad: set[int] = set()
        for first in range(0, len(lines), QUARANTINE_BATCH_LINES):
            con.register("lines", _lines_batch(lines[first : first + QUARANTINE_BATCH_LINES]))
            try:
                found = con.sql(query).to_arrow_table()["_index"].to_pylist()
            finally:
                con.unregister("lines")
            bad.update(first + index for index in found)
        index = 0
        for segment in segments:
            if segment.blank_lines:
                if spec.blank_lines_quarantined:
                    out.write(segment.data)
                    bad_lines += segment.blank_lines
                continue
            if index in bad:
                out.write(segment.data)
                bad_lines += 1
            index += 1
    return bad_lines


@dataclass(frozen=True)
class _Dropped:
    rows: pa.Array
    """`_row`s of the spool that are not output: bad rows and duplicates."""
    duplicates: int


def _drop_rows(con: duckdb.DuckDBPyConnection, spec: IngestSpec) -> _Dropped:
    """The bad rows and every good row whose key an earlier copy (by `first_by`, then file and row)
    already has, registered as `dropped`.

    Only rows whose key's 64-bit hash occurs twice are ranked: grouping integers holds far less memory
    than ranking every key string of the day, and the ranking itself stays exact on the keys.
    """
    key = identifier(spec.key)
    good = f"typed WHERE NOT {BAD}"
    order = ", ".join((*spec.first_by, FILE, ROW))
    duplicates = con.sql(
        f"SELECT {ROW} FROM {good} AND hash({key}) IN (SELECT hash({key}) FROM {good} GROUP BY 1 "
        f"HAVING count(*) > 1) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) > 1"
    ).to_arrow_table()[ROW]
    bad = con.sql(f"SELECT {ROW} FROM typed WHERE {BAD}").to_arrow_table()[ROW]
    rows = pa.chunked_array([*duplicates.chunks, *bad.chunks], pa.int64()).combine_chunks()
    con.register("dropped", pa.table({ROW: rows}))
    return _Dropped(rows=rows, duplicates=len(duplicates))


_KEPT = f"typed WHERE {ROW} NOT IN (SELECT {ROW} FROM dropped)"


def _summarise(
    con: duckdb.DuckDBPyConnection,
    spec: IngestSpec,
    day: str,
    landing: Landing,
    dirty_files: int,
    duplicates: int,
    quarantined: int,
) -> IngestSummary:
    time = identifier(spec.time_column)
    day_start = sql_text(f"{day} 00:00:00+00")
    per_bit = "".join(f", sum(({MALFORMED} >> {i}) & 1)" for i in range(len(spec.malformed)))
    ((rows, first, last, late, *per_column),) = con.sql(
        f"SELECT count(*), min({time}), max({time}), "
        f"count(*) FILTER (WHERE {time} < {day_start}::TIMESTAMPTZ){per_bit} FROM {_KEPT}"
    ).fetchall()
    event_types: list[tuple[str, int]] = []
    if spec.event_type_column:
        event_types = con.sql(
            f"SELECT coalesce({identifier(spec.event_type_column)}, '(none)'), count(*) FROM {_KEPT} "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    order = ", ".join(spec.order_by or (time, identifier(spec.key)))
    preview = con.sql(
        f"SELECT {', '.join(identifier(name) for name in spec.preview_columns)} FROM {_KEPT} "
        f"ORDER BY {order} LIMIT {PREVIEW_ROWS}"
    ).to_arrow_table()
    malformed = {name: int(n) for name, n in zip(spec.malformed, per_column, strict=True) if n}
    return IngestSummary(
        day=day, raw_version=landing.version, files=len(landing.files), raw_lines=landing.lines, rows=rows,
        duplicates=duplicates, quarantined=quarantined, malformed_by_column=malformed,
        min_event_time=first, max_event_time=last, late_events=late, dirty_files=dirty_files,
        event_type_counts=event_types, preview=preview.to_pylist(),
    )  # fmt: skip


def _ordered(con: duckdb.DuckDBPyConnection, spec: IngestSpec, work: Path) -> Path:
    """The kept rows in the spec's order, sorted by DuckDB (spilling) into a second spool."""
    path = work / "ordered.arrow"
    columns = ", ".join(identifier(name) for name in spec.schema.names)
    result = con.sql(f"SELECT {columns} FROM {_KEPT} ORDER BY {', '.join(spec.order_by)}").to_arrow_reader(
        BATCH_ROWS
    )
    with ipc.new_file(str(path), result.schema, options=SPOOL_OPTIONS) as writer:
        for batch in result:
            writer.write_batch(batch)
    return path


def _output_batches(
    spec: IngestSpec, work: Path, spool: Path, dropped: pa.Array | None
) -> Iterator[pa.RecordBatch]:
    """The spooled rows (minus `dropped`), in the spec's schema.

    Removes the work directory once read to the end or closed mid-way (`read_day` covers a reader
    dropped before its first batch).
    """
    try:
        with pa.OSFile(str(spool)) as file:
            typed = ipc.open_file(file)
            for index in range(typed.num_record_batches):
                batch = typed.get_batch(index)
                if dropped is not None and len(dropped):
                    batch = batch.filter(pc.invert(pc.is_in(batch[ROW], value_set=dropped)))
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(
                        [batch[f.name].cast(f.type) for f in spec.schema], schema=spec.schema
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
