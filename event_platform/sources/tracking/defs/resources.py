"""Tracking's settings (see settings.py for the shared ones) and the Dagster resource that builds a Tracker.

| variable | meaning | default |
|---|---|---|
| `TRACKING_COLLECTOR_URL` | where a Tracker sends events | `http://127.0.0.1:8400` |
| `TRACKING_SPOOL_DIR` | a Tracker's durable local spool | `./data/tracking-spool` |
| `TRACKING_EVENT_TYPES_FILE` | JSON file of extra event types (events.parse_event_types) | none |
| `TRACKING_MAX_EVENT_BYTES` | largest accepted event | 65536 |
| `TRACKING_MAX_BATCH_BYTES` | largest accepted batch request | 4194304 |
| `TRACKING_FLUSH_BYTES` | the collector writes a file once its waiting events reach this | 8388608 |
| `TRACKING_FLUSH_AGE_SECONDS` | ...or once the oldest has waited this long (bounds ack latency) | 0.5 |
| `TRACKING_SEEN_UUIDS` | recent uuids the collector remembers for idempotency | 200000 |
| `TRACKING_SHARED_SECRET` | when set, every request needs `Authorization: Bearer <it>` (secret) | none |
| `TRACKING_ALLOWED_ORIGINS` | comma-separated web origins allowed to post cross-site (CORS) | none |
| `TRACKING_HEADER_SECONDS` | a request head must arrive within this | 10 |
| `TRACKING_BODY_SECONDS` | a request body must arrive within this | 10 |
| `TRACKING_KEEP_ALIVE_SECONDS` | idle keep-alive connections close after this | 5 |
| `TRACKING_MAX_CONNECTIONS` | connections and requests in flight; past it, 503 | 1000 |
"""

from __future__ import annotations

from typing import TypeVar

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.sources.tracking.collector import CollectorSettings
from event_platform.sources.tracking.events import DEFAULT_MAX_EVENT_BYTES, EventTypeRegistry, load_registry
from event_platform.sources.tracking.server import ServerLimits
from event_platform.sources.tracking.tracker import Tracker

SOURCE_LABEL = "Tracking"
DEFAULT_COLLECTOR_URL = "http://127.0.0.1:8400"
DEFAULT_SPOOL_DIR = "./data/tracking-spool"


class TrackingResource(ConfigurableResource):
    """Builds the Tracker with which Dagster code (or the CLI) records learning-platform events."""

    collector_url: str | None = Field(default=None, description="TRACKING_COLLECTOR_URL")
    spool_dir: str | None = Field(default=None, description="TRACKING_SPOOL_DIR: the Tracker's durable spool")
    event_types_file: str | None = Field(default=None, description="TRACKING_EVENT_TYPES_FILE: extra types")
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, description="TRACKING_MAX_EVENT_BYTES")
    shared_secret: str | None = Field(default=None, description="TRACKING_SHARED_SECRET (secret)")

    def registry(self) -> EventTypeRegistry:
        return load_registry(self.event_types_file)

    def tracker(self) -> Tracker:
        """A running Tracker; close it (or use it as a context manager) when done."""
        settings.require(
            SOURCE_LABEL, {"TRACKING_COLLECTOR_URL": self.collector_url, "TRACKING_SPOOL_DIR": self.spool_dir}
        )
        assert self.collector_url is not None and self.spool_dir is not None
        return Tracker(
            self.collector_url,
            self.spool_dir,
            registry=self.registry(),
            max_event_bytes=self.max_event_bytes,
            shared_secret=settings.resolved(self.shared_secret),
        )


def tracking_resource() -> TrackingResource:
    return TrackingResource(
        collector_url=settings.setting("TRACKING_COLLECTOR_URL", DEFAULT_COLLECTOR_URL),
        spool_dir=settings.setting("TRACKING_SPOOL_DIR", DEFAULT_SPOOL_DIR),
        event_types_file=settings.setting("TRACKING_EVENT_TYPES_FILE"),
        max_event_bytes=_number("TRACKING_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES, int),
        shared_secret=settings.secret("TRACKING_SHARED_SECRET"),
    )


def collector_settings() -> CollectorSettings:
    """The collector's limits and flush policy from the environment."""
    defaults = CollectorSettings()
    return CollectorSettings(
        max_event_bytes=_number("TRACKING_MAX_EVENT_BYTES", defaults.max_event_bytes, int),
        max_batch_bytes=_number("TRACKING_MAX_BATCH_BYTES", defaults.max_batch_bytes, int),
        flush_bytes=_number("TRACKING_FLUSH_BYTES", defaults.flush_bytes, int),
        flush_age_seconds=_number("TRACKING_FLUSH_AGE_SECONDS", defaults.flush_age_seconds, float),
        seen_uuids=_number("TRACKING_SEEN_UUIDS", defaults.seen_uuids, int),
        body_seconds=_number("TRACKING_BODY_SECONDS", defaults.body_seconds, float),
        shared_secret=settings.setting("TRACKING_SHARED_SECRET"),
        allowed_origins=tuple(
            origin.strip()
            for origin in (settings.setting("TRACKING_ALLOWED_ORIGINS") or "").split(",")
            if origin.strip()
        ),
    )


def server_limits() -> ServerLimits:
    """How the collector's server treats slow clients and floods, from the environment."""
    defaults = ServerLimits()
    return ServerLimits(
        header_seconds=_number("TRACKING_HEADER_SECONDS", defaults.header_seconds, float),
        keep_alive_seconds=_number("TRACKING_KEEP_ALIVE_SECONDS", defaults.keep_alive_seconds, float),
        max_connections=_number("TRACKING_MAX_CONNECTIONS", defaults.max_connections, int),
    )


Number = TypeVar("Number", int, float)


def _number(name: str, default: Number, kind: type[Number]) -> Number:
    value = settings.setting(name)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError as error:
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from error
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number
