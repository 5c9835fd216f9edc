"""Materialize `tracking/events` for a day whenever the collector has landed new files for it."""

import json

from dagster import AssetKey, RunRequest, SensorEvaluationContext, SensorResult, sensor

from event_platform.lake.io_manager import LakeResource
from event_platform.partitions import daily_partitions
from event_platform.sources.tracking import landed


@sensor(
    name="tracking_landed_files",
    asset_selection=[AssetKey(["tracking", "events"])],
    minimum_interval_seconds=60,
    description="Requests a day of tracking/events when its landed manifest has a new version "
    "(cursor: the last version seen per day). Today's partition opens once the day is over.",
)
def tracking_landed_files(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    open_days = set(daily_partitions.get_partition_keys())
    changed = landed.new_landings(lake.lake(), seen, open_days)
    seen.update(changed)
    return SensorResult(
        run_requests=[RunRequest(partition_key=day, run_key=f"{day}@{version}") for day, version in changed],
        cursor=json.dumps(seen, sort_keys=True),
    )
