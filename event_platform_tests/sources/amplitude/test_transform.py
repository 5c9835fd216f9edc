"""The transform on raw partitions written here with the lake's own writer, from real and generated lines."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.sources.amplitude.schema import EVENT_SCHEMA
from event_platform.sources.amplitude.transform import TypedEvents, UnreconciledMemberError, read_events

DAY = "2026-11-01"
MEMBER_A = "374182/374182_2026-11-01_0#0.json.gz"
MEMBER_B = "374182/374182_2026-11-01_13#0.json.gz"


@pytest.fixture
def lake(lake_resource: LakeResource) -> Lake:
    return lake_resource.lake()


@pytest.fixture
def sample(vendor_samples: Path) -> dict[str, Any]:
    return json.loads((vendor_samples / "amplitude" / "browser_sdk_event.json").read_text())


def event_line(sample: dict[str, Any], number: int, **overrides: Any) -> bytes:
    """A line shaped like the real sample, with its own uuid and times unless overridden."""
    event = {
        **sample,
        "uuid": f"00000000-0000-4000-8000-{number:012d}",
        "event_id": number,
        "event_time": f"{DAY} 10:{number % 60:02d}:00.123456",
        "server_upload_time": f"{DAY} 11:{number % 60:02d}:00.000001",
        **overrides,
    }
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def land(lake: Lake, members: dict[str, bytes], day: str = DAY) -> None:
    """A raw partition as the landing writes it: gzip members with their line counts."""
    with lake.write_partition(raw_path("amplitude", day)) as writer:
        for name, content in members.items():
            lines = content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)
            with writer.open(name, member=name, lines=lines, uncompressed_bytes=len(content)) as target:
                target.write(gzip.compress(content))


def read_all(lake: Lake, tmp_path: Path, day: str = DAY) -> tuple[TypedEvents, pa.Table]:
    events = read_events(lake, day, tmp_dir=tmp_path)
    return events, events.reader.read_all()


def quarantined_bytes(lake: Lake, day: str = DAY) -> dict[str, bytes]:
    partition = quarantine_path("amplitude/events", day)
    manifest = lake.read_manifest(partition)
    assert manifest is not None
    return {entry.name: lake.read_bytes(f"{partition}/{entry.path}") for entry in manifest.files}


def test_types_every_line_into_the_explicit_schema(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    land(lake, {MEMBER_A: b"".join(event_line(sample, n) for n in range(50)),
                MEMBER_B: b"".join(event_line(sample, n) for n in range(50, 80))})  # fmt: skip

    events, table = read_all(lake, tmp_path)

    assert table.schema == EVENT_SCHEMA
    assert table.num_rows == 80 == events.summary.rows
    assert events.summary.reconciles
    assert (events.summary.duplicates, events.summary.quarantined, events.summary.dirty_files) == (0, 0, 0)
    first = table.filter(pa.compute.equal(table["event_id"], 7)).to_pylist()[0]
    assert first["event_time"] == dt.datetime(2026, 11, 1, 10, 7, 0, 123456, tzinfo=dt.UTC)
    assert first["amplitude_id"] == sample["amplitude_id"]
    assert first["insert_id"] == sample["$insert_id"]
    assert json.loads(first["user_properties"]) == sample["user_properties"]
    assert first["_source_file"] == MEMBER_A
    assert sorted(set(table["_source_file"].to_pylist())) == [MEMBER_A, MEMBER_B]


def test_dedupes_on_uuid_keeping_the_first_upload_never_on_event_id(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    uuid = "11111111-2222-4333-8444-555555555555"
    later = event_line(sample, 1, uuid=uuid, event_type="later", server_upload_time=f"{DAY} 12:00:00.000000")
    earlier = event_line(sample, 2, uuid=uuid, event_type="earlier", server_upload_time=f"{DAY} 09:00:00")
    same_event_ids = [event_line(sample, n, event_id=42) for n in range(3, 6)]
    retried = event_line(sample, 6)
    land(lake, {MEMBER_A: later + b"".join(same_event_ids) + retried, MEMBER_B: earlier + retried})

    events, table = read_all(lake, tmp_path)

    kept = table.filter(pa.compute.equal(table["uuid"], uuid)).to_pylist()
    assert [row["event_type"] for row in kept] == ["earlier"]
    assert table.filter(pa.compute.equal(table["event_id"], 42)).num_rows == 3
    assert len(set(table["uuid"].to_pylist())) == table.num_rows == 5
    assert events.summary.duplicates == 2
    assert events.summary.reconciles


def test_quarantines_bad_lines_byte_for_byte_and_keeps_the_good_ones(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    good = [event_line(sample, n) for n in range(10)]
    bad_a = [
        good[0][: len(good[0]) // 2] + b"\n",  # cut in half, as a broken export writes it
        b"\n",  # a blank line
        b"not json at all\r\n",
        b"[1, 2, 3]\n",  # JSON, but not an event
        event_line(sample, 90, uuid=None),  # no primary key
        event_line(sample, 91, uuid=""),
        event_line(sample, 92, event_time="2026-02-30 10:00:00.000000"),  # no such day
        event_line(sample, 93, event_time="not a timestamp"),
        b'{"uuid": "caf\xe9", "event_time": "2026-11-01 00:00:00"}\n',  # not UTF-8
    ]
    last_without_newline = event_line(sample, 94, event_time="").rstrip(b"\n")
    land(lake, {MEMBER_A: b"".join(good[:5] + bad_a[:5] + good[5:8] + bad_a[5:]),
                MEMBER_B: b"".join(good[8:]) + last_without_newline})  # fmt: skip

    events, table = read_all(lake, tmp_path)

    assert table.num_rows == 10
    assert sorted(table["event_id"].to_pylist()) == list(range(10))
    assert quarantined_bytes(lake) == {
        MEMBER_A.removesuffix(".gz"): b"".join(bad_a),
        MEMBER_B.removesuffix(".gz"): last_without_newline,
    }
    summary = events.summary
    assert (summary.quarantined, summary.dirty_files, summary.raw_lines) == (10, 2, 20)
    assert summary.reconciles
    manifest = lake.read_manifest(quarantine_path("amplitude/events", DAY))
    assert manifest is not None
    assert sorted(entry.extra["lines"] for entry in manifest.files) == [1, 9]
    assert {k: manifest.metadata[k] for k in ("raw_lines", "rows", "duplicates", "quarantined")} == {
        "raw_lines": 20, "rows": 10, "duplicates": 0, "quarantined": 10,
    }  # fmt: skip


def test_malformed_secondary_values_are_null_and_counted(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    lines = [
        event_line(sample, 1, client_upload_time="yesterday", session_id="abc"),
        event_line(sample, 2, processed_time="2026-11-01 10:00:00", location_lat="north"),
        event_line(sample, 3),
    ]
    land(lake, {MEMBER_A: b"".join(lines)})

    events, table = read_all(lake, tmp_path)

    rows = {row["event_id"]: row for row in table.to_pylist()}
    assert rows[1]["client_upload_time"] is None and rows[1]["session_id"] is None
    assert rows[2]["location_lat"] is None
    assert rows[2]["processed_time"] == dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)  # no fraction is fine
    assert events.summary.malformed_by_column == {
        "client_upload_time": 1, "session_id": 1, "location_lat": 1,
    }  # fmt: skip
    assert events.summary.malformed_values == 3
    assert events.summary.quarantined == 0


def test_timestamps_in_any_other_shape_than_the_exports_are_malformed(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    others = ["2026-11-01T10:00:00", "2026-11-01 10:00:00+02", "2026-11-01 10:00:00Z", "2026-11-01",
              "2026-11-01 24:00:00", "2026-02-30 10:00:00", "2026-11-01 10:00:00.1234567"]  # fmt: skip
    lines = [event_line(sample, n, processed_time=value) for n, value in enumerate(others)]
    lines.append(event_line(sample, 99, processed_time="2026-11-01 10:00:00.5"))
    land(lake, {MEMBER_A: b"".join(lines)})

    events, table = read_all(lake, tmp_path)

    processed = {row["event_id"]: row["processed_time"] for row in table.to_pylist()}
    assert processed == {
        **dict.fromkeys(range(len(others))),
        99: dt.datetime(2026, 11, 1, 10, 0, 0, 500_000, tzinfo=dt.UTC),
    }
    assert events.summary.malformed_by_column == {"processed_time": len(others)}


def test_reports_time_range_and_late_events(lake: Lake, sample: dict[str, Any], tmp_path: Path) -> None:
    lines = [event_line(sample, n) for n in range(7)]
    lines.append(event_line(sample, 7, event_time="2026-10-29 23:59:59.5"))
    land(lake, {MEMBER_A: b"".join(lines)})

    events, _ = read_all(lake, tmp_path)

    assert events.summary.late_events == 1
    assert events.summary.late_share == pytest.approx(1 / 8)
    assert events.summary.min_event_time == dt.datetime(2026, 10, 29, 23, 59, 59, 500000, tzinfo=dt.UTC)
    assert events.summary.max_event_time == dt.datetime(2026, 11, 1, 10, 6, 0, 123456, tzinfo=dt.UTC)


def test_an_empty_day_is_an_empty_table_of_the_schema(lake: Lake, tmp_path: Path) -> None:
    land(lake, {})

    events, table = read_all(lake, tmp_path)

    assert table.num_rows == 0 and table.schema == EVENT_SCHEMA
    assert events.summary.reconciles and events.summary.files == 0
    assert quarantined_bytes(lake) == {}


def test_a_member_whose_lines_do_not_add_up_fails_the_day_naming_it(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    with (
        lake.write_partition(raw_path("amplitude", DAY)) as writer,
        writer.open(MEMBER_A, member=MEMBER_A, lines=3) as target,
    ):
        target.write(gzip.compress(event_line(sample, 1) + event_line(sample, 2)))

    with pytest.raises(UnreconciledMemberError, match=f"{MEMBER_A}: .* 1 are unaccounted for"):
        read_events(lake, DAY, tmp_dir=tmp_path)
    assert lake.read_manifest(quarantine_path("amplitude/events", DAY)) is None
    assert list(tmp_path.glob("amplitude-events-*")) == []


def test_a_day_never_landed_names_the_asset_to_run(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialize amplitude/raw_export"):
        read_events(lake, DAY, tmp_dir=tmp_path)


def test_a_rerun_replaces_the_quarantine_and_cleans_up_its_spool(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    land(lake, {MEMBER_A: event_line(sample, 1) + b"{broken\n"})
    read_all(lake, tmp_path)
    land(lake, {MEMBER_A: event_line(sample, 1)})

    events, table = read_all(lake, tmp_path)

    assert table.num_rows == 1 and events.summary.quarantined == 0
    assert quarantined_bytes(lake) == {}
    assert list(tmp_path.glob("amplitude-events-*")) == []
