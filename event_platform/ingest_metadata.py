"""What a materialization of an ingested day (`event_platform.ingest`) reports, the same for every source.

The day's row count is the IO manager's `dagster/row_count`; this adds what ingestion knows about it:
the reconciliation (landed lines == rows + duplicates + quarantined lines) and what the rows look like.
"""

from __future__ import annotations

import pyarrow as pa
from dagster import MetadataValue

from event_platform import metadata
from event_platform.ingest import IngestSpec, IngestSummary


def day_metadata(summary: IngestSummary, spec: IngestSpec) -> dict[str, MetadataValue]:
    """Landed files and lines, duplicates, quarantined lines, malformed and late values, the time
    range, rows per event type and a preview of the day."""
    values: dict[str, MetadataValue] = {
        "landed_files": MetadataValue.int(summary.files),
        "landed_lines": MetadataValue.int(summary.raw_lines),
        "duplicates": MetadataValue.int(summary.duplicates),
        "quarantined": MetadataValue.int(summary.quarantined),
        "reconciles": MetadataValue.bool(summary.reconciles),
        "files_typed_line_by_line": MetadataValue.int(summary.dirty_files),
        "late_events": MetadataValue.int(summary.late_events),
        "late_event_share": metadata.share(summary.late_share),
        "preview": metadata.table(
            summary.preview, pa.schema([spec.schema.field(n) for n in spec.preview_columns])
        ),
    }
    if spec.malformed:
        values["malformed_values"] = MetadataValue.int(summary.malformed_values)
        values["malformed_values_per_column"] = metadata.counts(
            summary.malformed_by_column, label="column", count="values"
        )
    if spec.event_type_column:
        values["events_per_type"] = metadata.counts(
            dict(summary.event_type_counts), label="event_type", count="events"
        )
    if summary.min_event_time is not None and summary.max_event_time is not None:
        values["first_event_time"] = MetadataValue.timestamp(summary.min_event_time)
        values["last_event_time"] = MetadataValue.timestamp(summary.max_event_time)
    return values
