"""Delivery of alerts to a webhook on 127.0.0.1: retries, refusals, and no secret in any message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from event_platform.operations import alerts
from event_platform.retry import NO_WAIT, RetriesExhaustedError
from event_platform.sandbox.loopback import serve
from event_platform_tests.defs.operations.webhook_receiver import HOOK_PATH, WebhookReceiver

ALERT = {"event": "run_failure", "run_id": "abc", "text": "Dagster run abc of daily_events failed"}


def test_posts_the_alert_as_json() -> None:
    receiver = WebhookReceiver()
    with serve(receiver.app, name="webhook") as server:
        alerts.post_alert(server.url + HOOK_PATH, ALERT, backoff=NO_WAIT)
    assert receiver.received == [ALERT]


def test_retries_429_and_5xx_until_delivered() -> None:
    receiver = WebhookReceiver(statuses=[503, 429, 500])
    with serve(receiver.app, name="webhook") as server:
        alerts.post_alert(server.url + HOOK_PATH, ALERT, backoff=NO_WAIT)
    assert receiver.attempts == 4
    assert receiver.received == [ALERT]


def test_a_refusal_is_final_and_names_the_setting_not_the_url() -> None:
    receiver = WebhookReceiver(statuses=[404])
    with serve(receiver.app, name="webhook") as server:
        url = server.url + HOOK_PATH
        with pytest.raises(alerts.AlertDeliveryError, match=alerts.WEBHOOK_SETTING) as refused:
            alerts.post_alert(url, ALERT, backoff=NO_WAIT)
    assert receiver.attempts == 1
    assert "s3cr3t-webhook-token" not in str(refused.value)


def test_an_unreachable_webhook_fails_without_quoting_its_url() -> None:
    receiver = WebhookReceiver()
    with serve(receiver.app, name="webhook") as server:
        url = server.url + HOOK_PATH
    # The server has stopped: every attempt is refused.
    with pytest.raises(RetriesExhaustedError) as exhausted:
        alerts.post_alert(url, ALERT, backoff=NO_WAIT)
    assert "unreachable" in str(exhausted.value)
    chain = [exhausted.value, exhausted.value.__cause__, exhausted.value.__context__]
    assert not any("s3cr3t-webhook-token" in str(error) for error in chain if error)


def test_secret_values_are_masked_in_the_alert() -> None:
    environment = {"AMPLITUDE_SECRET_KEY": "sk-live-123456", "AMPLITUDE_REGION": "eu", "HOME": "/root"}
    secrets = alerts.secret_values(environment)
    alert = alerts.failure_alert(
        run_id="r1",
        job_name="amplitude_daily",
        message="401 for key sk-live-123456 in eu",
        tags={"dagster/partition": "2026-11-01"},
        failed_steps=["amplitude__events"],
        secrets=secrets,
    )
    assert "sk-live-123456" not in json.dumps(alert)
    assert alert["message"] == "401 for key *** in eu"
    assert alert["partition"] == "2026-11-01"


def test_record_appends_one_json_line_per_alert(tmp_path: Path) -> None:
    alerts.record(tmp_path, ALERT)
    path = alerts.record(tmp_path, {**ALERT, "run_id": "def"})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["abc", "def"]
