"""The run-failure sensor on a real failed run: recorded, logged, POSTed to a webhook on 127.0.0.1."""

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from event_platform.defs.operations.run_days import DAYS_TAG, days_of, run_days_tags
from event_platform.defs.operations.sensors import freshness_alerts, run_failure_alerts
from event_platform.operations import alerts
from event_platform.sandbox.loopback import serve
from event_platform_tests.defs.operations.webhook_receiver import HOOK_PATH, WebhookReceiver

LEAKED = "pk-very-secret-999"


@dg.op
def fetch_day() -> None:
    raise RuntimeError(f"vendor refused key {LEAKED}")


@dg.job
def failing_job() -> None:
    fetch_day()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def status_context(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    result: dg.ExecuteInProcessResult,
    event_type: dg.DagsterEventType,
) -> dg.RunStatusSensorContext:
    """What the daemon hands `sensor` for the run's event of `event_type`."""
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=next(e for e in result.all_events if e.event_type == event_type),
    )


def evaluate_on_failed_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags={"team": "data"})
    assert not result.success
    failed = status_context(run_failure_alerts, instance, result, dg.DagsterEventType.RUN_FAILURE)
    run_failure_alerts(failed.for_run_failure())
    return result.dagster_run


def recorded(instance: dg.DagsterInstance) -> list[dict[str, object]]:
    path = Path(instance.root_directory) / alerts.FAILURES_LOG
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failed_run_is_posted_to_the_webhook_and_recorded(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENDOR_API_KEY", LEAKED)
    receiver = WebhookReceiver(statuses=[503])
    with serve(receiver.app, name="webhook") as server:
        monkeypatch.setenv(alerts.WEBHOOK_SETTING, server.url + HOOK_PATH)
        run = evaluate_on_failed_run(instance)

    [posted] = receiver.received
    assert posted["run_id"] == run.run_id
    assert posted["job"] == "failing_job"
    assert posted["failed_steps"] == ["fetch_day"]
    assert "fetch_day: RuntimeError: vendor refused key ***" in posted["message"]
    assert LEAKED not in json.dumps(posted)
    [line] = recorded(instance)
    assert line["run_id"] == run.run_id
    assert LEAKED not in json.dumps(line)


def test_without_a_webhook_the_failure_is_only_recorded(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(alerts.WEBHOOK_SETTING, raising=False)
    run = evaluate_on_failed_run(instance)
    assert [line["run_id"] for line in recorded(instance)] == [run.run_id]


def test_a_webhook_outage_does_not_fail_the_sensor(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = WebhookReceiver(statuses=[500] * 10)
    monkeypatch.setattr(alerts, "WEBHOOK_BACKOFF", alerts.Backoff(attempts=2, base_seconds=0, max_seconds=0))
    with serve(receiver.app, name="webhook") as server:
        monkeypatch.setenv(alerts.WEBHOOK_SETTING, server.url + HOOK_PATH)
        run = evaluate_on_failed_run(instance)
    assert receiver.attempts == 2
    assert [line["run_id"] for line in recorded(instance)] == [run.run_id]
    assert "s3cr3t-webhook-token" not in caplog.text


@dg.asset(freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1)))
def watched() -> None:
    """An asset with a freshness policy, for the freshness sensor."""


def set_freshness(instance: dg.DagsterInstance, state: FreshnessState) -> None:
    # What the instance's freshness daemon records (through this private method) when a state changes.
    instance._report_runless_asset_event(
        FreshnessStateChange(
            key=watched.key,
            new_state=state,
            previous_state=FreshnessState.PASS,
            state_change_timestamp=time.time(),
        )
    )


def test_a_failing_freshness_policy_alerts_once(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = dg.Definitions(assets=[watched], sensors=[freshness_alerts]).get_repository_def()
    receiver = WebhookReceiver()
    with serve(receiver.app, name="webhook") as server:
        monkeypatch.setenv(alerts.WEBHOOK_SETTING, server.url + HOOK_PATH)
        cursor = None
        for state in (FreshnessState.FAIL, FreshnessState.FAIL, FreshnessState.PASS, FreshnessState.FAIL):
            set_freshness(instance, state)
            context = dg.build_sensor_context(instance=instance, repository_def=repository, cursor=cursor)
            freshness_alerts(context)
            cursor = context.cursor

    # Failing, still failing (no repeat), recovered, failing again.
    assert [alert["asset"] for alert in receiver.received] == ["watched", "watched"]
    recorded_lines = (
        Path(instance.root_directory) / alerts.ALERTS_DIR / "freshness_failures.jsonl"
    ).read_text()
    assert len(recorded_lines.splitlines()) == 2


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC"))
def a_day() -> None:
    """A stand-in for a warehouse model over a range of days."""


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [("2026-11-02", "2026-11-04", "2026-11-02 … 2026-11-04"), ("2026-11-02", "2026-11-02", "2026-11-02")],
)
def test_a_run_over_a_range_of_days_is_tagged_with_them(
    instance: dg.DagsterInstance, start: str, end: str, days: str
) -> None:
    result = dg.materialize(
        [a_day],
        instance=instance,
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
    )
    run_days_tags(status_context(run_days_tags, instance, result, dg.DagsterEventType.RUN_START))
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.tags[DAYS_TAG] == days


def test_a_one_partition_run_keeps_dagsters_own_partition_tag(instance: dg.DagsterInstance) -> None:
    result = dg.materialize([a_day], instance=instance, partition_key="2026-11-02")
    assert days_of(dict(result.dagster_run.tags)) is None
    assert result.dagster_run.tags["dagster/partition"] == "2026-11-02"
