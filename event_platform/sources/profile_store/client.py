"""Profile Store TrackEvents API client (VENDORS.md §3). Plain Python: no Dagster.

Reading a window completely under the vendor's rule that `$skip + $top` stays below 10000:

1. A *segment* is `EventTime ge|gt <lower> and EventTime lt <end>`, ordered by `EventTime asc`, paged by
   `$skip`/`$top` with `$skip + $top <= 9999` on every request. The first page's `total` says whether the
   segment fits; a segment of at most 9999 events is read to its end.
2. When it does not fit, the lower bound moves forward (a *window split*): the events sharing the last
   timestamp read (the trailing instant, which may continue past what the rule let us reach) are held back,
   that instant is read on its own with `EventTime eq <instant>`, and the next segment starts at
   `EventTime gt <instant>`. Every event belongs to exactly one segment or instant, so nothing is read
   twice and the lower bound always advances.
3. An instant (one 100 ns tick) holding 10000 or more events cannot be paged either: the client pages the
   9999 it can reach to learn their `EventType`s, then reads `EventTime eq <instant> and EventType eq <t>`
   for each; if those totals do not add up to the instant's total, it stops with a clear error rather
   than return a partial day.

Assumed of the server (as of any database with a tiebreak): between requests it returns events sharing one
`EventTime` in the same order, so `$skip` paging over ties neither repeats nor skips. Nothing else about
tie order is relied on; a tie group on a segment's edge is always re-read whole by the instant query, and
the asset check `rows == total` catches a server that breaks the assumption.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from event_platform.retry import Backoff, TransientError, call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2.0/TrackEvents"
WINDOW_LIMIT = 10_000
"""The vendor refuses any request with `$skip + $top >= WINDOW_LIMIT`."""
MAX_READABLE = WINDOW_LIMIT - 1
"""How many events of one filter are reachable by paging: `$skip + $top` may be at most this."""
DEFAULT_PAGE_SIZE = 1000
TICKS_PER_SECOND = 10_000_000
"""EventTime has 7 fractional digits: one tick is 100 ns."""
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_EVENT_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(Z|[+-]00:?00)?$"
)

Event = dict[str, Any]


class ProfileStoreError(RuntimeError):
    """The Profile Store refused a request, or the data cannot be read completely; the message says why."""


def parse_event_time(text: str) -> int:
    """An EventTime string (UTC, up to 7 fractional digits) as ticks since the Unix epoch."""
    match = _EVENT_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a Profile Store EventTime: {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    whole = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    fraction = int((match.group(7) or "").ljust(7, "0"))
    seconds = (whole - EPOCH) // dt.timedelta(seconds=1)
    return seconds * TICKS_PER_SECOND + fraction


def ticks_from_datetime(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes given to the Profile Store client must be timezone-aware")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def format_ticks(ticks: int, *, suffix_z: bool) -> str:
    """An OData datetime literal with all 7 fractional digits, e.g. 2026-11-01T10:00:00.1234567[Z]."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    whole = EPOCH + dt.timedelta(seconds=seconds)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{fraction:07d}" + ("Z" if suffix_z else "")


def odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _lower_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """The response envelope's keys, case-folded: `total`/`Total` casing is unconfirmed."""
    return {key.lower(): value for key, value in body.items()}


@dataclass
class ReadStats:
    """What reading cost: shown as materialization metadata and measured by the benchmark."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    events: int = 0
    windows_split: int = 0
    instants_read: int = 0
    instants_split_by_type: int = 0
    total_reported: int | None = None


@dataclass(frozen=True)
class Page:
    items: list[Event]
    total: int


@dataclass
class _Bounds:
    """`EventTime` bounds of a query: `lower` inclusive unless `lower_exclusive`; `upper` exclusive."""

    lower: int
    upper: int
    lower_exclusive: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class ProfileStoreClient:
    """Reads, searches and deletes track events; counts what it does in `stats`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        time_suffix_z: bool = False,
        backoff: Backoff | None = None,
        timeout_seconds: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_READABLE:
            raise ValueError(f"page size must be between 1 and {MAX_READABLE}, got {page_size}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.page_size = page_size
        self.time_suffix_z = time_suffix_z
        self.backoff = backoff or Backoff()
        self.timeout_seconds = timeout_seconds
        self._session = session or requests.Session()
        self._sleep = sleep
        self.stats = ReadStats()

    def __repr__(self) -> str:
        return f"ProfileStoreClient(base_url={self.base_url!r}, page_size={self.page_size}, api_key=<hidden>)"

    # ---- reading ---------------------------------------------------------------------------------

    def track_events(
        self, start: dt.datetime, end: dt.datetime, where: Mapping[str, str] | None = None
    ) -> Iterator[list[Event]]:
        """Every event with `start <= EventTime < end` (and `field eq value` for each of `where`), in
        batches of at most a page, ascending by time, each event once. `stats.total_reported` is the
        API's `total` for the whole window."""
        bounds = _Bounds(ticks_from_datetime(start), ticks_from_datetime(end), extra=dict(where or {}))
        first_segment = True
        while True:
            held_back: list[Event] = []
            read = 0
            segment_total = 0
            for page in self._pages(bounds):
                if first_segment:
                    self.stats.total_reported = page.total
                segment_total = page.total
                read += len(page.items)
                batch = held_back + page.items
                cut = _start_of_trailing_instant(batch)
                held_back = batch[cut:]
                if batch[:cut]:
                    yield self._count(batch[:cut])
            first_segment = False
            if read >= segment_total:
                if held_back:
                    yield self._count(held_back)
                return
            # The window rule stops us here: re-read the trailing instant whole, then move past it.
            instant = _event_ticks(held_back[0]) if held_back else None
            if instant is None:
                raise ProfileStoreError(
                    "cannot move the lower EventTime bound past a segment whose last event has no readable "
                    "EventTime; the window holds more events than the API lets a client page through."
                )
            self.stats.windows_split += 1
            log.info(
                "Profile Store segment from %s holds %d events (more than %d): moving the lower bound to %s",
                format_ticks(bounds.lower, suffix_z=True),
                segment_total,
                MAX_READABLE,
                format_ticks(instant, suffix_z=True),
            )
            yield from self._instant(instant, bounds.extra)
            bounds = _Bounds(instant, bounds.upper, lower_exclusive=True, extra=bounds.extra)

    def _instant(self, instant: int, where: Mapping[str, str]) -> Iterator[list[Event]]:
        """Every event at exactly `instant` (one tick)."""
        self.stats.instants_read += 1
        bounds = _Bounds(instant, instant + 1, extra=dict(where))
        event_types: set[str] = set()
        total = 0
        for page in self._pages(bounds):
            total = page.total
            if total > MAX_READABLE:
                event_types.update(str(event.get("EventType")) for event in page.items)
                continue
            if page.items:
                yield self._count(page.items)
        if total <= MAX_READABLE:
            return
        # 10000+ events in one tick: split by the event types seen in the reachable part.
        if "EventType" in where:
            raise ProfileStoreError(
                f"{total} events share EventTime {format_ticks(instant, suffix_z=True)} and event type "
                f"{where['EventType']!r}: more than the {MAX_READABLE} the API lets a client page through."
            )
        self.stats.instants_split_by_type += 1
        covered = 0
        for event_type in sorted(event_types):
            typed = dict(where, EventType=event_type)
            first_total: int | None = None
            for page in self._pages(_Bounds(instant, instant + 1, extra=typed)):
                if first_total is None:
                    first_total = page.total
                    if first_total > MAX_READABLE:
                        raise ProfileStoreError(
                            f"{first_total} events of type {event_type!r} share EventTime "
                            f"{format_ticks(instant, suffix_z=True)}: more than the {MAX_READABLE} the API "
                            "lets a client page through."
                        )
                if page.items:
                    yield self._count(page.items)
            covered += first_total or 0
        if covered != total:
            raise ProfileStoreError(
                f"{total} events share EventTime {format_ticks(instant, suffix_z=True)}; the event types "
                f"found among the first {MAX_READABLE} cover only {covered}. The rest cannot be paged "
                "under the API's $skip + $top < 10000 rule: ask the vendor for an export of that instant."
            )

    def _pages(self, bounds: _Bounds) -> Iterator[Page]:
        """Pages of one filter by $skip, never asking for `$skip + $top` above MAX_READABLE (< 10000)."""
        skip = 0
        while True:
            top = min(self.page_size, MAX_READABLE - skip)
            page = self._get_page(bounds, top=top, skip=skip)
            self.stats.pages += 1
            yield page
            skip += len(page.items)
            if not page.items or skip >= page.total or skip >= MAX_READABLE:
                return

    def _count(self, events: list[Event]) -> list[Event]:
        self.stats.events += len(events)
        return events

    def _filter(self, bounds: _Bounds) -> str:
        suffix_z = self.time_suffix_z
        if bounds.upper == bounds.lower + 1 and not bounds.lower_exclusive:
            clauses = [f"EventTime eq {format_ticks(bounds.lower, suffix_z=suffix_z)}"]
        else:
            operator = "gt" if bounds.lower_exclusive else "ge"
            clauses = [
                f"EventTime {operator} {format_ticks(bounds.lower, suffix_z=suffix_z)}",
                f"EventTime lt {format_ticks(bounds.upper, suffix_z=suffix_z)}",
            ]
        clauses += [f"{name} eq {odata_string(value)}" for name, value in bounds.extra.items()]
        return " and ".join(clauses)

    def _get_page(self, bounds: _Bounds, *, top: int, skip: int) -> Page:
        params = {
            "$filter": self._filter(bounds),
            "$orderby": "EventTime asc",
            "$top": str(top),
            "$skip": str(skip),
        }
        sensitive = list(bounds.extra.values())

        def attempt() -> Page:
            response = self._send("GET", API_PREFIX, params=params, sensitive=sensitive)
            try:
                body = _lower_keys(response.json())
                items = body["items"]
                total = int(body["total"]) if body.get("total") is not None else None
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise TransientError(
                    f"Profile Store returned an unreadable page ({type(error).__name__})"
                ) from None
            if not isinstance(items, list):
                raise TransientError("Profile Store returned a page whose items are not a list")
            if total is None:
                # Without `total` the window rule cannot be planned; a full page means "maybe more".
                total = skip + len(items) + (1 if len(items) == top else 0)
            return Page(items=items, total=total)

        return self._with_retries(attempt, f"Profile Store GET TrackEvents (skip {skip}, top {top})")

    # ---- deleting, previewing ---------------------------------------------------------

    def delete(self, scope: str, track_id: str) -> bool:
        """Delete one event: True when deleted, False when the Profile Store does not know it (404)."""
        path = f"{API_PREFIX}/{quote(scope, safe='')}/{quote(track_id, safe='')}"

        def attempt() -> bool:
            response = self._send("DELETE", path, ok=(200, 202, 204, 404))
            return response.status_code != 404

        return self._with_retries(attempt, "Profile Store DELETE TrackEvents")

    def preview(self, kql: str) -> list[Event]:
        """Run a KQL query on the preview endpoint (at most 1000 results, kept 2 minutes by the vendor)."""

        def attempt() -> list[Event]:
            response = self._send("POST", f"{API_PREFIX}/preview", json_body={"Query": kql})
            try:
                body = response.json()
                items = _lower_keys(body)["items"] if isinstance(body, dict) else body
            except (ValueError, KeyError) as error:
                raise TransientError(
                    f"Profile Store returned an unreadable preview ({type(error).__name__})"
                ) from None
            return list(items)

        return self._with_retries(attempt, "Profile Store POST TrackEvents/preview")

    # ---- HTTP ------------------------------------------------------------------------------------

    def _with_retries(self, attempt: Any, description: str) -> Any:
        calls_before = self.stats.requests
        try:
            return call_with_retries(
                attempt, backoff=self.backoff, description=description, sleep=self._sleep
            )
        finally:
            self.stats.retries += max(0, self.stats.requests - calls_before - 1)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        ok: Iterable[int] = (200,),
        sensitive: Iterable[str] = (),
    ) -> requests.Response:
        self.stats.requests += 1
        response = self._session.request(
            method,
            self.base_url + path,
            params=params,
            data=json.dumps(json_body) if json_body is not None else None,
            headers={
                "Authorization": f"epi-single {self._api_key}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if json_body is not None else {}),
            },
            timeout=self.timeout_seconds,
        )
        status = response.status_code
        if status in tuple(ok):
            return response
        detail = _redact(response.text[:300], [self._api_key, *sensitive])
        if status == 429:
            raise TransientError(
                f"Profile Store is throttling (429): {detail}", retry_after=retry_after_seconds(response)
            )
        if status >= 500:
            raise TransientError(f"Profile Store server error {status}: {detail}")
        if status in (401, 403):
            raise ProfileStoreError(
                f"Profile Store refused the credentials ({status}): check PROFILE_STORE_API_KEY and that "
                "PROFILE_STORE_BASE_URL is the base URL issued for that key."
            )
        raise ProfileStoreError(f"Profile Store refused {method} {path} ({status}): {detail}")


def _event_ticks(event: Event) -> int | None:
    try:
        return parse_event_time(event["EventTime"])
    except (KeyError, TypeError, ValueError):
        return None


def _start_of_trailing_instant(batch: list[Event]) -> int:
    """Index where the run of events sharing the batch's last EventTime begins (nothing is held back
    when that time is unreadable: such an event cannot mark an instant)."""
    last = _event_ticks(batch[-1]) if batch else None
    if last is None:
        return len(batch)
    index = len(batch)
    while index > 0 and _event_ticks(batch[index - 1]) == last:
        index -= 1
    return index


def _redact(text: str, values: Iterable[str]) -> str:
    for value in values:
        if value:
            text = text.replace(value, "<redacted>")
    return text
