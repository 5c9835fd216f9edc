"""Pseudonymised track events -> typed rows of `profile_store/events`, and the key they deduplicate on.

EventTime carries 7 fractional digits (100 ns ticks); Arrow's `timestamp[us, UTC]` keeps 6, so the exact
tick count is kept beside it in `event_time_ticks`: nothing the vendor said is lost, and ordering by it
reproduces the API's order. `User` is flattened; `User.Info` and `Payload` stay JSON text (sorted keys).
Typing is SQL run by the shared ingestion path (`event_platform.ingest`); the few values SQL cannot write
exactly as Python does go through vectorised Python functions (`FUNCTIONS`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from event_platform.columns import column
from event_platform.ingest import SqlFunction, identifier, sorted_json_sql
from event_platform.sources.profile_store.client import TICKS_PER_SECOND, parse_event_time
from event_platform.staging import sql_text

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


def event_key(event: dict[str, Any]) -> str:
    """`TrackId`, or for an event without one a hash of its (pseudonymised) content."""
    track_id = event.get("TrackId")
    if isinstance(track_id, str) and track_id.strip():
        return track_id.strip()
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# --- typing: DuckDB SQL over the event's keys, each read by `read_json` as JSON (see `landing.SPEC`) ---

FAST_EVENT_TIME = r"[1-9]\d{3}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,7})?(Z|[+-]00:?00)?"
"""The EventTime shapes SQL converts itself, exactly as `client.parse_event_time` does; any other
(surrounding spaces, other digits, an impossible hour) goes through `parse_event_time`."""
PLAIN_TRACK_ID = r"[!-~](?s:.*[!-~])?"
"""A TrackId that `strip()` leaves as it is; any other goes through `event_key`."""
RAW_KEYS: tuple[str, ...] = ("TrackId", *TEXT_FIELDS, "EventTime", "Value", "User", "Payload")
WHOLE_EVENT = "_event"
"""The whole line, which the content hash of an event without a TrackId needs."""


def _json_text(value: str) -> str:
    """SQL of `json.dumps(value, ensure_ascii=False, sort_keys=True)`, null for JSON null or no value:
    integers, booleans and flat objects in SQL, anything else (floats, strings, nesting) through Python."""
    kind = f"json_type({value})"
    return (
        f"CASE WHEN {kind} IS NULL OR {kind} = 'NULL' THEN NULL "
        f"WHEN {kind} = 'BIGINT' THEN CAST({value} AS BIGINT)::VARCHAR "
        f"WHEN {kind} = 'UBIGINT' THEN CAST({value} AS UBIGINT)::VARCHAR "
        f"WHEN {kind} = 'BOOLEAN' THEN {value}::VARCHAR "
        f"WHEN {kind} = 'OBJECT' THEN "
        f"coalesce({sorted_json_sql(value, item_separator=', ', key_separator=': ')}, "
        f"profile_store_json({value}::VARCHAR)) "
        f"ELSE profile_store_json({value}::VARCHAR) END"
    )


def _string(value: str) -> str:
    return f"CASE WHEN json_type({value}) = 'VARCHAR' THEN {value} ->> '$' END"


def _text(value: str) -> str:
    """A text field: a string as it is ("" as null), a number or a boolean as its JSON text. An object
    or a list is no text: `_not_nested` makes its row bad."""
    string = f"nullif({value} ->> '$', '')"
    return f"CASE WHEN json_type({value}) = 'VARCHAR' THEN {string} ELSE {_json_text(value)} END"


def _not_nested(value: str) -> str:
    return f"(json_type({value}) IS NULL OR json_type({value}) NOT IN ('OBJECT', 'ARRAY'))"


def _ticks(value: str) -> str:
    time = _string(value)
    whole_seconds = f"try_cast(replace(substr({time}, 1, 19), 'T', ' ') AS TIMESTAMP)"
    fraction = f"CAST(rpad(regexp_extract({time}, '\\.(\\d+)', 1), 7, '0') AS BIGINT)"
    return (
        f"CASE WHEN regexp_full_match({time}, {sql_text(FAST_EVENT_TIME)}) "
        f"THEN epoch_us({whole_seconds}) // 1000000 * {TICKS_PER_SECOND} + {fraction} "
        f"ELSE profile_store_ticks({time}) END"
    )


_USER = identifier("User")
USER = f"(CASE WHEN json_type({_USER}) = 'OBJECT' THEN {_USER} END)"
USER_IS_USABLE = (
    f"CASE WHEN {_USER} IS NULL OR json_type({_USER}) IN ('NULL', 'OBJECT') THEN true "
    f"WHEN json_type({_USER}) = 'BOOLEAN' THEN NOT {_USER}::BOOLEAN "
    f"WHEN json_type({_USER}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN {_USER}::DOUBLE = 0 "
    f"WHEN json_type({_USER}) = 'VARCHAR' THEN {_USER} ->> '$' = '' "
    f"WHEN json_type({_USER}) = 'ARRAY' THEN json_array_length({_USER}) = 0 ELSE false END"
)
"""`event.get("User") or {}` is a dict: User is an object, or falsy (null, "", 0, false, []). A CASE,
not OR: DuckDB evaluates both sides of an OR, and casting an object to a number fails the query."""


USER_KEYS = ("Name", "Email", "Info")
TICKS = "EventTime.ticks"
DERIVED: dict[str, str] = {
    **{f"User.{key}": f"({USER} -> {sql_text('$.' + identifier(key))})" for key in USER_KEYS},
    TICKS: _ticks(identifier("EventTime")),
}
"""User's keys and EventTime's ticks, computed once per row for the typing that reads them."""


def _user(key: str) -> str:
    return identifier(f"User.{key}")


_TICKS = identifier(TICKS)
_TRACK_ID = identifier("TrackId")
TYPING: dict[str, str] = {
    "event_key": f"CASE WHEN json_type({_TRACK_ID}) = 'VARCHAR' AND regexp_full_match({_TRACK_ID} ->> '$', "
    f"{sql_text(PLAIN_TRACK_ID)}) THEN {_TRACK_ID} ->> '$' "
    f"ELSE profile_store_key({identifier(WHOLE_EVENT)}::VARCHAR) END",
    "track_id": _text(_TRACK_ID),
    **{column: _text(identifier(name)) for name, column in TEXT_FIELDS.items()},
    # Python's floor division: DuckDB's // truncates towards zero, which differs before 1970.
    "event_time": f"make_timestamp((({_TICKS}) - (({_TICKS}) % 10 + 10) % 10) // 10)::TIMESTAMPTZ",
    "event_time_ticks": _TICKS,
    "value": f"CASE WHEN json_type(\"Value\") = 'VARCHAR' THEN \"Value\" ->> '$' "
    f"ELSE {_json_text(identifier('Value'))} END",
    "user_name_key": _text(_user("Name")),
    "user_email_key": _text(_user("Email")),
    "user_info": _json_text(_user("Info")),
    "payload": _json_text(identifier("Payload")),
}
"""Each column of EVENTS_SCHEMA as SQL over the event's keys."""
VALID: tuple[str, ...] = (
    USER_IS_USABLE,
    *(_not_nested(identifier(name)) for name in ("TrackId", *TEXT_FIELDS)),
    _not_nested(_user("Name")),
    _not_nested(_user("Email")),
)
"""Besides an EventTime: User is an object or falsy, and the text fields hold no object or list."""


def _each(function: Callable[[str], Any], returns: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    """An Arrow function applying `function` to each non-null text, null where it raises ValueError."""

    def vectorised(values: pa.Array) -> pa.Array:
        results = []
        for value in values.to_pylist():
            try:
                results.append(None if value is None else function(value))
            except ValueError:
                results.append(None)
        return pa.array(results, returns)

    return vectorised


def _json_text_of(value: str) -> str:
    return json.dumps(json.loads(value), ensure_ascii=False, sort_keys=True)


def _key_of_event(line: str) -> str:
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ValueError("not an event")
    return event_key(event)


FUNCTIONS = (
    SqlFunction("profile_store_json", _each(_json_text_of, pa.string()), ("VARCHAR",), "VARCHAR"),
    SqlFunction("profile_store_ticks", _each(parse_event_time, pa.int64()), ("VARCHAR",), "BIGINT"),
    SqlFunction("profile_store_key", _each(_key_of_event, pa.string()), ("VARCHAR",), "VARCHAR"),
)
"""What SQL cannot reproduce exactly: Python's JSON text (sorted keys, its number formats), EventTime in
shapes other than the usual, and the content hash of an event without a plain TrackId."""
