"""The warehouse assets through Dagster on small, hand-made source partitions shaped like the sources'
output: identity across sources, cross-day units, holdbacks, people in two variations, the attribution
window, absent sources, daily active users and the analysts' catalog."""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS
from event_platform.sources.profile_store.transform import EVENTS_SCHEMA as PROFILE_STORE_EVENTS
from event_platform.sources.tracking.landed import EVENTS_SCHEMA as TRACKING_EVENTS
from event_platform.warehouse.identity import IdentityMap
from event_platform_tests.conftest import table_counts
from event_platform_tests.defs.warehouse.conftest import (
    DAILY_WAREHOUSE,
    materialized_metadata,
    platform_assets,
    resources_at,
    run_platform,
)

EXPERIMENT = "7000000001"
CONTROL, TREATMENT = "7000001001", "7000001002"
DAY_1, DAY_2, DAY_9 = "2025-03-01", "2025-03-02", "2025-03-09"
PAGE_VIEW = "kinesinlms.course.content.page_view"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def decision(visitor: str, when: str, variation: str, *, holdback: bool = False) -> dict[str, Any]:
    return {
        "uuid": f"D-{visitor}-{when}".upper(),
        "timestamp": at(when),
        "process_timestamp": at(when),
        "visitor_id": visitor,
        "experiment_id": EXPERIMENT,
        "campaign_id": "7000000101",
        "variation_id": variation,
        "is_holdback": holdback,
    }


def conversion(visitor: str, when: str, name: str, revenue: int = 0) -> dict[str, Any]:
    return {
        "uuid": f"C-{visitor}-{when}-{name}",
        "timestamp": at(when),
        "process_timestamp": at(when),
        "visitor_id": visitor,
        "event_name": name,
        "revenue": revenue,
        "tags": [("sku", "1")],
    }


def tracking(user: str, when: str, event_type: str) -> dict[str, Any]:
    return {
        "uuid": f"T-{user}-{when}",
        "event_type": event_type,
        "time": at(when),
        "received_at": at(when),
        "anon_username": user,
        "course_slug": "intro-data",
        "event_data": '{"unit_display_name":"Intro"}',
    }


def profile_event(device: str, when: str) -> dict[str, Any]:
    return {
        "event_key": f"P-{device}-{when}",
        "track_id": f"P-{device}-{when}",
        "device_id": device,
        "event_type": "pageview",
        "event_time": at(when),
        "event_time_ticks": 0,
        "payload": '{"code":"x"}',
    }


def table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


SOURCES = {
    ("optimizely", "decisions"): {
        DAY_1: table(
            DECISIONS,
            [
                decision("alice", "2025-03-01T10:00:00", CONTROL),
                decision("bob", "2025-03-01T10:00:00", TREATMENT),
                decision("carol", "2025-03-01T10:00:00", CONTROL),
                decision("dave", "2025-03-01T10:00:00", TREATMENT, holdback=True),
                decision("frank", "2025-03-01T11:00:00", CONTROL),
                decision("gina", "2025-03-01T10:00:00", CONTROL),
                # A decision without a visitor cannot be a unit: skipped and counted.
                {**decision("nobody", "2025-03-01T10:00:00", CONTROL), "visitor_id": None},
            ],
        ),
        DAY_2: table(
            DECISIONS,
            [
                decision("alice", "2025-03-02T09:00:00", CONTROL),
                decision("carol", "2025-03-02T09:00:00", TREATMENT),
                decision("erin", "2025-03-02T08:00:00", TREATMENT),
            ],
        ),
        DAY_9: table(DECISIONS, []),
    },
    ("optimizely", "conversions"): {
        DAY_1: table(
            CONVERSIONS,
            [
                conversion("bob", "2025-03-01T09:00:00", "purchase", 4900),  # before bob's exposure
            ],
        ),
        DAY_2: table(
            CONVERSIONS,
            [
                conversion("alice", "2025-03-02T12:00:00", "purchase", 4900),
                conversion("carol", "2025-03-02T12:00:00", "purchase", 4900),  # carol saw two variations
            ],
        ),
        DAY_9: table(
            CONVERSIONS,
            [
                conversion("gina", "2025-03-09T12:00:00", "purchase", 4900),  # 8 days after exposure
            ],
        ),
    },
    # Tracking runs only from the second day: the first day's events must not wait for it.
    ("tracking", "events"): {
        DAY_2: table(TRACKING_EVENTS, [tracking("erin", "2025-03-02T09:30:00", PAGE_VIEW)]),
        DAY_9: table(TRACKING_EVENTS, []),
    },
    ("profile_store", "events"): {
        DAY_1: table(PROFILE_STORE_EVENTS, [profile_event("DEVICE-1", "2025-03-01T08:00:00")]),
        DAY_2: table(PROFILE_STORE_EVENTS, []),
        DAY_9: table(PROFILE_STORE_EVENTS, []),
    },
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each day with the sources that have it (tracking has nothing on the first), then the marts."""
    resources = resources_at(tmp_path_factory.mktemp("platform"))
    runs = []
    for day in (DAY_1, DAY_2, DAY_9):
        present = {key: {day: days[day]} for key, days in SOURCES.items() if day in days}
        runs += run_platform(resources, present, [day], marts=False)
    runs += run_platform(resources, {}, [])
    return {"resources": resources, "runs": runs}


def results_rows(platform: dict[str, Any], table: str = "experiment_exploration") -> list[dict[str, Any]]:
    """Every event type as a metric (the exploration), so each source's events can be followed."""
    lake: Lake = platform["resources"]["lake"].lake()
    return delta.read(lake, f"warehouse/{table}").to_table().to_pylist()


def find(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [row for row in rows if all(row[k] == v for k, v in where.items())]


def test_units_count_each_visitor_once_and_leave_out_holdbacks_and_switchers(
    platform: dict[str, Any],
) -> None:
    rows = results_rows(platform)
    [control] = find(rows, variation_id=CONTROL, metric="conversion_rate", metric_event="purchase")
    [treatment] = find(rows, variation_id=TREATMENT, metric="conversion_rate", metric_event="purchase")
    # alice (two days), frank, gina in control; bob, erin in treatment.
    assert (control["units"], treatment["units"]) == (3, 2)
    assert control["is_control"] and not treatment["is_control"]
    assert (control["excluded_visitors"], treatment["excluded_visitors"]) == (1, 0)  # carol
    assert (control["holdback_visitors"], treatment["holdback_visitors"]) == (0, 1)  # dave


def test_conversions_count_only_after_the_first_exposure_and_within_the_window(
    platform: dict[str, Any],
) -> None:
    rows = results_rows(platform)
    purchases = {
        row["variation_id"]: row["conversions"]
        for row in find(rows, metric="conversion_rate", metric_event="purchase", metric_source="optimizely")
    }
    # alice converts; bob bought before his exposure; gina 8 days after hers; carol is excluded.
    assert purchases == {CONTROL: 1, TREATMENT: 0}
    [revenue] = find(rows, variation_id=CONTROL, metric="revenue_per_visitor", metric_source="optimizely")
    assert revenue["value"] == pytest.approx(49.0 / 3)


def test_tracking_events_join_experiments_through_the_identity_map(platform: dict[str, Any]) -> None:
    rows = results_rows(platform)
    [erin] = find(rows, variation_id=TREATMENT, metric="conversion_rate", metric_event=PAGE_VIEW)
    assert erin["metric_source"] == "tracking"
    assert erin["conversions"] == 1
    assert erin["value"] == pytest.approx(0.5)


def test_absent_sources_do_not_block_a_day(platform: dict[str, Any]) -> None:
    first_day = platform["runs"][0]
    metadata = materialized_metadata(first_day, dg.AssetKey(["warehouse", "events"]))
    assert metadata["sources_absent"] == ["amplitude", "tracking"]
    assert table_counts(metadata["rows_per_source"]) == {"optimizely": 1, "profile_store": 1}
    exposures = materialized_metadata(first_day, dg.AssetKey(["warehouse", "experiment_exposures"]))
    assert exposures["skipped_decisions"] == 1
    assert exposures["holdback_visitors"] == 1


def test_person_keys_are_stable_pseudonyms_shared_across_sources(platform: dict[str, Any]) -> None:
    lake: Lake = platform["resources"]["lake"].lake()
    events = delta.read(lake, "warehouse/events", ["2025-03-02"]).to_table().to_pylist()
    keys = {(row["source"], row["person_key"]) for row in events}
    erin_exposure = delta.read(lake, "warehouse/experiment_exposures", ["2025-03-02"]).to_table().to_pylist()
    erin_key = next(row["person_key"] for row in erin_exposure if row["visitor_id"] == "erin")
    assert ("tracking", erin_key) in keys
    assert all(len(key) == 32 and "erin" not in key and "alice" not in key for _, key in keys)
    with duckdb.connect() as connection:
        [(expected,)] = connection.execute("SELECT left(sha256('user:erin'), 32)").fetchall()
    assert erin_key == expected
    assert IdentityMap().source_rules("tracking")[0].column == "anon_username"


def test_daily_active_users_per_source_and_overall(platform: dict[str, Any]) -> None:
    second_day = platform["runs"][1]
    metadata = materialized_metadata(second_day, dg.AssetKey(["warehouse", "daily_active_users"]))
    # alice and carol converted on Optimizely, erin was tracked: three people, counted once overall.
    assert metadata["active_users"] == 3
    assert table_counts(metadata["active_users_per_source"]) == {"optimizely": 2, "tracking": 1}


def test_without_metadata_or_metrics_file_the_results_keep_ids_units_and_allocation(
    platform: dict[str, Any],
) -> None:
    rows = results_rows(platform, "experiment_results")
    assert [(r["variation_id"], r["units"], r["metadata"], r["metric_name"]) for r in rows] == [
        (CONTROL, 3, "missing", None),
        (TREATMENT, 2, "missing", None),
    ]
    assert rows[0]["note"].startswith("no metrics: Optimizely's metadata has no such experiment")


def test_catalog_makes_every_table_queryable_from_warehouse_duckdb(platform: dict[str, Any]) -> None:
    path = Path(platform["resources"]["warehouse"].path)
    with duckdb.connect(str(path), read_only=True) as connection:
        results = connection.execute("FROM experiment_results SELECT count(*)").fetchone()
        events = connection.execute("SELECT count(*), count(DISTINCT date) FROM events").fetchone()
        views = {
            row[0]
            for row in connection.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
    assert results is not None and results[0] > 0
    assert events == (6, 3)
    assert {
        "experiment_results",
        "experiment_exploration",
        "events",
        "optimizely_decisions",
        "tracking_events",
        "daily_active_users",
    } <= views


def test_checks_pass_on_consistent_results(platform: dict[str, Any]) -> None:
    final = platform["runs"][-1]
    evaluations = {e.check_name: e for e in final.get_asset_check_evaluations()}
    assert evaluations["units_in_every_variation"].passed
    assert evaluations["no_sample_ratio_mismatch"].passed
    assert evaluations["sandbox_planted_truth"].passed
    assert evaluations["metric_events_seen"].passed
    assert not evaluations["experiment_metadata_present"].passed  # no metadata in this lake: a warning


def test_a_range_run_of_the_warehouse_matches_one_run_per_day(
    platform: dict[str, Any], tmp_path: Path
) -> None:
    """A single-run backfill: the daily models over DAY_1..DAY_2 in one run, each day written with its
    own metadata, give exactly the partitions of one run per day."""
    resources = resources_at(tmp_path)
    for day in (DAY_1, DAY_2):
        present = {key: {day: days[day]} for key, days in SOURCES.items() if day in days}
        landed = [dg.AssetKey(list(key)) for key in present]
        assert dg.materialize(
            platform_assets(present), resources=resources, partition_key=day, selection=landed
        ).success
    warehouse_keys = [asset.key for asset in DAILY_WAREHOUSE]
    result = dg.materialize(
        platform_assets({}),
        resources=resources,
        selection=warehouse_keys,
        tags={"dagster/asset_partition_range_start": DAY_1, "dagster/asset_partition_range_end": DAY_2},
    )

    assert result.success
    per_run: Lake = platform["resources"]["lake"].lake()
    in_one_run: Lake = resources["lake"].lake()
    for key in warehouse_keys:
        events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
        assert sorted(e.partition for e in events) == [DAY_1, DAY_2]
        for event in events:
            path, day = "/".join(key.path), [str(event.partition)]
            expected = sorted(map(repr, delta.read(per_run, path, day).to_table().to_pylist()))
            got = sorted(map(repr, delta.read(in_one_run, path, day).to_table().to_pylist()))
            assert got == expected, path
            assert event.materialization.metadata["dagster/row_count"].value == len(expected), path
    dau = materialized_metadata(result, dg.AssetKey(["warehouse", "daily_active_users"]), DAY_2)
    assert dau["active_users"] == 3
