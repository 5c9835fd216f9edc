"""A fresh in-memory DuckDB per computation, and the SQL models it runs.

Each partition run opens its own connection with a memory limit and a private spill directory, so
any number of partition runs can compute at once (principle 5). SQL lives in `*.sql` beside this
module; `{{name}}` placeholders take fragments built in Python (identity expressions, source unions),
while values travel as bound `$parameters`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from event_platform.warehouse.identity import person_key_sql

SQL_DIRECTORY = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
BATCH_ROWS = 131_072


@dataclass(frozen=True)
class EngineSettings:
    memory_limit: str = "2GB"
    threads: int = 2


def load_sql(name: str | Path, **fragments: str) -> str:
    """The text of the warehouse's `<name>.sql` (or of the file at a path, e.g. a source's
    `warehouse_events.sql`) with its `{{placeholders}}` filled; a missing fragment is an error."""
    path = name if isinstance(name, Path) else SQL_DIRECTORY / f"{name}.sql"
    text = path.read_text()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fragments:
            raise KeyError(f"{path.name} needs the fragment {{{{{key}}}}}")
        return fragments[key]

    return _PLACEHOLDER.sub(fill, text)


def has_rows_source(dataset: ds.Dataset | pa.Table | None) -> bool:
    """Whether an input is there to read: the IO manager hands over a dataset of no files for a
    partition range nobody materialized."""
    if dataset is None:
        return False
    if isinstance(dataset, ds.FileSystemDataset):
        return bool(dataset.files)
    return True


class Engine:
    """One DuckDB connection: register inputs by name, run the models, stream results out.

    Use it as a context manager. `stream` hands the connection over to the returned reader, which
    closes it once read to the end, because the IO manager reads an asset's output after it returns.
    """

    def __init__(self, settings: EngineSettings = EngineSettings()) -> None:
        # Imported when a connection opens: duckdb would add 0.15 CPU-s to every definitions load.
        import duckdb

        self._spill = tempfile.TemporaryDirectory(prefix="warehouse-duckdb-")
        self.connection = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": settings.memory_limit,
                "threads": settings.threads,
                "temp_directory": self._spill.name,
                "preserve_insertion_order": False,
            },
        )
        self._streaming = False
        # A progress bar is for people at a terminal; in runs and logs it is noise.
        self.connection.execute("SET enable_progress_bar = false")
        # The same pseudonymous key wherever a model derives one.
        self.connection.execute(f"CREATE MACRO person_key(reference) AS {person_key_sql('reference')}")

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._streaming or exc_info[0] is not None:
            self.close()

    def close(self) -> None:
        self.connection.close()
        self._spill.cleanup()

    def register(self, name: str, data: ds.Dataset | pa.Table) -> None:
        self.connection.register(name, data)

    def register_or_empty(self, name: str, data: ds.Dataset | pa.Table | None, schema: pa.Schema) -> bool:
        """Register `data`, or an empty table of `schema` when there is nothing to read; True if data."""
        present = has_rows_source(data)
        self.register(name, data if present else schema.empty_table())  # type: ignore[arg-type]
        return present

    def sql(self, text: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.connection.sql(text, params=dict(params) if params else None)

    def create_table(self, table: str, text: str, params: Mapping[str, Any] | None = None) -> None:
        """Compute a model into a temporary table (spilling to disk past the memory limit), so it can be
        summarised for metadata and then streamed out without computing it twice."""
        self.connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS {text}", dict(params) if params else None
        )

    def create_file_table(self, table: str, text: str, params: Mapping[str, Any] | None = None) -> None:
        """Compute a large intermediate into a Parquet file in the spill directory and name it as a view:
        DuckDB then streams it from disk for each use instead of holding it in memory (a temporary table
        lives in memory up to the memory limit, and a query over it holds a second copy)."""
        path = Path(self._spill.name) / f"{table}.parquet"
        self.connection.execute(
            f"COPY ({text}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)", dict(params) if params else None
        )
        self.connection.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS FROM read_parquet('{path}')")

    def create_view(self, view: str, text: str) -> None:
        self.connection.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {text}")

    def rows(self, text: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """A small result (aggregates, a preview) as dicts."""
        return self.sql(text, params).to_arrow_table().to_pylist()

    def stream(self, text: str, schema: pa.Schema) -> pa.RecordBatchReader:
        """A query's rows as batches cast to `schema` (the table's stored shape); closes the engine when
        read to the end."""
        source = self.sql(text).to_arrow_reader(BATCH_ROWS)
        self._streaming = True

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in source:
                    yield batch.select(schema.names).cast(schema)
            finally:
                self.close()

        return pa.RecordBatchReader.from_batches(schema, batches())
