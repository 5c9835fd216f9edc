"""The Enriched Events Export (E3) schemas, column for column as Optimizely's Spark job writes them.

VENDORS.md §2: decisions have 17 columns, conversions (`type=events`) 21, all nullable, timestamps in
milliseconds UTC. The real samples in fixtures/vendor-samples/optimizely carry exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from event_platform.columns import column

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

DESCRIPTIONS: dict[str, str] = {
    "uuid": "Optimizely's id of the event: the de-duplication key (compared case-folded, as it arrives in "
    "either case).",
    "timestamp": "When the decision or conversion happened (UTC), by the visitor's SDK.",
    "process_timestamp": "When Optimizely processed the event (UTC); the export's `date=` is this day.",
    "visitor_id": "The visitor id the SDK bucketed with: the platform's account id, as Amplitude's user_id.",
    "session_id": "The visitor's session; no longer generated since 2023-10-09, so null in newer data.",
    "account_id": "The Optimizely account the event belongs to.",
    "campaign_id": "The campaign (layer) of the experiment the visitor was bucketed in.",
    "experiment_id": "The experiment the visitor was bucketed in.",
    "variation_id": "The variation the visitor was shown.",
    "attributes": "The visitor's audience attributes at the event (id, name, type, value).",
    "user_ip": "The visitor's IP address, as the SDK sent it.",
    "user_agent": "The visitor's browser user agent.",
    "referer": "The page the visitor came from.",
    "is_holdback": "True for a visitor held back from the experiment (shown the default experience).",
    "revision": "The revision of the Optimizely project configuration the SDK used.",
    "client_engine": "The SDK that sent the event, e.g. `js` or `python-sdk`.",
    "client_version": "The version of that SDK.",
    "experiments": "The experiments and variations the visitor was in when converting; no longer "
    "generated since 2023-10-09, so null in newer data.",
    "entity_id": "The id of the tracked event in the Optimizely project.",
    "event_type": "The kind of tracked event, e.g. `other` or `pageview`.",
    "event_name": "The tracked event's key, e.g. `purchase`: the metric it counts towards.",
    "revenue": "Revenue of the conversion in cents (integer), when the event carries revenue.",
    "value": "A numeric value of the conversion, when the event carries one.",
    "quantity": "A quantity of the conversion (e.g. items bought), when the event carries one.",
    "tags": "The event's tags as the SDK sent them, name to value.",
}
"""E3's columns, as Optimizely documents them."""


def _e3_schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([column(name, data_type, DESCRIPTIONS[name]) for name, data_type in columns])


DECISIONS = _e3_schema(
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

CONVERSIONS = _e3_schema(
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
SOURCE_FILE_FIELD = column(
    SOURCE_FILE_COLUMN,
    pa.string(),
    "Lineage: the vendor's path of the part file the row came from, relative to the date folder; the file "
    "is kept byte-identical under raw/optimizely/.",
)


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
