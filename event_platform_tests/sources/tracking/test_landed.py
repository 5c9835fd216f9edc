import gzip

import pytest

from event_platform.lake.filesystem import Lake
from event_platform.sources.tracking.landed import LineError, commit_events, landed_files, typed_row
from event_platform.staging import gzip_lines


def test_a_damaged_landed_file_is_named(lake: Lake) -> None:
    damaged = gzip.compress(b'{"uuid": "a"}\n{"uuid": "b"}\n')[:-12]
    commit_events(lake, "2026-11-01", damaged, lines=2, first_received="", last_received="")
    with pytest.raises(ValueError, match=r"events-.*\.ndjson\.gz is not a complete gzip file"):
        list(gzip_lines(lake, landed_files(lake, "2026-11-01")))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[1]", "not a JSON object"),
        (b'{"uuid": "u", "event_type": "t"}', "anon_username is missing"),
        (b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01"}', "no UTC offset"),
        (
            b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01T00:00:00+00:00", '
            b'"received_at": "2026-11-01T00:00:01+00:00", "event_data": 3}',
            "event_data is not an object",
        ),
    ],
)
def test_untypable_lines_say_why(line: bytes, reason: str) -> None:
    with pytest.raises(LineError, match=reason):
        typed_row(line)


def test_a_typed_row_keeps_ids_as_text_and_event_data_as_sorted_json() -> None:
    row = typed_row(
        b'{"uuid": "u", "event_type": "t", "anon_username": "a", "time": "2026-11-01T01:00:00+01:00", '
        b'"received_at": "2026-11-01T00:00:01+00:00", "course_unit_id": 7, "event_data": {"b": 1, "a": "x"}}'
    )
    assert row["course_unit_id"] == "7" and row["event_data"] == '{"a":"x","b":1}'
    assert row["time"].isoformat() == "2026-11-01T00:00:00+00:00"
