"""Backfills from Python, planned as the UI plans them, and what they cost.

`submit_asset_backfill` (in `event_platform.sandbox.dagster_internals`: Dagster has no public Python API for
it) files an asset backfill of exactly the given days of every given asset, as the
API's `partitionsByAssets` does: the instance's backfill daemon splits it into runs by each asset's
BackfillPolicy (one run for a range where an asset supports it, one run per day elsewhere) and the run
queue and pools pace them. (The UI's *Materialize → partition range* also adds the warehouse days after
the range that look back into it; over a range that ends at the latest partition the two are the same.)
`follow_backfill` waits for it and reports every run's wall time against the time its steps spent in
our code, so the rest is Dagster's own overhead. The benchmark and the backfill test use both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from sqlalchemy.exc import OperationalError

from event_platform.sandbox.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_SUCCEEDED,
    BACKFILL_TERMINAL,
    PARTITION_NAME_TAG,
    backfill_status,
)

UNFINISHED_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUSPENDED,
    dg.DagsterRunStatus.CANCELING,
]
FAILURE_EVENTS = [dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_UP_FOR_RETRY]


class BackfillTimeoutError(TimeoutError):
    """The backfill did not finish in time; the message says how far it got."""


@dataclass(frozen=True)
class RunTiming:
    run_id: str
    status: str
    assets: tuple[str, ...]
    partitions: str
    """One day, or `first...last` for a run over a range."""
    wall_seconds: float
    step_seconds: float
    """Time inside the steps (our code plus IO manager), summed over the run's steps."""


@dataclass
class BackfillOutcome:
    backfill_id: str
    status: str
    wall_seconds: float
    runs: list[RunTiming] = field(default_factory=list)
    step_errors: list[str] = field(default_factory=list)
    """The message of every step failure or retry, in every run: empty for a clean backfill."""

    @property
    def succeeded(self) -> bool:
        return self.status in BACKFILL_SUCCEEDED and all(
            run.status == dg.DagsterRunStatus.SUCCESS.value for run in self.runs
        )

    @property
    def dagster_overhead_share(self) -> float:
        """Share of the runs' summed wall time not spent inside steps: launch, planning, events."""
        wall = sum(run.wall_seconds for run in self.runs)
        return 1 - sum(run.step_seconds for run in self.runs) / wall if wall else 0.0


def follow_backfill(
    instance: dg.DagsterInstance, backfill_id: str, *, timeout_seconds: float, poll_seconds: float = 2.0
) -> BackfillOutcome:
    """Wait for the backfill to end, then time each of its runs."""
    started = time.monotonic()
    runs_filter = dg.RunsFilter(tags={"dagster/backfill": backfill_id})
    unfinished = dg.RunsFilter(tags=runs_filter.tags, statuses=UNFINISHED_RUN_STATUSES)
    while True:
        try:
            status = backfill_status(instance, backfill_id)
            running = bool(status) and bool(instance.get_runs(filters=unfinished, limit=1))
        except OperationalError as error:
            # A local (SQLite) instance is written by the daemon and every run at once: a poll that
            # finds it locked looks again at the next one; only the observer waits.
            if "locked" not in str(error):
                raise
            time.sleep(poll_seconds)
            continue
        if status is None:
            raise LookupError(f"No backfill {backfill_id} in this instance.")
        if status in BACKFILL_TERMINAL and not running:
            break
        if time.monotonic() - started > timeout_seconds:
            raise BackfillTimeoutError(
                f"Backfill {backfill_id} still {status} after {timeout_seconds:.0f}s "
                f"with {instance.get_runs_count(runs_filter)} runs launched."
            )
        time.sleep(poll_seconds)
    wall = time.monotonic() - started
    runs = instance.get_runs(filters=runs_filter)
    outcome = BackfillOutcome(backfill_id=backfill_id, status=status, wall_seconds=wall)
    for run in runs:
        outcome.runs.append(run_timing(instance, run))
        outcome.step_errors.extend(step_errors(instance, run.run_id))
    return outcome


def run_timing(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunTiming:
    stats = instance.get_run_stats(run.run_id)
    steps = instance.get_run_step_stats(run.run_id)
    tags = run.tags
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    partitions = tags.get(PARTITION_NAME_TAG) or (start if start == end else f"{start}...{end}")
    return RunTiming(
        run_id=run.run_id,
        status=run.status.value,
        assets=tuple(sorted(key.to_user_string() for key in run.asset_selection or ())),
        partitions=partitions or "",
        wall_seconds=(stats.end_time or 0) - (stats.launch_time or stats.start_time or 0),
        step_seconds=sum((step.end_time or 0) - (step.start_time or 0) for step in steps if step.start_time),
    )


def step_errors(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    errors = []
    for record in instance.all_logs(run_id, of_type=set(FAILURE_EVENTS)):
        event = record.dagster_event
        data = event.event_specific_data if event else None
        error = getattr(data, "error", None)
        errors.append(
            f"{run_id} {event.step_key if event else ''}: {error.to_string() if error else record.message}"
        )
    return errors


@contextmanager
def running_daemon(workspace: Path, environment: Mapping[str, str], log: Path) -> Iterator[None]:
    """`dagster-daemon run` on `workspace` (backfills, run queue, sensors) until the block ends."""
    command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)]
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            command,
            cwd=workspace.parent,
            env={**os.environ, **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield
        finally:
            # Its own session: the code server and the runs it launched stop with it.
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
