"""The typed shape of an Amplitude event: one explicit Arrow schema for `amplitude/events`.

Choices, and why:
- Every one of the export's 55 keys is a column, in the export's (alphabetical) order, so nothing the
  vendor sent is lost in typing. The three keys that start with `$` drop it (`$insert_id` -> `insert_id`,
  `$insert_key` -> `insert_key`, `$schema` -> `schema`): `$` needs quoting in every SQL dialect an analyst
  might reach the lake with (DuckDB, Trino, Spark), and no other key collides with the stripped names.
- Timestamps are `timestamp[us, tz=UTC]`, parsed from the export's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC,
  no zone). A value in any other shape is malformed: null in the row and counted, never guessed at.
- Identifiers and counters are typed (`amplitude_id`, `app`, `event_id`, `session_id` int64 with
  `session_id` -1 meaning "no session", as Amplitude writes it), coordinates and `sample_rate` float64,
  `is_attribution_event` bool. Everything else the export documents as text stays text (`user_id` may be
  absent, `paying` and `$schema` are free-form).
- The nested objects (`event_properties`, `user_properties`, `group_properties`, `groups`, `data`, `plan`,
  `global_user_properties`, `amplitude_attribution_ids`) are kept as JSON text: their keys are free-form
  and differ per event type and per project, so a struct column would change shape with every new
  property, while DuckDB (`->>`, `json_extract`), Trino and Spark read JSON text directly. Those fields
  carry `content: json` in their Arrow field metadata.
- Lineage: `_source_file` names the export member (`<project>/<project>_<date>_<hour>#<part>.json.gz`)
  a row came from, so any row can be traced back to the raw bytes kept in `raw/amplitude/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    TEXT = "text"
    JSON = "json"
    TIMESTAMP = "timestamp"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"


ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.JSON: pa.string(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.INTEGER: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOLEAN: pa.bool_(),
}


@dataclass(frozen=True)
class Column:
    key: str
    """The key as the export writes it."""
    name: str
    """The column name in the lake."""
    kind: Kind

    @property
    def typed(self) -> bool:
        """Whether a value can fail to convert (then it is null in the row and counted as malformed)."""
        return self.kind not in (Kind.TEXT, Kind.JSON)

    def field(self) -> pa.Field:
        metadata = {"content": "json"} if self.kind is Kind.JSON else None
        return pa.field(self.name, ARROW_TYPES[self.kind], metadata=metadata)


_KINDS: dict[str, Kind] = {
    "amplitude_attribution_ids": Kind.JSON,
    "amplitude_id": Kind.INTEGER,
    "app": Kind.INTEGER,
    "client_event_time": Kind.TIMESTAMP,
    "client_upload_time": Kind.TIMESTAMP,
    "data": Kind.JSON,
    "event_id": Kind.INTEGER,
    "event_properties": Kind.JSON,
    "event_time": Kind.TIMESTAMP,
    "global_user_properties": Kind.JSON,
    "group_properties": Kind.JSON,
    "groups": Kind.JSON,
    "is_attribution_event": Kind.BOOLEAN,
    "location_lat": Kind.FLOAT,
    "location_lng": Kind.FLOAT,
    "plan": Kind.JSON,
    "processed_time": Kind.TIMESTAMP,
    "sample_rate": Kind.FLOAT,
    "server_received_time": Kind.TIMESTAMP,
    "server_upload_time": Kind.TIMESTAMP,
    "session_id": Kind.INTEGER,
    "user_creation_time": Kind.TIMESTAMP,
    "user_properties": Kind.JSON,
}

EXPORT_KEYS: tuple[str, ...] = (
    "$insert_id", "$insert_key", "$schema", "adid", "amplitude_attribution_ids", "amplitude_event_type",
    "amplitude_id", "app", "city", "client_event_time", "client_upload_time", "country", "data", "data_type",
    "device_brand", "device_carrier", "device_family", "device_id", "device_manufacturer", "device_model",
    "device_type", "dma", "event_id", "event_properties", "event_time", "event_type",
    "global_user_properties", "group_properties", "groups", "idfa", "ip_address", "is_attribution_event",
    "language", "library", "location_lat", "location_lng", "os_name", "os_version", "partner_id", "paying",
    "plan", "platform", "processed_time", "region", "sample_rate", "server_received_time",
    "server_upload_time", "session_id", "source_id", "start_version", "user_creation_time", "user_id",
    "user_properties", "uuid", "version_name",
)  # fmt: skip
"""The 55 keys of an exported event, in the order the export writes them."""

COLUMNS: tuple[Column, ...] = tuple(
    Column(key, key.removeprefix("$"), _KINDS.get(key, Kind.TEXT)) for key in EXPORT_KEYS
)
SOURCE_FILE = "_source_file"

EVENT_SCHEMA = pa.schema(
    [*(column.field() for column in COLUMNS), pa.field(SOURCE_FILE, pa.string())],
    metadata={"source": "Amplitude Export API", "primary_key": "uuid"},
)
"""The schema of `amplitude/events`: the 55 exported keys, typed, then the lineage column."""

TIMESTAMP_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
"""The export's timestamp shapes (UTC, no zone): with and without the fraction of a second."""

PREVIEW_COLUMNS: tuple[str, ...] = ("event_time", "event_type", "uuid", "insert_id", "platform", "library")
"""What a materialization's preview shows: no person-level fields (ids, ip, city, properties)."""
