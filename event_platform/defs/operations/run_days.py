"""Every run says which days it covers, in the runs list.

A run of one partition carries Dagster's `dagster/partition` tag, which the UI shows on the run. A run
of an asset that computes ranges (the warehouse's daily models, whether launched from the UI, by a
backfill or by the automation) carries only the range's start and end tags, even for a single day,
and the runs list hides them; this sensor adds a `days` tag naming them as each such run starts.
"""

import dagster as dg

DAYS_TAG = "days"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def days_of(tags: dict[str, str]) -> str | None:
    """`2026-11-29 … 2026-11-30` (or `2026-11-29`) for a run over a range; None for any other run."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        return None
    return start if start == end else f"{start} … {end}"


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    name="run_days_tags",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Tags each run over a range of days with `days: first … last`, so the runs list shows "
    "which days a warehouse range run covers (a one-day run shows its `dagster/partition`).",
)
def run_days_tags(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    days = days_of(dict(run.tags))
    if days is not None and DAYS_TAG not in run.tags:
        context.instance.add_run_tags(run.run_id, {DAYS_TAG: days})
