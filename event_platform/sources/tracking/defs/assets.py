"""`tracking/events`: the day's landed tracking events, typed and deduplicated on `uuid`.

The work is in `landed.py`; this module wires it to Dagster and describes the result.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from event_platform import staging
from event_platform.lake.io_manager import LakeResource
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.scratch import scratch_dir
from event_platform.sources.tracking import landed
from event_platform.staging_metadata import day_metadata

PREVIEW_COLUMNS = ("time", "event_type", "course_slug", "event_data")
"""Few enough columns for whole rows to fit the UI; the table itself has the rest."""


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
def events(context: AssetExecutionContext, lake: LakeResource) -> Iterator[Output[pa.RecordBatchReader]]:
    with only_outages_retry():
        day = context.partition_key
        # The day is over (its partition is open): its commit records fold into one index for readers.
        landed.compact_day(lake.lake(), day)
        with scratch_dir("tracking-events") as work_dir:
            staged, stats = staging.stage_day(landed.STAGING, lake.lake(), day, Path(work_dir))
            if stats.landed_files == 0:
                context.log.warning(f"No tracking events landed for {day}: the partition is empty.")
            if stats.quarantined:
                context.log.warning(
                    f"{stats.quarantined} landed line(s) of {day} were untypable: quarantined"
                )
            reader = staging.deduplicate(landed.STAGING, staged, Path(work_dir), stats)
            # The IO manager consumes the reader while this generator is suspended, before the staging goes.
            yield Output(only_outages_retry_while_reading(reader), metadata=describe(stats))


def describe(stats: staging.DayStats) -> dict[str, MetadataValue]:
    return {
        **day_metadata(stats, landed.EVENTS_SCHEMA, PREVIEW_COLUMNS),
        "landed_files": MetadataValue.int(stats.landed_files),
        "landed_events": MetadataValue.int(stats.landed_events),
    }
