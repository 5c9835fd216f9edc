"""Hostile exports (issue 17): bombs bounded by ratio and day, other days' members, empty ZIPs, floods."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import responses

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.retry import NO_WAIT
from event_platform.sources.amplitude.client import ArchiveError, ExportClient
from event_platform.sources.amplitude.landing import land_export
from event_platform_tests.sources.amplitude.test_landing import (
    DAY,
    MEMBERS,
    PARTITION,
    PSEUDONYMISER,
    US_URL,
    gzip_lines,
    zip_bytes,
)
from event_platform_tests.sources.amplitude.test_transform import (
    event_line,
    land,
    quarantined_bytes,
    read_all,
)

MEMBER = "374182/374182_2026-11-01_3#0.json.gz"


@pytest.fixture
def lake(lake_resource: LakeResource) -> Lake:
    return lake_resource.lake()


@pytest.fixture
def sample(vendor_samples: Path) -> dict[str, Any]:
    return json.loads((vendor_samples / "amplitude" / "browser_sdk_event.json").read_text())


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def client(**bounds: Any) -> ExportClient:
    return ExportClient("key", "secret", backoff=NO_WAIT, sleep=lambda seconds: None, **bounds)


@responses.activate
def test_a_bomb_past_the_ratio_fails_before_the_good_day_is_replaced(lake: Lake, downloads: Path) -> None:
    responses.get(US_URL, body=zip_bytes(MEMBERS))
    land_export(client(), DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    good = lake.read_manifest(PARTITION)

    bomb = gzip.compress(b"\n" * 20_000_000)  # 20 MB from about 20 KB: a thousand times
    responses.get(US_URL, body=zip_bytes({MEMBER: bomb}))
    with pytest.raises(ArchiveError, match="AMPLITUDE_MAX_COMPRESSION_RATIO=200"):
        land_export(client(), DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)

    assert lake.read_manifest(PARTITION) == good
    assert list(downloads.iterdir()) == []  # the downloaded ZIP went too


@responses.activate
def test_the_day_is_bounded_across_its_archives(lake: Lake, downloads: Path) -> None:
    responses.get(US_URL, status=504)  # too much: the window is halved into two archives
    responses.get(US_URL, body=zip_bytes({"374182/374182_2026-11-01_0#0.json.gz": gzip_lines(2000, "a")}))
    responses.get(US_URL, body=zip_bytes({"374182/374182_2026-11-01_13#0.json.gz": gzip_lines(2000, "b")}))
    with pytest.raises(ArchiveError, match="AMPLITUDE_MAX_UNCOMPRESSED_BYTES=50000"):
        land_export(
            client(max_uncompressed_bytes=50_000), DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads
        )
    assert lake.read_manifest(PARTITION) is None


@responses.activate
def test_a_member_of_another_day_is_refused_by_name(lake: Lake, downloads: Path) -> None:
    other_day = "374182/374182_2026-11-02_0#0.json.gz"
    responses.get(US_URL, body=zip_bytes({**MEMBERS, other_day: gzip_lines(1, "x")}))
    with pytest.raises(ArchiveError, match=f"{other_day!r} holds 2026-11-02, not the requested 2026-11-01"):
        land_export(client(), DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    assert lake.read_manifest(PARTITION) is None


@responses.activate
def test_an_empty_zip_is_an_empty_day_not_an_outage(lake: Lake, downloads: Path) -> None:
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()  # only the end-of-central-directory record
    responses.get(US_URL, body=empty.getvalue())
    result = land_export(client(), DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    assert (result.files, result.lines, result.requests) == (0, 0, 1)
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None and manifest.files == []


def test_a_newline_flood_is_quarantined_a_run_at_a_time(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    flood = b"\n" * 3_000_000 + b" \t\r\n" * 1000
    good = [event_line(sample, n) for n in range(3)]
    member = good[0] + flood + good[1] + b"\n\n" + good[2]
    land(lake, {MEMBER: member})

    events, table = read_all(lake, tmp_path)

    assert table.num_rows == 3
    assert events.summary.quarantined == 3_000_000 + 1000 + 2
    assert events.summary.reconciles
    assert quarantined_bytes(lake) == {MEMBER.removesuffix(".gz"): flood + b"\n\n"}


def test_a_member_ending_in_blank_lines_without_a_newline_reconciles(
    lake: Lake, sample: dict[str, Any], tmp_path: Path
) -> None:
    land(lake, {MEMBER: event_line(sample, 1) + b"\n\n  "})
    events, table = read_all(lake, tmp_path)
    assert table.num_rows == 1 and events.summary.quarantined == 3 and events.summary.reconciles
