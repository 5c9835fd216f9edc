"""Tracking fixtures: a real collector on 127.0.0.1 landing in a lake on disk, and a reader of what landed."""

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterator

import pytest

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.retry import Backoff
from event_platform.sandbox.loopback import LoopbackServer, serve
from event_platform.sources.tracking.collector import Collector, CollectorSettings
from event_platform.sources.tracking.landed import landed_files

DAY = dt.date(2026, 11, 1)
FAST_COLLECTOR = CollectorSettings(flush_age_seconds=0.02)
FAST_BACKOFF = Backoff(base_seconds=0.02, max_seconds=0.2)


def fixed_clock(day: dt.date = DAY) -> Callable[[], dt.datetime]:
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    return lambda: noon


@pytest.fixture
def lake(lake_resource: LakeResource) -> Lake:
    return lake_resource.lake()


@pytest.fixture
def collector(lake: Lake) -> Collector:
    return Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock())


@pytest.fixture
def server(collector: Collector) -> Iterator[LoopbackServer]:
    with serve(collector.app, name="collector") as running:
        yield running


def landed_events(lake: Lake, day: dt.date = DAY) -> list[dict[str, object]]:
    """Every line the collector landed for `day`, through its commits."""
    lines = []
    for relative in landed_files(lake, day.isoformat()):
        lines.extend(json.loads(line) for line in gzip.decompress(lake.read_bytes(relative)).splitlines())
    return lines
