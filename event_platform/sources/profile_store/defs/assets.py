"""`profile_store/events`: a day of Profile Store track events, pseudonymised at the edge, typed.

The work is in `landing.py` (and the client, the pseudonymiser, the transform); this module wires it
to Dagster and describes the result.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from event_platform import metadata, staging
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import raw_path
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.scratch import scratch_dir
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.defs.resources import ProfileStoreResource
from event_platform.sources.profile_store.transform import EVENTS_SCHEMA
from event_platform.staging_metadata import day_metadata

PREVIEW_COLUMNS = ("event_time", "event_type", "page_title", "country_code", "device_id")
"""Few enough columns for whole rows to fit the UI; the pseudonymised keys and JSON are in the table."""


@asset(
    key_prefix=["profile_store"],
    name="events",
    partitions_def=daily_partitions,
    **SOURCE_ASSET,
    group_name="profile_store",
    io_manager_key="io_manager",
    kinds={"python", "duckdb", "parquet"},
    description="Profile Store track events by EventTime (UTC day), read past the API's 10,000-record "
    "window, with User.Email, User.Name, RemoteAddress and any address inside free text replaced by "
    "keyed hashes (pii1:…) before landing in raw/profile_store/; typed (event_time as UTC timestamp, "
    "event_time_ticks at the vendor's 100 ns precision, payload as JSON text) and deduplicated on "
    "TrackId, or a content hash where it is empty.",
)
def events(
    context: AssetExecutionContext, profile_store: ProfileStoreResource, lake: LakeResource
) -> Iterator[Output[pa.RecordBatchReader]]:
    with only_outages_retry():
        day = context.partition_key
        store = lake.lake()
        client = profile_store.client()
        landed = landing.land_day(client, profile_store.pseudonymiser(), store, day)
        context.log.info(
            f"Landed {landed.events} events of {day} in {landed.pages} pages with {client.stats.requests} "
            f"requests ({client.stats.windows_split} window splits); the API reported "
            f"{client.stats.total_reported}."
        )
        with scratch_dir("profile-store-events") as work_dir:
            staged, stats = staging.stage_day(landing.STAGING, store, day, Path(work_dir))
            if stats.quarantined:
                context.log.warning(f"{stats.quarantined} event(s) of {day} were untypable: quarantined")
            reader = staging.deduplicate(landing.STAGING, staged, Path(work_dir), stats)
            # The IO manager consumes the reader while this generator is suspended, before the staging goes.
            yield Output(
                only_outages_retry_while_reading(reader),
                metadata=describe(landed, stats, store.uri(raw_path(landing.SOURCE_NAME, day))),
            )


def describe(landed: landing.Landing, stats: staging.DayStats, raw_uri: str) -> dict[str, MetadataValue]:
    return {
        # Safe to show: the preview is read back from the pseudonymised rows.
        **day_metadata(stats, EVENTS_SCHEMA, PREVIEW_COLUMNS),
        "total_reported": MetadataValue.int(landed.stats.total_reported or 0),
        "requests": MetadataValue.int(landed.stats.requests),
        "retries": MetadataValue.int(landed.stats.retries),
        "windows_split": MetadataValue.int(landed.stats.windows_split),
        "instants_read": MetadataValue.int(landed.stats.instants_read),
        "reading_time": metadata.duration(landed.seconds),
        "raw_pages": MetadataValue.int(landed.pages),
        "raw_size": metadata.size(landed.bytes),
        "raw_uri": MetadataValue.path(raw_uri),
    }
