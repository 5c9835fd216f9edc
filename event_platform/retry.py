"""Retries with exponential backoff and full jitter, shared by every vendor client.

Plain Python, no Dagster API: clients raise `TransientError` for what the vendor documents as
retryable (429, 5xx, a truncated body) and `call_with_retries` decides when to try again.

A vendor's `Retry-After` is honoured up to `EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS` (default 300): a
vendor asking for longer (a day, a date in year 9999) fails the call at once with what it asked for in
the message, rather than parking a run for a day; the schedule or a person tries again later.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests

from event_platform import settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class TransientError(Exception):
    """A failure worth trying again: the vendor said so (429/5xx) or the transfer broke."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhaustedError(Exception):
    """Every attempt failed with a transient error; the last one is the cause."""


class RetryAfterTooLongError(RetriesExhaustedError):
    """The vendor asked to wait longer than `EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS`: no run waits that."""


MAX_RETRY_AFTER_SETTING = "EVENT_PLATFORM_MAX_RETRY_AFTER_SECONDS"


def max_retry_after_seconds() -> float:
    """The longest `Retry-After` honoured, as the environment sets it now."""
    return settings.Platform.read().max_retry_after_seconds


def describe_wait(seconds: float) -> str:
    """`3600 s (until 2026-12-01 22:00 UTC)`; the date is left out when it is past the calendar's end."""
    try:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    except OverflowError:
        return f"{seconds:.0f} s (beyond the year 9999)"
    return f"{seconds:.0f} s (until {until:%Y-%m-%d %H:%M} UTC)"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""

    attempts: int = 6
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A vendor's `Retry-After` is a floor: waiting less only earns another 429.
        """
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        jittered = random.uniform(0, ceiling)
        if retry_after is None:
            return jittered
        return max(jittered, min(retry_after, max_retry_after_seconds()))


NO_WAIT = Backoff(attempts=6, base_seconds=0.0, max_seconds=0.0)
"""For tests: retry at once, still honouring an explicit Retry-After."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3). Never raises:
    an unparsable value is None, and a huge one (a date in year 9999, `1e400`) stays a finite number
    that the cap in `call_with_retries` refuses."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), float(2**63))


RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    TransientError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def call_with_retries(
    attempt: Callable[[], T],
    *,
    backoff: Backoff,
    description: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt` until it returns, retrying transient failures per `backoff`.

    `description` names the operation in logs and in the final error; it must hold no secret.
    """
    for number in range(1, backoff.attempts + 1):
        try:
            return attempt()
        except RETRYABLE_EXCEPTIONS as error:
            if number == backoff.attempts:
                raise RetriesExhaustedError(
                    f"{description} failed after {backoff.attempts} attempts: {error}"
                ) from error
            retry_after = error.retry_after if isinstance(error, TransientError) else None
            limit = max_retry_after_seconds()
            if retry_after is not None and retry_after > limit:
                raise RetryAfterTooLongError(
                    f"{description}: the vendor asked to wait {describe_wait(retry_after)} before retrying "
                    f"({error}), longer than {MAX_RETRY_AFTER_SETTING}={limit:g} s; not waiting. "
                    "Try again after that time, or raise the setting."
                ) from error
            wait = backoff.delay(number, retry_after)
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.1fs",
                description,
                number,
                backoff.attempts,
                error,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")
