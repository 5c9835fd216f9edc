"""The collector: the learning platform's tracking events arrive over HTTP and land in the lake.

    POST /api/tracking         one client event (VENDORS.md §4); 201 {"tracking_event_type", "received": true}
    POST /api/tracking/batch   {"events": [full events]} from the Tracker; 200 {"accepted", "duplicates",
                               "rejected": [{"uuid", "problem", "reason"}], "results": [one per event]}

Who the learner is, for a client event: the `X-Anon-Username` header (the LMS's tracking JavaScript
sets it from the session) or an `anon_username` field in the body; if both are given they must agree.
Without one the answer is 400. A client event may carry its own `uuid` (then a retry is idempotent)
and `time`; the collector stamps what is missing.

Every refusal of an event is a 400 `{"received": false, "problem", "reason"}` (unknown type, missing or
wrong field, personal data, over the size limit, no identity, a value that is not storable JSON: NaN,
Infinity, an integer past 64 bits, a string that is not Unicode, nesting past 32 levels, a time out of
range). In a batch only the bad events are refused: `results` answers each event in order, and the
good ones land. A 400 is final (a Tracker that retries 5xx never retries it); 5xx only means "later".
Requests must be `Content-Type: application/json` (415 otherwise): a cross-site page can then only post
after a CORS preflight, which only `TRACKING_ALLOWED_ORIGINS` pass. With `TRACKING_SHARED_SECRET` set,
every request needs `Authorization: Bearer <secret>` (401 otherwise; compared in constant time).

Slow clients: the body must arrive within `body_seconds` (408 otherwise), and `tracking serve` runs
uvicorn with a header deadline, keep-alive timeout, concurrency limit and h11's size limits
(`serve`). Parsing and validating a large batch happens in a worker thread, so the event loop keeps
answering small requests meanwhile.

An event is acknowledged only once it is durable in the lake: accepted events wait in a per-day group
that is written as one gzip NDJSON file with its commit record (`landed.commit_events`, a constant cost
however full the day) when it reaches `flush_bytes` or `flush_age_seconds`; every request of the group
is answered after that commit (group commit). If the write fails the requests get 503 and nothing is
acknowledged.

Landed lines are the validated event plus `received_at`. They land by the day the collector received
them (UTC, from `clock`), keeping the event's own `time`: a day's partition is complete once the day is
over. The sandbox injects a clock set to the simulated day.

Idempotency: a uuid seen recently (a bounded in-memory set) is acknowledged again without being stored
twice; after a restart or beyond that window the asset's dedupe on `uuid` removes what slips through.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hmac
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from event_platform.lake.filesystem import Lake
from event_platform.sources.tracking.events import (
    DEFAULT_MAX_EVENT_BYTES,
    BodyError,
    EventTypeRegistry,
    InvalidEventError,
    Problem,
    check_size,
    encode_event,
    format_time,
    needs_value_check,
    new_uuid,
    parse_body,
)
from event_platform.sources.tracking.landed import commit_events

log = logging.getLogger(__name__)

IDENTITY_HEADER = "X-Anon-Username"
JSON_MEDIA_TYPE = "application/json"
INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop (microseconds); larger ones in a thread."""


@dataclass(frozen=True)
class CollectorSettings:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_bytes: int = 8 * 1024 * 1024
    """A group is written once its events reach this many (uncompressed) bytes..."""
    flush_age_seconds: float = 0.5
    """...or once its first event has waited this long: the bound on an acknowledgement's latency..."""
    early_flush_floor: int = 8
    """...or at once when every request in flight waits on a commit (no one else can join the group) and
    it holds at least this many events (fewer wait for the age: a file per lone request is too many)..."""
    early_flush_share: float = 0.5
    """...and, while another commit runs (its clients come back to this group), at least this share of
    the waiting requests: commits then overlap the handling of the next group (many concurrent clients)."""
    seen_uuids: int = 200_000
    """How many recent uuids are remembered for idempotency (about 150 bytes each)."""
    concurrent_flushes: int = 4
    body_seconds: float = 10.0
    """The whole body must arrive within this many seconds of the headers: a 1-byte/s client is cut off."""
    shared_secret: str | None = field(default=None, repr=False)
    """When set, every request must carry `Authorization: Bearer <it>`."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins whose pages may post client events cross-site (CORS); none by default."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Group:
    """Events of one received day waiting for the same write; all acknowledged together."""

    day: str
    done: asyncio.Future[None]
    lines: list[bytes] = field(default_factory=list)
    uuids: list[str] = field(default_factory=list)
    size: int = 0
    first_received: str = ""
    last_received: str = ""
    timer: asyncio.TimerHandle | None = None


class _Refused(Exception):
    def __init__(self, problem: Problem, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason
        self.status = status


class Collector:
    """Validates, deduplicates and group-commits events into the lake; `app` is its ASGI application."""

    def __init__(
        self,
        lake: Lake,
        *,
        registry: EventTypeRegistry | None = None,
        settings: CollectorSettings | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.lake = lake
        self.registry = registry or EventTypeRegistry()
        self.settings = settings or CollectorSettings()
        self.clock = clock
        self._groups: dict[str, _Group] = {}
        self._seen: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self._flush_slots: asyncio.Semaphore | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._requests = 0
        """Requests being handled now; `_waiting` of them wait for a commit."""
        self._waiting = 0
        self._acknowledgements: dict[str, bytes] = {}
        self._routes: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/api/tracking": self._post_event,
            "/api/tracking/batch": self._post_batch,
        }
        self.app: ASGIApp = self
        """The ASGI application: two routes dispatched here rather than by a Starlette app, whose router
        and middleware layers were the largest cost of a request outside uvicorn and asyncio in a profile;
        Starlette's Request and responses are kept."""
        if self.settings.allowed_origins:
            # Without allowed origins no CORS header is ever sent, so browsers refuse every cross-site post.
            self.app = CORSMiddleware(
                self,
                allow_origins=list(self.settings.allowed_origins),
                allow_methods=["POST"],
                allow_headers=["Content-Type", "Authorization", IDENTITY_HEADER],
                max_age=3600,
            )

    # -- HTTP ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 (an async `__call__` is how uvicorn tells it from ASGI 2)."""
        if scope["type"] != "http":
            return  # no lifespan work (uvicorn runs with lifespan="off") and no websockets
        handler = self._routes.get(scope["path"])
        if handler is None:
            response: Response = PlainTextResponse("Not Found", status_code=404)
        elif scope["method"] != "POST":
            response = PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": "POST"})
        else:
            response = await self._handled(handler, Request(scope, receive))
        await response(scope, receive, send)

    async def _handled(self, handler: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
        self._requests += 1
        try:
            return await handler(request)
        except Exception:
            log.exception("the collector failed to handle %s", request.url.path)
            return JSONResponse({"received": False, "reason": "internal error; retry later"}, status_code=500)
        finally:
            self._requests -= 1
            self._flush_if_everyone_waits()

    async def _post_event(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.settings.max_event_bytes, self.settings.body_seconds)
            self._check_request(request)
            payload = _parsed(body)
            if not isinstance(payload, dict):
                raise _Refused(Problem.MALFORMED, "the body must be a JSON object")
            payload["anon_username"] = _identity(request, payload)
            payload["uuid"] = payload.get("uuid") or new_uuid()
            payload["time"] = payload.get("time") or format_time(self.clock())
            line, uuid = self._validated_line(payload, check_values=needs_value_check(body))
        except _Refused as refusal:
            return _refused(refusal)
        try:
            await self._land([(uuid, line)])
        except OSError:
            return _unavailable()
        return self._acknowledgement(payload["event_type"])

    def _acknowledgement(self, event_type: str) -> Response:
        # Rendered once per event type (the registry bounds them): JSON encoding was a twentieth of a request.
        body = self._acknowledgements.get(event_type)
        if body is None:
            content = {"tracking_event_type": event_type, "received": True}
            body = self._acknowledgements[event_type] = JSONResponse(content).body
        return Response(body, status_code=201, media_type=JSON_MEDIA_TYPE)

    async def _post_batch(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.settings.max_batch_bytes, self.settings.body_seconds)
            self._check_request(request)
            if len(body) > INLINE_BODY_BYTES:
                validated = await run_in_threadpool(self._validated_batch, body)
            else:
                validated = self._validated_batch(body)
        except _Refused as refusal:
            return _refused(refusal)
        accepted = [(uuid, line) for uuid, line, _ in validated if line is not None]
        try:
            duplicate_flags = iter(await self._land(accepted))
        except OSError:
            return _unavailable()
        results: list[dict[str, str]] = []
        for uuid, _, refusal in validated:
            if refusal is not None:
                results.append({"uuid": uuid, "status": "rejected", **refusal})
            else:
                results.append({"uuid": uuid, "status": "duplicate" if next(duplicate_flags) else "accepted"})
        rejected = [
            {"uuid": r["uuid"], "problem": r["problem"], "reason": r["reason"]}
            for r in results
            if r["status"] == "rejected"
        ]
        return JSONResponse(
            {
                "accepted": sum(r["status"] == "accepted" for r in results),
                "duplicates": sum(r["status"] == "duplicate" for r in results),
                "rejected": rejected,
                "results": results,
            }
        )

    def _validated_batch(self, body: bytes) -> list[tuple[str, bytes | None, dict[str, str] | None]]:
        """(uuid, landed line or None, refusal or None) per event, in order."""
        parsed = _parsed(body)
        events = parsed.get("events") if isinstance(parsed, dict) else None
        if not isinstance(events, list):
            raise _Refused(Problem.MALFORMED, 'the body must be {"events": [...]}')
        validated: list[tuple[str, bytes | None, dict[str, str] | None]] = []
        for event in events:
            try:
                line, uuid = self._validated_line(event)
                validated.append((uuid, line, None))
            except _Refused as refusal:
                identifier = event.get("uuid") if isinstance(event, dict) else None
                uuid = _printable(identifier) if isinstance(identifier, str) else ""
                validated.append(
                    (uuid, None, {"problem": refusal.problem, "reason": _printable(refusal.reason)})
                )
        return validated

    def _check_request(self, request: Request) -> None:
        """JSON only, and the shared secret when one is set (checked after the body: a refused client
        still gets its answer rather than a reset connection)."""
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            raise _Refused(
                Problem.MALFORMED,
                f"Content-Type must be {JSON_MEDIA_TYPE}, got {_printable(media_type[:100]) or 'none'}",
                status=415,
            )
        secret = self.settings.shared_secret
        if secret:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), secret.encode()):
                raise _Refused(
                    Problem.UNAUTHORIZED,
                    "send Authorization: Bearer <TRACKING_SHARED_SECRET>; the collector requires it",
                    status=401,
                )

    def _validated_line(self, event: Any, *, check_values: bool = True) -> tuple[bytes, str]:
        try:
            valid = self.registry.validate(event, check_values=check_values)
            line = encode_event(valid)
            check_size(line, self.settings.max_event_bytes)
        except InvalidEventError as error:
            raise _Refused(error.problem, error.reason) from error
        return line, str(valid["uuid"])

    # -- group commit --------------------------------------------------------------------------------

    async def _land(self, events: list[tuple[str, bytes]]) -> list[bool]:
        """Add events to their day's group and wait until they are durable; whether each was a duplicate.

        Raises OSError when the write failed: the caller answers 503 and the events were not stored.
        """
        waits: list[asyncio.Future[None]] = []
        duplicates: list[bool] = []
        for uuid, line in events:
            earlier = self._seen.get(uuid)
            duplicates.append(earlier is not None)
            if earlier is not None:
                waits.append(earlier)  # acknowledge a duplicate only once its first copy is durable
                continue
            now = self.clock()
            received_at = format_time(now)
            group = self._group(now.date().isoformat())
            stamped = line[:-1] + b',"received_at":"' + received_at.encode() + b'"}'
            group.lines.append(stamped)
            group.uuids.append(uuid)
            group.size += len(stamped) + 1
            group.first_received = group.first_received or received_at
            group.last_received = received_at
            self._remember(uuid, group.done)
            waits.append(group.done)
            if group.size >= self.settings.flush_bytes:
                self._start_flush(group)
        self._waiting += 1
        try:
            self._flush_if_everyone_waits()
            for done in set(waits):
                await asyncio.shield(done)
        finally:
            self._waiting -= 1
        return duplicates

    def _flush_if_everyone_waits(self) -> None:
        if not self._waiting or self._waiting < self._requests:
            return
        least = self.settings.early_flush_floor
        if self._flushes:
            least = max(least, math.ceil(self._waiting * self.settings.early_flush_share))
        for group in list(self._groups.values()):
            if len(group.lines) >= least:
                self._start_flush(group)

    def _group(self, day: str) -> _Group:
        group = self._groups.get(day)
        if group is None:
            loop = asyncio.get_running_loop()
            group = self._groups[day] = _Group(day=day, done=loop.create_future())
            group.timer = loop.call_later(self.settings.flush_age_seconds, self._start_flush, group)
        return group

    def _remember(self, uuid: str, done: asyncio.Future[None]) -> None:
        self._seen[uuid] = done
        while len(self._seen) > self.settings.seen_uuids:
            self._seen.popitem(last=False)

    def _start_flush(self, group: _Group) -> None:
        if self._groups.get(group.day) is not group:
            return  # already flushing: the size limit beat the timer
        del self._groups[group.day]
        if group.timer is not None:
            group.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._flush(group))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, group: _Group) -> None:
        if self._flush_slots is None:
            self._flush_slots = asyncio.Semaphore(self.settings.concurrent_flushes)
        async with self._flush_slots:
            try:
                await asyncio.to_thread(self._write_group, group)
            except Exception as error:
                log.exception("could not land %d tracking event(s) for %s", len(group.lines), group.day)
                for uuid in group.uuids:
                    if self._seen.get(uuid) is group.done:
                        del self._seen[uuid]  # a retry must be stored, not taken for a duplicate
                group.done.set_exception(OSError(f"landing failed: {type(error).__name__}"))
                group.done.exception()  # marks it retrieved: every waiter has its own answer
                return
        group.done.set_result(None)

    def _write_group(self, group: _Group) -> None:
        data = gzip.compress(b"\n".join(group.lines) + b"\n", compresslevel=5, mtime=0)
        commit_events(
            self.lake,
            group.day,
            data,
            lines=len(group.lines),
            first_received=group.first_received,
            last_received=group.last_received,
        )


def _parsed(body: bytes) -> Any:
    try:
        return parse_body(body)
    except BodyError as error:
        raise _Refused(Problem.MALFORMED, str(error)) from error


async def _read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The body, refused as soon as it exceeds `limit` bytes, or takes over `seconds` to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(Problem.TOO_LARGE, f"the payload is {declared} bytes, over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Refused(Problem.TOO_LARGE, f"the payload is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused(
            Problem.TOO_SLOW, f"the body did not arrive within {seconds:g} seconds", status=408
        ) from None
    return b"".join(chunks)


def _identity(request: Request, payload: dict[str, Any]) -> object:
    from_header = request.headers.get(IDENTITY_HEADER)
    from_body = payload.get("anon_username")
    if from_header and from_body and from_header != from_body:
        raise _Refused(Problem.IDENTITY, f"the {IDENTITY_HEADER} header and anon_username disagree")
    identity = from_header or from_body
    if not identity:
        raise _Refused(
            Problem.IDENTITY,
            f"who is the learner? send the {IDENTITY_HEADER} header or an anon_username field",
        )
    return identity


def _printable(text: str) -> str:
    """`text` safe to put in a UTF-8 answer: lone surrogates (from a hostile body) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refused(refusal: _Refused) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
    body = {"received": False, "problem": refusal.problem, "reason": _printable(refusal.reason)}
    return JSONResponse(body, status_code=refusal.status, headers=headers)


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"received": False, "reason": "the event could not be stored; retry later"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
