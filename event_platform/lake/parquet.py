"""Parquet partitions in the lake, written as a stream: plain pyarrow, no Dagster.

The IO manager stores assets' outputs with it; code that runs outside Dagster (the CLI, benchmarks)
writes the very same files with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from event_platform.lake.filesystem import Lake

PARQUET_FILE = "part-00000.parquet"
ROW_GROUP_BYTES = 32 * 1024 * 1024
"""Batches are gathered into row groups of about this size: big enough for fast scans, small enough
that a writer never holds much of a day in memory."""


def write_parquet_partition(lake: Lake, directory: str, batches: pa.RecordBatchReader) -> tuple[int, int]:
    """Stream batches into one Parquet file of a new partition version; returns (rows, bytes)."""
    rows = 0
    with lake.write_partition(directory) as partition:
        with (
            partition.open(PARQUET_FILE) as stream,
            pq.ParquetWriter(stream, batches.schema, compression="zstd") as writer,
        ):
            for group in row_groups(batches):
                writer.write_table(group)
                rows += group.num_rows
        partition.metadata["rows"] = rows
    return rows, sum(entry.bytes for entry in partition.files)


def row_groups(batches: pa.RecordBatchReader) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    pending_bytes = 0
    for batch in batches:
        pending.append(batch)
        pending_bytes += batch.nbytes
        if pending_bytes >= ROW_GROUP_BYTES:
            yield pa.Table.from_batches(pending, schema=batches.schema)
            pending, pending_bytes = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema=batches.schema)
