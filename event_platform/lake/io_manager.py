"""The lake as Dagster sees it: a resource for raw access and one Parquet IO manager for every table.

An asset returns a `pyarrow.Table` or a `pyarrow.RecordBatchReader`; the IO manager streams it into an
atomic partition (`<asset key path>/date=<key>/`). Downstream assets receive a lazy
`pyarrow.dataset.Dataset` over the partitions they asked for, with the partition key as a `date`
column, so DuckDB or Arrow read only what a query needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import PARTITION_KEY, partition_path
from event_platform.lake.parquet import write_parquet_partition

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

    def handle_output(self, context: OutputContext, obj: pa.Table | pa.RecordBatchReader) -> None:
        if not isinstance(obj, pa.Table | pa.RecordBatchReader):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; the lake stores a "
                "pyarrow.Table or a pyarrow.RecordBatchReader."
            )
        lake = self.lake.lake()
        table = table_path(context)
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        if len(keys) > 1:
            written = [
                write_parquet_partition(lake, partition_path(table, key), batches)
                for key, batches in split_by_partition(obj, keys)
            ]
            rows, size = sum(w[0] for w in written), sum(w[1] for w in written)
            location = lake.uri(table)
        else:
            directory = partition_path(table, keys[0]) if keys else table
            rows, size = write_parquet_partition(
                lake, directory, obj.to_reader() if isinstance(obj, pa.Table) else obj
            )
            location = lake.uri(directory)
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "bytes": MetadataValue.int(size),
                "files": MetadataValue.int(max(len(keys), 1)),
                "uri": MetadataValue.path(location),
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
                raise FileNotFoundError(
                    f"{context.asset_key.to_user_string()} has no partition {key} in {lake.uri(table)}: "
                    "materialize it first."
                )
            files.extend(found)
        return lake.parquet_dataset(files, partition_base=table)


def table_path(context: InputContext | OutputContext) -> str:
    return "/".join(context.asset_key.path)


def split_by_partition(
    obj: pa.Table | pa.RecordBatchReader, keys: Sequence[str]
) -> Iterator[tuple[str, pa.RecordBatchReader]]:
    """For a run over a range of partitions: one stream per key, chosen by the rows' `date` column.

    A range run hands over a Table (it is the asset's choice to hold the range in memory); each key in
    the range gets a partition, empty if no row carries it.
    """
    table = obj if isinstance(obj, pa.Table) else obj.read_all()
    if PARTITION_KEY not in table.column_names:
        raise ValueError(f"A run over several partitions must return a '{PARTITION_KEY}' column to split by.")
    dates = pc.cast(table[PARTITION_KEY], pa.string())
    for key in keys:
        yield key, table.filter(pc.equal(dates, key)).to_reader()


def column_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=f.name, type=str(f.type)) for f in schema])
