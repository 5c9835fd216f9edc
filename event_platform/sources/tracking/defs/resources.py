"""The Dagster resource that builds a Tracker from the environment (`TrackingSettings`)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from event_platform import settings
from event_platform.sources.tracking.events import DEFAULT_MAX_EVENT_BYTES, EventTypeRegistry, load_registry
from event_platform.sources.tracking.settings import TrackingSettings
from event_platform.sources.tracking.tracker import Tracker

SOURCE_LABEL = "Tracking"


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
    tracking = TrackingSettings.read()
    return TrackingResource(
        collector_url=tracking.collector_url,
        spool_dir=tracking.spool_dir,
        event_types_file=tracking.event_types_file,
        max_event_bytes=tracking.max_event_bytes,
        shared_secret=tracking.env_var("shared_secret"),
    )
