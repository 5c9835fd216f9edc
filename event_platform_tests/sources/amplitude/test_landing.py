"""Landing a day: byte-identical members in an atomic raw partition, with counts in the manifest."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import requests
import responses

from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.pseudonymise import Pseudonymiser
from event_platform.retry import NO_WAIT
from event_platform.sources.amplitude.client import ArchiveError, ExportClient
from event_platform.sources.amplitude.landing import DayNotReadyError, land_export

US_URL = "https://amplitude.com/api/2/export"
PSEUDONYMISER = Pseudonymiser("test-pseudonym-key")
DAY = dt.date(2026, 11, 1)
PARTITION = "raw/amplitude/date=2026-11-01"


def gzip_lines(count: int, tag: str) -> bytes:
    return gzip.compress(b"".join(b'{"uuid":"%s-%d"}\n' % (tag.encode(), n) for n in range(count)))


MEMBERS = {
    "374182/374182_2026-11-01_0#0.json.gz": gzip_lines(3, "a"),
    "374182/374182_2026-11-01_0#1.json.gz": gzip_lines(2, "b"),
    "374182/374182_2026-11-01_13#0.json.gz": gzip_lines(5, "c"),
}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("374182/", b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def lake(lake_resource: LakeResource) -> Lake:
    return lake_resource.lake()


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


@pytest.fixture
def client() -> ExportClient:
    return ExportClient("key", "secret", backoff=NO_WAIT, sleep=lambda seconds: None)


@responses.activate
def test_members_land_line_for_line_with_counts(client: ExportClient, lake: Lake, downloads: Path) -> None:
    responses.get(US_URL, status=503)
    responses.get(US_URL, body=zip_bytes(MEMBERS))
    result = land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)

    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    by_name = {entry.name: entry for entry in manifest.files}
    assert sorted(by_name) == sorted(MEMBERS)
    for name, data in MEMBERS.items():
        entry = by_name[name]
        landed = lake.read_bytes(f"{PARTITION}/{entry.path}")
        assert gzip.decompress(landed) == gzip.decompress(data)  # nothing personal here to replace
        assert entry.sha256 == hashlib.sha256(landed).hexdigest() and entry.bytes == len(landed)
        assert entry.extra == {
            "member": name,
            "lines": len(gzip.decompress(data).splitlines()),
            "uncompressed_bytes": len(gzip.decompress(data)),
            "vendor_bytes": len(data),
            "vendor_sha256": hashlib.sha256(data).hexdigest(),
            "pseudonymised": {},
        }
    assert manifest.metadata["zip_members"] == 3
    assert manifest.metadata["requests"] == 2
    assert manifest.metadata["windows_split"] == 0
    assert manifest.metadata["window"] == {"start": "20261101T00", "end": "20261101T23"}
    assert (result.files, result.lines, result.requests, result.zip_members) == (3, 10, 2, 3)
    assert result.bytes == sum(entry.bytes for entry in manifest.files)
    assert result.uri == lake.uri(PARTITION)
    assert list(downloads.iterdir()) == [], "each ZIP is deleted once landed"


@responses.activate
def test_split_windows_land_together_in_one_partition(
    client: ExportClient, lake: Lake, downloads: Path
) -> None:
    first_half = {name: data for name, data in MEMBERS.items() if "_0#" in name}
    second_half = {name: data for name, data in MEMBERS.items() if "_13#" in name}

    def by_window(request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        if "end=20261101T23" in request.url and "start=20261101T00" in request.url:
            return 400, {}, b"too large"
        return 200, {}, zip_bytes(first_half if "start=20261101T00" in request.url else second_half)

    responses.add_callback(responses.GET, US_URL, callback=by_window)
    result = land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    assert (result.windows_split, result.archives, result.files, result.lines) == (1, 2, 3, 10)
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None and manifest.metadata["windows_split"] == 1


@responses.activate
def test_a_day_without_data_commits_an_empty_partition(
    client: ExportClient, lake: Lake, downloads: Path
) -> None:
    responses.get(US_URL, status=404, body="Raw data files were not found.")
    result = land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None and manifest.files == []
    assert manifest.metadata["zip_members"] == 0
    assert (result.files, result.lines, result.bytes) == (0, 0, 0)


@responses.activate
def test_relanding_replaces_the_day_and_a_failed_landing_keeps_the_previous_one(
    client: ExportClient, lake: Lake, downloads: Path
) -> None:
    responses.get(US_URL, body=zip_bytes(MEMBERS))
    land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    first = lake.read_manifest(PARTITION)

    responses.replace(
        responses.GET, US_URL, body=zip_bytes({**MEMBERS, "374182/374182_2026-11-01_1#0.json.gz": b"bad"})
    )
    with pytest.raises(ArchiveError, match="corrupt"):
        land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    assert lake.read_manifest(PARTITION) == first
    assert sorted(lake.list_files(PARTITION)) == sorted(
        [f"{PARTITION}/_manifest.json", *lake.current_files(PARTITION)]
    ), "the failed attempt's files are gone"

    responses.replace(
        responses.GET, US_URL, body=zip_bytes({"374182/374182_2026-11-01_2#0.json.gz": gzip_lines(1, "z")})
    )
    result = land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    assert result.files == 1 and len(lake.current_files(PARTITION)) == 1
    assert list(downloads.iterdir()) == []


@responses.activate
def test_landing_on_s3_keeps_the_vendors_member_names(
    client: ExportClient, s3_lake_resource: LakeResource, downloads: Path
) -> None:
    responses.get(US_URL, body=zip_bytes(MEMBERS))
    lake = s3_lake_resource.lake()
    land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    stored = {entry.name: lake.read_bytes(f"{PARTITION}/{entry.path}") for entry in manifest.files}
    assert {name: gzip.decompress(data) for name, data in stored.items()} == {
        name: gzip.decompress(data) for name, data in MEMBERS.items()
    }


def test_a_day_is_landed_only_once_its_last_hour_is_exportable(
    client: ExportClient, lake: Lake, downloads: Path
) -> None:
    too_early = dt.datetime(2026, 11, 2, 2, 59, tzinfo=dt.UTC)
    with pytest.raises(DayNotReadyError, match="complete only from 2026-11-02 03:00 UTC"):
        land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads, now=too_early)
    assert lake.read_manifest(PARTITION) is None


@responses.activate
def test_the_stored_lines_are_the_vendors_but_for_personal_data(
    client: ExportClient, lake: Lake, downloads: Path
) -> None:
    vendor = (
        b'{"city":"Lyon","ip_address":"203.0.113.7","location_lat":45.76,"location_lng":4.83,'
        b'"user_properties":{"contact":"ada@example.org"},"uuid":"u-1"}\n'
        b'{"city":null,"ip_address":null,"location_lat":null,"location_lng":null,"uuid":"u-2"}\n'
    )
    member = "374182/374182_2026-11-01_5#0.json.gz"
    # Compressed once: gzip's header holds the time, so a second compression can differ by a second.
    exported = gzip.compress(vendor)
    responses.get(US_URL, body=zip_bytes({member: exported}))
    land_export(client, DAY, lake, pseudonymiser=PSEUDONYMISER, tmp_dir=downloads)
    manifest = lake.read_manifest(PARTITION)
    assert manifest is not None
    [entry] = manifest.files
    # A random-access read applies no codec: these are the bytes as stored.
    with lake.open_input_file(f"{PARTITION}/{entry.path}") as stored:
        lines = gzip.decompress(stored.read()).splitlines()
    address, email = PSEUDONYMISER.ip_address("203.0.113.7"), PSEUDONYMISER.email("ada@example.org")
    assert lines == [
        b'{"city":"Lyon","ip_address":"%s","location_lat":null,"location_lng":null,'
        b'"user_properties":{"contact":"%s"},"uuid":"u-1"}' % (address.encode(), email.encode()),
        vendor.splitlines()[1],
    ]
    assert entry.extra["vendor_sha256"] == hashlib.sha256(exported).hexdigest()
    assert entry.extra["pseudonymised"] == {
        "email in text": 1, "ip_address": 1, "location_lat": 1, "location_lng": 1,
    }  # fmt: skip
