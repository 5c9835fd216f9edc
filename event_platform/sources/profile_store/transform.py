"""Pseudonymised track events -> typed rows of `profile_store/events`, and the key they deduplicate on.

EventTime carries 7 fractional digits (100 ns ticks); Arrow's `timestamp[us, UTC]` keeps 6, so the exact
tick count is kept beside it in `event_time_ticks`: nothing the vendor said is lost, and ordering by it
reproduces the API's order. `User` is flattened; `User.Info` and `Payload` stay JSON text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.sources.profile_store.client import parse_event_time

TICKS_PER_MICROSECOND = 10

EVENTS_SCHEMA = pa.schema(
    [
        column(
            "event_key",
            pa.string(),
            "The row's key: TrackId, or `sha256:` of the pseudonymised event where TrackId is empty; one row "
            "per key.",
            nullable=False,
        ),
        column("track_id", pa.string(), "The Profile Store's id of the track event (TrackId)."),
        column("device_id", pa.string(), "The visitor's device id (DeviceId), as Amplitude's device_id."),
        column("event_type", pa.string(), "The kind of event (EventType), e.g. `pageview`."),
        column(
            "event_time",
            pa.timestamp("us", tz="UTC"),
            "When the event happened (EventTime, UTC) to the microsecond; the partition's day is this day.",
            nullable=False,
        ),
        column(
            "event_time_ticks",
            pa.int64(),
            "EventTime exactly, in 100-nanosecond ticks since the Unix epoch: the vendor's full "
            "precision and order.",
            nullable=False,
        ),
        column("value", pa.string(), "The event's value (Value), as text or JSON text."),
        column("scope", pa.string(), "The Profile Store scope (site) the event belongs to (Scope)."),
        column("country_code", pa.string(), "The visitor's country code (CountryCode)."),
        column("page_uri", pa.string(), "The page the event happened on (PageUri)."),
        column("page_title", pa.string(), "That page's title (PageTitle)."),
        column(
            "remote_address_key",
            pa.string(),
            "The visitor's IP address (RemoteAddress) as a keyed hash `pii1:…`, never in clear.",
        ),
        column("session_id", pa.string(), "The visitor's session (SessionId)."),
        column("city", pa.string(), "The visitor's city (City)."),
        column("user_name_key", pa.string(), "The person's name (User.Name) as a keyed hash `pii1:…`."),
        column("user_email_key", pa.string(), "The person's e-mail (User.Email) as a keyed hash `pii1:…`."),
        column(
            "user_info",
            pa.string(),
            "Further user details (User.Info), any address inside replaced by its keyed hash (JSON text).",
        ),
        column(
            "payload",
            pa.string(),
            "The event's free payload (Payload), any address inside replaced by its keyed hash (JSON text).",
        ),
    ]
)

# Vendor field -> column, for the plain text fields.
TEXT_FIELDS = {
    "DeviceId": "device_id",
    "EventType": "event_type",
    "Scope": "scope",
    "CountryCode": "country_code",
    "PageUri": "page_uri",
    "PageTitle": "page_title",
    "RemoteAddress": "remote_address_key",
    "SessionId": "session_id",
    "City": "city",
}


class UntypableEventError(ValueError):
    """An event that cannot become a row; it goes to quarantine with this reason."""


def event_key(event: dict[str, Any]) -> str:
    """`TrackId`, or for an event without one a hash of its (pseudonymised) content."""
    track_id = event.get("TrackId")
    if isinstance(track_id, str) and track_id.strip():
        return track_id.strip()
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _text(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise UntypableEventError(f"{name} is a {type(value).__name__}, not text")


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def typed_row(event: Any) -> dict[str, Any]:
    """One row of EVENTS_SCHEMA from a pseudonymised event."""
    if not isinstance(event, dict):
        raise UntypableEventError(f"an event must be a JSON object, not {type(event).__name__}")
    try:
        ticks = parse_event_time(event.get("EventTime"))  # type: ignore[arg-type]
    except ValueError:
        raise UntypableEventError("EventTime is missing or not a UTC timestamp") from None
    user = event.get("User") or {}
    if not isinstance(user, dict):
        raise UntypableEventError("User is not an object")
    row = {column: _text(event, name) for name, column in TEXT_FIELDS.items()}
    row.update(
        event_key=event_key(event),
        track_id=_text(event, "TrackId"),
        event_time=ticks // TICKS_PER_MICROSECOND,
        event_time_ticks=ticks,
        value=event["Value"] if isinstance(event.get("Value"), str) else _json_text(event.get("Value")),
        user_name_key=_text(user, "Name"),
        user_email_key=_text(user, "Email"),
        user_info=_json_text(user.get("Info")),
        payload=_json_text(event.get("Payload")),
    )
    return row
