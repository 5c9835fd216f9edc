"""`tracking/events`: the day's landed tracking events, typed and deduplicated on `uuid`.

The work is in `landed.py`; this module wires it to Dagster and describes the result.
"""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from event_platform.ingest import IngestSummary, read_day
from event_platform.ingest_metadata import day_metadata
from event_platform.lake.io_manager import LakeResource
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.sources.tracking import landed


@asset(
    key_prefix=["tracking"],
    name="events",
    partitions_def=daily_partitions,
    **SOURCE_ASSET,
    group_name="tracking",
    io_manager_key="io_manager",
    kinds={"python", "duckdb", "parquet"},
    description="Learning-platform tracking events, by the day the collector received them (UTC), "
    "typed (time and received_at as UTC timestamps, event_data as JSON text) and deduplicated on uuid. "
    "Lines that cannot be typed are quarantined in quarantine/tracking/events/.",
)
def events(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.RecordBatchReader]:
    with only_outages_retry():
        day = context.partition_key
        # The day is over (its partition is open): its commit records fold into one index for readers.
        landed.compact_day(lake.lake(), day)
        typed = read_day(landed.SPEC, lake.lake(), day)
    summary = typed.summary
    if summary.files == 0:
        context.log.warning(f"No tracking events landed for {day}: the partition is empty.")
    if summary.quarantined:
        context.log.warning(f"{summary.quarantined} landed line(s) of {day} were untypable: quarantined")
    return Output(only_outages_retry_while_reading(typed.reader), metadata=describe(summary))


def describe(summary: IngestSummary) -> dict[str, MetadataValue]:
    # `landed_events`: the name this asset reported before every source shared one path.
    return {**day_metadata(summary, landed.SPEC), "landed_events": MetadataValue.int(summary.raw_lines)}
