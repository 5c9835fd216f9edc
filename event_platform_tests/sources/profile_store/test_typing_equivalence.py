"""The shared ingestion path types Profile Store events value for value as the per-event Python typing did.

`oracle_row` is that typing as it was before the sources moved onto `event_platform.ingest` (then
`transform.typed_row` behind `json.loads`), kept here as the reference: every line either becomes the
row it returned, or is quarantined, byte for byte and in order, where it refused the line.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from event_platform.ingest import read_day
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.pseudonymise import Pseudonymiser
from event_platform.sandbox.profile_store import ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.client import parse_event_time
from event_platform.sources.profile_store.transform import TEXT_FIELDS, event_key
from event_platform_tests.sources.profile_store.test_landing import track_event as landing_event

DAY = "2026-11-01"


class OracleRefusal(ValueError):
    pass


def _text(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise OracleRefusal(f"{name} is a {type(value).__name__}, not text")


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def oracle_row(line: bytes) -> dict[str, Any]:
    """A landed line's typing before the shared path (formerly `transform.typed_row(json.loads(line))`)."""
    event = json.loads(line)  # a ValueError quarantined the line
    if not isinstance(event, dict):
        raise OracleRefusal(f"an event must be a JSON object, not {type(event).__name__}")
    try:
        ticks = parse_event_time(event.get("EventTime"))  # type: ignore[arg-type]
    except ValueError:
        raise OracleRefusal("EventTime is missing or not a UTC timestamp") from None
    user = event.get("User") or {}
    if not isinstance(user, dict):
        raise OracleRefusal("User is not an object")
    row = {column: _text(event, name) for name, column in TEXT_FIELDS.items()}
    row.update(
        event_key=event_key(event),
        track_id=_text(event, "TrackId"),
        event_time=dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ticks // 10),
        event_time_ticks=ticks,
        value=event["Value"] if isinstance(event.get("Value"), str) else _json_text(event.get("Value")),
        user_name_key=_text(user, "Name"),
        user_email_key=_text(user, "Email"),
        user_info=_json_text(user.get("Info")),
        payload=_json_text(event.get("Payload")),
    )
    return row


def track_event(number: int, **overrides: Any) -> dict[str, Any]:
    """The landing tests' event, with a nested `User.Info` and a `Payload` the SQL alone cannot write."""
    nested = {
        "SessionId": f"s-{number}",
        "User": {"Name": "pii1:bb", "Email": "pii1:cc", "Info": {"Platform": "Web", "Age": 3}},
        "Payload": {"n": 1, "b": [1.5, None, True]},
    }
    return landing_event(f"t-{number}", f"{DAY}T10:00:00.1234567Z", **{**nested, **overrides})


def line(number: int, **overrides: Any) -> bytes:
    return json.dumps(track_event(number, **overrides), ensure_ascii=False).encode()


HOSTILE_TIMES = [
    f"{DAY}T10:00:00Z", f"{DAY} 10:00:00", f"{DAY}T10:00:00.1", f"{DAY}T10:00:00.1234567+00:00",
    f"{DAY}T10:00:00-0000", f" {DAY}T10:00:00Z ", f"{DAY}T10:00:00.12345678Z", f"{DAY}T10:00:00+01:00",
    "2026-02-30T10:00:00Z", f"{DAY}T24:00:00Z", f"{DAY}T23:59:60Z", "1969-12-31T23:59:59.9999999Z",
    "0999-01-01T00:00:00Z", "\uff12\uff10\uff12\uff16-11-01T10:00:00Z", f"{DAY}", "", "not a time",
]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    None, "", "text", 7, -7, 2**63, 2**70, 1.5, 1e20, 1.0, -0.0, True, False, [], [1, "a"], {},
    {"b": 1, "a": {"d": 2, "c": [3]}}, "ü €", "\u001f\"\\/",
]  # fmt: skip
HOSTILE_USERS: list[Any] = [
    None, {}, [], "", 0, 0.0, False, "x", [1], 1, True, {"Name": 5}, {"Name": {"a": 1}}, {"Email": [1]},
    {"Info": "plain"}, {"Info": [2, 1]},
]  # fmt: skip
HOSTILE_TRACK_IDS: list[Any] = [
    "", " ", " t-x ", "t-y\u00a0", "\u2003t-z", "t\tw", None, 5, 1.5, True, [1], {"a": 1},
]  # fmt: skip


def hostile_lines() -> list[bytes]:
    lines = [line(n, EventTime=time) for n, time in enumerate(HOSTILE_TIMES)]
    for n, value in enumerate(HOSTILE_VALUES, start=100):
        lines += [line(n, Value=value), line(n + 100, Payload=value), line(n + 200, City=value)]
        lines.append(line(n + 300, User={"Name": "pii1:bb", "Info": value}))
        lines.append(line(n + 800, Payload={"value": value, "b": 1, "\u00e9": "x", "k\u001f": 2}))
        lines.append(line(n + 900, Payload={"value": value, "b": 1, "a": "x"}))
    lines += [line(500 + n, User=user) for n, user in enumerate(HOSTILE_USERS)]
    lines += [
        line(600, TrackId=track_id, SessionId=f"s-id-{n}") for n, track_id in enumerate(HOSTILE_TRACK_IDS)
    ]
    lines += [
        json.dumps({"EventTime": f"{DAY}T10:00:00Z"}).encode(),
        json.dumps({"EventTime": f"{DAY}T10:00:01Z", "Extra": {"z": 1, "a": [{"y": 2, "x": 1}]}}).encode(),
        b'{"TrackId": "half',
        b"[1, 2, 3]",
        b"null",
        b"not json",
        line(700).replace(b'"Stockholm"', b'"G\xf6teborg"'),  # not UTF-8
        line(701) + b"\r",
        line(702) + b" trailing",
        line(703, Payload={"n": 12345678901234567890123, "f": 0.1, "e": 1e-7}),
        line(704).replace(b'"Value": "seen"', b'"Value": NaN'),
    ]
    return lines


def land(lake: Lake, pages: list[list[bytes]]) -> None:
    with lake.write_partition(raw_path(landing.SOURCE_NAME, DAY)) as partition:
        for number, page in enumerate(pages):
            landing.write_lines(partition.open, f"page-{number:06d}.json.gz", page, events=len(page))


def oracle_day(lines: list[bytes]) -> tuple[list[dict[str, Any]], list[bytes]]:
    rows, refused = [], []
    for raw in lines:
        try:
            rows.append(oracle_row(raw))
        except ValueError:
            refused.append(raw + b"\n")
    return rows, refused


def ingested_day(lake: Lake, tmp_path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    typed = read_day(landing.SPEC, lake, DAY, tmp_dir=tmp_path)
    rows = typed.reader.read_all().to_pylist()
    quarantined = b"".join(
        gzip.decompress(lake.read_bytes(path))
        for path in lake.current_files(quarantine_path(landing.TABLE, DAY))
    )
    assert typed.summary.reconciles
    return rows, quarantined.splitlines(keepends=True)


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keyed = {row["event_key"]: row for row in rows}
    assert len(keyed) == len(rows)
    return keyed


def test_hostile_lines_type_or_quarantine_as_the_python_typing_did(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    lines = hostile_lines()
    land(lake, [lines[: len(lines) // 2], lines[len(lines) // 2 :]])

    rows, quarantined = ingested_day(lake, tmp_path)

    expected_rows, expected_refused = oracle_day(lines)
    assert by_key(rows) == by_key(expected_rows)
    assert quarantined == expected_refused
    assert len(expected_rows) > 40 and len(expected_refused) > 20  # both sides are exercised
    assert [row["event_time_ticks"] for row in rows] == sorted(row["event_time_ticks"] for row in rows)


def test_a_sandbox_day_types_value_for_value_as_the_python_typing_did(
    world: World, lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    with ProfileStoreSandbox(world, events_per_day=2_000) as sandbox:
        pseudonymiser = Pseudonymiser("test-pseudonym-key")
        events = [pseudonymiser.event(event) for event in sandbox.events_on(dt.date.fromisoformat(DAY))]
    lines = [json.dumps(event, ensure_ascii=False).encode() for event in events]
    land(lake, [lines[:1000], lines[1000:]])

    rows, quarantined = ingested_day(lake, tmp_path)

    assert quarantined == []
    expected = {row["event_key"]: row for row in oracle_day(lines)[0]}
    assert by_key(rows) == expected
    assert any(key.startswith("sha256:") for key in expected)
