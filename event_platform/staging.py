"""What every source that lands gzip JSON lines shares besides the ingestion itself (`ingest.py`): reading
the landed lines back, naming a damaged landed file, and a scratch DuckDB that stays within its memory.
No Dagster here.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path
from event_platform.scratch import scratch_dir

if TYPE_CHECKING:
    import duckdb

MEMORY_LIMIT = "1GB"


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
    # Imported when a connection opens: duckdb would add 0.15 CPU-s to every definitions load.
    import duckdb

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
