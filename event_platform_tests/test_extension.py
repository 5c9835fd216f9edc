"""Adding a source is one folder and one registration: the fifth source in `fifth_source/` (a second LMS)
is registered here and nowhere else, and must reach the schedules and freshness, the warehouse's events
and identity map, the catalog in warehouse.duckdb, the CLI and the generated settings, through Dagster
as the platform runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pytest

from event_platform import cli, definitions, settings
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.sources import registry
from event_platform.warehouse import catalog, metrics
from event_platform.warehouse.identity import IdentityRule, default_rules

FIFTH = "event_platform_tests.fifth_source"
DAY = "2026-06-01"
LMS_EVENTS = dg.AssetKey(["lms", "events"])
WAREHOUSE_EVENTS = dg.AssetKey(["warehouse", "events"])
CATALOG = dg.AssetKey(["warehouse", "catalog"])


@pytest.fixture
def with_fifth_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.Definitions]:
    monkeypatch.setenv("EVENT_PLATFORM_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("EVENT_PLATFORM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    with registry.registered(FIFTH):
        yield definitions.build()


def test_the_fifth_source_joins_the_schedules_freshness_catalog_identity_and_cli(
    with_fifth_source: dg.Definitions,
) -> None:
    defs = with_fifth_source
    schedule = next(s for s in defs.schedules or [] if s.name == "lms_daily_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    graph = defs.resolve_asset_graph()
    assert graph.get(LMS_EVENTS).freshness_policy is not None
    assert LMS_EVENTS in graph.get(WAREHOUSE_EVENTS).parent_keys
    assert LMS_EVENTS in graph.get(CATALOG).parent_keys
    assert dg.AssetCheckKey(LMS_EVENTS, "not_empty") in graph.asset_check_keys
    assert "lms_events" in [table.name for table in catalog.catalog_tables()]
    assert IdentityRule("lms", "learner_id", "user") in default_rules()
    assert "lms" in metrics.source_names()
    assert "LMS_EXPORT_URL=http://127.0.0.1:8500" in settings.env_example()
    assert cli.parser().parse_args(["lms", "courses"]).action == "courses"


def test_the_extension_leaves_the_four_sources_once_unregistered(with_fifth_source: dg.Definitions) -> None:
    with registry.registered():
        assert "lms" in [source.name for source in registry.sources()]


def test_four_sources_without_the_extension() -> None:
    assert [source.name for source in registry.sources()] == [
        "amplitude",
        "optimizely",
        "profile_store",
        "tracking",
    ]


def test_a_day_of_the_fifth_source_reaches_warehouse_events_and_the_catalog(
    with_fifth_source: dg.Definitions, tmp_path: Path
) -> None:
    defs = with_fifth_source
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    resources = dict(defs.resources or {})
    instance = dg.DagsterInstance.ephemeral()
    # As the platform runs them: the source's day, then the warehouse's day (different backfill policies).
    day = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(LMS_EVENTS),
        partition_key=DAY,
        resources=resources,
        instance=instance,
    )
    warehouse_day = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(WAREHOUSE_EVENTS),
        partition_key=DAY,
        resources=resources,
        instance=instance,
    )
    assert day.success and warehouse_day.success
    checks = {evaluation.check_name: evaluation for evaluation in day.get_asset_check_evaluations()}
    assert checks["not_empty"].passed

    events = delta.read(Lake.from_uri(str(tmp_path / "lake")), "warehouse/events", [DAY]).to_table()
    lms = events.filter(pc.field("source") == "lms")
    assert sorted(lms.column("event_type").to_pylist()) == ["lesson_completed", "lesson_started"]
    # Both events are one person, resolved through the lms identity rule.
    assert len(set(lms.column("person_key").to_pylist()) - {None}) == 1

    published = dg.materialize(assets, selection=[CATALOG], resources=resources, instance=instance)
    assert published.success
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute("SELECT count(*) FROM lms_events").fetchone()
        comment = connection.execute(
            "SELECT comment FROM duckdb_views() WHERE view_name = 'lms_events'"
        ).fetchone()
    assert rows == (2,)
    assert comment is not None and "second LMS" in comment[0]
