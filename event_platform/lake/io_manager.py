"""The lake as Dagster sees it: a resource for raw access and one Parquet IO manager for every table.

An asset returns a `pyarrow.Table` or a `pyarrow.RecordBatchReader` for its partition; the IO manager
streams it into an atomic partition (`<asset key path>/date=<key>/`). An asset that computes a range
of partitions in one run (a single-run backfill) returns `PartitionStreams`, one stream per day,
written one after another. Downstream assets receive a lazy `pyarrow.dataset.Dataset` over the
partitions they asked for, with the partition key as a `date` column, so DuckDB or Arrow read only what
a query needs; `partitions_of` narrows such a dataset to some of its days.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    Failure,
    InputContext,
    MetadataValue,
    OutputContext,
)

from event_platform import metadata
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY, partition_path
from event_platform.lake.parquet import write_parquet_partition
from event_platform.metadata import column_schema

ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"
"""Input metadata flag: read the partitions that exist and skip the ones never materialized."""


class LakeResource(ConfigurableResource):
    """The lake root: a directory or `s3://bucket/prefix`, with an optional S3 endpoint (moto, MinIO)."""

    root: str
    s3_endpoint_url: str | None = None

    def lake(self) -> Lake:
        return Lake.from_uri(self.root, s3_endpoint_url=self.s3_endpoint_url)


class ParquetLakeIOManager(ConfigurableIOManager):
    lake: LakeResource

    def handle_output(
        self, context: OutputContext, obj: pa.Table | pa.RecordBatchReader | PartitionStreams
    ) -> None:
        lake = self.lake.lake()
        table = table_path(context)
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        if isinstance(obj, PartitionStreams):
            written = write_partition_streams(lake, table, keys, obj)
            context.add_output_metadata(
                {
                    "partitions": MetadataValue.int(len(written)),
                    "uri": MetadataValue.path(lake.uri(table)),
                    "dagster/column_schema": column_schema(obj.schema),
                }
            )
            return
        if not isinstance(obj, pa.Table | pa.RecordBatchReader):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; the lake stores a "
                "pyarrow.Table, a pyarrow.RecordBatchReader or PartitionStreams."
            )
        if len(keys) > 1:
            raise ValueError(
                f"{context.asset_key.to_user_string()} ran for {len(keys)} partitions but returned one "
                "table: a run over a range returns PartitionStreams, one stream per partition."
            )
        directory = partition_path(table, keys[0]) if keys else table
        rows, size = write_parquet_partition(
            lake, directory, obj.to_reader() if isinstance(obj, pa.Table) else obj
        )
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "size": metadata.size(size),
                "uri": MetadataValue.path(lake.uri(directory)),
                "dagster/column_schema": column_schema(obj.schema),
            }
        )

    def load_input(self, context: InputContext) -> ds.Dataset:
        lake = self.lake.lake()
        table = table_path(context)
        if not context.has_asset_partitions:
            return lake.parquet_dataset(lake.current_files(table))
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS))
        files: list[str] = []
        for key in context.asset_partition_keys:
            found = lake.current_files(partition_path(table, key))
            if not found and not allow_missing:
                # A Failure, which Dagster reports as it is: the sentence, not a wrapped exception.
                upstream = context.asset_key.to_user_string()
                raise Failure(
                    description=f"{upstream} has no partition {key} in {lake.uri(table)}: materialize "
                    f"{upstream} for {key} first.",
                    allow_retries=False,
                )
            files.extend(found)
        return lake.parquet_dataset(files, partition_base=table)


def table_path(context: InputContext | OutputContext) -> str:
    return "/".join(context.asset_key.path)


@dataclass(frozen=True)
class PartitionStreams:
    """The output of a run over several partitions: one stream per partition key, made on demand.

    `streams` is iterated once, while the IO manager writes: each partition is written before the next
    is computed, so a 90-day range holds one day at a time. Every key of the run must come exactly once.
    `on_written(key, metadata)` receives each partition's rows, bytes and location; an asset passes it
    to `context.add_asset_metadata(..., partition_key=key)`, so every partition's materialization
    reports its own numbers.
    """

    schema: pa.Schema
    streams: Iterable[tuple[str, pa.RecordBatchReader]]
    on_written: Callable[[str, Mapping[str, Any]], None] | None = None


def write_partition_streams(
    lake: Lake, table: str, keys: Collection[str], output: PartitionStreams
) -> list[str]:
    """Write each stream of `output` to its partition of `table`; the keys written, in order."""
    expected, written = set(keys), []
    for key, stream in output.streams:
        if key not in expected or key in written:
            raise ValueError(
                f"{table}: a stream for partition {key!r}, which this run "
                f"{'already wrote' if key in written else 'does not target'}."
            )
        if not stream.schema.equals(output.schema):
            raise ValueError(f"{table} {key}: stream schema {stream.schema} is not {output.schema}")
        directory = partition_path(table, key)
        rows, size = write_parquet_partition(lake, directory, stream)
        written.append(key)
        if output.on_written is not None:
            output.on_written(
                key,
                {
                    "dagster/row_count": rows,
                    "size": metadata.size(size),
                    "uri": MetadataValue.path(lake.uri(directory)),
                },
            )
    if missing := sorted(expected - set(written)):
        raise ValueError(f"{table}: no stream for partitions {', '.join(missing)} of this run.")
    return written


def partitions_of(dataset: ds.Dataset, keys: Collection[str]) -> ds.Dataset:
    """The part of a loaded input that lies in the partitions `keys`, still lazy; no files if none."""
    if not isinstance(dataset, ds.FileSystemDataset) or not dataset.files:
        return dataset
    fragments = list(dataset.get_fragments(filter=pc.field(PARTITION_KEY).isin(sorted(keys))))
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
