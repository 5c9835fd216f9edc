"""amplitude/raw_export and amplitude/events: one UTC day of the Export API per daily partition.

`raw_export` lands the day's export members byte-identical under raw/amplitude/date=D/ (landing.py);
`events` types them into Parquet through the IO manager (transform.py, on the shared ingestion path),
quarantining bad lines under quarantine/amplitude/events/date=D/. Both only wire resources to those
modules and describe the result.
"""

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, asset

from event_platform import metadata
from event_platform.ingest_metadata import day_metadata
from event_platform.lake.io_manager import LakeResource
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    failing_plainly,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.scratch import scratch_dir
from event_platform.sources.amplitude.defs.checks import EVENTS, RAW_EXPORT
from event_platform.sources.amplitude.defs.resources import AmplitudeResource
from event_platform.sources.amplitude.landing import DayNotReadyError, LandingResult, land_export
from event_platform.sources.amplitude.transform import SOURCE_NAME, SPEC, TransformSummary, read_events


@asset(
    key=RAW_EXPORT,
    partitions_def=daily_partitions,
    **SOURCE_ASSET,
    group_name=SOURCE_NAME,
    kinds={"amplitude"},
    description="The day's Export API members (window T00..T23 by server_upload_time), byte-identical, "
    "under raw/amplitude/date=D/; the manifest counts each member's lines.",
)
def raw_export(
    context: AssetExecutionContext, amplitude: AmplitudeResource, lake: LakeResource
) -> MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    with only_outages_retry(), failing_plainly(DayNotReadyError), scratch_dir("amplitude-export") as tmp_dir:
        landed = land_export(
            amplitude.client(),
            day,
            lake.lake(),
            pseudonymiser=amplitude.pseudonymiser(),
            tmp_dir=Path(tmp_dir),
        )
    context.log.info("Landed %d members (%d lines) of %s in %d requests", landed.files, landed.lines, day,
                     landed.requests)  # fmt: skip
    return MaterializeResult(metadata=landing_metadata(landed))


@asset(
    key=EVENTS,
    deps=[raw_export],
    partitions_def=daily_partitions,
    **SOURCE_ASSET,
    group_name=SOURCE_NAME,
    io_manager_key="io_manager",
    kinds={"duckdb", "parquet"},
    description="Typed Amplitude events of the landed day, one row per uuid (the first upload wins); lines "
    "that cannot be typed are kept byte-for-byte under quarantine/amplitude/events/date=D/.",
)
def events(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.RecordBatchReader]:
    # A day whose raw export never landed: the error names the day and the asset to materialize first.
    with only_outages_retry(), failing_plainly(FileNotFoundError):
        typed = read_events(lake.lake(), context.partition_key)
    summary = typed.summary
    if summary.quarantined:
        context.log.warning(
            "Quarantined %d lines of %s that could not be typed", summary.quarantined, summary.day
        )
    return Output(only_outages_retry_while_reading(typed.reader), metadata=events_metadata(summary))


def landing_metadata(landed: LandingResult) -> dict[str, Any]:
    return {
        "files": MetadataValue.int(landed.files),
        "size": metadata.size(landed.bytes),
        "lines": MetadataValue.int(landed.lines),
        "uncompressed_size": metadata.size(landed.uncompressed_bytes),
        "zip_members": MetadataValue.int(landed.zip_members),
        "archives": MetadataValue.int(landed.archives),
        "requests": MetadataValue.int(landed.requests),
        "windows_split": MetadataValue.int(landed.windows_split),
        "downloaded": metadata.size(landed.bytes_downloaded),
        "window": MetadataValue.text(f"{landed.window_start}..{landed.window_end}"),
        "uri": MetadataValue.path(landed.uri),
    }


def events_metadata(summary: TransformSummary) -> dict[str, Any]:
    """What typing found; the rows themselves are the IO manager's `dagster/row_count`."""
    return {
        **day_metadata(summary, SPEC),
        # The names this asset reported before every source shared one path, for what still reads them.
        "raw_files": MetadataValue.int(summary.files),
        "raw_lines": MetadataValue.int(summary.raw_lines),
        "quarantined_lines": MetadataValue.int(summary.quarantined),
    }
