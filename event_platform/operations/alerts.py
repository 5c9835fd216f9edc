"""Alerts as plain data: what a failed run or a stale asset says, where it is recorded, how it is POSTed.

No Dagster here (the sensors beside it adapt runs and freshness states), so the delivery can be
read and tested alone. Secrets never leave: the webhook URL (Slack-style URLs embed a token) is
never logged or put in an error, and the values of secret-looking variables are masked in every
message the alert carries.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from event_platform.retry import Backoff, TransientError, call_with_retries, retry_after_seconds

WEBHOOK_SETTING = "EVENT_PLATFORM_ALERT_WEBHOOK_URL"
ALERTS_DIR = Path("alerts")
"""Relative to the Dagster instance's root directory (DAGSTER_HOME): one `<event>s.jsonl` per kind."""
FAILURES_LOG = ALERTS_DIR / "run_failures.jsonl"

WEBHOOK_BACKOFF = Backoff(attempts=4, base_seconds=1.0, max_seconds=15.0)
WEBHOOK_TIMEOUT_SECONDS = 10
MASK = "***"

SECRET_VARIABLE = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|WEBHOOK", re.IGNORECASE)
SHORTEST_MASKED_VALUE = 6
"""Shorter values ("us", "1") would mask ordinary words; real secrets are longer."""


class AlertDeliveryError(RuntimeError):
    """The webhook refused the alert for good (a 4xx other than 429)."""


def secret_values(environment: Mapping[str, str] | None = None) -> list[str]:
    """Values of the variables whose names look secret, longest first so overlaps mask whole."""
    environment = os.environ if environment is None else environment
    values = {
        value
        for name, value in environment.items()
        if SECRET_VARIABLE.search(name) and len(value) >= SHORTEST_MASKED_VALUE
    }
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, MASK)
    return text


def failure_alert(
    *,
    run_id: str,
    job_name: str,
    message: str,
    tags: Mapping[str, str],
    failed_steps: list[str],
    secrets: list[str],
    failed_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON object recorded and POSTed for one failed run."""
    return {
        "event": "run_failure",
        "failed_at": (failed_at or datetime.now(UTC)).isoformat(),
        "run_id": run_id,
        "job": job_name,
        "partition": tags.get("dagster/partition"),
        "partition_range": [
            tags.get("dagster/asset_partition_range_start"),
            tags.get("dagster/asset_partition_range_end"),
        ]
        if "dagster/asset_partition_range_start" in tags
        else None,
        "backfill": tags.get("dagster/backfill"),
        "failed_steps": failed_steps,
        "message": mask_secrets(message, secrets),
        # Slack and Teams webhooks show `text`; other receivers read the fields above.
        "text": mask_secrets(f"Dagster run {run_id} of {job_name} failed: {message}", secrets)[:3000],
    }


def freshness_alert(*, asset: str, state: str, since: datetime) -> dict[str, Any]:
    """The JSON object recorded and POSTed when an asset's freshness policy starts failing."""
    return {
        "event": "freshness_failure",
        "failed_at": since.isoformat(),
        "asset": asset,
        "state": state,
        "text": f"{asset} is stale: its freshness policy is {state} since {since:%Y-%m-%d %H:%M} UTC.",
    }


def record(instance_root: Path, alert: Mapping[str, Any]) -> Path:
    """Append the alert as one JSON line to `alerts/<event>s.jsonl` under the instance; the file."""
    path = instance_root / ALERTS_DIR / f"{alert['event']}s.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(alert, sort_keys=True) + "\n")
    return path


def post_alert(
    url: str,
    alert: Mapping[str, Any],
    *,
    backoff: Backoff = WEBHOOK_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """POST the alert as JSON, retrying 429, 5xx and broken connections per `backoff`."""

    def attempt() -> None:
        try:
            response = requests.post(url, json=alert, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            # requests' messages quote the URL: keep only the kind of failure.
            raise TransientError(f"alert webhook unreachable ({type(error).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"alert webhook answered HTTP {response.status_code}",
                retry_after=retry_after_seconds(response),
            )
        if response.status_code >= 400:
            raise AlertDeliveryError(
                f"alert webhook refused the alert: HTTP {response.status_code}; check {WEBHOOK_SETTING}."
            )

    call_with_retries(attempt, backoff=backoff, description="alert webhook POST", sleep=sleep)
