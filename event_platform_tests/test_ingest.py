"""One reconciliation rule for every source on the shared ingestion path, recorded the same way."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from event_platform.ingest import IngestSpec, read_day
from event_platform.ingest_metadata import day_metadata
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path
from event_platform.sources.amplitude.transform import SPEC as AMPLITUDE
from event_platform.sources.profile_store.landing import SPEC as PROFILE_STORE
from event_platform.sources.tracking.landed import SPEC as TRACKING
from event_platform_tests.conftest import REPO
from event_platform_tests.sources.amplitude import test_transform as amplitude
from event_platform_tests.sources.profile_store import test_typing_equivalence as profile_store
from event_platform_tests.sources.tracking import test_typing_equivalence as tracking

DAY = "2026-11-01"
RECORD = {"raw_version", "raw_lines", "rows", "duplicates", "quarantined", "lines", "malformed_values"}


def land_tracking(lake: Lake, lines: list[bytes]) -> None:
    tracking.land(lake, lines)


def land_profile_store(lake: Lake, lines: list[bytes]) -> None:
    profile_store.land(lake, [lines])


def land_amplitude(lake: Lake, lines: list[bytes]) -> None:
    amplitude.land(lake, {amplitude.MEMBER_A: b"".join(line + b"\n" for line in lines)})


def amplitude_line(number: int) -> bytes:
    """A line shaped like the real export sample (the `vendor_samples` fixture's), one of three events."""
    sample_path = (
        REPO.parent / "shared" / "fixtures" / "vendor-samples" / "amplitude" / "browser_sdk_event.json"
    )
    return amplitude.event_line(json.loads(sample_path.read_text()), number % 3).rstrip(b"\n")


SOURCES: dict[str, tuple[IngestSpec, Callable[[Lake, list[bytes]], None], Callable[[int], bytes]]] = {
    "tracking": (TRACKING, land_tracking, tracking.line),
    "profile_store": (PROFILE_STORE, land_profile_store, lambda n: profile_store.line(n % 3)),
    "amplitude": (AMPLITUDE, land_amplitude, amplitude_line),
}


@pytest.fixture(params=sorted(SOURCES))
def source(request: pytest.FixtureRequest, vendor_samples: Path) -> str:
    return str(request.param)


def quarantine_record(lake: Lake, spec: IngestSpec) -> dict[str, Any]:
    manifest = lake.read_manifest(quarantine_path(spec.table, DAY))
    assert manifest is not None, "the record is written even for a day with nothing to quarantine"
    return dict(manifest.metadata)


def test_landed_lines_reconcile_and_are_recorded_alike(
    source: str, lake_resource: LakeResource, tmp_path: Path
) -> None:
    spec, land, line = SOURCES[source]
    lake = lake_resource.lake()
    # Five lines, three distinct events (numbers 0..2 repeat for the sources that key on content).
    lines = [line(0), line(1), line(2), line(0), b"{broken"]
    land(lake, lines)

    typed = read_day(spec, lake, DAY, tmp_dir=tmp_path)
    rows = typed.reader.read_all()

    summary = typed.summary
    assert (summary.raw_lines, summary.rows, summary.duplicates, summary.quarantined) == (5, 3, 1, 1)
    assert rows.num_rows == 3 and rows.schema == spec.schema
    record = quarantine_record(lake, spec)
    assert set(record) == RECORD
    assert record["raw_lines"] == record["rows"] + record["duplicates"] + record["quarantined"] == 5
    assert record["lines"] == record["quarantined"] == 1
    shown = day_metadata(summary, spec)
    assert {"landed_files", "landed_lines", "duplicates", "quarantined", "reconciles", "preview"} <= set(
        shown
    )
    assert shown["reconciles"].value is True and shown["landed_lines"].value == 5

    assert list(tmp_path.glob("event-platform-*")) == []


@pytest.mark.parametrize("source", ["amplitude", "profile_store"])
def test_a_clean_landing_empties_the_quarantine_and_records_so(
    source: str, lake_resource: LakeResource, tmp_path: Path, vendor_samples: Path
) -> None:
    """(Tracking's landing only grows: a day is never landed anew.)"""
    spec, land, line = SOURCES[source]
    lake = lake_resource.lake()
    land(lake, [line(0), b"{broken"])
    read_day(spec, lake, DAY, tmp_dir=tmp_path).reader.read_all()
    land(lake, [line(0)])

    read_day(spec, lake, DAY, tmp_dir=tmp_path).reader.read_all()

    record = quarantine_record(lake, spec)
    assert (record["raw_lines"], record["rows"], record["quarantined"]) == (1, 1, 0)
    manifest = lake.read_manifest(quarantine_path(spec.table, DAY))
    assert manifest is not None and manifest.files == []


def test_quarantined_lines_are_named_as_each_source_names_them(
    source: str, lake_resource: LakeResource, tmp_path: Path
) -> None:
    spec, land, line = SOURCES[source]
    lake = lake_resource.lake()
    land(lake, [line(0), b"{broken", b"[1]"])

    read_day(spec, lake, DAY, tmp_dir=tmp_path).reader.read_all()

    manifest = lake.read_manifest(quarantine_path(spec.table, DAY))
    assert manifest is not None
    [entry] = manifest.files
    data = lake.read_bytes(f"{quarantine_path(spec.table, DAY)}/{entry.path}")
    if spec.quarantine_file:  # one gzip file for the day
        assert entry.name == spec.quarantine_file and gzip.decompress(data) == b"{broken\n[1]\n"
    else:  # one file per landed file, as received
        assert entry.name == amplitude.MEMBER_A.removesuffix(".gz") and data == b"{broken\n[1]\n"
    assert entry.extra["lines"] == 2
