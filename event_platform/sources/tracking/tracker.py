"""The Tracker: server-side code records events; a background thread delivers them to the collector.

Plain Python, no Dagster. Durability comes from a local spool:

    <spool_dir>/.lock                          one Tracker per spool (flock), across processes
    <spool_dir>/segment-<seq>.ndjson           append-only; `track()` returns only after fsync
    <spool_dir>/segment-<seq>.delivered        byte offset up to which the collector acknowledged
    <spool_dir>/rejected.ndjson                events the collector refused for good (never personal data)

`track()` validates, stamps `uuid` and `time`, appends a line and fsyncs: once it returns, the event
survives a crash of this process. The delivery thread seals the active segment, sends the sealed
segments in batches to `POST <collector>/api/tracking/batch`, records progress after each acknowledged
batch and deletes a segment once all of it is acknowledged. While the collector is down it waits
(`Backoff` delays, unbounded attempts) and the events wait on disk; a new Tracker on the same spool
resumes where the last one stopped. A batch re-sent after a lost answer is harmless: the collector
and the asset deduplicate on `uuid`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import requests

from event_platform.retry import Backoff, TransientError, retry_after_seconds
from event_platform.sources.tracking.events import (
    DEFAULT_MAX_EVENT_BYTES,
    EventTypeRegistry,
    InvalidEventError,
    Problem,
    check_size,
    encode_event,
    format_time,
    new_uuid,
)

log = logging.getLogger(__name__)

BATCH_PATH = "/api/tracking/batch"
SEGMENT_PREFIX = "segment-"
SEGMENT_SUFFIX = ".ndjson"
DELIVERED_SUFFIX = ".delivered"
REJECTED_FILE = "rejected.ndjson"

DEFAULT_BACKOFF = Backoff(base_seconds=0.2, max_seconds=30.0)
"""The delays between delivery attempts. Delivery never gives up (events wait on disk), so the
Backoff's `attempts` is not a limit here."""

MAX_BACKOFF_STEP = 30
"""Failures beyond this count wait like this one: the delay has long reached `max_seconds`."""


class SpoolInUseError(RuntimeError):
    """Another Tracker (in this process or another) owns the spool directory."""


@dataclass(frozen=True)
class Segment:
    seq: int
    path: Path

    @property
    def delivered_path(self) -> Path:
        return self.path.with_suffix(DELIVERED_SUFFIX)

    def delivered_offset(self) -> int:
        try:
            return int(self.delivered_path.read_text())
        except FileNotFoundError:
            return 0


@dataclass(frozen=True)
class BatchOutcome:
    rejected: list[dict[str, str]]
    """`{"uuid", "problem", "reason"}` of events the collector refused for good."""


class Tracker:
    """`Tracker(collector_url, spool_dir).track("kinesinlms.core.user.login", "learner-000042")`."""

    def __init__(
        self,
        collector_url: str,
        spool_dir: str | Path,
        *,
        registry: EventTypeRegistry | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        batch_max_events: int = 1_000,
        batch_max_bytes: int = 1024 * 1024,
        backoff: Backoff = DEFAULT_BACKOFF,
        poll_seconds: float = 0.2,
        request_timeout: float = 10.0,
        shared_secret: str | None = None,
    ) -> None:
        self._batch_url = collector_url.rstrip("/") + BATCH_PATH
        self._collector_label = _without_credentials(collector_url)
        self._registry = registry or EventTypeRegistry()
        self._max_event_bytes = max_event_bytes
        self._batch_max_events = batch_max_events
        self._batch_max_bytes = batch_max_bytes
        self._backoff = backoff
        self._poll_seconds = poll_seconds
        self._request_timeout = request_timeout
        self._spool = Path(spool_dir)
        self._spool.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_spool(self._spool)

        self._active_segment: Segment | None = None
        segments = self._segments()
        self._next_seq = segments[-1].seq + 1 if segments else 1
        self._write_lock = threading.Lock()
        self._active: BinaryIO | None = None
        self._state = threading.Condition()
        self._pending = sum(_count_complete_lines(s.path, s.delivered_offset()) for s in segments)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if shared_secret:
            self._session.headers["Authorization"] = f"Bearer {shared_secret}"
        self._thread = threading.Thread(target=self._deliver_forever, name="tracker-delivery", daemon=True)
        self._thread.start()

    # -- the producer side -------------------------------------------------------------------------

    def track(
        self,
        event_type: str,
        anon_username: str,
        event_data: Mapping[str, Any] | None = None,
        *,
        time: dt.datetime | None = None,
        **context: str | int | None,
    ) -> str:
        """Validate, stamp and durably spool one event; returns its uuid once it is on disk.

        `time` overrides the stamp for backfilled events (it must carry a timezone); `context` holds
        the LMS context fields (course_slug, course_run, unit_node_slug, ...). Raises
        InvalidEventError (unknown type, missing field, personal data, too large): nothing is stored.
        """
        uuid, line = self._stamped(event_type, anon_username, event_data, time, context)
        self._append([line])
        return uuid

    def track_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """`track()` for many events (each a mapping of its arguments) with one fsync: for backfills.

        All or nothing: if one is invalid, InvalidEventError says which and none is stored.
        """
        stamped = []
        for index, arguments in enumerate(events):
            fields = dict(arguments)
            try:
                stamped.append(
                    self._stamped(
                        fields.pop("event_type"),
                        fields.pop("anon_username"),
                        fields.pop("event_data", None),
                        fields.pop("time", None),
                        fields,
                    )
                )
            except InvalidEventError as error:
                raise InvalidEventError(error.problem, f"event {index}: {error.reason}") from error
        self._append([line for _, line in stamped])
        return [uuid for uuid, _ in stamped]

    def _stamped(
        self,
        event_type: str,
        anon_username: str,
        event_data: Mapping[str, Any] | None,
        time: dt.datetime | None,
        context: Mapping[str, object],
    ) -> tuple[str, bytes]:
        if self._closed:
            raise RuntimeError("this Tracker is closed")
        if time is not None and time.tzinfo is None:
            raise ValueError("time must be timezone-aware (UTC)")
        event = self._registry.validate(
            {
                "uuid": new_uuid(),
                "event_type": event_type,
                "time": format_time(time or dt.datetime.now(dt.UTC)),
                "anon_username": anon_username,
                **context,
                "event_data": dict(event_data or {}),
            }
        )
        line = encode_event(event)
        check_size(line, self._max_event_bytes)
        return str(event["uuid"]), line

    @property
    def pending(self) -> int:
        """Events on disk that the collector has not yet acknowledged."""
        with self._state:
            return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every spooled event is acknowledged; False if `timeout` seconds passed first."""
        self._wake.set()
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Try to deliver for up to `timeout` seconds, then stop; what is left waits on disk for next time."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        with self._write_lock:
            self._seal_active()
        self._session.close()
        self._lock_file.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tracker(collector={self._collector_label!r}, spool_dir={str(self._spool)!r})"

    def _append(self, lines: list[bytes]) -> None:
        """Write and fsync; only then count the events as pending and wake the delivery thread."""
        with self._write_lock:
            if self._active is None:
                self._active_segment = Segment(self._next_seq, self._segment_path(self._next_seq))
                self._next_seq += 1
                self._active = self._active_segment.path.open("ab")
                _fsync_directory(self._spool)  # the new file's name must be durable too
            self._active.write(b"".join(line + b"\n" for line in lines))
            self._active.flush()
            os.fsync(self._active.fileno())
        with self._state:
            self._pending += len(lines)
        self._wake.set()

    def _seal_active(self) -> None:
        """Close the active segment so delivery can read it whole; the next event opens a new one."""
        if self._active is not None:
            self._active.close()
            self._active = None
            self._active_segment = None

    # -- the delivery side -------------------------------------------------------------------------

    def _deliver_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.wait(self._poll_seconds)
            self._wake.clear()
            try:
                self._deliver_sealed()
                failures = 0
                continue
            except TransientError as error:
                failures += 1
                delay = self._backoff.delay(min(failures, MAX_BACKOFF_STEP), error.retry_after)
                log.warning(
                    "tracking collector %s unavailable (%s); %d event(s) wait on disk, retrying in %.1fs",
                    self._collector_label,
                    error,
                    self.pending,
                    delay,
                )
            except Exception:
                # Whatever broke (a full disk, a bug), the thread must live on: the events wait on disk.
                failures += 1
                delay = self._backoff.delay(min(failures, MAX_BACKOFF_STEP))
                log.exception(
                    "tracking delivery failed; %d event(s) wait on disk, retrying in %.1fs",
                    self.pending,
                    delay,
                )
            self._stopping.wait(delay)

    def _deliver_sealed(self) -> None:
        """Send every sealed segment's unacknowledged lines, in order, in batches that span segments."""
        with self._write_lock:
            self._seal_active()
            sealed = self._segments()
        lines: list[bytes] = []
        size = 0
        progress: dict[Segment, int | None] = {}
        for segment in sealed:
            for end_offset, line in self._unacknowledged_lines(segment):
                full = len(lines) >= self._batch_max_events or size + len(line) > self._batch_max_bytes
                if lines and full:
                    self._deliver(lines, progress)
                    lines, size, progress = [], 0, {}
                    if self._stopping.is_set():
                        return
                lines.append(line)
                size += len(line) + 1
                progress[segment] = end_offset
            progress[segment] = None
        if progress:
            self._deliver(lines, progress)

    def _deliver(self, lines: list[bytes], progress: dict[Segment, int | None]) -> None:
        """Send a batch, then record it: each segment's new offset, or (None) its removal once all is sent."""
        if lines:
            self._dead_letter(self._send(lines).rejected, lines)
        for segment, offset in progress.items():
            if offset is None:
                segment.path.unlink()
                segment.delivered_path.unlink(missing_ok=True)
            else:
                _write_atomically(segment.delivered_path, str(offset).encode())
        with self._state:
            self._pending -= len(lines)
            self._state.notify_all()

    def _unacknowledged_lines(self, segment: Segment) -> Iterator[tuple[int, bytes]]:
        """(offset after the line, line) from the first unacknowledged line of a sealed segment.

        A last line without its newline was torn by a crash during `track()`, which therefore never
        returned: it was not acknowledged and is dropped.
        """
        offset = segment.delivered_offset()
        with segment.path.open("rb") as stream:
            stream.seek(offset)
            for raw in stream:
                if not raw.endswith(b"\n"):
                    log.warning("dropping a torn, unacknowledged line at the end of %s", segment.path.name)
                    return
                offset += len(raw)
                yield offset, raw[:-1]

    def _send(self, lines: list[bytes]) -> BatchOutcome:
        """POST one batch; a whole-batch 400 (our limits should prevent it) is split to find the culprit."""
        body = b'{"events":[' + b",".join(lines) + b"]}"
        try:
            response = self._session.post(self._batch_url, data=body, timeout=self._request_timeout)
        except requests.RequestException as error:
            raise TransientError(f"{type(error).__name__} posting {len(lines)} event(s)") from error
        if response.status_code == 400:
            if len(lines) == 1:
                return BatchOutcome(rejected=[{**_refusal(response), "uuid": _uuid_of(lines[0])}])
            middle = len(lines) // 2
            first, second = self._send(lines[:middle]), self._send(lines[middle:])
            return BatchOutcome(rejected=first.rejected + second.rejected)
        if response.status_code != 200:
            # 429/5xx, but also 401/404 from a misconfigured URL: events wait on disk either way.
            raise TransientError(
                f"HTTP {response.status_code} from the collector", retry_after=retry_after_seconds(response)
            )
        try:
            answer = response.json()
            return BatchOutcome(rejected=list(answer.get("rejected", [])))
        except (ValueError, AttributeError) as error:
            raise TransientError("the collector's answer is not the batch acknowledgement") from error

    def _dead_letter(self, rejected: list[dict[str, str]], lines: list[bytes]) -> None:
        """Keep refused events beside the spool for a person to look at, except personal data: never kept."""
        if not rejected:
            return
        by_uuid = {_uuid_of(line): line for line in lines}
        with (self._spool / REJECTED_FILE).open("ab") as stream:
            for refusal in rejected:
                keep = refusal.get("problem") != Problem.PERSONAL_DATA
                line = by_uuid.get(refusal.get("uuid", "")) if keep else None
                log.error("the collector refused event %s: %s", refusal.get("uuid"), refusal.get("reason"))
                record = {**refusal, "event": json.loads(line) if line else None}
                stream.write(encode_event(record) + b"\n")
            stream.flush()
            os.fsync(stream.fileno())

    # -- the spool ---------------------------------------------------------------------------------

    def _segment_path(self, seq: int) -> Path:
        return self._spool / f"{SEGMENT_PREFIX}{seq:016d}{SEGMENT_SUFFIX}"

    def _segments(self) -> list[Segment]:
        """Segments in order, except the one `track()` is appending to."""
        found = []
        for path in self._spool.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            seq = int(path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)])
            if self._active_segment is None or seq != self._active_segment.seq:
                found.append(Segment(seq, path))
        return sorted(found, key=lambda segment: segment.seq)


def _lock_spool(spool: Path) -> BinaryIO:
    lock_file = (spool / ".lock").open("ab")
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        lock_file.close()
        raise SpoolInUseError(
            f"another Tracker is using the spool {spool}; give each its own spool_dir"
        ) from error
    return lock_file


def _count_complete_lines(path: Path, offset: int) -> int:
    with path.open("rb") as stream:
        stream.seek(offset)
        return sum(1 for raw in stream if raw.endswith(b"\n"))


def _write_atomically(path: Path, data: bytes) -> None:
    staged = path.with_suffix(".tmp")
    with staged.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    staged.replace(path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _uuid_of(line: bytes) -> str:
    with contextlib.suppress(ValueError):
        return str(json.loads(line).get("uuid", ""))
    return ""


def _refusal(response: requests.Response) -> dict[str, str]:
    try:
        answer = response.json()
        return {"problem": str(answer.get("problem", "")), "reason": str(answer.get("reason", ""))}
    except (ValueError, AttributeError):
        return {"problem": "", "reason": f"HTTP 400: {response.text[:200]}"}


def _without_credentials(url: str) -> str:
    """The collector URL for logs and reprs: any user:password@ is dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
