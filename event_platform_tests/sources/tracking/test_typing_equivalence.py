"""The shared ingestion path types tracking lines value for value as the per-line Python typing did.

`oracle_row` is that typing as it was before the sources moved onto `event_platform.ingest` (then
`landed.typed_row`), kept here as the reference: every line either becomes the row it returned, or is
quarantined, byte for byte and in order, where it refused the line.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from event_platform.ingest import read_day
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path
from event_platform.sandbox.tracking import TrackingSandbox
from event_platform.sandbox.world import World
from event_platform.sources.tracking import landed
from event_platform.sources.tracking.events import CONTEXT_FIELDS

DAY = dt.date(2026, 11, 1)
KEY = DAY.isoformat()


class OracleRefusal(ValueError):
    pass


def oracle_row(line: bytes) -> dict[str, Any]:
    """The typing of a landed line before the shared path (formerly `landed.typed_row`)."""
    try:
        event = json.loads(line)
    except ValueError as error:
        raise OracleRefusal("not JSON") from error
    if not isinstance(event, dict):
        raise OracleRefusal("not a JSON object")
    row: dict[str, Any] = {}
    for name in ("uuid", "event_type", "anon_username"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise OracleRefusal(f"{name} is missing or not a string")
        row[name] = value
    for name in ("time", "received_at"):
        row[name] = oracle_utc(event.get(name), name)
    for name in CONTEXT_FIELDS:
        value = event.get(name)
        row[name] = None if value is None else str(value)
    event_data = event.get("event_data")
    if not isinstance(event_data, dict):
        raise OracleRefusal("event_data is not an object")
    row["event_data"] = json.dumps(event_data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return row


def oracle_utc(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise OracleRefusal(f"{name} is missing")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise OracleRefusal(f"{name} is not an ISO 8601 timestamp") from error
    if moment.tzinfo is None:
        raise OracleRefusal(f"{name} has no UTC offset")
    return moment.astimezone(dt.UTC)


def event(number: int, **overrides: Any) -> dict[str, Any]:
    return {
        "uuid": f"00000000-0000-4000-8000-{number:012d}",
        "event_type": "kinesinlms.course.content.page_view",
        "time": f"{KEY}T10:00:00.000000+00:00",
        "received_at": f"{KEY}T10:00:01.000000+00:00",
        "anon_username": "learner-000001",
        "course_slug": "intro",
        "event_data": {"b": 1, "a": "x"},
        **overrides,
    }


def line(number: int, **overrides: Any) -> bytes:
    return json.dumps(event(number, **overrides), ensure_ascii=False).encode()


HOSTILE_TIMES = [
    "2026-11-01T10:00:00+00:00", "2026-11-01T10:00:00Z", "2026-11-01 10:00:00+00:00",
    "2026-11-01T11:30:00.5+01:30", "2026-11-01T10:00:00.123456-05:00", "2026-11-01T10:00:00.1234567+00:00",
    "2026-11-01T10:00:00", "2026-11-01", "20261101T100000Z", "2026-W44-7T10:00:00+00:00",
    "2026-02-30T10:00:00+00:00", "2026-11-01T24:00:00+00:00", "2026-11-01T23:59:60+00:00",
    "2026-11-01T10:00:00+24:00", "2026-11-01T10:00:00+00", " 2026-11-01T10:00:00+00:00",
    "0001-01-01T00:00:00Z",
    "2026-11-01T10:00:00.000000+00:00\n", "yesterday", "",
]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    7, -0, 2**63, 2**70, 1.5, 1e20, 1.0, -0.0, True, False, [1, "a"], {"b": 1, "a": [2]}, None, "", "ü €",
    "line\nbreak", "\u2028",
]  # fmt: skip


def hostile_lines() -> list[bytes]:
    lines: list[bytes] = []
    for number, time in enumerate(HOSTILE_TIMES):
        lines.append(line(number, time=time))
        lines.append(line(100 + number, received_at=time))
    for number, value in enumerate(HOSTILE_VALUES, start=200):
        lines.append(line(number, course_unit_id=value, page_url=value))
        lines.append(line(300 + number, event_data={"value": value, "z": {"y": value, "x": 1}}))
        lines.append(line(800 + number, event_data={"value": value, "b": 1, "\u00e9": "x", "k\u001f": 2}))
        lines.append(line(900 + number, event_data={"value": value, "b": 1, "a": "x"}))
        lines.append(line(400 + number, event_data=value))
        lines.append(line(500 + number, uuid=value))
        lines.append(line(600 + number, anon_username=value))
    lines += [
        line(700, event_data={}),
        line(701, event_data={"n": 12345678901234567890123, "f": 0.1, "e": 1e-7, "s": '\u001f"\\/'}),
        b'{"uuid": "half',
        b"[1, 2, 3]",
        b'"just a string"',
        b"not json at all",
        line(702).replace(b'"intro"', b'"caf\xe9"'),  # not UTF-8
        line(703) + b"\r",
        b"  " + line(704) + b"  ",
        line(705) + b" trailing",
        line(706, event_type="t", extra={"nested": [1, {"deep": None}]}),
        b'{"uuid": "x-707", "event_type": "t", "anon_username": "a", "time": "2026-11-01T10:00:00Z", '
        b'"received_at": "2026-11-01T10:00:00Z", "event_data": {"n": NaN}}',
        line(708).replace(b'"event_data": {', b'"event_data": {"a": 1, "a": 2, '),  # a key twice
        line(709).replace(b'"event_data": {', b'"event_data": {"s": "caf\\u00e9 \\/", "n": -0, '),
    ]
    return lines


def land(lake: Lake, lines: list[bytes], *, lines_count: int | None = None) -> None:
    data = gzip.compress(b"\n".join(lines) + b"\n")
    count = len(lines) if lines_count is None else lines_count
    landed.commit_events(lake, KEY, data, lines=count, first_received="", last_received="")


def oracle_day(lines: list[bytes]) -> tuple[dict[str, dict[str, Any]], list[bytes]]:
    """Rows by uuid, and the refused lines in order, as the old typing had them (no two share a uuid)."""
    rows, refused = {}, []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            row = oracle_row(raw)
        except OracleRefusal:
            refused.append(raw.rstrip(b"\n") + b"\n")
            continue
        assert row["uuid"] not in rows
        rows[row["uuid"]] = row
    return rows, refused


def ingested_day(lake: Lake, tmp_path: Path) -> tuple[dict[str, dict[str, Any]], list[bytes]]:
    typed = read_day(landed.SPEC, lake, KEY, tmp_dir=tmp_path)
    rows = {row["uuid"]: row for row in typed.reader.read_all().to_pylist()}
    quarantined = b"".join(
        gzip.decompress(lake.read_bytes(path))
        for path in lake.current_files(quarantine_path(landed.TABLE, KEY))
    )
    assert typed.summary.reconciles
    return rows, quarantined.splitlines(keepends=True)


def test_hostile_lines_type_or_quarantine_as_the_python_typing_did(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    lines = hostile_lines()
    land(lake, lines)

    rows, quarantined = ingested_day(lake, tmp_path)

    expected_rows, expected_refused = oracle_day(lines)
    assert rows == expected_rows
    assert quarantined == expected_refused
    assert len(expected_rows) > 50 and len(expected_refused) > 50  # both sides are exercised


def test_a_sandbox_day_types_value_for_value_as_the_python_typing_did(
    world: World, lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    with TrackingSandbox(world, lake, tmp_path / "spool") as sandbox:
        sent = sandbox.send_day(DAY, events_per_person=2)
    lines = [
        raw
        for path in landed.landed_files(lake, KEY)
        for raw in gzip.decompress(lake.read_bytes(path)).splitlines()
    ]

    rows, quarantined = ingested_day(lake, tmp_path)

    assert len(rows) == sent and quarantined == []
    assert rows == oracle_day(lines)[0]


def test_blank_lines_are_no_lines_and_a_damaged_file_is_named(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    land(lake, [line(1), b"", b"  \t", line(2), b"{broken"], lines_count=3)
    typed = read_day(landed.SPEC, lake, KEY, tmp_dir=tmp_path)
    assert (typed.summary.rows, typed.summary.quarantined, typed.summary.raw_lines) == (2, 1, 3)
    del typed
    assert list(tmp_path.glob("event-platform-*")) == [], "a reader dropped unread leaves no scratch"

    damaged = gzip.compress(line(3) + b"\n" + line(4) + b"\n")[:-12]
    landed.commit_events(lake, KEY, damaged, lines=2, first_received="", last_received="")
    with pytest.raises(ValueError, match=r"events-.*\.ndjson\.gz is not a complete gzip file.*restore it"):
        read_day(landed.SPEC, lake, KEY, tmp_dir=tmp_path)
    assert list(tmp_path.glob("event-platform-*")) == []
