"""A 30-day backfill of the daily assets on the sandbox, through a real instance and its daemon: one run
per partition (how the assets are planned today) against a single run over the range.

    .venv/bin/python benchmarks/backfill.py [--days 30]

Each plan gets a fresh sandbox, lake and DAGSTER_HOME (the repository's dagster.yaml: run queue of 4,
`warehouse` pool of 1):
- `per_partition_multiprocess`: the asset backfill the UI files for a range (`submit_asset_backfill`),
  run as the UI runs it. The daemon makes one run per day for every asset without
  `BackfillPolicy.single_run()` (today: all of them), in dependency waves; each run's default executor
  starts a process per step (checks are steps too).
- `per_partition_in_process`: the same backfill with each run executing its steps in its own process.
- `single_run`: `dagster asset materialize --partition-range`, one run over the whole range. Dagster
  allows it only when every selected asset has a single-run policy; until then it is reported as
  unsupported, naming the assets without one.

For each: wall time from submission to the last run's end, the runs' summed wall time, the time their
steps spent in our code, and the share of the runs' time that is Dagster's own (starting processes,
planning, writing events). Results: benchmarks/results/backfill.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from event_platform.defs import automation
from event_platform.defs.operations.backfill import (
    IN_PROCESS,
    BackfillOutcome,
    follow_backfill,
    running_daemon,
    submit_asset_backfill,
)
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "backfill"
RESULTS = HERE / "results" / "backfill.json"
WORKSPACE = REPO / "workspace.yaml"
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 1800
PEOPLE = 1_000
AMPLITUDE_EVENTS_PER_DAY = 2_000
PROFILE_STORE_EVENTS_PER_DAY = 1_000


@contextmanager
def fresh_platform(name: str, days: list[dt.date]) -> Iterator[tuple[dg.DagsterInstance, dict[str, str]]]:
    """A sandbox for `days`, an empty lake and a new instance; the environment a daemon needs."""
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with Sandbox(
        World(people_count=PEOPLE),
        lake_root=str(root / "lake"),
        days=days,
        amplitude_events_per_day=AMPLITUDE_EVENTS_PER_DAY,
        profile_store_events_per_day=PROFILE_STORE_EVENTS_PER_DAY,
        work_dir=root / "sandbox",
    ) as sandbox:
        environment = {
            **sandbox.environment(),
            "DAGSTER_HOME": str(home),
            "EVENT_PLATFORM_WAREHOUSE": str(root / "warehouse.duckdb"),
        }
        os.environ.update(environment)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance, environment


def daily_asset_keys() -> tuple[Any, list[dg.AssetKey]]:
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    return graph, sorted(automation.DAILY_ASSETS.resolve(graph))


def summary(outcome: BackfillOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "succeeded": outcome.succeeded,
        "wall_seconds": round(outcome.wall_seconds, 1),
        "runs": len(outcome.runs),
        "runs_wall_seconds": round(sum(run.wall_seconds for run in outcome.runs), 1),
        "step_seconds": round(sum(run.step_seconds for run in outcome.runs), 1),
        "dagster_overhead_share": round(outcome.dagster_overhead_share, 3),
        "step_errors": outcome.step_errors[:3],
    }


def per_partition(days: list[dt.date], name: str, run_config: dict[str, Any] | None) -> dict[str, Any]:
    graph, keys = daily_asset_keys()
    with (
        fresh_platform(name, days) as (instance, environment),
        running_daemon(WORKSPACE, environment, WORK / name / "daemon.log"),
    ):
        partitions = [day.isoformat() for day in days]
        backfill_id = submit_asset_backfill(instance, graph, keys, partitions, "benchmark", run_config)
        return summary(follow_backfill(instance, backfill_id, timeout_seconds=TIMEOUT_SECONDS))


def per_partition_multiprocess(days: list[dt.date]) -> dict[str, Any]:
    return per_partition(days, "per_partition_multiprocess", None)


def per_partition_in_process(days: list[dt.date]) -> dict[str, Any]:
    return per_partition(days, "per_partition_in_process", IN_PROCESS)


def single_run(days: list[dt.date]) -> dict[str, Any]:
    graph, keys = daily_asset_keys()
    lacking = [
        key.to_user_string()
        for key in keys
        if graph.get(key).backfill_policy != automation.RANGE_BACKFILL_POLICY
    ]
    if lacking:
        return {"unsupported": "these assets have no BackfillPolicy.single_run(): " + ", ".join(lacking)}
    with fresh_platform("single_run", days) as (instance, environment):
        started = time.monotonic()
        subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "event_platform.definitions",
             "--select", ",".join(key.to_user_string() for key in keys),
             "--partition-range", f"{days[0].isoformat()}...{days[-1].isoformat()}"],
            cwd=REPO, env={**os.environ, **environment}, check=True,
        )  # fmt: skip
        wall = time.monotonic() - started
        [run] = instance.get_runs(limit=1)
        steps = sum((s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run.run_id))
        return {
            "status": run.status.value,
            "wall_seconds": round(wall, 1),
            "runs": 1,
            "step_seconds": round(steps, 1),
            "dagster_overhead_share": round(1 - steps / wall, 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    plans = {
        plan.__name__: plan for plan in (per_partition_in_process, per_partition_multiprocess, single_run)
    }
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--plans", nargs="+", choices=sorted(plans), default=list(plans))
    arguments = parser.parse_args()
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=back) for back in range(arguments.days, 0, -1)]

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results: dict[str, Any] = {
        "days": arguments.days,
        "range": f"{days[0]}...{days[-1]}",
        "sandbox": {
            "people": PEOPLE,
            "amplitude_events_per_day": AMPLITUDE_EVENTS_PER_DAY,
            "profile_store_events_per_day": PROFILE_STORE_EVENTS_PER_DAY,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        # Plans not run this time keep their last results (of the same number of days).
        "plans": previous["plans"] if previous.get("days") == arguments.days else {},
    }
    for name in arguments.plans:
        print(f"{name} …", flush=True)
        results["plans"][name] = plans[name](days)
        print(json.dumps(results["plans"][name], indent=2), flush=True)
        # Written after every plan: a long benchmark interrupted still leaves what it measured.
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {RESULTS}")


if __name__ == "__main__":
    main()
