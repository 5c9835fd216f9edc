"""A backfill of every asset over five days of the sandbox, planned and run as the UI's would be.

One command files it (`submit_asset_backfill`, the UI's asset backfill); the instance's own daemon
splits it into runs by backfill policy (a run per day for the sources, ranges for the warehouse) and
paces them with the repository's dagster.yaml (run queue, `warehouse` pool limit 1). It must
complete with every run successful and no step, retried or not, ever failing on a DuckDB lock; every
warehouse model must compute each day exactly once, in fewer runs than days, and every mart once; and
every check of every daily asset must have one result per day, filed under that day by the run that
materialized it (read back through the instance, as the UI reads them), none left "Skipped".

How many ranges the warehouse takes is not fixed: the daemon looks for work every 30 seconds and starts
a range for the days whose inputs landed since its last look, so it depends on how many looks the
sources' landing spans. Over eight days the warehouse took 8 runs, and also 10 (run alone, the first
source day landed before the second look) and 11 to 13 (beside other tests): no total is asserted, nor
how many runs each model takes. Over five days in a loaded CI one model took a run per day, each day
landing in a look of its own; the ranges themselves are asserted.

Five days keep every part of it (parallel source runs in the queue, warehouse ranges, the self-dependent
experiment days, the pool). Every run pays the code location's load, so the test's length follows its
run count: it is the suite's critical path, and six days took the suite to between 8 min 46 s and
10 min 04 s on four fresh clones, too close to the ten-minute budget.
`benchmarks/backfill.py` runs the same path over 30 days and times it (about nine minutes on a quiet
2-core machine).
"""

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from event_platform.sandbox.backfill import RunTiming, follow_backfill, running_daemon
from event_platform.sandbox.dagster_internals import submit_asset_backfill
from event_platform.sandbox.demo import last_complete_days
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World
from event_platform_tests.conftest import REPO

DAYS = 5
TIMEOUT_SECONDS = 900
"""Alone it takes about four minutes; beside the other tests on a loaded two-core machine, up to eight."""


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
            daily = {key.to_user_string() for key in everything if graph.get(key).partitions_def}
            models = {key.to_user_string() for key in everything if key.path[0] == "warehouse"}

    failed = [run for run in outcome.runs if run.status != "SUCCESS"]
    assert outcome.succeeded, f"{outcome.status}; failed runs: {failed}; errors: {outcome.step_errors[:5]}"
    assert not [error for error in outcome.step_errors if "lock" in error.lower()]
    # Every day of every daily asset, and every mart, was materialized.
    assert not {key: gap for key, gap in missing.items() if gap}
    # Sources ran a day per run; the warehouse took ranges.
    warehouse = [run for run in outcome.runs if all(a.startswith("warehouse/") for a in run.assets)]
    sources = [run for run in outcome.runs if not any(a.startswith("warehouse/") for a in run.assets)]
    assert len(sources) + len(warehouse) == len(outcome.runs), "no run mixes sources and warehouse"
    assert len(sources) >= DAYS and all("..." not in run.partitions for run in sources)
    assert any("..." in run.partitions for run in warehouse)
    # Each warehouse model computed each day once (in ranges, above); each mart ran once.
    runs_days = days_by_asset(warehouse)
    assert {asset: sorted(day for run in runs for day in run) for asset, runs in runs_days.items()} == {
        asset: sorted(wanted) if asset in daily else [] for asset in models
    }
    assert all(len(runs) == 1 for asset, runs in runs_days.items() if asset not in daily)
    assert misfiled == []


def days_by_asset(runs: list[RunTiming]) -> dict[str, list[list[str]]]:
    """For each asset, the days covered by each of `runs` that materialized it ([] when unpartitioned)."""
    covered: dict[str, list[list[str]]] = defaultdict(list)
    for run in runs:
        first, _, last = run.partitions.partition("...")
        days: list[str] = []
        if first:
            start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last or first)
            days = [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
        for asset in run.assets:
            covered[asset].append(days)
    return dict(covered)


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
