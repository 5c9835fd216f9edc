"""The Export API client against `responses`: one test per vendor behaviour of VENDORS.md §1."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from event_platform.retry import NO_WAIT, Backoff, RetriesExhaustedError
from event_platform.sources.amplitude.client import (
    AmplitudeAuthError,
    AmplitudeError,
    ArchiveError,
    ExportClient,
    ExportStats,
    ExportTooLargeError,
    ExportWindow,
    GzipLineCounter,
    iter_members,
)

API_KEY = "project-api-key"
SECRET = "s3cr3t-amplitude-secret-value"
US_URL = "https://amplitude.com/api/2/export"
EU_URL = "https://analytics.eu.amplitude.com/api/2/export"
DAY = dt.date(2026, 11, 1)
START = dt.datetime(2026, 11, 1, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 1, 23, tzinfo=dt.UTC)
MEMBER = "374182/374182_2026-11-01_0#0.json.gz"
LINES = b'{"uuid":"a","event_type":"x"}\n{"uuid":"b","event_type":"y"}\n'


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


EXPORT = zip_bytes({MEMBER: gzip.compress(LINES)})


def make_client(**options: object) -> ExportClient:
    waits: list[float] = []
    defaults: dict[str, object] = {"backoff": NO_WAIT, "sleep": waits.append}
    client = ExportClient(API_KEY, SECRET, **(defaults | options))  # type: ignore[arg-type]
    client.waits = waits  # type: ignore[attr-defined]
    return client


def requested_windows(calls: responses.CallList) -> list[tuple[str, str]]:
    windows = []
    for call in calls:
        query = parse_qs(urlsplit(call.request.url).query)
        windows.append((query["start"][0], query["end"][0]))
    return windows


def window_hours(request: requests.PreparedRequest) -> int:
    query = parse_qs(urlsplit(request.url).query)
    start, end = (dt.datetime.strptime(query[key][0], "%Y%m%dT%H") for key in ("start", "end"))
    return int((end - start) / dt.timedelta(hours=1)) + 1


def export_all(client: ExportClient, directory: Path, start: dt.datetime = START, end: dt.datetime = END):
    stats = ExportStats()
    archives = list(client.export(start, end, directory, stats=stats))
    return archives, stats


@responses.activate
def test_a_day_is_one_request_t00_to_t23_inclusive_with_basic_auth(tmp_path: Path) -> None:
    responses.get(US_URL, body=EXPORT, content_type="application/zip")
    archives, stats = export_all(make_client(), tmp_path)

    assert requested_windows(responses.calls) == [("20261101T00", "20261101T23")]
    expected = "Basic " + base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
    assert responses.calls[0].request.headers["Authorization"] == expected
    assert [a.path.read_bytes() for a in archives] == [EXPORT]
    assert archives[0].path.parent == tmp_path and archives[0].size == len(EXPORT)
    assert (stats.requests, stats.archives, stats.bytes_downloaded) == (1, 1, len(EXPORT))
    assert ExportWindow.for_day(DAY).params == {"start": "20261101T00", "end": "20261101T23"}


@responses.activate
def test_eu_region_uses_the_eu_host(tmp_path: Path) -> None:
    responses.get(EU_URL, body=EXPORT)
    export_all(make_client(region="eu"), tmp_path)
    assert responses.calls[0].request.url.startswith(EU_URL)


@responses.activate
def test_an_explicit_base_url_replaces_the_region_and_gets_the_path_appended(tmp_path: Path) -> None:
    responses.get("http://127.0.0.1:9999/api/2/export", body=EXPORT)
    export_all(make_client(region="eu", base_url="http://127.0.0.1:9999/"), tmp_path)
    assert urlsplit(responses.calls[0].request.url).netloc == "127.0.0.1:9999"


def test_unknown_region_and_bad_base_url_are_refused() -> None:
    with pytest.raises(ValueError, match="region"):
        ExportClient(API_KEY, SECRET, region="apac")
    with pytest.raises(ValueError, match="scheme and host"):
        ExportClient(API_KEY, SECRET, base_url="amplitude.com")


@responses.activate
def test_400_halves_the_window_recursively(tmp_path: Path) -> None:
    def too_large_above_six_hours(request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        if window_hours(request) > 6:
            return 400, {}, b"Raw data export is too large"
        return 200, {}, EXPORT

    responses.add_callback(responses.GET, US_URL, callback=too_large_above_six_hours)
    archives, stats = export_all(make_client(), tmp_path)

    assert requested_windows(responses.calls) == [
        ("20261101T00", "20261101T23"),
        ("20261101T00", "20261101T11"),
        ("20261101T00", "20261101T05"),
        ("20261101T06", "20261101T11"),
        ("20261101T12", "20261101T23"),
        ("20261101T12", "20261101T17"),
        ("20261101T18", "20261101T23"),
    ]
    assert [str(a.window) for a in archives] == [
        "20261101T00..20261101T05", "20261101T06..20261101T11",
        "20261101T12..20261101T17", "20261101T18..20261101T23",
    ]  # fmt: skip
    assert stats.windows_split == 3


@responses.activate
def test_400_splits_down_to_single_hours(tmp_path: Path) -> None:
    def one_hour_only(request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        return (200, {}, EXPORT) if window_hours(request) == 1 else (400, {}, b"too large")

    responses.add_callback(responses.GET, US_URL, callback=one_hour_only)
    archives, stats = export_all(make_client(), tmp_path, START, START + dt.timedelta(hours=2))
    assert [a.window.hours for a in archives] == [1, 1, 1]
    assert str(archives[0].window) == "20261101T00..20261101T00"
    assert stats.windows_split == 2


@responses.activate
def test_one_hour_still_too_large_is_fatal_naming_the_hour_and_the_limit(tmp_path: Path) -> None:
    responses.get(US_URL, status=400, body="Raw data export is too large")
    with pytest.raises(ExportTooLargeError, match=r"20261101T00.*4 GB"):
        export_all(make_client(), tmp_path)
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_504_splits_like_400(tmp_path: Path) -> None:
    def timeout_above_twelve_hours(request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        return (504, {}, b"Gateway Timeout") if window_hours(request) > 12 else (200, {}, EXPORT)

    responses.add_callback(responses.GET, US_URL, callback=timeout_above_twelve_hours)
    archives, stats = export_all(make_client(), tmp_path)
    assert len(archives) == 2 and stats.windows_split == 1


@responses.activate
def test_404_raw_data_files_not_found_is_an_empty_result(tmp_path: Path) -> None:
    responses.get(US_URL, status=404, body="Raw data files were not found.")
    archives, stats = export_all(make_client(), tmp_path)
    assert archives == [] and stats.empty_windows == 1
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_a_404_from_something_else_is_an_error_pointing_at_the_base_url(tmp_path: Path) -> None:
    responses.get(US_URL, status=404, body="<html>Not Found</html>")
    with pytest.raises(AmplitudeError, match="AMPLITUDE_BASE_URL"):
        export_all(make_client(), tmp_path)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    ("region", "url", "host"), [("us", US_URL, "amplitude.com"), ("eu", EU_URL, "analytics.eu.amplitude.com")]
)
@responses.activate
def test_401_403_say_check_the_key_and_the_region_without_the_secret(
    tmp_path: Path, status: int, region: str, url: str, host: str
) -> None:
    responses.get(url, status=status, body="Invalid API key")
    client = make_client(region=region)
    with pytest.raises(AmplitudeAuthError) as raised:
        export_all(client, tmp_path)
    message = str(raised.value)
    assert f"at {host}:" in message
    assert "API key" in message and "secret key" in message and "AMPLITUDE_REGION=eu" in message
    assert SECRET not in message and SECRET not in repr(client)
    assert len(responses.calls) == 1, "an auth failure is not retried"


@responses.activate
def test_429_is_retried_after_the_servers_retry_after(tmp_path: Path) -> None:
    responses.get(US_URL, status=429, headers={"Retry-After": "7"})
    responses.get(US_URL, status=429, headers={"Retry-After": "2"})
    responses.get(US_URL, body=EXPORT)
    client = make_client()
    archives, stats = export_all(client, tmp_path)
    assert client.waits == [7.0, 2.0]  # type: ignore[attr-defined]
    assert len(archives) == 1 and stats.requests == 3


@responses.activate
def test_5xx_is_retried_with_backoff_then_succeeds_without_duplicates(tmp_path: Path) -> None:
    responses.get(US_URL, status=500)
    responses.get(US_URL, status=503)
    responses.get(US_URL, body=EXPORT)
    client = make_client(backoff=Backoff(attempts=4, base_seconds=1.0, max_seconds=8.0))
    archives, stats = export_all(client, tmp_path)
    assert stats.requests == 3
    waits = client.waits  # type: ignore[attr-defined]
    assert len(waits) == 2 and 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0
    assert [a.path.read_bytes() for a in archives] == [EXPORT]
    assert list(tmp_path.iterdir()) == [archives[0].path]


@responses.activate
def test_exhausted_retries_raise_and_leave_no_temporary_file(tmp_path: Path) -> None:
    responses.get(US_URL, status=502, body="Bad Gateway")
    with pytest.raises(RetriesExhaustedError, match="6 attempts"):
        export_all(make_client(), tmp_path)
    assert len(responses.calls) == 6
    assert list(tmp_path.iterdir()) == []


@responses.activate
def test_connection_errors_are_retried(tmp_path: Path) -> None:
    responses.get(US_URL, body=requests.ConnectionError("connection reset"))
    responses.get(US_URL, body=EXPORT)
    archives, _ = export_all(make_client(), tmp_path)
    assert [a.path.read_bytes() for a in archives] == [EXPORT]


@responses.activate
def test_a_200_that_is_not_a_zip_is_retried(tmp_path: Path) -> None:
    responses.get(US_URL, body="<html><body>Proxy error</body></html>", content_type="text/html")
    responses.get(US_URL, body=EXPORT)
    archives, stats = export_all(make_client(), tmp_path)
    assert [a.path.read_bytes() for a in archives] == [EXPORT] and stats.requests == 2


@responses.activate
def test_a_truncated_zip_is_retried_and_replaced(tmp_path: Path) -> None:
    responses.get(US_URL, body=EXPORT[: len(EXPORT) // 2])
    responses.get(US_URL, body=EXPORT)
    archives, stats = export_all(make_client(), tmp_path)
    assert [a.path.read_bytes() for a in archives] == [EXPORT] and stats.requests == 2
    assert list(tmp_path.iterdir()) == [archives[0].path]


@responses.activate
def test_a_body_past_max_download_bytes_splits_the_window(tmp_path: Path) -> None:
    def big_above_one_hour(request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        return 200, {}, EXPORT + b"\0" * (4096 if window_hours(request) > 1 else 0)

    responses.add_callback(responses.GET, US_URL, callback=big_above_one_hour)
    archives, stats = export_all(make_client(max_download_bytes=len(EXPORT) + 100), tmp_path,
                                 START, START + dt.timedelta(hours=1))  # fmt: skip
    assert [a.window.hours for a in archives] == [1, 1] and stats.windows_split == 1


@responses.activate
def test_ranges_over_365_days_are_cut_into_several_requests(tmp_path: Path) -> None:
    responses.get(US_URL, status=404, body="Raw data files were not found.")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    export_all(make_client(), tmp_path, start, dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC))
    assert requested_windows(responses.calls) == [
        ("20250101T00", "20251231T23"),
        ("20260101T00", "20260301T23"),
    ]


def test_window_bounds_must_be_utc_hours() -> None:
    with pytest.raises(ValueError, match="UTC"):
        ExportWindow(dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 1, 5))
    with pytest.raises(ValueError, match="on the hour"):
        ExportWindow(START.replace(minute=30), END)
    with pytest.raises(ValueError, match="before it starts"):
        ExportWindow(END, START)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(zip_bytes(members))
    return path


def test_members_are_parsed_and_directory_entries_skipped(tmp_path: Path) -> None:
    second = "374182/374182_2026-11-01_23#1.json.gz"
    archive = tmp_path / "export.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as writer:
        writer.writestr("374182/", b"")
        writer.writestr(MEMBER, gzip.compress(LINES))
        writer.writestr(second, gzip.compress(LINES * 3))
    archive.write_bytes(buffer.getvalue())

    members = [(m.name, m.project_id, m.day, m.hour, m.part, m.scan().lines) for m in iter_members(archive)]
    assert members == [(MEMBER, "374182", DAY, 0, 0, 2), (second, "374182", DAY, 23, 1, 6)]


@pytest.mark.parametrize(
    "name",
    [
        "../374182_2026-11-01_0#0.json.gz",
        "374182/../../etc/374182_2026-11-01_0#0.json.gz",
        "/374182/374182_2026-11-01_0#0.json.gz",
        "C:/374182/374182_2026-11-01_0#0.json.gz",
        "374182\\..\\374182_2026-11-01_0#0.json.gz",
        "374182/374182_2026-11-01_00#0.json.gz",
        "374182/374182_2026-11-01_24#0.json.gz",
        "374182/999_2026-11-01_0#0.json.gz",
        "374182/374182_2026-11-01_0#0.json",
        "notes.txt",
    ],
)
def test_unsafe_or_unexpected_member_names_are_refused_before_anything_is_read(
    tmp_path: Path, name: str
) -> None:
    archive = write_zip(tmp_path / "export.zip", {MEMBER: gzip.compress(LINES), name: gzip.compress(LINES)})
    with pytest.raises(ArchiveError, match=re.escape(repr(name))):
        next(iter_members(archive))


def test_a_zip_bomb_is_stopped_at_the_decompression_bound(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\n" * 50_000_000)
    archive = write_zip(tmp_path / "bomb.zip", {MEMBER: bomb})
    assert archive.stat().st_size < 200_000
    with pytest.raises(ArchiveError, match="zip bomb"):
        for member in iter_members(archive, max_uncompressed_bytes=5_000_000):
            member.scan()


def test_members_declaring_more_than_the_bound_are_refused_up_front(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "big.zip", {MEMBER: b"\0" * 100_000})
    with pytest.raises(ArchiveError, match="declares 100000 bytes"):
        next(iter_members(archive, max_uncompressed_bytes=50_000))


def test_a_corrupt_member_is_a_clear_error(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "export.zip", {MEMBER: gzip.compress(LINES)[:-12]})
    with pytest.raises(ArchiveError, match=f"Member {re.escape(MEMBER)} is corrupt"):
        for member in iter_members(archive):
            member.scan()


def test_member_bytes_stream_out_unchanged(tmp_path: Path) -> None:
    payload = gzip.compress(LINES * 10)
    archive = write_zip(tmp_path / "export.zip", {MEMBER: payload})
    for member in iter_members(archive):
        assert b"".join(member.chunks()) == payload and member.size == len(payload)
        assert member.scan().sha256 == hashlib.sha256(payload).hexdigest()


def test_line_counter_reads_concatenated_gzip_and_a_last_line_without_newline() -> None:
    data = gzip.compress(b"a\nb\n") + gzip.compress(b"c\nd") + b"\0\0\0"
    counter = GzipLineCounter()
    for start in range(0, len(data), 7):
        counter.feed(data[start : start + 7])
    counter.finish()
    assert (counter.lines, counter.uncompressed_bytes) == (4, 7)


def test_the_vendors_real_lines_are_accepted_as_they_are(tmp_path: Path, vendor_samples: Path) -> None:
    samples = sorted((vendor_samples / "amplitude").glob("*.json"))
    raw = b"".join(path.read_bytes() for path in samples)
    archive = write_zip(
        tmp_path / "export.zip", {"100011471/100011471_2025-07-17_10#0.json.gz": gzip.compress(raw)}
    )

    scanned = [(member.hour, member.part, member.scan()) for member in iter_members(archive)]
    assert [(hour, part, stats.lines, stats.uncompressed_bytes) for hour, part, stats in scanned] == [
        (10, 0, len(samples), len(raw))
    ]
    for line in raw.splitlines():
        event = json.loads(line)
        assert len(event) == 55 and list(event) == sorted(event)


@responses.activate
def test_retries_log_no_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    responses.get(US_URL, status=500, body="Internal error")
    responses.get(US_URL, body=b"<html>not a zip</html>")
    responses.get(US_URL, body=EXPORT)
    with caplog.at_level("DEBUG"):
        export_all(make_client(), tmp_path)
    assert "failed (attempt 2 of 6)" in caplog.text
    assert SECRET not in caplog.text
