"""A loopback Profile Store (VENDORS.md §3) serving the world's people as track events.

The OData subset the platform uses: `$filter` with `and`-joined `<field> <op> <value>` clauses (EventTime
with eq/ge/gt/le/lt; any other field, dotted for nested ones such as `User.Email`, with eq), `$orderby`
EventTime asc/desc, `$top`/`$skip` with the vendor's refusal of `$skip + $top >= 10000`; the KQL preview
(`where … between (datetime(…) .. datetime(…))`, `==`, `take`, at most 1000 results); DELETE by scope and
TrackId; `epi-single` auth; injectable 429 (with Retry-After) and 500 responses.

Events sort by (EventTime, generation order): ties come back in the same order on every request, as
from a database with a tiebreak. Every request is recorded so tests can assert the window rule held.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from event_platform.dates import day_start
from event_platform.sandbox.loopback import LoopbackService
from event_platform.sandbox.world import Person, World
from event_platform.sources.profile_store.client import (
    API_PREFIX,
    TICKS_PER_SECOND,
    WINDOW_LIMIT,
    format_ticks,
    parse_event_time,
    ticks_from_datetime,
)

if TYPE_CHECKING:
    from event_platform.sandbox.runner import EmulatorContext

TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
TICKS_PER_HOUR = 3_600 * TICKS_PER_SECOND
PREVIEW_LIMIT = 1000
SCOPES = ("learning-site", "shop")
SEARCHES = ("dagster", "statistics", "pricing")
EVENT_TYPES = ("pageview", "pageview", "pageview", "search", "video_play", "addtocart", "newsletter_signup")
Event = dict[str, Any]


@dataclass(frozen=True)
class Burst:
    """`count` extra events on `day` within one hour, `tied` of them sharing a single EventTime."""

    day: dt.date
    hour: int = 14
    count: int = 25_000
    tied: int = 3_000
    tied_event_types: tuple[str, ...] = ("pageview",)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    status: int

    @property
    def skip_plus_top(self) -> int:
        return int(self.params.get("$skip", 0)) + int(self.params.get("$top", 100))


@dataclass
class _Day:
    events: list[Event]
    ticks: list[int]


class ODataError(ValueError):
    """A query this emulator (and, as far as we know, the vendor) refuses with 400."""


@dataclass
class ProfileStoreSandbox(LoopbackService):
    name: ClassVar[str] = "profile-store"

    world: World
    api_key: str = "sandbox-profile-store-key"
    events_per_day: int = 2_000
    bursts: tuple[Burst, ...] = ()
    envelope_casing: Literal["lower", "pascal"] = "lower"
    time_suffix_z: bool | None = None
    """None accepts EventTime literals with and without a trailing Z; True requires it, False refuses it."""
    requests: list[RecordedRequest] = field(default_factory=list)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    _faults: deque[tuple[int, float | None]] = field(default_factory=deque)
    _days: dict[dt.date, _Day] = field(default_factory=dict)
    _scope_of_track_id: dict[tuple[str, str], dt.date] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- control ---------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        return {"PROFILE_STORE_BASE_URL": self.url, "PROFILE_STORE_API_KEY": self.api_key}

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` (429 carries `retry_after` seconds)."""
        self._faults.extend([(status, retry_after)] * times)

    def events_on(self, day: dt.date) -> list[Event]:
        """The day's events not deleted, in the order the API sorts them."""
        return [event for event in self._day(day).events if not self._is_deleted(event)]

    # ---- data ------------------------------------------------------------------------------------

    def _day(self, day: dt.date) -> _Day:
        with self._lock:
            if day not in self._days:
                events = self._generate(day)
                events.sort(key=lambda pair: pair[0])
                self._days[day] = _Day([event for _, event in events], [key[0] for key, _ in events])
                for _, event in events:
                    if event["TrackId"]:
                        self._scope_of_track_id[(event["Scope"], event["TrackId"])] = day
            return self._days[day]

    def _generate(self, day: dt.date) -> list[tuple[tuple[int, int], Event]]:
        """(sort key, event) pairs; the sort key's second part is the tiebreak: generation order."""
        start = ticks_from_datetime(day_start(day))
        people = self.world.active_people(day) or list(self.world.people)
        rng = self.world.rng("profile_store", day)
        pairs: list[tuple[tuple[int, int], Event]] = []

        def add(ticks: int, person: Person, event_type: str, random_source: Any) -> None:
            event = self._event(ticks, person, event_type, random_source)
            pairs.append(((ticks, len(pairs)), event))

        for _ in range(self.events_per_day):
            add(start + rng.randrange(TICKS_PER_DAY), rng.choice(people), rng.choice(EVENT_TYPES), rng)
        for number, burst in enumerate(b for b in self.bursts if b.day == day):
            burst_rng = self.world.rng("profile_store", "burst", day, number)
            hour_start = start + burst.hour * TICKS_PER_HOUR
            instant = hour_start + burst_rng.randrange(TICKS_PER_HOUR)
            for index in range(burst.count):
                tied = index < burst.tied
                ticks = instant if tied else hour_start + burst_rng.randrange(TICKS_PER_HOUR)
                types = burst.tied_event_types if tied else EVENT_TYPES
                add(ticks, burst_rng.choice(people), types[index % len(types)], burst_rng)
        return pairs

    def _event(self, ticks: int, person: Person, event_type: str, rng: Any) -> Event:
        # About one event in a hundred comes without a TrackId, as imported events do.
        track_id = "" if rng.random() < 0.01 else self.world.uuid(rng)
        payload: dict[str, Any] | None = None
        if event_type == "newsletter_signup":
            # Free JSON can carry personal data too: the platform must scrub it.
            payload = {"form": {"email": person.email.upper(), "consent": True}, "source": "footer"}
        elif event_type == "search":
            payload = {"query": rng.choice(SEARCHES), "results": rng.randrange(50)}
        elif event_type == "video_play":
            payload = {"video_id": f"vid-{rng.randrange(40)}", "position": rng.randrange(600)}
        course = rng.choice(self.world.courses)
        return {
            "TrackId": track_id,
            "DeviceId": person.device_id,
            "EventType": event_type,
            "EventTime": format_ticks(ticks, suffix_z=True),
            "Value": f"{event_type} on {course.slug}",
            "Scope": SCOPES[person.index % len(SCOPES)],
            "CountryCode": person.country,
            "PageUri": f"https://learn.example.org/{course.slug}/{rng.choice(course.unit_slugs)}",
            "PageTitle": course.slug.replace("-", " ").title(),
            "RemoteAddress": person.ip_address,
            "SessionId": f"s-{person.index}-{ticks // TICKS_PER_HOUR}",
            "City": person.city,
            "User": {"Name": person.name, "Email": person.email, "Info": {"Platform": person.platform}},
            "Payload": payload,
        }

    def _is_deleted(self, event: Event) -> bool:
        return bool(event["TrackId"]) and (event["Scope"], event["TrackId"]) in self.deleted

    def _query(self, lower: int, upper: int, predicates: list[Callable[[Event], bool]]) -> Iterator[Event]:
        """Events with lower <= ticks < upper matching every predicate, in ascending order."""
        first = dt.datetime.fromtimestamp(lower // TICKS_PER_SECOND, dt.UTC).date()
        last = dt.datetime.fromtimestamp((upper - 1) // TICKS_PER_SECOND, dt.UTC).date()
        if (last - first).days > 400:
            raise ODataError("the sandbox answers EventTime ranges of at most 400 days: narrow the $filter")
        day = first
        while day <= last:
            stored = self._day(day)
            begin, end = bisect.bisect_left(stored.ticks, lower), bisect.bisect_left(stored.ticks, upper)
            for event in stored.events[begin:end]:
                if not self._is_deleted(event) and all(predicate(event) for predicate in predicates):
                    yield event
            day += dt.timedelta(days=1)

    # ---- HTTP ------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{API_PREFIX}/preview", self._handle_preview, methods=["POST"]),
                Route(API_PREFIX, self._handle_list, methods=["GET"]),
                Route(API_PREFIX + "/{scope}/{track_id}", self._handle_delete, methods=["DELETE"]),
            ]
        )

    def _guard(self, request: Request) -> Response | None:
        """Auth and injected faults, shared by every route."""
        if request.headers.get("Authorization") != f"epi-single {self.api_key}":
            denied = {"message": "Authorization has been denied for this request."}
            return JSONResponse(denied, status_code=401)
        if self._faults:
            status, retry_after = self._faults.popleft()
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return JSONResponse({"message": "injected fault"}, status_code=status, headers=headers)
        return None

    def _record(self, request: Request, response: Response) -> Response:
        params = dict(request.query_params)
        self.requests.append(RecordedRequest(request.method, request.url.path, params, response.status_code))
        return response

    def _envelope(self, items: list[Event], total: int | None = None) -> dict[str, Any]:
        names = ("items", "total", "count")
        if self.envelope_casing == "pascal":
            names = ("Items", "Total", "Count")
        body = {names[0]: items, names[2]: len(items)}
        if total is not None:
            body[names[1]] = total
        return body

    def _handle_list(self, request: Request) -> Response:
        refused = self._guard(request)
        if refused is not None:
            return self._record(request, refused)
        try:
            top = _int_param(request, "$top", 100)
            skip = _int_param(request, "$skip", 0)
            if skip + top >= WINDOW_LIMIT:
                raise ODataError(
                    f"The sum of $skip and $top must be less than {WINDOW_LIMIT} (got {skip + top}). "
                    "Narrow the query with $filter to page through larger result sets."
                )
            lower, upper, predicates = self._parse_filter(request.query_params.get("$filter", ""))
            descending = _parse_orderby(request.query_params.get("$orderby", ""))
            matches = list(self._query(lower, upper, predicates))
        except ODataError as error:
            return self._record(request, JSONResponse({"message": str(error)}, status_code=400))
        if descending:
            matches.reverse()
        return self._record(request, JSONResponse(self._envelope(matches[skip : skip + top], len(matches))))

    def _handle_delete(self, request: Request) -> Response:
        refused = self._guard(request)
        if refused is not None:
            return self._record(request, refused)
        key = (request.path_params["scope"], request.path_params["track_id"])
        if key not in self._scope_of_track_id or key in self.deleted:
            return self._record(request, JSONResponse({"message": "Not found"}, status_code=404))
        self.deleted.add(key)
        return self._record(request, Response(status_code=200))

    async def _handle_preview(self, request: Request) -> Response:
        refused = self._guard(request)
        if refused is not None:
            return self._record(request, refused)
        try:
            body = json.loads(await request.body())
            query = body.get("Query") or body.get("query") if isinstance(body, dict) else None
            if not isinstance(query, str):
                raise ODataError("the body must be a JSON object with a Query string")
            lower, upper, predicates, take = _parse_kql(query)
            matches = []
            for event in self._query(lower, upper, predicates):
                matches.append(event)
                if len(matches) >= min(take, PREVIEW_LIMIT):
                    break
        except (ODataError, ValueError) as error:
            return self._record(request, JSONResponse({"message": str(error)}, status_code=400))
        return self._record(request, JSONResponse(self._envelope(matches)))

    # ---- OData -----------------------------------------------------------------------------------

    def _parse_filter(self, text: str) -> tuple[int, int, list[Callable[[Event], bool]]]:
        lower, upper = 0, 10**20
        predicates: list[Callable[[Event], bool]] = []
        for clause in _split_and(text):
            match = re.fullmatch(r"\s*([\w.]+)\s+(eq|ge|gt|le|lt)\s+(.+?)\s*", clause, re.IGNORECASE)
            if not match:
                raise ODataError(f"cannot parse the $filter clause {clause!r}")
            name, operator, literal = match.group(1), match.group(2).lower(), match.group(3)
            if name == "EventTime":
                ticks = self._time_literal(literal)
                bound = {
                    "eq": (ticks, ticks + 1),
                    "ge": (ticks, None),
                    "gt": (ticks + 1, None),
                    "lt": (None, ticks),
                    "le": (None, ticks + 1),
                }[operator]
                lower = max(lower, bound[0]) if bound[0] is not None else lower
                upper = min(upper, bound[1]) if bound[1] is not None else upper
            elif operator == "eq":
                predicates.append(_field_equals(name.split("."), _unquote(literal)))
            else:
                raise ODataError(f"the sandbox supports only eq on {name}")
        if upper >= 10**20 or lower == 0:
            raise ODataError("the sandbox needs an EventTime range in $filter (ge/gt and lt/le, or eq)")
        return lower, max(lower, upper), predicates

    def _time_literal(self, literal: str) -> int:
        text = literal.strip().strip("'")
        has_z = text.endswith("Z")
        if self.time_suffix_z is True and not has_z:
            raise ODataError(f"The DateTime literal {text} must be in UTC with a trailing Z")
        if self.time_suffix_z is False and has_z:
            raise ODataError(f"The DateTime literal {text} is not valid: remove the trailing Z")
        try:
            return parse_event_time(text)
        except ValueError:
            raise ODataError(f"The DateTime literal {text} is not valid") from None


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ODataError(f"{name} must be a non-negative integer")
    return int(value)


def _parse_orderby(text: str) -> bool:
    """True for descending."""
    parts = text.split()
    if not parts:
        return False
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if parts[0] != "EventTime" or len(parts) > 2 or direction not in ("asc", "desc"):
        raise ODataError(f"the sandbox orders only by EventTime asc|desc, not {text!r}")
    return direction == "desc"


def _split_and(text: str) -> list[str]:
    """Split on ` and ` outside single-quoted literals."""
    clauses, current, quoted, index = [], [], False, 0
    while index < len(text):
        char = text[index]
        if char == "'":
            quoted = not quoted
        if not quoted and text[index : index + 5].lower() == " and ":
            clauses.append("".join(current))
            current, index = [], index + 5
            continue
        current.append(char)
        index += 1
    clauses.append("".join(current))
    return [clause for clause in clauses if clause.strip()]


def _unquote(literal: str) -> str:
    text = literal.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _field_equals(path: list[str], expected: str) -> Callable[[Event], bool]:
    def predicate(event: Event) -> bool:
        value: Any = event
        for part in path:
            if not isinstance(value, dict):
                return False
            value = value.get(part)
        return value is not None and str(value) == expected

    return predicate


_KQL = re.compile(
    r"^\s*Events\s*\|\s*where\s+(?P<where>.+?)(?:\|\s*(?:take|limit)\s+(?P<take>\d+)\s*)?$", re.S
)
_KQL_BETWEEN = re.compile(r"EventTime\s+between\s*\(\s*datetime\((.+?)\)\s*\.\.\s*datetime\((.+?)\)\s*\)")
_KQL_EQUALS = re.compile(r"([\w.]+)\s*==\s*'((?:[^']|'')*)'")


def _parse_kql(query: str) -> tuple[int, int, list[Callable[[Event], bool]], int]:
    """The preview's KQL subset: `Events | where EventTime between (datetime(a) .. datetime(b))
    [and Field == 'v' …] [| take n]`; `between` is inclusive at both ends, as in KQL."""
    match = _KQL.match(query)
    if not match:
        raise ODataError("the sandbox's KQL preview supports: Events | where … [| take n]")
    where = match.group("where")
    between = _KQL_BETWEEN.search(where)
    if not between:
        raise ODataError("the preview query needs `EventTime between (datetime(…) .. datetime(…))`")
    lower, upper = parse_event_time(between.group(1)), parse_event_time(between.group(2)) + 1
    rest = _KQL_BETWEEN.sub("", where)
    predicates = [
        _field_equals(name.split("."), value.replace("''", "'")) for name, value in _KQL_EQUALS.findall(rest)
    ]
    take = int(match.group("take")) if match.group("take") else PREVIEW_LIMIT
    return lower, upper, predicates, take


def emulate(context: EmulatorContext, stack: ExitStack) -> dict[str, str]:
    """The sandbox's Profile Store (registered in `sources/profile_store`): any day on request."""
    sandbox = stack.enter_context(
        ProfileStoreSandbox(context.world, events_per_day=context.events_per_day["profile_store"])
    )
    return sandbox.environment()
