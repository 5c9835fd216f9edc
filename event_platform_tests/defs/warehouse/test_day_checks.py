"""Warehouse days through Dagster: a day without source data never looks like a good day, each check
result belongs to its day even in a range run, and a backfill of old source days reaches the warehouse.
"""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from event_platform.defs import automation
from event_platform.defs.warehouse import day_checks
from event_platform.partitions import daily_partitions
from event_platform.sources.tracking.landed import EVENTS_SCHEMA as TRACKING_EVENTS
from event_platform_tests.defs.warehouse.conftest import DAILY_WAREHOUSE, platform_assets, resources_at

pytestmark = pytest.mark.integration

WITH_ROWS, EMPTY, WITHOUT_SOURCES = "2025-03-01", "2025-03-02", "2025-03-03"
TRACKING = ("tracking", "events")
EXPOSURES = dg.AssetKey(["warehouse", "experiment_exposures"])
NEEDS_DECISIONS = {
    EXPOSURES,
    dg.AssetKey(["warehouse", "experiment_units"]),
    dg.AssetKey(["warehouse", "experiment_unit_state"]),
    dg.AssetKey(["warehouse", "experiment_results_daily"]),
}
WAREHOUSE_KEYS = [asset.key for asset in DAILY_WAREHOUSE if asset.key not in NEEDS_DECISIONS]
"""Tracking only, so no exposures (they read Optimizely's decisions of the day, which they require) and
nothing built on them."""


def tracked(day: str, learners: int) -> pa.Table:
    at = dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")
    rows = [
        {
            "uuid": f"{day}-{n}",
            "event_type": "kinesinlms.course.content.page_view",
            "time": at,
            "received_at": at,
            "anon_username": f"learner-{n}",
            "event_data": "{}",
        }
        for n in range(learners)
    ]
    return pa.Table.from_pylist(rows, schema=TRACKING_EVENTS)


def check_records(instance: dg.DagsterInstance, model: str) -> dict[str, Any]:
    """The model's has_source_data executions by day (the latest of each), as the instance stores them."""
    key = dg.AssetCheckKey(dg.AssetKey(["warehouse", model]), day_checks.HAS_SOURCE_DATA)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    latest: dict[str, Any] = {}
    for record in records:  # newest first
        latest.setdefault(record.partition, record)
    return latest


def test_a_day_without_source_data_is_never_shown_as_a_good_day(tmp_path: Path) -> None:
    resources = resources_at(tmp_path)
    sources = {TRACKING: {WITH_ROWS: tracked(WITH_ROWS, 3), EMPTY: tracked(EMPTY, 0)}}
    assets = platform_assets(sources)
    with dg.instance_for_test() as instance:
        for day in (WITH_ROWS, EMPTY):
            assert dg.materialize(
                assets,
                resources=resources,
                instance=instance,
                partition_key=day,
                selection=[dg.AssetKey(list(TRACKING))],
            ).success
        # The warehouse's three days in one run, as a backfill runs them.
        result = dg.materialize(
            assets,
            resources=resources,
            instance=instance,
            selection=WAREHOUSE_KEYS,
            tags={
                "dagster/asset_partition_range_start": WITH_ROWS,
                "dagster/asset_partition_range_end": WITHOUT_SOURCES,
            },
        )
        assert result.success

        events = check_records(instance, "events")
        users = check_records(instance, "daily_active_users")
        runs = {record.run_id for record in [*events.values(), *users.values()]}

    assert runs == {result.run_id}
    for records in (events, users):
        assert set(records) == {WITH_ROWS, EMPTY, WITHOUT_SOURCES}, "one result per day, none without"
        outcome = {
            day: (record.status.value, record.evaluation.severity.value) for day, record in records.items()
        }
        assert outcome == {
            WITH_ROWS: ("SUCCEEDED", "ERROR"),
            EMPTY: ("FAILED", "WARN"),
            WITHOUT_SOURCES: ("FAILED", "ERROR"),
        }
    description = events[WITHOUT_SOURCES].evaluation.description
    assert f"No source has landed {WITHOUT_SOURCES}" in description and "tracking/events" in description
    # The empty days are still materialized: the failed check on the day is what the UI shows.
    materialized = {
        event.partition
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["warehouse", "events"])
    }
    assert materialized == {WITH_ROWS, EMPTY, WITHOUT_SOURCES}


def test_a_source_backfill_older_than_any_window_is_followed_by_its_warehouse_days(tmp_path: Path) -> None:
    """The real warehouse assets with their automation conditions: tracking lands two days of last
    month after the warehouse was built for yesterday, the conditions request those warehouse days
    (and hold the catalog back), and running what they request materializes them."""
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    old_days = [(yesterday - dt.timedelta(days=back)).isoformat() for back in (31, 30)]
    days = [*old_days, yesterday.isoformat()]
    assert daily_partitions.start.date().isoformat() <= old_days[0]
    resources = resources_at(tmp_path)
    sources = {TRACKING: {day: tracked(day, 2) for day in days}}
    defs = automation.apply_automation(dg.Definitions(assets=platform_assets(sources), resources=resources))
    assets = list(defs.assets or [])
    warehouse_events = dg.AssetKey(["warehouse", "events"])
    catalog = dg.AssetKey(["warehouse", "catalog"])

    def run(selection: list[dg.AssetKey], day: str | None, instance: dg.DagsterInstance) -> None:
        assert dg.materialize(
            assets, resources=resources, instance=instance, partition_key=day, selection=selection
        ).success

    with dg.instance_for_test() as instance:
        run([dg.AssetKey(list(TRACKING)), *WAREHOUSE_KEYS], yesterday.isoformat(), instance)
        run([catalog], None, instance)
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)

        for day in old_days:  # the backfill of the sources
            run([dg.AssetKey(list(TRACKING))], day, instance)
        requested = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
        # Yesterday too: its events resolve people through the identity links of the 30 days before.
        assert requested.get_requested_partitions(warehouse_events) == set(days)
        assert requested.get_requested_partitions(catalog) == set()

        for day in days:  # what the automation sensor would launch
            keys = [key for key in WAREHOUSE_KEYS if day in requested.get_requested_partitions(key)]
            run(keys, day, instance)
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=requested.cursor)
        assert after.get_requested_partitions(catalog) == {None}
        for key in WAREHOUSE_KEYS:
            assert set(old_days) <= instance.get_materialized_partitions(key), key
        # No day without sources was created on the way (identity links reach 30 days ahead).
        assert instance.get_materialized_partitions(warehouse_events) == set(days)
        # Exposures too: the metrics file may assign an experiment by a source's events (issue 14).
        assert requested.get_requested_partitions(EXPOSURES) == set(days)
