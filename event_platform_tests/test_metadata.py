"""Metadata as people read it: sizes, shares and durations in words, tables with typed, described columns."""

import datetime as dt

import pyarrow as pa
import pytest

from event_platform import metadata
from event_platform.columns import column


@pytest.mark.parametrize(
    ("bytes_", "shown"),
    [(0, "0 B"), (999, "999 B"), (2_214_004, "2.2 MB"), (1_000, "1.0 kB"), (7_900_000_000, "7.9 GB")],
)
def test_a_size_reads_in_the_unit_one_would_say(bytes_: int, shown: str) -> None:
    assert metadata.size(bytes_).value == shown


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [(0.018871, 1.0, "1.9%"), (0.004, 1.0, "0.40%"), (3, 3, "100%"), (0, 0, "0%"), (1, 8, "12.5%")],
)
def test_a_share_reads_as_a_percentage(part: float, whole: float, shown: str) -> None:
    assert metadata.share(part, whole).value == shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.25, "250 ms"), (3.21, "3.2 s"), (252, "4 min 12 s"), (7500, "2 h 5 min")]
)
def test_a_duration_reads_in_its_largest_unit(seconds: float, shown: str) -> None:
    assert metadata.duration(seconds).value == shown


def test_a_preview_is_a_table_of_whole_rows_with_the_schemas_types_and_descriptions() -> None:
    schema = pa.schema(
        [
            column("time", pa.timestamp("us", tz="UTC"), "When it happened."),
            column("event_data", pa.string(), "What it carried."),
        ]
    )
    at = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    rows = [{"time": at, "event_data": "x" * 200, "not_previewed": 1}, {"time": None, "event_data": "{}"}]

    shown = metadata.table(rows, schema)

    assert [(c.name, c.type, c.description) for c in shown.schema.columns] == [
        ("time", "timestamp[us, tz=UTC]", "When it happened."),
        ("event_data", "string", "What it carried."),
    ]
    first, second = (record.data for record in shown.records)
    assert first["time"] == "2026-11-01 09:00:00"
    assert len(first["event_data"]) == metadata.CELL_CHARACTERS and first["event_data"].endswith("…")
    assert second == {"time": None, "event_data": "{}"}


def test_counts_are_a_two_column_table_largest_first() -> None:
    shown = metadata.counts({"tracking": 2, "amplitude": 5, "optimizely": 2}, label="source")
    assert [c.name for c in shown.schema.columns] == ["source", "rows"]
    assert [tuple(r.data.values()) for r in shown.records] == [
        ("amplitude", 5),
        ("optimizely", 2),
        ("tracking", 2),
    ]
