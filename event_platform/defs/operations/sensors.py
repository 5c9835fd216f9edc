"""The run-failure sensor: every failed run is logged, recorded under the instance and, when
EVENT_PLATFORM_ALERT_WEBHOOK_URL is set, POSTed to that webhook."""

from pathlib import Path

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from event_platform import settings
from event_platform.defs.operations import alerts
from event_platform.retry import RetriesExhaustedError


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
    alert = alerts.failure_alert(
        run_id=run.run_id,
        job_name=run.job_name,
        message="\n".join([context.failure_event.message or "The run failed.", *step_errors]),
        tags=run.tags,
        failed_steps=[event.step_key for event in step_failures if event.step_key],
        secrets=alerts.secret_values(),
    )
    context.log.error(alert["text"])
    alert["recorded_in"] = str(alerts.record(Path(context.instance.root_directory), alert))

    url = settings.setting(alerts.WEBHOOK_SETTING)
    if not url:
        return
    try:
        alerts.post_alert(url, alert, backoff=alerts.WEBHOOK_BACKOFF)
    except (RetriesExhaustedError, alerts.AlertDeliveryError) as error:
        # The run failure is recorded either way; a webhook outage must not stall the sensor's cursor
        # and replay every failure after it. The error names no URL.
        context.log.warning(f"Could not deliver the alert for run {run.run_id}: {error}")


def root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error's message: Dagster wraps what the asset raised in its own step error."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
