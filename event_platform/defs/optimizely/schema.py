"""The Enriched Events Export (E3) schemas, column for column as Optimizely's Spark job writes them.

VENDORS.md §2: decisions have 17 columns, conversions (`type=events`) 21, all nullable, timestamps in
milliseconds UTC. The real samples in fixtures/vendor-samples/optimizely carry exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

DataType = Literal["decisions", "events"]
DATA_TYPES: tuple[DataType, ...] = ("decisions", "events")

TIMESTAMP = pa.timestamp("ms", tz="UTC")
ATTRIBUTES = pa.list_(
    pa.struct([("id", pa.string()), ("name", pa.string()), ("type", pa.string()), ("value", pa.string())])
)
EXPERIMENTS = pa.list_(
    pa.struct(
        [
            ("campaign_id", pa.string()),
            ("experiment_id", pa.string()),
            ("variation_id", pa.string()),
            ("is_holdback", pa.bool_()),
        ]
    )
)
TAGS = pa.map_(pa.string(), pa.string())

DECISIONS = pa.schema(
    [
        ("uuid", pa.string()),
        ("timestamp", TIMESTAMP),
        ("process_timestamp", TIMESTAMP),
        ("visitor_id", pa.string()),
        ("session_id", pa.string()),
        ("account_id", pa.string()),
        ("campaign_id", pa.string()),
        ("experiment_id", pa.string()),
        ("variation_id", pa.string()),
        ("attributes", ATTRIBUTES),
        ("user_ip", pa.string()),
        ("user_agent", pa.string()),
        ("referer", pa.string()),
        ("is_holdback", pa.bool_()),
        ("revision", pa.string()),
        ("client_engine", pa.string()),
        ("client_version", pa.string()),
    ]
)

CONVERSIONS = pa.schema(
    [
        ("uuid", pa.string()),
        ("timestamp", TIMESTAMP),
        ("process_timestamp", TIMESTAMP),
        ("visitor_id", pa.string()),
        ("session_id", pa.string()),
        ("account_id", pa.string()),
        ("experiments", EXPERIMENTS),
        ("entity_id", pa.string()),
        ("attributes", ATTRIBUTES),
        ("user_ip", pa.string()),
        ("user_agent", pa.string()),
        ("referer", pa.string()),
        ("event_type", pa.string()),
        ("event_name", pa.string()),
        ("revenue", pa.int64()),
        ("value", pa.float64()),
        ("quantity", pa.int64()),
        ("tags", TAGS),
        ("revision", pa.string()),
        ("client_engine", pa.string()),
        ("client_version", pa.string()),
    ]
)

SOURCE_FILE_COLUMN = "_source_file"
"""Lineage: the vendor's path of the part file a row came from, relative to the date folder."""


@dataclass(frozen=True)
class E3Type:
    """One of the two exports: its S3 `type=` value, the folder key below a date, and its schema."""

    name: DataType
    folder_key: Literal["experiment", "event"]
    schema: pa.Schema
    asset_name: str

    @property
    def folder_column(self) -> str:
        """The column the `<folder_key>=…` path segment fills where the vendor left it null."""
        return "experiment_id" if self.folder_key == "experiment" else "event_name"


E3_TYPES: dict[DataType, E3Type] = {
    "decisions": E3Type("decisions", "experiment", DECISIONS, asset_name="decisions"),
    "events": E3Type("events", "event", CONVERSIONS, asset_name="conversions"),
}


def e3_type(name: str) -> E3Type:
    for known in DATA_TYPES:
        if known == name:
            return E3_TYPES[known]
    raise ValueError(f"Unknown E3 type {name!r}: use one of {', '.join(DATA_TYPES)}.")


@dataclass(frozen=True)
class SchemaDifference:
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    mistyped: tuple[str, ...]
    """`name: found -> expected`, for columns whose type cannot be cast safely to E3's."""

    @property
    def is_exact(self) -> bool:
        return not (self.missing or self.extra or self.mistyped)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing columns {', '.join(self.missing)}")
        if self.mistyped:
            parts.append(f"unexpected types {', '.join(self.mistyped)}")
        if self.extra:
            parts.append(f"extra vendor columns {', '.join(self.extra)}")
        return "; ".join(parts) or "matches E3"


def compare_schema(found: pa.Schema, expected: pa.Schema) -> SchemaDifference:
    """How a part file's schema differs from E3's. Types that differ only in unit/zone are castable."""
    found_names = set(found.names)
    missing = tuple(name for name in expected.names if name not in found_names)
    extra = tuple(name for name in found.names if expected.get_field_index(name) < 0)
    mistyped = tuple(
        f"{field.name}: {found.field(field.name).type} -> {field.type}"
        for field in expected
        if field.name in found_names and not _castable(found.field(field.name).type, field.type)
    )
    return SchemaDifference(missing, extra, mistyped)


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    if source.equals(target):
        return True
    # Spark may write INT96 / microsecond timestamps; they carry the same instants.
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return True
    return (pa.types.is_string(source) or pa.types.is_large_string(source)) and pa.types.is_string(target)
