"""`make demo`: the sandbox up, the main job run through Dagster for the last complete days, a summary.

The runs go into the instance under DAGSTER_HOME (`.dagster/` when started from the Makefile), so
`make ui` shows them afterwards with their metadata and check results.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from dagster import DagsterInstance, Definitions
from dagster._core.execution.execution_result import ExecutionResult

from event_platform import settings
from event_platform.defs.amplitude.landing import export_ready_at
from event_platform.defs.warehouse.commands import print_results
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World

DAILY_JOB = "daily_events"
MARTS_JOB = "warehouse_marts"
WAREHOUSE_POOL = "warehouse"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""The demo prints its own summary; every event is still in the instance for the UI."""


def last_complete_days(count: int, now: dt.datetime | None = None) -> list[dt.date]:
    """The `count` days up to the latest that every source can deliver at `now`. Amplitude's export of
    a day completes last, a few hours into the next day, so until then the latest is the day before."""
    now = now or dt.datetime.now(dt.UTC)
    latest = now.date() - dt.timedelta(days=1)
    if now < export_ready_at(latest):
        latest -= dt.timedelta(days=1)
    return [latest - dt.timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def run_demo(days: Sequence[dt.date], world: World) -> bool:
    """Materialize every daily asset for `days`, then the marts; print what happened. True if all passed."""
    instance = DagsterInstance.get()
    # dagster.yaml's default pool limit already is 1; setting it makes the rule visible in the UI.
    instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    lake_root = settings.setting("EVENT_PLATFORM_LAKE", settings.DEFAULT_LAKE) or settings.DEFAULT_LAKE
    print(
        f"Sandbox world: {len(world.people)} people, {len(world.experiments)} experiments; lake {lake_root}"
    )
    with Sandbox(world, lake_root=lake_root, days=days) as sandbox:
        os.environ.update(sandbox.environment())
        definitions = load_definitions()
        results: list[ExecutionResult] = []
        for day in days:
            print(f"Materializing {DAILY_JOB} for {day} …", flush=True)
            results.append(
                definitions.resolve_job_def(DAILY_JOB).execute_in_process(
                    run_config=QUIET, partition_key=day.isoformat(), instance=instance, raise_on_error=False
                )
            )
        print(f"Materializing {MARTS_JOB} …", flush=True)
        marts = definitions.resolve_job_def(MARTS_JOB)
        results.append(marts.execute_in_process(run_config=QUIET, instance=instance, raise_on_error=False))
    print_summary(results)
    print(f"\nRuns are in the instance at {instance.root_directory}: `make ui` shows them.")
    # The demo ends with what an analyst came for, by experiment name.
    warehouse = Path(settings.setting("EVENT_PLATFORM_WAREHOUSE", settings.DEFAULT_WAREHOUSE) or "")
    print(f"\nExperiment results (again: `event-platform experiments results [NAME]`, from {warehouse})\n")
    try:
        print_results(warehouse)
    except FileNotFoundError as error:
        print(error)
    return all(result.success for result in results)


def load_definitions() -> Definitions:
    """Loaded only once the sandbox's environment is set: resources read it when they are built."""
    from event_platform.definitions import defs

    return defs()


def print_summary(results: Sequence[ExecutionResult]) -> None:
    rows: dict[str, dict[str, object]] = defaultdict(dict)
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            count = materialization.metadata.get("dagster/row_count")
            rows[materialization.asset_key.to_user_string()][materialization.partition or "-"] = (
                count.value if count is not None else "ok"
            )
    partitions = sorted({key for by_partition in rows.values() for key in by_partition})
    print("\nRows materialized")
    print(f"  {'asset':36}" + "".join(f"{key:>13}" for key in partitions))
    for asset in sorted(rows):
        print(f"  {asset:36}" + "".join(f"{rows[asset].get(key, ''):>13}" for key in partitions))

    evaluations = [evaluation for result in results for evaluation in result.get_asset_check_evaluations()]
    failed = [evaluation for evaluation in evaluations if not evaluation.passed]
    print(f"\nAsset checks: {len(evaluations) - len(failed)} passed, {len(failed)} did not")
    for evaluation in failed:
        label = "WARNING" if evaluation.severity.value == "WARN" else "FAILED"
        description = evaluation.description or ""
        print(f"  {label} {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {description}")
    for result in results:
        if not result.success:
            print(f"  Run {result.run_id} failed: {', '.join(sorted(result.get_failed_step_keys()))}")
