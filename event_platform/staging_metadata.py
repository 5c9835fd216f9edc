"""What a materialization of a staged day (`event_platform.staging`) reports, the same for every source.

The day's row count is the IO manager's `dagster/row_count`; this adds what staging knows about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from dagster import MetadataValue

from event_platform import metadata
from event_platform.staging import DayStats


def day_metadata(
    stats: DayStats, schema: pa.Schema, preview_columns: Sequence[str]
) -> dict[str, MetadataValue]:
    """Duplicates, quarantined lines, the time range, rows per event type and a preview of the day."""
    metadata_: dict[str, MetadataValue] = {
        "duplicates": MetadataValue.int(stats.duplicates),
        "quarantined": MetadataValue.int(stats.quarantined),
        "events_per_type": metadata.counts(dict(stats.event_type_counts), label="event_type", count="events"),
        "preview": metadata.table(stats.preview, pa.schema([schema.field(name) for name in preview_columns])),
    }
    if stats.first_time and stats.last_time:
        metadata_["first_event_time"] = MetadataValue.timestamp(stats.first_time)
        metadata_["last_event_time"] = MetadataValue.timestamp(stats.last_time)
    return metadata_
