"""Retries with exponential backoff and full jitter, shared by every vendor client.

Plain Python, no Dagster: clients raise `TransientError` for what the vendor documents as
retryable (429, 5xx, a truncated body) and `call_with_retries` decides when to try again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests

log = logging.getLogger(__name__)

T = TypeVar("T")


class TransientError(Exception):
    """A failure worth trying again: the vendor said so (429/5xx) or the transfer broke."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhaustedError(Exception):
    """Every attempt failed with a transient error; the last one is the cause."""


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
        return max(jittered, retry_after) if retry_after is not None else jittered


NO_WAIT = Backoff(attempts=6, base_seconds=0.0, max_seconds=0.0)
"""For tests: retry at once, still honouring an explicit Retry-After."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
