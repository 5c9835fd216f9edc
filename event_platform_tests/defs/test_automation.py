"""Schedules, jobs, automation conditions and freshness policies of `defs/automation.py`.

The selections and conditions are tested on a small graph shaped like the platform's (daily sources in
their groups, a daily warehouse asset with a check, an unpartitioned mart), so these tests say what the
rules do whatever the source folders hold; `test_real_definitions_*` check them on the real graph.
"""

import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from event_platform import policies, settings
from event_platform.defs import automation
from event_platform.partitions import daily_partitions

AMPLITUDE = dg.AssetKey(["amplitude", "events"])
OPTIMIZELY = dg.AssetKey(["optimizely", "decisions"])
WAREHOUSE_EVENTS = dg.AssetKey(["warehouse", "events"])
CATALOG = dg.AssetKey(["warehouse", "catalog"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily_asset(key: dg.AssetKey, deps: list[dg.AssetKey] | None = None) -> dg.AssetsDefinition:
    @dg.asset(key=key, group_name=key.path[0], partitions_def=daily_partitions, deps=deps or [])
    def day(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"day": context.partition_key})

    return day


@dg.asset(
    key=CATALOG, group_name="warehouse", deps=[WAREHOUSE_EVENTS, AMPLITUDE, OPTIMIZELY], pool="warehouse"
)
def catalog() -> None:
    """A stand-in mart: unpartitioned, reading every day of the sources and the warehouse."""


@dg.asset_check(asset=WAREHOUSE_EVENTS)
def warehouse_events_checked() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def platform_like_defs() -> dg.Definitions:
    assets = [
        daily_asset(AMPLITUDE),
        daily_asset(OPTIMIZELY),
        daily_asset(WAREHOUSE_EVENTS, deps=[AMPLITUDE, OPTIMIZELY]),
        catalog,
    ]
    return automation.apply_automation(
        dg.Definitions.merge(
            dg.Definitions(assets=assets, asset_checks=[warehouse_events_checked]),
            automation.definitions(),
        )
    )


def evaluate_schedule(group: str, tick: datetime) -> list[dg.RunRequest]:
    schedule = next(s for s in automation.source_schedules() if s.name == f"{group}_daily_schedule")
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        return list(schedule(context))


# ---- Schedules -------------------------------------------------------------------------------------


def test_amplitude_tick_requests_the_previous_day_and_the_lookback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_PLATFORM_LOOKBACK_DAYS", raising=False)
    requests = evaluate_schedule("amplitude", at("2026-11-02T03:30:00"))
    assert [r.partition_key for r in requests] == ["2026-10-31", "2026-11-01"]


def test_each_tick_has_its_own_run_keys_so_tomorrow_reruns_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_PLATFORM_LOOKBACK_DAYS", raising=False)
    today = evaluate_schedule("tracking", at("2026-11-02T00:15:00"))
    tomorrow = evaluate_schedule("tracking", at("2026-11-03T00:15:00"))
    assert today[-1].partition_key == tomorrow[0].partition_key == "2026-11-01"
    assert today[-1].run_key != tomorrow[0].run_key


@pytest.mark.parametrize(
    ("lookback", "expected"),
    [("0", ["2026-11-01"]), ("3", ["2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01"])],
)
def test_lookback_setting_widens_each_tick(
    monkeypatch: pytest.MonkeyPatch, lookback: str, expected: list[str]
) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_LOOKBACK_DAYS", lookback)
    requests = evaluate_schedule("profile_store", at("2026-11-02T01:00:00"))
    assert [r.partition_key for r in requests] == expected


def test_a_tick_just_after_midnight_requests_the_day_that_just_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_LOOKBACK_DAYS", "0")
    assert [r.partition_key for r in evaluate_schedule("tracking", at("2027-01-01T00:15:00"))] == [
        "2026-12-31"
    ]


def test_lookback_stops_at_the_first_partition() -> None:
    first = daily_partitions.start
    assert automation.partition_keys_for_tick(first.replace(day=first.day + 1), 5) == [
        first.date().isoformat()
    ]


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_a_bad_lookback_names_the_setting(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_LOOKBACK_DAYS", bad)
    with pytest.raises(ValueError, match="EVENT_PLATFORM_LOOKBACK_DAYS"):
        settings.Operations.read()


def test_schedules_follow_the_vendors_latency() -> None:
    crons = {s.name: s.cron_schedule for s in automation.source_schedules()}
    assert crons == {
        # Amplitude's day is exportable from D+1 02:00 UTC: 03:30 leaves a margin.
        "amplitude_daily_schedule": "30 3 * * *",
        "profile_store_daily_schedule": "0 1 * * *",
        "tracking_daily_schedule": "15 0 * * *",
    }
    assert all(s.execution_timezone == "UTC" for s in automation.source_schedules())
    # Optimizely's export is picked up by its own sensor, not on a clock.
    assert not any("optimizely" in name for name in crons)


# ---- Jobs and selections ---------------------------------------------------------------------------


def test_daily_sources_runs_every_daily_source_asset_and_daily_warehouse_the_models_with_their_checks(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    defs = platform_like_defs()
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("instance"))) as instance:
        sources = defs.resolve_job_def("daily_sources").execute_in_process(
            partition_key="2026-11-01", instance=instance
        )
        warehouse = defs.resolve_job_def("daily_warehouse").execute_in_process(
            partition_key="2026-11-01", instance=instance
        )
    assert sources.success and warehouse.success
    assert {e.asset_key for e in sources.get_asset_materialization_events()} == {AMPLITUDE, OPTIMIZELY}
    assert {e.asset_key for e in warehouse.get_asset_materialization_events()} == {WAREHOUSE_EVENTS}
    checked = [e.asset_check_key for e in warehouse.get_asset_check_evaluations()]
    assert checked == [warehouse_events_checked.check_key]


def test_warehouse_marts_selects_only_the_unpartitioned_warehouse_assets() -> None:
    graph = platform_like_defs().resolve_asset_graph()
    assert automation.WAREHOUSE_MARTS.resolve(graph) == {CATALOG}
    assert automation.daily_assets_of("amplitude").resolve(graph) == {AMPLITUDE}


def test_no_job_mixes_backfill_policies_and_loading_warns_of_nothing() -> None:
    """A job of the sources' day-per-run and the warehouse's ranges runs everything a day per run, and
    Dagster says so on every load; and no selection of ours leans on a beta or preview parameter.

    The load runs in a fresh process, as `dagster dev` loads it: pytest resets warning filters per test."""
    from event_platform.definitions import defs

    loaded = defs()
    graph = loaded.resolve_asset_graph()
    # Dagster's implicit `__ASSET_JOB` holds every asset; UI launches subset it, and it never warns.
    for job in [job for job in loaded.resolve_all_job_defs() if not job.name.startswith("__")]:
        keys = job.asset_layer.selected_asset_keys
        assert len({graph.get(key).backfill_policy for key in keys}) <= 1, job.name
    load = "from event_platform.definitions import defs; defs().resolve_all_job_defs()"
    loading = subprocess.run(
        [sys.executable, "-W", "default", "-c", load], capture_output=True, text=True, check=True
    )
    assert "Warning" not in loading.stderr, loading.stderr


# ---- Automation conditions and freshness -----------------------------------------------------------


def test_apply_automation_attaches_conditions_and_freshness() -> None:
    graph = platform_like_defs().resolve_asset_graph()
    assert graph.get(AMPLITUDE).automation_condition is None
    assert graph.get(WAREHOUSE_EVENTS).automation_condition is not None
    assert graph.get(CATALOG).automation_condition == automation.WAREHOUSE_MART_CONDITION
    assert graph.get(AMPLITUDE).freshness_policy == automation.freshness_policies()["amplitude"]
    assert graph.get(CATALOG).freshness_policy == automation.freshness_policies()["warehouse"]


def test_an_asset_keeps_its_own_condition_and_policy() -> None:
    own_condition = dg.AutomationCondition.on_cron("0 9 * * *")
    own_policy = dg.FreshnessPolicy.time_window(fail_window=automation.timedelta(hours=2))
    spec = dg.AssetSpec(
        CATALOG, group_name="warehouse", automation_condition=own_condition, freshness_policy=own_policy
    )
    applied = automation.with_automation(spec)
    assert (applied.automation_condition, applied.freshness_policy) == (own_condition, own_policy)


def land(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day))


def test_a_warehouse_day_runs_when_any_source_lands_and_again_for_each_later_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sources are optional to the warehouse: it never waits for all of them (one may never land)."""
    monkeypatch.delenv("EVENT_PLATFORM_LOOKBACK_DAYS", raising=False)
    defs = platform_like_defs()
    now = at("2026-11-02T04:00:00")
    with dg.instance_for_test() as instance:
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
        assert settled.get_requested_partitions(WAREHOUSE_EVENTS) == set(), "nothing landed yet"

        land(instance, AMPLITUDE, "2026-11-01")
        first = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=settled.cursor
        )
        assert first.get_requested_partitions(WAREHOUSE_EVENTS) == {"2026-11-01"}

        land(instance, WAREHOUSE_EVENTS, "2026-11-01")  # the requested run
        built = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=first.cursor
        )
        assert built.get_requested_partitions(WAREHOUSE_EVENTS) == set()

        land(instance, OPTIMIZELY, "2026-11-01")
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=built.cursor
        )
        assert second.get_requested_partitions(WAREHOUSE_EVENTS) == {"2026-11-01"}


def test_a_relanded_lookback_day_reruns_the_warehouse_and_then_the_mart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EVENT_PLATFORM_LOOKBACK_DAYS", raising=False)
    defs = platform_like_defs()
    now = at("2026-11-02T04:00:00")
    with dg.instance_for_test() as instance:
        for day in ("2026-10-31", "2026-11-01"):
            for key in (AMPLITUDE, OPTIMIZELY, WAREHOUSE_EVENTS):
                land(instance, key, day)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=CATALOG))
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)

        # The Amplitude tick re-lands yesterday's D-1 (the look-back): its warehouse day follows...
        land(instance, AMPLITUDE, "2026-10-31")
        rerun = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=settled.cursor
        )
        assert rerun.get_requested_partitions(WAREHOUSE_EVENTS) == {"2026-10-31"}
        assert rerun.get_requested_partitions(CATALOG) == set()

        # ...and once that day is rebuilt, the mart (a day and a mart never share a run).
        land(instance, WAREHOUSE_EVENTS, "2026-10-31")
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=rerun.cursor
        )
        assert after.get_requested_partitions(CATALOG) == {None}
        assert after.get_requested_partitions(WAREHOUSE_EVENTS) == set()


def test_a_backfill_of_old_source_days_rebuilds_those_warehouse_days_and_then_the_catalog() -> None:
    """Any day, not only the latest: a source backfill of last month reaches the warehouse, and the
    catalog publishes only once the warehouse has those days too."""
    defs = platform_like_defs()
    now = at("2026-11-02T04:00:00")
    old_days = ["2026-10-01", "2026-10-02"]
    with dg.instance_for_test() as instance:
        for key in (AMPLITUDE, OPTIMIZELY, WAREHOUSE_EVENTS):
            land(instance, key, "2026-11-01")
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=CATALOG))
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)

        for day in old_days:
            land(instance, AMPLITUDE, day)
        backfilled = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=settled.cursor
        )
        assert backfilled.get_requested_partitions(WAREHOUSE_EVENTS) == set(old_days)
        # The catalog would publish the sources' new days beside a warehouse without them: it waits
        # (and the next ticks find the warehouse's run in progress).
        assert backfilled.get_requested_partitions(CATALOG) == set()

        for day in old_days:
            land(instance, WAREHOUSE_EVENTS, day)
        built = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=now, cursor=backfilled.cursor
        )
        assert built.get_requested_partitions(CATALOG) == {None}
        assert built.get_requested_partitions(WAREHOUSE_EVENTS) == set()


def test_the_automation_sensor_is_declared_running() -> None:
    sensor = automation.automation_sensor
    assert sensor.name == "default_automation_condition_sensor"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_source_retry_policy_backs_off_exponentially_with_jitter() -> None:
    policy = policies.SOURCE_RETRY_POLICY
    assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
    assert policy.max_retries >= 1


# ---- The real graph --------------------------------------------------------------------------------


def test_real_definitions_jobs_cover_the_platform() -> None:
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    daily = automation.DAILY_ASSETS.resolve(graph)
    expected_daily = {
        dg.AssetKey(path.split("/"))
        for path in (
            "amplitude/events",
            "optimizely/decisions",
            "optimizely/conversions",
            "optimizely/experiments",
            "optimizely/experiment_metrics",
            "profile_store/events",
            "tracking/events",
            "warehouse/events",
            "warehouse/experiment_exposures",
            "warehouse/experiment_conversions",
            "warehouse/daily_active_users",
        )
    }
    assert expected_daily <= daily
    assert automation.WAREHOUSE_MARTS.resolve(graph) == {
        dg.AssetKey(["warehouse", "experiment_results"]),
        dg.AssetKey(["warehouse", "experiment_exploration"]),
        dg.AssetKey(["warehouse", "catalog"]),
    }


def test_real_definitions_carry_the_automation() -> None:
    from event_platform.definitions import defs

    graph = automation.apply_automation(defs()).resolve_asset_graph()
    for key in automation.DAILY_ASSETS.resolve(graph) | automation.WAREHOUSE_MARTS.resolve(graph):
        node = graph.get(key)
        assert node.freshness_policy is not None, key
        if node.group_name == "warehouse":
            assert node.automation_condition is not None, key


def test_every_source_asset_retries_and_backfills_per_day_while_the_warehouse_takes_ranges() -> None:
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    assets = {key: graph.get(key).assets_def for key in graph.get_all_asset_keys()}
    for key in automation.DAILY_ASSETS.resolve(graph):
        node = graph.get(key)
        if node.group_name == automation.WAREHOUSE_GROUP:
            assert node.backfill_policy == policies.RANGE_BACKFILL_POLICY, key
        else:
            assert node.backfill_policy == policies.PER_DAY_BACKFILL_POLICY, key
            assert assets[key].op.retry_policy == policies.SOURCE_RETRY_POLICY, key


def test_a_missing_setting_fails_at_once_instead_of_retrying() -> None:
    assert not settings.MissingSettingsError("Amplitude is not configured").allow_retries
