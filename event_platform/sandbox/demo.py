"""`make demo`: the sandbox up, every asset backfilled over the last complete days by Dagster's own
daemon, a summary.

The demo files the same asset backfill the UI's *Materialize → partition range* files, and runs
`dagster-daemon` on the repository's workspace until it is done: the daemon plans the runs by each
asset's backfill policy (a run per source day, the warehouse's days in one run, then the marts), and
its runs carry the code location, so `make ui` shows them in the Overview timeline, the Backfills tab
and every asset's partitions, with their metadata and per-day check results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from sqlalchemy.exc import OperationalError

from event_platform import settings
from event_platform.sandbox.backfill import follow_backfill, running_daemon
from event_platform.sandbox.dagster_internals import submit_asset_backfill
from event_platform.sandbox.runner import Sandbox
from event_platform.sandbox.world import World
from event_platform.sources.amplitude.landing import export_ready_at
from event_platform.warehouse.commands import print_results

WAREHOUSE_POOL = "warehouse"
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
"""The repository's workspace: the same code location `make ui` serves, so the runs show under it."""
BACKFILL_SECONDS = 1200
QUIET_POLLS = 3
PROGRESS_SECONDS = 2
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
DAILY_ACTIVE_USERS = dg.AssetKey(["warehouse", "daily_active_users"])


def last_complete_days(count: int, now: dt.datetime | None = None) -> list[dt.date]:
    """The `count` days up to the latest that every source can deliver at `now`. Amplitude's export of
    a day completes last, a few hours into the next day, so until then the latest is the day before."""
    now = now or dt.datetime.now(dt.UTC)
    latest = now.date() - dt.timedelta(days=1)
    if now < export_ready_at(latest):
        latest -= dt.timedelta(days=1)
    return [latest - dt.timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def run_demo(days: Sequence[dt.date], world: World) -> bool:
    """Backfill every asset over `days` through the daemon; print what happened. True if all passed."""
    if not WORKSPACE.exists():
        raise FileNotFoundError(f"The demo runs from a checkout of the repository: no {WORKSPACE}.")
    lake_root = settings.Platform.read().lake
    print(
        f"Sandbox world: {len(world.people)} people, {len(world.experiments)} experiments; lake {lake_root}"
    )
    with Sandbox(world, lake_root=lake_root, days=days) as sandbox:
        environment = sandbox.environment()
        # Before the definitions load: their partitions start at the sandbox's first day.
        os.environ.update(environment)
        graph = load_definitions().resolve_asset_graph()
        instance = dg.DagsterInstance.get()
        # dagster.yaml's default pool limit already is 1; setting it makes the rule visible in the UI.
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
        # Not under DAGSTER_HOME/logs: that folder is Dagster's own (its telemetry empties it).
        log = Path(instance.root_directory) / "demo" / "daemon.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(graph.materializable_asset_keys)
        print(
            f"Backfilling {len(keys)} assets over {days[0]} .. {days[-1]} with dagster-daemon (log: {log}) …"
        )
        with running_daemon(WORKSPACE, environment, log):
            backfill_id = submit_asset_backfill(
                instance, graph, keys, [day.isoformat() for day in days], "make demo"
            )
            with reporting_runs(instance, backfill_id):
                outcome = follow_backfill(instance, backfill_id, timeout_seconds=BACKFILL_SECONDS)
            wait_until_no_run_is_unfinished(instance)
    print(
        f"Backfill {backfill_id}: {outcome.status} in {outcome.wall_seconds:.0f} s, {len(outcome.runs)} runs."
    )
    summary = Summary.of_runs(instance, [run.run_id for run in outcome.runs])
    summary.print()
    # The demo ends with what an analyst came for, by experiment name.
    warehouse = Path(settings.Platform.read().warehouse)
    print(f"\nExperiment results (again: `event-platform experiments results [NAME]`, from {warehouse})\n")
    try:
        print_results(warehouse)
    except FileNotFoundError as error:
        print(error)
    print(
        f"\nRuns are in the instance at {instance.root_directory}: `make ui` shows them at "
        "http://127.0.0.1:3000 (Overview, Backfills, and each asset's partitions and checks)."
    )
    return outcome.succeeded and not summary.failed_checks


def load_definitions() -> dg.Definitions:
    """Loaded only once the sandbox's environment is set: resources read it when they are built."""
    from event_platform.definitions import defs

    return defs()


@contextmanager
def reporting_runs(instance: dg.DagsterInstance, backfill_id: str) -> Iterator[None]:
    """Print each run of the backfill as it finishes, while the block waits for the whole of it."""
    stopped = threading.Event()

    def report() -> None:
        reported: set[str] = set()
        while not stopped.wait(PROGRESS_SECONDS):
            with contextlib.suppress(OperationalError):  # SQLite busy with the runs' writes: next time
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                for run in sorted(runs, key=lambda run: run.run_id):
                    if _finished(run.status) and run.run_id not in reported:
                        reported.add(run.run_id)
                        print(f"  {run.status.value.lower():8} {describe_run(run)}", flush=True)

    reporter = threading.Thread(target=report, name="demo-progress", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        stopped.set()
        reporter.join()


def describe_run(run: dg.DagsterRun) -> str:
    """`2026-11-29 … 2026-11-30  warehouse/events, warehouse/identity_links`."""
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    days = run.tags.get(PARTITION_TAG) or (start if start == end else f"{start} … {end}" if start else "")
    assets = ", ".join(sorted(key.to_user_string() for key in run.asset_selection or ()))
    return f"{days or 'all days':24}  {assets}"


def wait_until_no_run_is_unfinished(instance: dg.DagsterInstance) -> None:
    """Runs the automation requested while the backfill ran finish before the daemon stops."""
    unfinished = dg.RunsFilter(statuses=[status for status in dg.DagsterRunStatus if not _finished(status)])
    quiet = 0
    while quiet < QUIET_POLLS:
        with contextlib.suppress(OperationalError):  # SQLite busy with the runs' writes: next time
            quiet = 0 if instance.get_runs(filters=unfinished, limit=1) else quiet + 1
        time.sleep(1)


def _finished(status: dg.DagsterRunStatus) -> bool:
    return status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass
class Summary:
    """What the demo's runs wrote and checked, read back from the instance's event log."""

    rows: dict[str, dict[str, object]] = field(default_factory=lambda: defaultdict(dict))
    """asset -> day ("all days" for a mart) -> rows written, or "done" for an asset that is not a table."""
    active_users: dict[str, int] = field(default_factory=dict)
    """day -> people active in any source."""
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)

    @classmethod
    def of_runs(cls, instance: dg.DagsterInstance, run_ids: Sequence[str]) -> Summary:
        summary = cls()
        for run_id in run_ids:
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
                summary.add_materialization(entry.asset_materialization)
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                summary.checks.append(entry.dagster_event.event_specific_data)  # type: ignore[union-attr]
        return summary

    def add_materialization(self, materialization: dg.AssetMaterialization | None) -> None:
        if materialization is None:
            return
        day = materialization.partition or "all days"
        rows = materialization.metadata.get("dagster/row_count")
        self.rows[materialization.asset_key.to_user_string()][day] = rows.value if rows else "done"
        users = materialization.metadata.get("active_users")
        if materialization.asset_key == DAILY_ACTIVE_USERS and users is not None:
            self.active_users[day] = int(users.value)  # type: ignore[arg-type]

    @property
    def failed_checks(self) -> list[dg.AssetCheckEvaluation]:
        return [check for check in self.checks if not check.passed and check.severity.value == "ERROR"]

    def print(self) -> None:
        days = sorted({day for by_day in self.rows.values() for day in by_day if day != "all days"})
        columns = [*days, "all days"]
        print('\nRows written per asset and day ("done": a landing or a catalog, not a table)')
        print(f"  {'asset':36}" + "".join(f"{day:>13}" for day in columns))
        for asset in sorted(self.rows):
            print(f"  {asset:36}" + "".join(f"{self.rows[asset].get(day, ''):>13}" for day in columns))
        if self.active_users:
            print(
                f"\n  {'people active in any source':36}"
                + "".join(f"{self.active_users.get(day, ''):>13}" for day in days)
            )
        warned = [check for check in self.checks if not check.passed and check not in self.failed_checks]
        print(
            f"\nAsset checks: {len(self.checks) - len(warned) - len(self.failed_checks)} passed, "
            f"{len(warned)} warned, {len(self.failed_checks)} failed"
        )
        for check in [*self.failed_checks, *warned]:
            label = "failed" if check in self.failed_checks else "warned"
            day = f" {check.partition}" if check.partition else ""
            name = f"{check.asset_key.to_user_string()}:{check.check_name}{day}"
            print(f"  {label} {name} {check.description or ''}")
