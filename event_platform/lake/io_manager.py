"""The lake as Dagster sees it: a resource for raw access and one IO manager for every typed table.

Every asset's output is a Delta Lake table at `<asset key path>/` (see `lake.delta`). An asset returns a
`pyarrow.Table` or a `pyarrow.RecordBatchReader` for its partition; the IO manager streams it into one
Delta commit that replaces that partition (`date=<key>`). An asset that computes a range of partitions
in one run (a single-run backfill) returns `PartitionStreams`, one stream per day, each its own commit,
written one after another. Downstream assets receive a lazy `pyarrow.dataset.Dataset` of the table's
current snapshot, only the partitions they asked for, with the partition key as a `date` column, so
DuckDB or Arrow read only what a query needs; `partitions_of` narrows such a dataset to some of its days.

Why our own IO manager and not `dagster-deltalake` (0.29): that one writes a run's partitions as one
write of its whole time window, needs the partition column in every asset's output, reports no
per-partition rows, bytes, files or version, and writes a table's first partition without a predicate,
so two runs of a backfill starting a table together can replace each other's data. What is left here is
the Dagster glue; delta-rs does the table format (`lake.delta`).
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

from event_platform import metadata, settings
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY, partition_path
from event_platform.metadata import column_schema

ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"
"""Input metadata flag: read the partitions that exist and skip the ones never materialized."""


class LakeResource(ConfigurableResource):
    """The lake root: a directory or `s3://bucket/prefix`, with an optional S3 endpoint (moto, MinIO)."""

    root: str
    s3_endpoint_url: str | None = None

    def lake(self) -> Lake:
        return Lake.from_uri(self.root, s3_endpoint_url=self.s3_endpoint_url)


def lake_resource() -> LakeResource:
    """The lake the environment names (EVENT_PLATFORM_LAKE, AWS_ENDPOINT_URL_S3)."""
    return LakeResource(root=settings.Platform.read().lake, s3_endpoint_url=settings.S3.read().endpoint_url)


class ParquetLakeIOManager(ConfigurableIOManager):
    """Stores every asset as a Delta Lake table of Parquet files (the name predates the table format)."""

    lake: LakeResource

    def handle_output(
        self, context: OutputContext, obj: pa.Table | pa.RecordBatchReader | PartitionStreams
    ) -> None:
        lake = self.lake.lake()
        table = table_path(context)
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        commit = {"dagster_run_id": context.run_id}
        if isinstance(obj, PartitionStreams):
            written = write_partition_streams(lake, table, keys, obj, commit_metadata=commit)
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
        written = delta.write(
            lake,
            table,
            obj.to_reader() if isinstance(obj, pa.Table) else obj,
            partition=keys[0] if keys else None,
            commit_metadata=commit,
        )
        context.add_output_metadata(
            {
                **written_metadata(lake, partition_path(table, keys[0]) if keys else table, written),
                "dagster/column_schema": column_schema(obj.schema),
            }
        )

    def load_input(self, context: InputContext) -> ds.Dataset:
        lake = self.lake.lake()
        table = table_path(context)
        if not context.has_asset_partitions:
            return delta.read(lake, table)
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS))
        try:
            return delta.read(lake, table, context.asset_partition_keys, allow_missing=allow_missing)
        except delta.MissingPartitionsError as missing:
            # A Failure, which Dagster reports as it is: the sentence, not a wrapped exception.
            upstream = context.asset_key.to_user_string()
            raise Failure(
                description=f"{upstream} {missing.where}: materialize {upstream} for {missing.shown} first.",
                allow_retries=False,
            ) from None


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
    lake: Lake,
    table: str,
    keys: Collection[str],
    output: PartitionStreams,
    *,
    commit_metadata: Mapping[str, Any] | None = None,
) -> list[str]:
    """Write each stream of `output` to its partition of `table`, a commit each; the keys written."""
    expected, written = set(keys), []
    for key, stream in output.streams:
        if key not in expected or key in written:
            raise ValueError(
                f"{table}: a stream for partition {key!r}, which this run "
                f"{'already wrote' if key in written else 'does not target'}."
            )
        if not stream.schema.equals(output.schema):
            raise ValueError(f"{table} {key}: stream schema {stream.schema} is not {output.schema}")
        stored = delta.write(lake, table, stream, partition=key, commit_metadata=commit_metadata)
        written.append(key)
        if output.on_written is not None:
            output.on_written(key, written_metadata(lake, partition_path(table, key), stored))
    if missing := sorted(expected - set(written)):
        raise ValueError(f"{table}: no stream for partitions {', '.join(missing)} of this run.")
    return written


def written_metadata(lake: Lake, location: str, written: delta.Written) -> dict[str, Any]:
    """What a materialization reports of its commit: rows, bytes, files, the Delta version, where."""
    return {
        "dagster/row_count": written.rows,
        "size": metadata.size(written.bytes),
        "files": MetadataValue.int(written.files),
        "delta_version": MetadataValue.int(written.version),
        "uri": MetadataValue.path(lake.uri(location)),
    }


def partitions_of(dataset: ds.Dataset, keys: Collection[str]) -> ds.Dataset:
    """The part of a loaded input that lies in the partitions `keys`, still lazy; no files if none."""
    if not isinstance(dataset, ds.FileSystemDataset) or not dataset.files:
        return dataset
    fragments = list(dataset.get_fragments(filter=pc.field(PARTITION_KEY).isin(sorted(keys))))
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
