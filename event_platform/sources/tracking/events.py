"""The learning platform's tracking events: their types, the schema of each `event_data`, and validation.

Plain Python, no Dagster: the Tracker validates before it acknowledges, the collector validates again
before it lands (the two may run different code), and the asset's checks reuse the personal-data scan.

An event (VENDORS.md §4):

    {"uuid", "event_type", "time": "2014-03-03T16:19:05.584523+00:00", "anon_username",
     "course_slug", "course_run", "unit_node_slug", "course_unit_id", "course_unit_slug", "block_uuid",
     "page_url", "event_data": {...}}

Each event type declares the fields of its `event_data`: their JSON types, whether required, and for
some an enumeration. Fields a type does not declare are allowed (the LMS adds some, e.g. to
`assessment.submitted`) but still scanned for personal data. More types come from configuration:
`EventTypeRegistry.extended(mapping)` or a JSON file (`load_registry(path)`, the path from the setting
`TRACKING_EVENT_TYPES_FILE`), both in the shape of `parse_event_types`.

Personal data is refused, never stored: an email address in any string (keys included, at any depth),
a key that names a person (`name`, `email`, `username`, ...), an `anon_username` that is not an
anonymous token.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

TIME_FORMAT_EXAMPLE = "2014-03-03T16:19:05.584523+00:00"

CONTEXT_FIELDS: tuple[str, ...] = (
    "course_slug",
    "course_run",
    "unit_node_slug",
    "course_unit_id",
    "course_unit_slug",
    "block_uuid",
    "page_url",
)
"""Where in the LMS the event happened; each optional (null when not applicable)."""

EVENT_FIELDS: tuple[str, ...] = ("uuid", "event_type", "time", "anon_username", *CONTEXT_FIELDS, "event_data")

EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
"""Anything shaped like an address, wherever it hides (a query string, a free-text answer)."""

PERSONAL_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "display_name",
        "email",
        "email_address",
        "username",
        "user_name",
        "phone",
        "phone_number",
    }
)
"""Keys whose value names a person; matched exactly (case and `-`/`_` insensitive), so
`unit_display_name` or `cohort_name` stay allowed."""

PERSONAL_KEY_ALTERNATIVES = "|".join(sorted(key.replace("_", "[-_]") for key in PERSONAL_KEYS))
"""The personal keys as a regular-expression alternation (RE2-compatible, for DuckDB too)."""

_PERSONAL_KEY_IN_JSON = re.compile(rf'"\s*(?:{PERSONAL_KEY_ALTERNATIVES})\s*"\s*:', re.IGNORECASE)
PERSONAL_KEY_WORDS = ("name", "email", "phone")
"""Every personal key holds one of these: text without any of them needs no regular expression."""


def _may_hold_personal_key(text: str) -> bool:
    # Every event has the key "anon_username", which the expression never matches (a key must start
    # with the personal word), so it is left out before the cheap test.
    lowered = text.lower().replace('"anon_username"', "")
    return any(word in lowered for word in PERSONAL_KEY_WORDS) and bool(_PERSONAL_KEY_IN_JSON.search(text))


ANONYMOUS_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""An anonymous id is a token: no spaces (a name), no `@` (an email), at most 128 characters."""

VIDEO_EVENT_TYPES: tuple[str, ...] = tuple(
    f"kinesinlms.course.video.{name}"
    for name in (
        "load",
        "play",
        "pause",
        "end",
        "error",
        "replay_clicked",
        "playback_rate_change",
        "playback_quality_change",
    )
)

DEFAULT_MAX_EVENT_BYTES = 64 * 1024
"""The largest event (as JSON) the collector accepts unless `TRACKING_MAX_EVENT_BYTES` says otherwise."""

MAX_NESTING = 32
"""Deeper payloads are refused rather than walked: no legitimate event nests this far."""

EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
"""An event's time outside these is a broken clock or a probe, and would not survive typing."""


class JsonType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    NULL = "null"


def json_type_of(value: object) -> JsonType:
    # bool before int: in Python True is an int, in JSON it is not a number.
    if value is None:
        return JsonType.NULL
    if isinstance(value, bool):
        return JsonType.BOOLEAN
    if isinstance(value, int):
        return JsonType.INTEGER
    if isinstance(value, float):
        return JsonType.NUMBER
    if isinstance(value, str):
        return JsonType.STRING
    if isinstance(value, Mapping):
        return JsonType.OBJECT
    if isinstance(value, list | tuple):
        return JsonType.ARRAY
    raise TypeError(f"{type(value).__name__} is not a JSON value")


class Problem(StrEnum):
    """Why an event was refused; the collector answers 400 for each, the Tracker raises."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_ALLOWED = "value_not_allowed"
    UNKNOWN_FIELD = "unknown_field"
    PERSONAL_DATA = "personal_data"
    IDENTITY = "identity"
    TOO_LARGE = "too_large"
    TOO_SLOW = "too_slow"
    UNAUTHORIZED = "unauthorized"


class InvalidEventError(ValueError):
    """An event that must not be stored; `problem` classifies it, the message says which field and why.

    The message never repeats a refused value: it may be the very personal data being refused.
    """

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.reason = message


@dataclass(frozen=True)
class FieldSpec:
    types: frozenset[JsonType]
    required: bool = True
    allowed: tuple[object, ...] | None = None
    """When set, the only values accepted (an enumeration such as `video_event_type`)."""

    def describe_types(self) -> str:
        return " or ".join(sorted(self.types))


@dataclass(frozen=True)
class EventType:
    name: str
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)

    def check_data(self, event_data: Mapping[str, Any]) -> None:
        for key, spec in self.fields.items():
            where = f"event_data.{key}"
            if key not in event_data or event_data[key] is None:
                if spec.required:
                    raise InvalidEventError(
                        Problem.MISSING_FIELD,
                        f"{where} is required for {self.name} ({spec.describe_types()})",
                    )
                continue
            actual = json_type_of(event_data[key])
            # An integer is a valid JSON number.
            integer_as_number = actual is JsonType.INTEGER and JsonType.NUMBER in spec.types
            if actual not in spec.types and not integer_as_number:
                raise InvalidEventError(
                    Problem.WRONG_TYPE,
                    f"{where} must be {spec.describe_types()}, got {actual} for {self.name}",
                )
            if spec.allowed is not None and event_data[key] not in spec.allowed:
                raise InvalidEventError(
                    Problem.NOT_ALLOWED,
                    f"{where} is not one of the {len(spec.allowed)} allowed values for {self.name}: "
                    f"{', '.join(map(str, spec.allowed))}",
                )


def _spec(*types: JsonType, required: bool = True, allowed: tuple[object, ...] | None = None) -> FieldSpec:
    return FieldSpec(frozenset(types), required, allowed)


_TEXT = JsonType.STRING
_ID = (JsonType.STRING, JsonType.INTEGER)
"""LMS ids arrive as database integers or as strings, depending on the emitting view."""

BUILTIN_EVENT_TYPES: tuple[EventType, ...] = (
    EventType("kinesinlms.core.user.registration"),
    EventType("kinesinlms.core.user.login"),
    EventType(
        "kinesinlms.core.user.enrollment.activated",
        {"cohort_id": _spec(*_ID), "cohort_name": _spec(_TEXT, required=False)},
    ),
    EventType("kinesinlms.core.user.enrollment.deactivated"),
    EventType("kinesinlms.course.content.page_view", {"unit_display_name": _spec(_TEXT)}),
    EventType("kinesinlms.course.home.page_view", {"page": _spec(_TEXT)}),
    EventType("kinesinlms.course.search.search_request", {"search_text": _spec(_TEXT)}),
    EventType("kinesinlms.course.bookmark.created"),
    EventType("kinesinlms.course.resource.download", {"course_resource_name": _spec(_TEXT)}),
    EventType(
        "kinesinlms.course.assessment.submitted",
        {
            "assessment_id": _spec(*_ID),
            "assessment_type": _spec(_TEXT),
            "answer_id": _spec(*_ID, required=False),
            "status": _spec(_TEXT),
            "attempts": _spec(JsonType.INTEGER, required=False),
        },
    ),
    EventType(
        "kinesinlms.course.video.activity",
        {"video_id": _spec(_TEXT), "video_event_type": _spec(_TEXT, allowed=VIDEO_EVENT_TYPES)},
    ),
    EventType("kinesinlms.course.forum.post"),
    EventType(
        "kinesinlms.course.progress.milestone.completed",
        {"milestone_type": _spec(_TEXT), "milestone_id": _spec(*_ID)},
    ),
    EventType("kinesinlms.course.progress.passed"),
    EventType("kinesinlms.course.progress.badge.earned"),
    EventType("kinesinlms.survey.completed"),
)


def parse_event_types(config: Mapping[str, Any]) -> tuple[EventType, ...]:
    """Event types from configuration, e.g. the content of the `TRACKING_EVENT_TYPES_FILE`:

    {"acme.course.quiz.started": {"fields": {
        "quiz_id": {"type": ["string", "integer"]},
        "mode": {"type": "string", "required": false, "enum": ["practice", "exam"]}}}}
    """
    types = []
    for name, definition in config.items():
        if not isinstance(definition, Mapping):
            raise ValueError(f"event type {name!r}: expected an object with 'fields'")
        fields: dict[str, FieldSpec] = {}
        for key, raw in (definition.get("fields") or {}).items():
            if _normalised_key(key) in PERSONAL_KEYS:
                raise ValueError(f"event type {name!r}: field {key!r} would hold personal data")
            declared = raw.get("type", "string")
            names = [declared] if isinstance(declared, str) else list(declared)
            try:
                json_types = frozenset(JsonType(type_name) for type_name in names)
            except ValueError as error:
                raise ValueError(
                    f"event type {name!r}: field {key!r} has type {declared!r}; use {', '.join(JsonType)}"
                ) from error
            allowed = tuple(raw["enum"]) if raw.get("enum") else None
            fields[key] = FieldSpec(json_types, bool(raw.get("required", True)), allowed)
        types.append(EventType(name, fields))
    return tuple(types)


class EventTypeRegistry:
    """The event types a collector or Tracker accepts, and the validation of whole events."""

    def __init__(self, event_types: tuple[EventType, ...] = BUILTIN_EVENT_TYPES) -> None:
        self._types = {event_type.name: event_type for event_type in event_types}

    def __contains__(self, name: object) -> bool:
        return name in self._types

    @property
    def names(self) -> list[str]:
        return sorted(self._types)

    def extended(self, config: Mapping[str, Any]) -> EventTypeRegistry:
        """This registry plus (or with redefinitions from) the types of `config` (see `parse_event_types`)."""
        return EventTypeRegistry((*self._types.values(), *parse_event_types(config)))

    def validate(self, event: Mapping[str, Any], *, check_values: bool = True) -> dict[str, Any]:
        """The event with every field present (context fields default to null), or InvalidEventError.
        `check_values=False` skips `check_json_values` for a body `needs_value_check` cleared."""
        if not isinstance(event, Mapping):
            raise InvalidEventError(Problem.MALFORMED, "an event must be a JSON object")
        if check_values:
            check_json_values(event)
        unknown = sorted(set(event) - set(EVENT_FIELDS))
        if unknown:
            raise InvalidEventError(
                Problem.UNKNOWN_FIELD,
                f"unknown top-level field(s) {', '.join(map(repr, unknown))}; "
                f"an event has {', '.join(EVENT_FIELDS)}",
            )
        check_no_personal_data(event)
        event_type = self._event_type(event.get("event_type"))
        normalised = {name: event.get(name) for name in EVENT_FIELDS}
        normalised["uuid"] = _canonical_uuid(event.get("uuid"))
        normalised["time"] = _canonical_time(event.get("time"))
        check_anonymous_id(event.get("anon_username"))
        for name in CONTEXT_FIELDS:
            value = normalised[name]
            is_text_or_id = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            if value is not None and not is_text_or_id:
                raise InvalidEventError(
                    Problem.WRONG_TYPE,
                    f"{name} must be a string (or an integer id), got {json_type_of(value)}",
                )
        event_data = normalised["event_data"]
        if event_data is None:
            event_data = normalised["event_data"] = {}
        if not isinstance(event_data, Mapping):
            raise InvalidEventError(
                Problem.WRONG_TYPE, f"event_data must be an object, got {json_type_of(event_data)}"
            )
        event_type.check_data(event_data)
        return normalised

    def _event_type(self, name: object) -> EventType:
        if name is None or name == "":
            raise InvalidEventError(Problem.MISSING_FIELD, "event_type is required")
        if not isinstance(name, str):
            raise InvalidEventError(
                Problem.WRONG_TYPE, f"event_type must be a string, got {json_type_of(name)}"
            )
        if name not in self._types:
            raise InvalidEventError(
                Problem.UNKNOWN_TYPE,
                f"unknown event_type {name[:200]!r}; register it in TRACKING_EVENT_TYPES_FILE "
                f"({len(self._types)} types are known)",
            )
        return self._types[name]


def load_registry(path: str | None) -> EventTypeRegistry:
    """The built-in types plus those of the JSON file at `path` (the `TRACKING_EVENT_TYPES_FILE` setting)."""
    if not path:
        return EventTypeRegistry()
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"TRACKING_EVENT_TYPES_FILE {path}: cannot read event types: {error}") from error
    return EventTypeRegistry().extended(config)


def _holds_email(text: str) -> bool:
    # The "@" test first: it is fast, and it spares the regex its slow scans of long text without one.
    return "@" in text and EMAIL_PATTERN.search(text) is not None


def personal_data_paths(value: object, path: str = "$", depth: int = 0) -> Iterator[str]:
    """JSON paths (`$.event_data.answer`) where personal data sits; the data itself is never returned."""
    if depth > MAX_NESTING:
        yield f"{path} (nested deeper than {MAX_NESTING})"
        return
    if isinstance(value, str):
        if _holds_email(value):
            yield f"{path} (an email address)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            if _holds_email(key_text):
                yield f"{path}.<key> (an email address as a key)"
            elif _normalised_key(key_text) in PERSONAL_KEYS and item not in (None, ""):
                yield f"{path}.{key_text} (a person's {key_text})"
            else:
                yield from personal_data_paths(item, f"{path}.{key_text}", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from personal_data_paths(item, f"{path}[{index}]", depth + 1)


def check_no_personal_data(event: Mapping[str, Any]) -> None:
    # Most events hold nothing personal: one scan of their JSON text clears them; the walk that
    # names each offending field runs only when that scan finds something.
    try:
        text = json.dumps(event, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise InvalidEventError(Problem.MALFORMED, "the event is not JSON-serialisable") from error
    if not _holds_email(text) and not _may_hold_personal_key(text):
        return
    found = list(personal_data_paths(event))
    if found:
        raise InvalidEventError(
            Problem.PERSONAL_DATA, f"personal data is refused, not stored: {'; '.join(found[:5])}"
        )


def check_anonymous_id(anon_username: object) -> None:
    if anon_username is None or anon_username == "":
        raise InvalidEventError(Problem.IDENTITY, "anon_username is required: the learner's anonymous id")
    if not isinstance(anon_username, str) or not ANONYMOUS_ID_PATTERN.fullmatch(anon_username):
        raise InvalidEventError(
            Problem.IDENTITY,
            "anon_username must be an anonymous id (letters, digits, '.', '_', ':', '-'; at most 128), "
            "never a name or an email",
        )


def _normalised_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _canonical_uuid(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEventError(Problem.MISSING_FIELD, "uuid is required (a UUID string)")
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise InvalidEventError(Problem.WRONG_TYPE, "uuid is not a UUID") from error


def _canonical_time(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEventError(Problem.MISSING_FIELD, f"time is required, e.g. {TIME_FORMAT_EXAMPLE}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidEventError(
            Problem.WRONG_TYPE, f"time is not an ISO 8601 timestamp like {TIME_FORMAT_EXAMPLE}"
        ) from error
    if parsed.tzinfo is None:
        raise InvalidEventError(Problem.WRONG_TYPE, f"time has no UTC offset; expected {TIME_FORMAT_EXAMPLE}")
    try:
        utc = parsed.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise InvalidEventError(
            Problem.NOT_ALLOWED,
            f"time is out of range: it must fall between {EARLIEST_TIME:%Y-%m-%d} and "
            f"{LATEST_TIME:%Y-%m-%d} UTC",
        )
    return format_time(utc)


def format_time(moment: dt.datetime) -> str:
    """UTC with microseconds and `+00:00`, as the LMS writes it: 2014-03-03T16:19:05.584523+00:00."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def new_uuid() -> str:
    return str(uuid.uuid4())


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The compact JSON line the Tracker spools and the collector lands; InvalidEventError for a string
    that is not Unicode (a lone surrogate, or invalid UTF-8 the parser kept as one)."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError as error:
        raise InvalidEventError(
            Problem.MALFORMED,
            "a string holds invalid UTF-8 or a lone UTF-16 surrogate (U+D800..U+DFFF): not valid Unicode",
        ) from error
    except ValueError as error:
        raise InvalidEventError(Problem.MALFORMED, "NaN and Infinity are not JSON numbers") from error


@dataclass(frozen=True)
class _Unacceptable:
    """What the parser leaves where the JSON holds a value no event may carry; validation names it."""

    reason: str


MAX_INTEGER = 2**63 - 1
"""Integers are stored as 64-bit: a longer one (a 5,000-digit number) is refused, not truncated."""


def _integer(text: str) -> int | _Unacceptable:
    # Checked by length first: converting thousands of digits is itself the cost to avoid.
    if len(text) > 20 or abs(number := int(text)) > MAX_INTEGER:
        return _Unacceptable(f"an integer of {len(text.lstrip('-'))} digits, beyond 64 bits")
    return number


def _number(text: str) -> float | _Unacceptable:
    number = float(text)
    return number if math.isfinite(number) else _Unacceptable(f"the number {text[:40]} overflows to infinity")


def _constant(name: str) -> _Unacceptable:
    return _Unacceptable(f"{name} is not a JSON number")


class BodyError(ValueError):
    """A request body that holds no event at all: not JSON, nested too deep to parse."""


def parse_body(body: bytes) -> Any:
    """A request body as JSON. Bytes that are not UTF-8 become lone surrogates and values the platform
    cannot store (NaN, Infinity, integers past 64 bits, floats that overflow) become markers, so that
    validation refuses only the events holding them; BodyError when nothing can be parsed."""
    text = body.decode("utf-8", errors="surrogateescape")
    try:
        return json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_number)
    except RecursionError:
        raise BodyError(
            f"the body nests deeper than the parser allows (events nest at most {MAX_NESTING})"
        ) from None
    except json.JSONDecodeError as error:
        raise BodyError(
            f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def needs_value_check(body: bytes) -> bool:
    """Whether a parsed body may hold what `check_json_values` looks for: nesting past MAX_NESTING
    needs that many brackets, and markers come only from NaN, Infinity, 19 digits in a row (an integer
    past 64 bits) or a digit, an `e` and three digits (an exponent that overflows). Most single events
    have none, and skip the walk. Substring searches over the digits mapped to `0` cost a tenth of the
    equivalent regular expression, which was a tenth of a request's CPU."""
    if body.count(b"[") + body.count(b"{") > MAX_NESTING or b"NaN" in body or b"Infinity" in body:
        return True
    shapes = body.translate(_DIGITS_AS_ZERO)
    return any(shape in shapes for shape in _OVERFLOWING_NUMBER_SHAPES)


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_OVERFLOWING_NUMBER_SHAPES = (b"0" * 19, b"0e000", b"0e+000", b"0e-000")


def check_json_values(value: object) -> None:
    """InvalidEventError naming where a value nests deeper than MAX_NESTING or cannot be stored."""
    pending: list[tuple[object, str, int]] = [(value, "$", 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, _Unacceptable):
            raise InvalidEventError(Problem.MALFORMED, f"{path} holds {item.reason}")
        if isinstance(item, dict | list) and depth >= MAX_NESTING:
            raise InvalidEventError(Problem.MALFORMED, f"{path} nests deeper than {MAX_NESTING} levels")
        if isinstance(item, dict):
            pending.extend((child, f"{path}.{key}", depth + 1) for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))


def check_size(encoded: bytes, max_bytes: int) -> None:
    if len(encoded) > max_bytes:
        raise InvalidEventError(
            Problem.TOO_LARGE, f"the event is {len(encoded)} bytes, over the limit of {max_bytes} bytes"
        )
