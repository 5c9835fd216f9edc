"""The collector: the learning platform's tracking events arrive over HTTP and land in the lake.

    POST /api/tracking         one client event (VENDORS.md §4); 201 {"tracking_event_type", "received": true}
    POST /api/tracking/batch   {"events": [full events]} from the Tracker; 200 {"accepted", "duplicates",
                               "rejected": [{"uuid", "problem", "reason"}]}

Who the learner is, for a client event: the `X-Anon-Username` header (the LMS's tracking JavaScript
sets it from the session) or an `anon_username` field in the body; if both are given they must agree.
Without one the answer is 400. A client event may carry its own `uuid` (then a retry is idempotent)
and `time`; the collector stamps what is missing.

Every refusal is a 400 `{"received": false, "problem", "reason"}` (unknown type, missing or wrong
field, personal data, over the size limit, no identity). An event is acknowledged only once it is
durable in the lake: accepted events wait in a per-day group that is written as one gzip NDJSON file
(`raw/tracking/date=<received day>/`, appended through the lake's manifest) when it reaches
`flush_bytes` or `flush_age_seconds`; every request of the group is answered after that commit
(group commit: many events per file, one commit per group). If the write fails the requests get 503
and nothing is acknowledged.

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
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from event_platform.defs.tracking.events import (
    DEFAULT_MAX_EVENT_BYTES,
    EventTypeRegistry,
    InvalidEventError,
    Problem,
    check_size,
    encode_event,
    format_time,
    new_uuid,
)
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path

log = logging.getLogger(__name__)

SOURCE = "tracking"
IDENTITY_HEADER = "X-Anon-Username"
LANDED_FILE_NAME = "events.ndjson.gz"


@dataclass(frozen=True)
class CollectorSettings:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_bytes: int = 8 * 1024 * 1024
    """A group is written once its events reach this many (uncompressed) bytes..."""
    flush_age_seconds: float = 0.5
    """...or once its first event has waited this long: the bound on an acknowledgement's latency."""
    seen_uuids: int = 200_000
    """How many recent uuids are remembered for idempotency (about 150 bytes each)."""
    concurrent_flushes: int = 4


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
    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


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
        self.app = Starlette(
            routes=[
                Route("/api/tracking", self._post_event, methods=["POST"]),
                Route("/api/tracking/batch", self._post_batch, methods=["POST"]),
            ]
        )

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _post_event(self, request: Request) -> JSONResponse:
        try:
            payload = json.loads(await _read_body(request, self.settings.max_event_bytes))
            if not isinstance(payload, dict):
                raise _Refused(Problem.MALFORMED, "the body must be a JSON object")
            payload["anon_username"] = _identity(request, payload)
            payload["uuid"] = payload.get("uuid") or new_uuid()
            payload["time"] = payload.get("time") or format_time(self.clock())
            line, uuid = self._validated_line(payload)
        except _Refused as refusal:
            return _refused(refusal.problem, refusal.reason)
        except json.JSONDecodeError:
            return _refused(Problem.MALFORMED, "the body is not JSON")
        try:
            await self._land([(uuid, line)])
        except OSError:
            return _unavailable()
        return JSONResponse({"tracking_event_type": payload["event_type"], "received": True}, status_code=201)

    async def _post_batch(self, request: Request) -> JSONResponse:
        try:
            body = json.loads(await _read_body(request, self.settings.max_batch_bytes))
            events = body.get("events") if isinstance(body, dict) else None
            if not isinstance(events, list):
                raise _Refused(Problem.MALFORMED, 'the body must be {"events": [...]}')
        except _Refused as refusal:
            return _refused(refusal.problem, refusal.reason)
        except json.JSONDecodeError:
            return _refused(Problem.MALFORMED, "the body is not JSON")
        accepted: list[tuple[str, bytes]] = []
        rejected: list[dict[str, str]] = []
        for event in events:
            try:
                line, uuid = self._validated_line(event)
                accepted.append((uuid, line))
            except _Refused as refusal:
                identifier = event.get("uuid") if isinstance(event, dict) else None
                rejected.append(
                    {"uuid": str(identifier or ""), "problem": refusal.problem, "reason": refusal.reason}
                )
        try:
            duplicates = await self._land(accepted)
        except OSError:
            return _unavailable()
        return JSONResponse(
            {"accepted": len(accepted) - duplicates, "duplicates": duplicates, "rejected": rejected}
        )

    def _validated_line(self, event: Any) -> tuple[bytes, str]:
        try:
            valid = self.registry.validate(event)
            line = encode_event(valid)
            check_size(line, self.settings.max_event_bytes)
        except InvalidEventError as error:
            raise _Refused(error.problem, error.reason) from error
        return line, str(valid["uuid"])

    # -- group commit --------------------------------------------------------------------------------

    async def _land(self, events: list[tuple[str, bytes]]) -> int:
        """Add events to their day's group and wait until they are durable; returns how many were duplicates.

        Raises OSError when the write failed: the caller answers 503 and the events were not stored.
        """
        waits: list[asyncio.Future[None]] = []
        duplicates = 0
        for uuid, line in events:
            earlier = self._seen.get(uuid)
            if earlier is not None:
                duplicates += 1
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
        for done in set(waits):
            await asyncio.shield(done)
        return duplicates

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
        with (
            self.lake.write_partition(raw_path(SOURCE, group.day), mode="append") as partition,
            partition.open(
                LANDED_FILE_NAME,
                lines=len(group.lines),
                first_received=group.first_received,
                last_received=group.last_received,
            ) as stream,
        ):
            stream.write(data)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it exceeds `limit` bytes rather than after reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(Problem.TOO_LARGE, f"the payload is {declared} bytes, over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(Problem.TOO_LARGE, f"the payload is over the limit of {limit} bytes")
        chunks.append(chunk)
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


def _refused(problem: Problem, reason: str) -> JSONResponse:
    return JSONResponse({"received": False, "problem": problem, "reason": reason}, status_code=400)


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"received": False, "reason": "the event could not be stored; retry later"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
