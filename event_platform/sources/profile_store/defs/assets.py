"""`profile_store/events`: a day of Profile Store track events, pseudonymised at the edge, typed.

The work is in `landing.py` (and the client, the pseudonymiser, the transform); this module wires it
to Dagster and describes the result.
"""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from event_platform import metadata
from event_platform.ingest import IngestSummary, read_day
from event_platform.ingest_metadata import day_metadata
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import raw_path
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.defs.resources import ProfileStoreResource


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
) -> Output[pa.RecordBatchReader]:
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
        typed = read_day(landing.SPEC, store, day)
    if typed.summary.quarantined:
        context.log.warning(f"{typed.summary.quarantined} event(s) of {day} were untypable: quarantined")
    return Output(
        only_outages_retry_while_reading(typed.reader),
        metadata=describe(landed, typed.summary, store.uri(raw_path(landing.SOURCE_NAME, day))),
    )


def describe(landed: landing.Landing, summary: IngestSummary, raw_uri: str) -> dict[str, MetadataValue]:
    return {
        # Safe to show: the preview is read back from the pseudonymised rows.
        **day_metadata(summary, landing.SPEC),
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
