"""A 30-day backfill of every asset on the sandbox through a real instance and its daemon, and the
warehouse's part of it as a single run against one run per day.

    .venv/bin/python benchmarks/backfill.py [--days 30]

One fresh sandbox, lake and DAGSTER_HOME (the repository's dagster.yaml: run queue of 4, `warehouse`
pool of 1), three measurements in order:
- `asset_backfill`: the asset backfill the UI files for a range of every asset (`submit_asset_backfill`),
  planned by the assets' backfill policies: one run per day for the sources (a vendor request per day),
  ranges for the warehouse's daily models, then the marts.
- `warehouse_single_run`: the warehouse's daily models (every asset with the range backfill policy:
  the five daily tables and the results chain `experiment_units`, `experiment_unit_state`,
  `experiment_results_daily`) over the whole range again, as
  `dagster asset materialize --partition-range first...last`: one run.
- `warehouse_per_partition`: the same models as one `dagster asset materialize --partition D` run per
  day, two at a time (the machine's cores).

For each: wall time, the runs' (or commands') summed wall time, the time their steps spent in our code,
and the share of the rest, Dagster's own (starting a process, loading the code location, planning,
writing events). Results: benchmarks/results/backfill.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from event_platform.policies import RANGE_BACKFILL_POLICY as RANGE
from event_platform.sandbox.backfill import (
    BackfillOutcome,
    follow_backfill,
    run_timing,
    running_daemon,
)
from event_platform.sandbox.dagster_internals import submit_asset_backfill
from event_platform.sandbox.demo import last_complete_days
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World

from measure import describe_machine

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


def asset_keys() -> tuple[Any, list[dg.AssetKey], list[dg.AssetKey]]:
    """The asset graph, every materializable asset, and the warehouse's daily (range-capable) models."""
    from event_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    ranged = [key for key in graph.materializable_asset_keys if graph.get(key).backfill_policy == RANGE]
    return graph, sorted(graph.materializable_asset_keys), sorted(ranged)


def summary(outcome: BackfillOutcome) -> dict[str, Any]:
    sources = [run for run in outcome.runs if not any(a.startswith("warehouse/") for a in run.assets)]
    return {
        "status": outcome.status,
        "succeeded": outcome.succeeded,
        "wall_seconds": round(outcome.wall_seconds, 1),
        "runs": len(outcome.runs),
        "source_runs": len(sources),
        "warehouse_runs": len(outcome.runs) - len(sources),
        "runs_wall_seconds": round(sum(run.wall_seconds for run in outcome.runs), 1),
        "step_seconds": round(sum(run.step_seconds for run in outcome.runs), 1),
        "dagster_overhead_share": round(outcome.dagster_overhead_share, 3),
        "step_errors": outcome.step_errors[:3],
    }


def materialize(keys: list[dg.AssetKey], partition: str, environment: dict[str, str]) -> float:
    """`dagster asset materialize` of `keys` (one day, or `first...last` as a single run); its seconds."""
    option = "--partition-range" if "..." in partition else "--partition"
    log = WORK / "backfill" / f"materialize-{partition}.log"
    started = time.monotonic()
    with log.open("wb") as output:
        subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "event_platform.definitions",
             "--select", ",".join(key.to_user_string() for key in keys), option, partition],
            cwd=REPO, env={**os.environ, **environment}, check=True, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return time.monotonic() - started


def cli_runs(
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    arguments: list[str],
    environment: dict[str, str],
    parallel: int,
) -> dict[str, Any]:
    """Time `dagster asset materialize` for each of `arguments`, `parallel` at a time.

    Dagster's share is measured against the commands' own time: starting the process and loading the
    code location are Dagster's cost of a run as much as its planning and event writing."""
    before = {run.run_id for run in instance.get_runs()}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        commands = list(pool.map(lambda argument: materialize(keys, argument, environment), arguments))
    wall = time.monotonic() - started
    runs = [run_timing(instance, run) for run in instance.get_runs() if run.run_id not in before]
    steps = sum(run.step_seconds for run in runs)
    return {
        "succeeded": all(run.status == dg.DagsterRunStatus.SUCCESS.value for run in runs),
        "wall_seconds": round(wall, 1),
        "runs": len(runs),
        "commands_wall_seconds": round(sum(commands), 1),
        "step_seconds": round(steps, 1),
        "dagster_overhead_share": round(1 - steps / sum(commands), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    days = last_complete_days(arguments.days)
    keys = [day.isoformat() for day in days]

    results: dict[str, Any] = {
        "days": arguments.days,
        "range": f"{days[0]}...{days[-1]}",
        "sandbox": {
            "people": PEOPLE,
            "amplitude_events_per_day": AMPLITUDE_EVENTS_PER_DAY,
            "profile_store_events_per_day": PROFILE_STORE_EVENTS_PER_DAY,
        },
        "machine": describe_machine(load_before),
        "plans": {},
    }
    graph, everything, warehouse_daily = asset_keys()
    with fresh_platform("backfill", days) as (instance, environment):
        print(f"asset_backfill of {len(everything)} assets over {len(days)} days …", flush=True)
        with running_daemon(WORKSPACE, environment, WORK / "backfill" / "daemon.log"):
            backfill_id = submit_asset_backfill(instance, graph, everything, keys, "benchmark")
            outcome = follow_backfill(instance, backfill_id, timeout_seconds=TIMEOUT_SECONDS)
        record(results, "asset_backfill", summary(outcome))
        print("warehouse_single_run …", flush=True)
        single = cli_runs(instance, warehouse_daily, [f"{keys[0]}...{keys[-1]}"], environment, parallel=1)
        record(results, "warehouse_single_run", single)
        print("warehouse_per_partition …", flush=True)
        per_day = cli_runs(instance, warehouse_daily, keys, environment, parallel=os.cpu_count() or 1)
        record(results, "warehouse_per_partition", per_day)
    print(f"Wrote {RESULTS}")


def record(results: dict[str, Any], plan: str, measured: dict[str, Any]) -> None:
    """Keep a plan's numbers, written at once: an interrupted benchmark still leaves what it measured."""
    results["plans"][plan] = measured
    print(json.dumps(measured, indent=2), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
