"""`Retry-After` is honoured up to a cap, and past it the call fails at once naming the wait (issue 17)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import requests
import responses

from event_platform.retry import (
    NO_WAIT,
    Backoff,
    RetriesExhaustedError,
    RetryAfterTooLongError,
    TransientError,
    call_with_retries,
    retry_after_seconds,
)
from event_platform.sources.amplitude.client import ExportClient

US_URL = "https://amplitude.com/api/2/export"


def answer(retry_after: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = retry_after
    return response


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("-5", 0.0), ("soon", None), ("NaN", None), ("Fri, 31 Dec 9999 23:59:59 GMT", "huge"),
     ("1e400", "huge"), ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_never_raises_and_stays_finite(value: str, seconds: float | str | None) -> None:
    parsed = retry_after_seconds(answer(value))
    if seconds == "huge":
        assert parsed is not None and 1e9 < parsed < float("inf")
    else:
        assert parsed == seconds


@pytest.mark.parametrize("header", ["86400", "Fri, 31 Dec 9999 23:59:59 GMT"])
@responses.activate
def test_a_wait_past_the_cap_fails_at_once_naming_it(tmp_path: Path, header: str) -> None:
    responses.get(US_URL, status=429, headers={"Retry-After": header})
    slept: list[float] = []
    client = ExportClient("key", "secret", backoff=NO_WAIT, sleep=slept.append)
    with pytest.raises(RetryAfterTooLongError, match="EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS=300") as raised:
        list(client.export(*_day(), tmp_path))
    assert slept == [] and len(responses.calls) == 1
    message = str(raised.value)
    assert ("86400 s (until " in message) if header == "86400" else ("until 9999-12-31 23:59 UTC" in message)
    assert "secret" not in message
    assert isinstance(raised.value, RetriesExhaustedError)  # the assets treat it as an outage


def test_the_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS", "900")
    slept: list[float] = []
    attempts = iter([TransientError("busy", retry_after=600.0)])

    def attempt() -> str:
        for error in attempts:
            raise error
        return "done"

    assert call_with_retries(attempt, backoff=NO_WAIT, description="x", sleep=slept.append) == "done"
    assert slept == [600.0]
    monkeypatch.setenv("EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS", "a while")
    with pytest.raises(ValueError, match="EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS must be a positive number"):
        Backoff().delay(1, retry_after=1.0)


def _day() -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return start, start + dt.timedelta(hours=23)
