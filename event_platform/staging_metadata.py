"""What a materialization of a staged day (`event_platform.staging`) reports, the same for every source."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import MetadataValue, TableRecord, TableSchema

from event_platform.markdown import markdown_table
from event_platform.staging import DayStats


def day_metadata(stats: DayStats, preview_columns: Sequence[str]) -> dict[str, MetadataValue]:
    """Rows, duplicates, quarantined lines, time range, rows per event type and a preview of the day."""
    time_range = (
        f"{stats.first_time.isoformat()} .. {stats.last_time.isoformat()}"
        if stats.first_time and stats.last_time
        else "no events"
    )
    return {
        "rows": MetadataValue.int(stats.rows),
        "duplicates": MetadataValue.int(stats.duplicates),
        "quarantined": MetadataValue.int(stats.quarantined),
        "time_range": MetadataValue.text(time_range),
        "event_types": MetadataValue.table(
            [TableRecord({"event_type": name, "events": count}) for name, count in stats.event_type_counts],
            schema=TableSchema.from_name_type_dict({"event_type": "string", "events": "int"}),
        ),
        "preview": MetadataValue.md(markdown_table(stats.preview, preview_columns)),
    }
