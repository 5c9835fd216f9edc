"""When things run: the jobs, schedules, automation conditions and policies that span sources.

Selections are written against what an asset *is* (time-partitioned or not, its group), never as a
list of keys, so an asset added to a source folder joins its source's schedule, the `daily_sources`
job and the freshness and automation rules without an edit here.

How a day flows:
- each scheduled source runs on D+1 once its vendor has finished day D (its registration's `schedule`), and
  also re-runs the `EVENT_PLATFORM_LOOKBACK_DAYS` days before D, for data that arrives late;
  Optimizely E3 has no schedule: its own sensor watches the bucket;
- the daily warehouse assets follow by automation condition: a partition runs whenever an upstream
  partition it reads lands, for any day (a backfill of last year's sources rebuilds last year's
  warehouse days), once none is in progress; sources are optional to the warehouse, so it never waits
  for all of them;
- the unpartitioned marts (the results and the analysts' catalog) follow once no upstream run is in
  progress or about to start, so the catalog never publishes source days the warehouse lacks.

`apply_automation` attaches the warehouse conditions and every asset's freshness policy;
`definitions.py` calls it (`dagster.map_asset_specs` underneath), so asset authors need not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

import dagster as dg

from event_platform import settings
from event_platform.partitions import daily_partitions
from event_platform.sources import registry
from event_platform.sources.registry import Source

WAREHOUSE_GROUP = "warehouse"


# ---- Selections --------------------------------------------------------------------------------

# Groups through `AssetSelection.groups`: the selection syntax's `group:` passes a beta parameter of
# its own on every use, and Dagster warned about it on every load.
DAILY_ASSETS = dg.AssetSelection.from_string("partitions:time")
"""Every daily-partitioned asset, of every source and of the warehouse (their checks come along)."""

WAREHOUSE = dg.AssetSelection.groups(WAREHOUSE_GROUP)
DAILY_SOURCES = DAILY_ASSETS - WAREHOUSE
"""Every source's daily assets: a vendor request per day, so a range runs a day per run."""
DAILY_WAREHOUSE = DAILY_ASSETS & WAREHOUSE
"""The warehouse's daily models: a range runs as one run (`RANGE_BACKFILL_POLICY`)."""
WAREHOUSE_MARTS = WAREHOUSE & dg.AssetSelection.from_string("partitions:none")
"""The unpartitioned warehouse assets: `warehouse/experiment_results` and `warehouse/catalog`."""


def daily_assets_of(group: str) -> dg.AssetSelection:
    return dg.AssetSelection.groups(group) & DAILY_ASSETS


# ---- Jobs ----------------------------------------------------------------------------------------
# A job's assets share one backfill policy: a job mixing the sources' day per run with the warehouse's
# ranges would run everything a day per run (and Dagster warns). The asset backfill (select the assets
# in the UI, then Materialize a range) plans each asset by its own policy across all three.

daily_sources = dg.define_asset_job(
    name="daily_sources",
    selection=DAILY_SOURCES,
    description="Every daily source asset, with its checks, for one day (a backfill runs a day per run). "
    "The warehouse follows by its automation conditions.",
)

daily_warehouse = dg.define_asset_job(
    name="daily_warehouse",
    selection=DAILY_WAREHOUSE,
    description="The warehouse's daily models, with their checks, for a day or a range of days in one run.",
)

warehouse_marts = dg.define_asset_job(
    name="warehouse_marts",
    selection=WAREHOUSE_MARTS,
    description="The unpartitioned marts over every day: experiment results and the analysts' catalog.",
)


# ---- Schedules -----------------------------------------------------------------------------------


def scheduled_sources() -> list[Source]:
    """The registered sources with a daily schedule; the others (Optimizely E3) have their own sensor."""
    return [source for source in registry.sources() if source.schedule]


def partition_keys_for_tick(tick: datetime, lookback: int) -> list[str]:
    """The days a tick at `tick` requests: the last complete UTC day D and the `lookback` days before it.

    Days before the first partition are left out.
    """
    latest = (tick.astimezone(UTC) - timedelta(days=1)).date()
    first = daily_partitions.start.date()
    days = (latest - timedelta(days=back) for back in range(lookback, -1, -1))
    return [day.isoformat() for day in days if day >= first]


def source_schedule(source: Source) -> dg.ScheduleDefinition:
    spec = source.schedule
    assert spec is not None, f"{source.name} has no daily schedule"
    job = dg.define_asset_job(
        name=f"{source.name}_daily",
        selection=daily_assets_of(source.name),
        description=f"The daily assets of {source.title}, with their checks.",
    )

    @dg.schedule(
        name=f"{source.name}_daily_schedule",
        job=job,
        cron_schedule=spec.cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Requests day D on D+1 at {spec.cron} UTC: {spec.why} Also re-runs the "
        "EVENT_PLATFORM_LOOKBACK_DAYS days before D for late data.",
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        # The tick's date is part of the run key: tomorrow's tick must re-run today's D as its D-1.
        return [
            dg.RunRequest(run_key=f"{key}@{tick.date().isoformat()}", partition_key=key)
            for key in partition_keys_for_tick(tick, settings.Operations.read().lookback_days)
        ]

    return daily_schedule


def source_schedules() -> list[dg.ScheduleDefinition]:
    return [source_schedule(source) for source in scheduled_sources()]


# ---- Automation conditions -----------------------------------------------------------------------


def warehouse_daily_condition(same_day_inputs: Sequence[dg.AssetKey]) -> dg.AutomationCondition:
    """A warehouse day runs whenever an upstream partition it reads (re)lands, whatever the day.

    Not `eager()`: eager also waits until no upstream partition is missing, but the warehouse reads its
    sources as optional (a source without credentials never lands), so eager would wait forever. Each
    source landing re-runs the day instead: the partition is replaced whole, and the last run has every
    source that landed. No time window: a backfill of old source days must reach the warehouse too, and
    the condition only looks at what landed since the previous tick, so it costs the same for any history.
    Upstream days updated in the same run as the day itself (a range run) do not count again.

    A day is only created once one of `same_day_inputs` (the inputs it reads for the same day, e.g. the
    sources of `events`) has it: a day of identity links reaches 30 days of `events` through their
    look-back, and would otherwise create empty warehouse days wherever the sources have none.
    """
    day_has_inputs = dg.AutomationCondition.any_deps_match(
        ~dg.AutomationCondition.missing() | dg.AutomationCondition.will_be_requested()
    ).allow(dg.AssetSelection.assets(*same_day_inputs))
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & (~dg.AutomationCondition.missing() | day_has_inputs)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after any upstream day it reads lands, for any day that has inputs")


WAREHOUSE_MART_CONDITION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated()).ignore(WAREHOUSE)
    & ~dg.AutomationCondition.in_progress()
).with_label("after any daily update, once nothing upstream runs or has just landed")
"""`eager()` without "no dependency missing": a mart reads every day, and days before the first
backfill are always missing, so that clause would keep the marts from ever running.

A source day that lands requests its warehouse days on the same tick, which a mart cannot see (a
partitioned asset never shares a run with it); so a mart waits out the tick a source landed in, then
the warehouse runs that tick requested, and the catalog never publishes source views holding a day
that `events` or `daily_active_users` lack."""

automation_sensor = dg.AutomationConditionSensorDefinition(
    name="default_automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (the warehouse's) every 30 seconds.",
)


# ---- Freshness -----------------------------------------------------------------------------------

# A scheduled source must have landed by its `fresh_by` (it reads as fresh from its tick on);
# Optimizely's export arrives at an hour it does not publish, and the warehouse follows the last
# source to land, so they get a window since their last update instead.
LATE_ARRIVING_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)


@cache
def deadline_freshness(fresh_by: str) -> dg.FreshnessPolicy:
    """Landed by `fresh_by` each day. Built once per cron: Dagster walks a year of the cron's ticks
    to validate it (about 40 ms each)."""
    return dg.FreshnessPolicy.cron(deadline_cron=fresh_by, lower_bound_delta=timedelta(hours=2))


def freshness_policies() -> dict[str, dg.FreshnessPolicy]:
    """Per group: a scheduled source by its `fresh_by`, the others and the warehouse by a window.

    Evaluated by the instance's freshness daemon (part of `dagster dev` and `dagster-daemon run`, on by
    default); the state shows on each asset in the UI, and the `freshness_alerts` sensor reports each
    asset that starts failing."""
    return {
        **{
            source.name: deadline_freshness(source.schedule.fresh_by)
            if source.schedule
            else LATE_ARRIVING_FRESHNESS
            for source in registry.sources()
        },
        WAREHOUSE_GROUP: LATE_ARRIVING_FRESHNESS,
    }


# ---- Attaching them to the assets ----------------------------------------------------------------


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The group's freshness policy, and for warehouse assets their automation condition.

    What an asset declares itself wins.
    """
    freshness = spec.freshness_policy or freshness_policies().get(spec.group_name or "")
    condition = spec.automation_condition
    if condition is None and spec.group_name == WAREHOUSE_GROUP and spec.partitions_def is None:
        condition = WAREHOUSE_MART_CONDITION
    elif condition is None and spec.group_name == WAREHOUSE_GROUP:
        # The inputs read with the default mapping are the day's own; look-back inputs carry a mapping.
        condition = warehouse_daily_condition(
            [dep.asset_key for dep in spec.deps if dep.partition_mapping is None]
        )
    return spec.replace_attributes(freshness_policy=freshness, automation_condition=condition)


def definitions() -> dg.Definitions:
    """The jobs, the scheduled sources' schedules and the automation sensor."""
    return dg.Definitions(
        jobs=[daily_sources, daily_warehouse, warehouse_marts],
        schedules=source_schedules(),
        sensors=[automation_sensor],
    )


def apply_automation(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with `with_automation` applied to every asset spec; called from definitions.py."""
    return dg.Definitions(
        assets=dg.map_asset_specs(with_automation, list(defs.assets or [])),
        asset_checks=defs.asset_checks,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )
