"""The vendor's two real export lines, as they are, type without loss."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import raw_path
from event_platform.sources.amplitude.schema import COLUMNS, EVENT_SCHEMA, EXPORT_KEYS, Kind
from event_platform.sources.amplitude.transform import read_events

DAY = "2025-07-17"
MEMBER = "100011471/100011471_2025-07-17_10#0.json.gz"


@pytest.fixture
def real_lines(vendor_samples: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((vendor_samples / "amplitude").glob("*.json"))]


@pytest.fixture
def typed_rows(real_lines: list[bytes], lake_resource: LakeResource, tmp_path: Path) -> list[dict[str, Any]]:
    lake = lake_resource.lake()
    content = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in real_lines)
    with (
        lake.write_partition(raw_path("amplitude", DAY)) as writer,
        writer.open(MEMBER, member=MEMBER, lines=len(real_lines)) as target,
    ):
        target.write(gzip.compress(content))
    events = read_events(lake, DAY, tmp_dir=tmp_path)
    table = events.reader.read_all()
    assert table.schema == EVENT_SCHEMA
    assert events.summary.reconciles and events.summary.quarantined == 0
    assert events.summary.malformed_values == 0
    return table.to_pylist()


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_the_real_lines_have_the_55_keys_the_schema_types(real_lines: list[bytes]) -> None:
    for line in real_lines:
        assert tuple(json.loads(line)) == EXPORT_KEYS
    assert len(EXPORT_KEYS) == 55


def test_every_key_survives_typing(real_lines: list[bytes], typed_rows: list[dict[str, Any]]) -> None:
    by_uuid = {row["uuid"]: row for row in typed_rows}
    assert len(by_uuid) == len(real_lines) == 2
    for line in real_lines:
        original = json.loads(line)
        row = by_uuid[original["uuid"]]
        for column in COLUMNS:
            value, typed = original[column.key], row[column.name]
            if value is None:
                assert typed is None, column.name
            elif column.kind is Kind.JSON:
                assert json.loads(typed) == value, column.name  # nested objects round-trip as JSON
            elif column.kind is Kind.TIMESTAMP:
                assert typed == parse_time(value), column.name
            else:
                assert typed == value, column.name
        assert row["_source_file"] == MEMBER


def test_the_known_values_of_the_browser_sdk_line(typed_rows: list[dict[str, Any]]) -> None:
    row = next(r for r in typed_rows if r["uuid"] == "3e702190-9dcb-483a-94d8-58e93ce161de")
    assert row["insert_id"] == "ea31ba7b-f543-4b9b-9aec-90fbaa96a355"
    assert row["event_time"] == dt.datetime(2025, 7, 17, 10, 36, 28, 583000, tzinfo=dt.UTC)
    assert row["server_upload_time"] == dt.datetime(2025, 7, 17, 10, 36, 29, 753000, tzinfo=dt.UTC)
    assert (row["amplitude_id"], row["app"], row["session_id"]) == (45975551903, 100011471, 1752748588583)
    assert json.loads(row["data"])["path"] == "/2/httpapi"
    assert json.loads(row["user_properties"])["referrer"] == "https://www.google.com/"
    assert row["event_properties"] == "{}"


def test_the_server_side_line_keeps_its_numbers_and_no_session(typed_rows: list[dict[str, Any]]) -> None:
    row = next(r for r in typed_rows if r["uuid"] == "a6ec45f6-0016-4907-b433-5bf4e4a56908")
    assert row["session_id"] == -1
    assert row["event_id"] == 991179682
    properties = json.loads(row["event_properties"])
    assert properties == {"Total Price": 6396.0, "Drop Id": 2, "Number of Shares": 20, "Drop Type": "Sale",
                          "Price per Share": 312.0, "Property": "Property 0"}  # fmt: skip
    assert isinstance(properties["Drop Id"], int) and isinstance(properties["Total Price"], float)
