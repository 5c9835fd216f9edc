"""Typing landed pages: duplicates collapse on event_key, untypable events go to quarantine, leaks show."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from event_platform.ingest import IngestSummary, read_day
from event_platform.lake import delta
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.defs.checks import scan_for_personal_data
from event_platform.sources.profile_store.transform import EVENTS_SCHEMA, event_key

DAY = "2026-11-01"


def track_event(track_id: str, time: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "TrackId": track_id,
        "DeviceId": "DEV-1",
        "EventType": "pageview",
        "EventTime": time,
        "Value": "seen",
        "Scope": "shop",
        "CountryCode": "SE",
        "PageUri": "https://x.example/a",
        "PageTitle": "A",
        "RemoteAddress": "pii1:aa",
        "SessionId": "s-1",
        "City": "Stockholm",
        "User": {"Name": "pii1:bb", "Email": "pii1:cc", "Info": {"Platform": "Web"}},
        "Payload": {"n": 1},
    }
    return {**event, **overrides}


def land_pages(lake: Lake, pages: list[list[dict[str, Any]]]) -> None:
    with lake.write_partition(raw_path(landing.SOURCE_NAME, DAY)) as partition:
        for number, page in enumerate(pages):
            landing.write_page(partition.open, f"page-{number:06d}.json.gz", page)


def stage(lake: Lake, tmp_path: Path) -> tuple[pa.Table, IngestSummary]:
    typed = read_day(landing.SPEC, lake, DAY, tmp_dir=tmp_path)
    return typed.reader.read_all(), typed.summary


def typed_row(lake: Lake, event: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """`event`'s row, typed through the ingestion path from a page of its own."""
    land_pages(lake, [[event]])
    [row] = stage(lake, tmp_path)[0].to_pylist()
    return row


def test_duplicates_collapse_and_untypable_events_are_quarantined(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    first = track_event("t-1", "2026-11-01T10:00:00.1234567Z")
    anonymous = track_event("", "2026-11-01T11:00:00.0000001Z")
    other_anonymous = track_event("", "2026-11-01T11:00:00.0000001Z", Value="another")
    broken = track_event("t-9", "not a time")
    again = [copy.deepcopy(first), copy.deepcopy(anonymous), other_anonymous]  # a page read twice
    land_pages(lake, [[first, anonymous, broken], again])

    table, stats = stage(lake, tmp_path)
    assert table.schema == EVENTS_SCHEMA
    assert (stats.raw_lines, stats.duplicates, stats.quarantined, stats.rows) == (6, 2, 1, 3)
    assert sorted(table.column("event_key").to_pylist()) == sorted(
        ["t-1", event_key(anonymous), event_key(other_anonymous)]
    )
    assert event_key(anonymous).startswith("sha256:") and event_key(anonymous) != event_key(other_anonymous)
    quarantine = lake.read_manifest(quarantine_path(landing.TABLE, DAY))
    assert quarantine is not None and quarantine.metadata["lines"] == 1

    # A clean re-landing empties the quarantine rather than leaving the old lines behind.
    land_pages(lake, [[first]])
    stage(lake, tmp_path)
    quarantine = lake.read_manifest(quarantine_path(landing.TABLE, DAY))
    assert quarantine is not None and quarantine.metadata["lines"] == 0 and not quarantine.files


def test_event_time_keeps_its_seventh_digit(lake_resource: LakeResource, tmp_path: Path) -> None:
    row = typed_row(lake_resource.lake(), track_event("t", "2026-11-01T10:00:00.1234567Z"), tmp_path)
    assert row["event_time_ticks"] % 10 == 7
    micros = (row["event_time"] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert micros == row["event_time_ticks"] // 10
    assert row["payload"] == '{"n": 1}' and row["user_info"] == '{"Platform": "Web"}'


def test_leak_scan_finds_clear_addresses_in_any_column_and_in_raw_pages(
    lake_resource: LakeResource, tmp_path: Path
) -> None:
    lake = lake_resource.lake()
    leaking = track_event("t-2", "2026-11-01T10:00:00Z", Payload={"contact": "ada@example.org"})
    land_pages(lake, [[track_event("t-1", "2026-11-01T09:00:00Z"), leaking]])
    rows = stage(lake, tmp_path)[0].to_pylist()
    rows[0]["city"] = "seen from 198.51.100.7"
    table = pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)
    delta.write(lake, landing.TABLE, table.to_reader(), partition=DAY)
    scan = scan_for_personal_data(lake, DAY)
    assert dict(scan.columns) == {"payload": 1, "city": 1}
    assert sorted(scan.event_keys) == ["t-1", "t-2"]
    assert scan.raw_lines == 1
