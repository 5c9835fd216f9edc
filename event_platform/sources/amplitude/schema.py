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

from event_platform.columns import column


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
        content = {"content": "json"} if self.kind is Kind.JSON else None
        return column(self.name, ARROW_TYPES[self.kind], DESCRIPTIONS[self.key], metadata=content)


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

DESCRIPTIONS: dict[str, str] = {
    "$insert_id": "The sender's de-duplication id: Amplitude drops a second event with the same device_id "
    "and insert_id within 7 days; a secondary signal beside uuid.",
    "$insert_key": "Amplitude's internal key derived from insert_id (undocumented; kept as sent).",
    "$schema": "Amplitude's schema version of the event record (undocumented; kept as sent).",
    "adid": "Google Play Services advertising id of an Android device, when the SDK collects it.",
    "amplitude_attribution_ids": "Attribution ids Amplitude matched to the event (JSON text).",
    "amplitude_event_type": "Deprecated by Amplitude; always null.",
    "amplitude_id": "Amplitude's own id of the person, merging the devices and user ids it has linked.",
    "app": "The Amplitude project id the event belongs to.",
    "city": "City of the sender, from Amplitude's IP geolocation.",
    "client_event_time": "When the event happened by the sender's clock (UTC).",
    "client_upload_time": "When the sender uploaded the event by its own clock (UTC).",
    "country": "Country of the sender, from Amplitude's IP geolocation.",
    "data": "Amplitude's processing details for the event, such as the ingestion path (JSON text).",
    "data_type": "The kind of record: `event` for a tracked event, other values for identify calls.",
    "device_brand": "Deprecated by Amplitude; always null.",
    "device_carrier": "Mobile network carrier of the device.",
    "device_family": "Device family, e.g. `Apple iPhone` or `Mac`.",
    "device_id": "The sender's device or browser id; with user_id, what identifies a person.",
    "device_manufacturer": "Deprecated by Amplitude; always null.",
    "device_model": "Deprecated by Amplitude; always null.",
    "device_type": "Device type, e.g. `iPhone 14` or `Windows`.",
    "dma": "Nielsen Designated Market Area of the sender (US), from IP geolocation.",
    "event_id": "A counter the SDK increments per event; not unique, never a key.",
    "event_properties": "The event's own properties as the sender set them (JSON text).",
    "event_time": "When the event happened (UTC), client_event_time corrected for clock skew: the time "
    "to analyse by.",
    "event_type": "The event's name, e.g. `Viewed Course`.",
    "global_user_properties": "Properties of the person shared across the organisation's projects "
    "(JSON text).",
    "group_properties": "Properties of the groups (accounts, companies) the event belongs to (JSON text).",
    "groups": "The groups the event belongs to, group type to group name (JSON text).",
    "idfa": "Apple's identifier for advertisers of an iOS device, when the SDK collects it.",
    "ip_address": "The sender's IP address as Amplitude received it.",
    "is_attribution_event": "Deprecated by Amplitude; always null.",
    "language": "The device's language setting.",
    "library": "The SDK that sent the event and its version, e.g. `amplitude-ts/2.1.0`.",
    "location_lat": "Latitude of the device, when the SDK sends it.",
    "location_lng": "Longitude of the device, when the SDK sends it.",
    "os_name": "Operating system or browser name.",
    "os_version": "Operating system or browser version.",
    "partner_id": "The id of the partner integration that sent the event, if any.",
    "paying": "Whether the person has paid, as Amplitude's revenue tracking recorded it (free text).",
    "plan": "The tracking plan branch, source and version the event was validated against (JSON text).",
    "platform": "The platform, e.g. `Web`, `iOS` or `Android`.",
    "processed_time": "When Amplitude finished processing the event (UTC).",
    "region": "Region (state, province) of the sender, from IP geolocation.",
    "sample_rate": "The share of events the project samples, when sampling is on; null otherwise.",
    "server_received_time": "When Amplitude's servers received the event (UTC).",
    "server_upload_time": "When Amplitude's servers stored the event (UTC): the export's day is the day "
    "of this time, so late events belong to the day they arrived.",
    "session_id": "The session's start in epoch milliseconds; -1 when the event has no session.",
    "source_id": "The id of the source (an SDK or an import) in Amplitude's data catalog.",
    "start_version": "The app version the person first used.",
    "user_creation_time": "Deprecated by Amplitude; usually null.",
    "user_id": "The platform's own account id the sender set; null for anonymous events.",
    "user_properties": "The person's properties as of the event (JSON text).",
    "uuid": "Amplitude's unique id of the event row: the primary key, one row per uuid.",
    "version_name": "The app version that sent the event.",
}
"""What each exported key means (Amplitude's export documentation; a few keys it leaves undocumented)."""

COLUMNS: tuple[Column, ...] = tuple(
    Column(key, key.removeprefix("$"), _KINDS.get(key, Kind.TEXT)) for key in EXPORT_KEYS
)
SOURCE_FILE = "_source_file"

EVENT_SCHEMA = pa.schema(
    [
        *(exported.field() for exported in COLUMNS),
        column(
            SOURCE_FILE,
            pa.string(),
            "The export member the row came from (`<project>/<project>_<date>_<hour>#<part>.json.gz`), kept "
            "byte-identical under raw/amplitude/date=D/.",
        ),
    ],
    metadata={"source": "Amplitude Export API", "primary_key": "uuid"},
)
"""The schema of `amplitude/events`: the 55 exported keys, typed, then the lineage column."""

TIMESTAMP_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
"""The export's timestamp shapes (UTC, no zone): with and without the fraction of a second."""

PREVIEW_COLUMNS: tuple[str, ...] = ("event_time", "event_type", "platform", "uuid")
"""What a materialization's preview shows: no person-level fields (ids, ip, city, properties), and few
enough columns for whole rows to fit the UI."""
