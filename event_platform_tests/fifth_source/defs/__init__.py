"""The fifth source's Dagster objects: a day of learner events, and its `not_empty` check."""

import datetime as dt

import dagster as dg
import pyarrow as pa

from event_platform.defs.empty_days import not_empty_check
from event_platform.partitions import daily_partitions
from event_platform.policies import SOURCE_ASSET
from event_platform_tests.fifth_source import SOURCE

EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("learner_id", pa.string()),
        ("course", pa.string()),
    ]
)


@dg.asset(
    **SOURCE_ASSET,
    key=["lms", "events"],
    group_name=SOURCE.name,
    partitions_def=daily_partitions,
    description=SOURCE.tables[0].description,
)
def events(context: dg.AssetExecutionContext) -> pa.Table:
    day = dt.datetime.fromisoformat(context.partition_key).replace(tzinfo=dt.UTC)
    return pa.table(
        {
            "event_id": ["lms-1", "lms-2"],
            "event_type": ["lesson_started", "lesson_completed"],
            "occurred_at": [day + dt.timedelta(hours=9), day + dt.timedelta(hours=10)],
            "learner_id": ["learner-7", "learner-7"],
            "course": ["algebra", "algebra"],
        },
        schema=EVENTS_SCHEMA,
    )


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[events], asset_checks=[not_empty_check(SOURCE, "events")])
