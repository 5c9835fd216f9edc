"""Materialization metadata as people read it: sizes, shares and durations in words, tables with columns.

Counts stay numbers (Dagster plots a number over time, and a count is what one wants as a curve);
a size, a share or a duration becomes text in the unit a person would say (`2.1 MB`, `1.9%`, `3.2 s`).
Previews and small breakdowns are Dagster tables with a typed, described schema, so the UI shows whole
rows in columns instead of a cut-off line of Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from event_platform.columns import column_description

SIZE_UNITS = ("B", "kB", "MB", "GB", "TB")
CELL_CHARACTERS = 60
"""A preview cell longer than this is shortened: free-text JSON would otherwise push the rest away."""


def size(bytes_: int) -> MetadataValue:
    """`2.1 MB`: decimal units, as file browsers and S3's console show them."""
    value, unit = float(bytes_), SIZE_UNITS[0]
    for unit in SIZE_UNITS:
        if abs(value) < 1000 or unit == SIZE_UNITS[-1]:
            break
        value /= 1000
    return MetadataValue.text(f"{bytes_} B" if unit == "B" else f"{value:.1f} {unit}")


def share(part: float, whole: float = 1.0) -> MetadataValue:
    """`1.9%` of `whole` (a fraction by default); `0%` of nothing."""
    percent = 100 * part / whole if whole else 0.0
    digits = 0 if percent in (0, 100) else 2 if abs(percent) < 1 else 1
    return MetadataValue.text(f"{percent:.{digits}f}%")


def duration(seconds: float) -> MetadataValue:
    """`850 ms`, `3.2 s`, `4 min 12 s`, `2 h 5 min`."""
    if seconds < 1:
        return MetadataValue.text(f"{seconds * 1000:.0f} ms")
    if seconds < 60:
        return MetadataValue.text(f"{seconds:.1f} s")
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return MetadataValue.text(f"{minutes} min {rest} s")
    hours, minutes = divmod(minutes, 60)
    return MetadataValue.text(f"{hours} h {minutes} min")


def column_schema(schema: pa.Schema) -> TableSchema:
    """The columns as Dagster shows them, with each one's description where the schema carries it."""
    return TableSchema(
        columns=[
            TableColumn(name=f.name, type=str(f.type), description=column_description(f)) for f in schema
        ]
    )


def table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> MetadataValue:
    """`rows` (dicts, e.g. a preview) as a Dagster table of the columns of `schema`, in its order."""
    return MetadataValue.table(
        records=[TableRecord({f.name: _cell(row.get(f.name)) for f in schema}) for row in rows],
        schema=column_schema(schema),
    )


def counts(counted: Mapping[str, int], *, label: str, count: str = "rows") -> MetadataValue:
    """A small breakdown (rows per source, per event type …) as a two-column table, largest first."""
    schema = pa.schema([(label, pa.string()), (count, pa.int64())])
    ordered = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return table([{label: name, count: number} for name, number in ordered], schema)


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime):
        # To the second: the column's type says the zone, and a preview row should fit on a line.
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= CELL_CHARACTERS else text[: CELL_CHARACTERS - 1] + "…"
