"""Alerts: every failed run, and every asset whose freshness policy starts failing, is logged,
recorded under the instance and, when EVENT_PLATFORM_ALERT_WEBHOOK_URL is set, POSTed to that webhook."""

import json
import logging
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from event_platform import settings
from event_platform.operations import alerts
from event_platform.retry import RetriesExhaustedError

FRESHNESS_FAIL = "FAIL"
"""The failing freshness state: Dagster's `FreshnessState` is a str enum its public API does not export."""


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Records each failed run in <DAGSTER_HOME>/alerts/run_failures.jsonl and POSTs it to "
    f"{alerts.WEBHOOK_SETTING} when that is set.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    step_errors = [
        f"{event.step_key}: {root_cause(event.step_failure_data.error)}"
        for event in step_failures
        if event.step_failure_data.error
    ]
    # A run can also fail outside any step (its executor or a step process crashing on import).
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    if run_error is not None:
        step_errors.append(f"run: {root_cause(run_error)}")
    alert = alerts.failure_alert(
        run_id=run.run_id,
        job_name=run.job_name,
        message="\n".join([context.failure_event.message or "The run failed.", *step_errors]),
        tags=run.tags,
        failed_steps=[event.step_key for event in step_failures if event.step_key],
        secrets=alerts.secret_values(),
    )
    deliver(alert, context.instance, context.log)


@dg.sensor(
    name="freshness_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Alerts once when an asset's freshness policy (evaluated by the instance's freshness "
    "daemon) turns FAIL: recorded in <DAGSTER_HOME>/alerts/freshness_failures.jsonl and POSTed to "
    f"{alerts.WEBHOOK_SETTING} when that is set.",
)
def freshness_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    graph = context.repository_def.asset_graph
    keys = [node.key for node in graph.asset_nodes if node.freshness_policy]
    records = context.instance.get_freshness_state_records(keys)
    failing = {
        key.to_user_string(): record
        for key, record in records.items()
        if record.freshness_state == FRESHNESS_FAIL
    }
    # The cursor holds the assets already reported as failing; one recovering and failing again alerts again.
    reported = set(json.loads(context.cursor)) if context.cursor else set()
    for asset in sorted(failing.keys() - reported):
        record = failing[asset]
        deliver(
            alerts.freshness_alert(asset=asset, state=record.freshness_state.value, since=record.updated_at),
            context.instance,
            context.log,
        )
    context.update_cursor(json.dumps(sorted(failing)))
    return dg.SkipReason(f"{len(failing)} of {len(keys)} assets with a freshness policy are failing it.")


def deliver(alert: dict[str, Any], instance: dg.DagsterInstance, log: logging.Logger) -> None:
    """Log, record under the instance, and POST when a webhook is configured."""
    log.error(alert["text"])
    alert["recorded_in"] = str(alerts.record(Path(instance.root_directory), alert))
    url = settings.reveal(settings.Operations.read().alert_webhook_url)
    if not url:
        return
    try:
        alerts.post_alert(url, alert, backoff=alerts.WEBHOOK_BACKOFF)
    except (RetriesExhaustedError, alerts.AlertDeliveryError) as error:
        # The alert is recorded either way; a webhook outage must not stall the sensor's cursor and
        # replay every alert after it. The error names no URL.
        log.warning(f"Could not deliver the alert ({alert['event']}): {error}")


def root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error's message: Dagster wraps what the asset raised in its own step error."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
