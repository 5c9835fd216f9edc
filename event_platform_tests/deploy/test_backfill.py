"""A backfill of every asset over eight days of the sandbox, planned and run as the UI's would be.

One command files it (`submit_asset_backfill`, the UI's asset backfill); the instance's own daemon
splits it into runs by backfill policy (a run per day for the sources, ranges for the warehouse) and
paces them with the repository's dagster.yaml (run queue, `warehouse` pool limit 1). It must
complete with every run successful and no step, retried or not, ever failing on a DuckDB lock; and every
check of every daily asset must have one result per day, filed under that day by the run that
materialized it (read back through the instance, as the UI reads them), none left "Skipped".

Eight days keep every part of it (parallel source runs in the queue, warehouse ranges, the
self-dependent experiment days, the pool) in about three minutes of the suite; `benchmarks/backfill.py`
runs the same path over 30 days and times it (about nine minutes on a quiet 2-core machine).
"""

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from event_platform.sandbox.backfill import follow_backfill, running_daemon
from event_platform.sandbox.dagster_internals import submit_asset_backfill
from event_platform.sandbox.demo import last_complete_days
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World
from event_platform_tests.conftest import REPO

DAYS = 8
TIMEOUT_SECONDS = 600


@pytest.mark.integration
def test_a_backfill_of_every_asset_completes_without_lock_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from event_platform.definitions import defs

    days = last_complete_days(DAYS)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    lake = str(tmp_path / "lake")
    with Sandbox(
        World(people_count=300),
        lake_root=lake,
        days=days,
        amplitude_events_per_day=300,
        profile_store_events_per_day=200,
        work_dir=tmp_path / "sandbox",
    ) as sandbox:
        environment = {
            **sandbox.environment(),
            "DAGSTER_HOME": str(home),
            "EVENT_PLATFORM_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        graph = defs().resolve_asset_graph()
        everything = sorted(graph.materializable_asset_keys)
        with (
            dg.DagsterInstance.from_config(str(home)) as instance,
            running_daemon(REPO / "workspace.yaml", environment, tmp_path / "daemon.log"),
        ):
            backfill_id = submit_asset_backfill(
                instance, graph, everything, [day.isoformat() for day in days], f"{DAYS} days"
            )
            outcome = follow_backfill(instance, backfill_id, timeout_seconds=TIMEOUT_SECONDS)
            wanted = {day.isoformat() for day in days}
            missing = {
                key.to_user_string(): sorted(wanted - set(instance.get_materialized_partitions(key)))
                if graph.get(key).partitions_def
                else instance.get_latest_materialization_event(key) is None
                for key in everything
            }
            misfiled = misfiled_check_results(instance, graph, wanted)

    failed = [run for run in outcome.runs if run.status != "SUCCESS"]
    assert outcome.succeeded, f"{outcome.status}; failed runs: {failed}; errors: {outcome.step_errors[:5]}"
    assert not [error for error in outcome.step_errors if "lock" in error.lower()]
    # Every day of every daily asset, and every mart, was materialized.
    assert not {key: gap for key, gap in missing.items() if gap}
    # Sources ran a day per run; the warehouse took ranges. How many depends on how many of the daemon's
    # 30-second looks the sources' landing spans (eight runs alone; 10 to 13 beside other work), so the
    # bound says only that ranges amortise: a run per day would be DAYS runs of each daily model.
    warehouse = [run for run in outcome.runs if all(a.startswith("warehouse/") for a in run.assets)]
    sources = [run for run in outcome.runs if not any(a.startswith("warehouse/") for a in run.assets)]
    assert len(sources) + len(warehouse) == len(outcome.runs), "no run mixes sources and warehouse"
    assert len(sources) >= DAYS and all("..." not in run.partitions for run in sources)
    assert any("..." in run.partitions for run in warehouse) and len(warehouse) < 2 * DAYS
    assert misfiled == []


def misfiled_check_results(instance: dg.DagsterInstance, graph: Any, days: set[str]) -> list[str]:
    """Every daily check's results that are not one per day, by the run that materialized that day."""
    problems = []
    for check_key in graph.asset_check_keys:
        if not graph.get(check_key.asset_key).partitions_def:
            continue
        records = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=10 * len(days)
        )
        name = check_key.to_user_string()
        problems += [f"{name} {r.partition} {r.status.value}" for r in records if r.status.value == "PLANNED"]
        by_day: dict[str | None, Any] = {}
        for record in records:  # newest first: the latest result of each day
            by_day.setdefault(record.partition, record)
        if set(by_day) != days:
            problems.append(f"{name}: results for {sorted(map(str, set(by_day) ^ days))} only on one side")
        for day, record in by_day.items():
            materialized = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=check_key.asset_key, asset_partitions=[day]), limit=1
            ).records
            if not materialized or record.run_id != materialized[0].run_id:
                problems.append(f"{name} {day}: checked in {record.run_id}, not the run that materialized it")
    return problems
