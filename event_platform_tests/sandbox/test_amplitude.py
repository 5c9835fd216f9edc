"""The Amplitude emulator: the real export's shape, determinism, window filtering and every fault."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_platform.retry import NO_WAIT
from event_platform.sandbox.amplitude import AmplitudeEmulator, Faults, GenerationSettings, write_day_files
from event_platform.sandbox.world import World
from event_platform.sources.amplitude.client import (
    AmplitudeAuthError,
    ExportClient,
    ExportStats,
    ExportTooLargeError,
    iter_members,
)

DAY = dt.date(2026, 11, 1)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 1, 23, tzinfo=dt.UTC)
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?")
TIME_FIELDS = ("client_event_time", "client_upload_time", "event_time", "processed_time",
               "server_received_time", "server_upload_time")  # fmt: skip
ALWAYS_NULL = ("amplitude_event_type", "device_brand", "device_manufacturer", "device_model",
               "is_attribution_event", "user_creation_time")  # fmt: skip


@pytest.fixture(scope="module")
def emulator(world: World) -> Iterator[AmplitudeEmulator]:
    with AmplitudeEmulator(world, events_per_day=3_000, events_per_part=100) as running:
        yield running


@pytest.fixture
def clean_emulator(emulator: AmplitudeEmulator) -> AmplitudeEmulator:
    """The shared emulator with no faults and no recorded requests."""
    emulator.faults = Faults()
    emulator.requests.clear()
    return emulator


def client_for(
    emulator: AmplitudeEmulator, waits: list[float] | None = None, **options: object
) -> ExportClient:
    env = emulator.environment()
    sleep = waits.append if waits is not None else (lambda seconds: None)
    key, secret, url = env["AMPLITUDE_API_KEY"], env["AMPLITUDE_SECRET_KEY"], env["AMPLITUDE_BASE_URL"]
    return ExportClient(key, secret, base_url=url, backoff=NO_WAIT, sleep=sleep, **options)  # type: ignore[arg-type]


def download(client: ExportClient, directory: Path, start: dt.datetime = START, end: dt.datetime = END):
    stats = ExportStats()
    members: dict[str, bytes] = {}
    for archive in client.export(start, end, directory, stats=stats):
        for member in iter_members(archive.path):
            members[member.name] = b"".join(member.chunks())
        archive.path.unlink()
    return members, stats


def lines_of(members: dict[str, bytes]) -> list[bytes]:
    return [line for data in members.values() for line in gzip.decompress(data).splitlines()]


def test_a_day_looks_like_the_real_export(
    clean_emulator: AmplitudeEmulator, world: World, tmp_path: Path, vendor_samples: Path
) -> None:
    members, _ = download(client_for(clean_emulator), tmp_path)
    project = world.amplitude_project_id
    assert all(
        re.fullmatch(rf"{project}/{project}_2026-11-01_(1?\d|2[0-3])#\d+\.json\.gz", n) for n in members
    )
    assert any(name.endswith("#1.json.gz") for name in members), "busy hours come in several parts"

    real_keys = sorted(json.loads(next((vendor_samples / "amplitude").glob("*.json")).read_text()))
    events = [json.loads(line) for line in lines_of(members)]
    summary = clean_emulator.day_summary(DAY)
    assert len(events) == summary.lines > 3_000
    for event in events:
        assert list(event) == real_keys
        assert all(event[key] is None for key in ALWAYS_NULL)
        assert all(TIME.fullmatch(event[key]) and parses(event[key]) for key in TIME_FIELDS)
        assert event["server_upload_time"].startswith("2026-11-01 ")
        assert event["app"] == project
    assert any(len(e["event_time"]) == 19 for e in events), "some times come without a fraction"
    assert any(e["session_id"] == -1 for e in events) and any(e["session_id"] > 0 for e in events)
    assert any(e["user_id"] is None for e in events)
    assert any(e["event_time"] < "2026-11-01" for e in events), "late events with an earlier event_time"
    assert max(Counter(e["event_id"] for e in events).values()) > 1, "event_id is not unique"
    uuids = Counter(e["uuid"] for e in events)
    assert len(uuids) == summary.unique_uuids and sum(uuids.values()) - len(uuids) == summary.duplicates > 0
    purchases = [e for e in events if e["event_type"] == "purchase"]
    assert purchases and all(e["event_properties"]["$revenue"] > 0 and e["user_id"] for e in purchases)
    assert any(e["event_type"] == "enroll" for e in events)
    people = {p.user_id: p for p in world.people}
    for event in events:
        if event["user_id"] is not None:
            person = people[event["user_id"]]
            assert (event["device_id"], event["amplitude_id"], event["ip_address"], event["platform"]) == (
                person.device_id, person.amplitude_id, person.ip_address, person.platform,
            )  # fmt: skip
    sizes = [len(line) for line in lines_of(members)]
    assert 1_500 <= sum(sizes) / len(sizes) <= 2_300, "about as long as real lines"


def test_the_same_day_is_byte_identical_across_emulators(world: World, tmp_path: Path) -> None:
    digests = []
    for attempt in range(2):
        with AmplitudeEmulator(world, events_per_day=500) as emulator:
            members, _ = download(client_for(emulator), tmp_path / str(attempt))
            digests.append({name: hashlib.sha256(data).hexdigest() for name, data in members.items()})
    assert digests[0] == digests[1] and digests[0]


def test_windows_filter_on_server_upload_time(clean_emulator: AmplitudeEmulator, tmp_path: Path) -> None:
    start, end = START + dt.timedelta(hours=5), START + dt.timedelta(hours=6)
    members, _ = download(client_for(clean_emulator), tmp_path, start, end)
    assert {name.split("_")[-1].split("#")[0] for name in members} == {"5", "6"}
    hours = {json.loads(line)["server_upload_time"][:13] for line in lines_of(members)}
    assert hours == {"2026-11-01 05", "2026-11-01 06"}
    assert [(r.start, r.end, r.status) for r in clean_emulator.requests] == [
        ("20261101T05", "20261101T06", 200)
    ]


def test_a_wrong_secret_gets_401(clean_emulator: AmplitudeEmulator, tmp_path: Path) -> None:
    env = clean_emulator.environment()
    client = ExportClient(
        env["AMPLITUDE_API_KEY"], "wrong", base_url=env["AMPLITUDE_BASE_URL"], backoff=NO_WAIT
    )
    with pytest.raises(AmplitudeAuthError):
        download(client, tmp_path)
    assert clean_emulator.requests[-1].status == 401


def test_too_large_windows_get_400_and_are_split(clean_emulator: AmplitudeEmulator, tmp_path: Path) -> None:
    whole_day, _ = download(client_for(clean_emulator), tmp_path)
    clean_emulator.faults.too_large_bytes = sum(len(data) for data in whole_day.values()) // 3
    members, stats = download(client_for(clean_emulator), tmp_path)
    assert members == whole_day, "split windows hold exactly the day, nothing twice"
    assert stats.windows_split >= 2
    assert 400 in {r.status for r in clean_emulator.requests}


def test_an_hour_over_the_limit_is_fatal(clean_emulator: AmplitudeEmulator, tmp_path: Path) -> None:
    clean_emulator.faults.too_large_bytes = 1
    with pytest.raises(ExportTooLargeError, match="20261101T00"):
        download(client_for(clean_emulator), tmp_path)


def test_timeouts_get_504_and_are_split(clean_emulator: AmplitudeEmulator, tmp_path: Path) -> None:
    clean_emulator.faults.timeout_bytes = clean_emulator.day_summary(DAY).gzip_bytes // 2
    _, stats = download(client_for(clean_emulator), tmp_path)
    assert stats.windows_split >= 1 and 504 in {r.status for r in clean_emulator.requests}


def test_a_missing_day_is_404_raw_data_files_were_not_found(
    clean_emulator: AmplitudeEmulator, tmp_path: Path
) -> None:
    clean_emulator.faults.missing_days.add(DAY)
    members, stats = download(client_for(clean_emulator), tmp_path)
    assert members == {} and stats.empty_windows == 1
    assert clean_emulator.requests[-1].status == 404


def test_transient_faults_are_survived_without_duplicates(
    clean_emulator: AmplitudeEmulator, tmp_path: Path
) -> None:
    expected, _ = download(client_for(clean_emulator), tmp_path)
    clean_emulator.requests.clear()
    faults = clean_emulator.faults
    faults.throttle, faults.retry_after, faults.server_errors, faults.html_pages, faults.truncated = (
        2,
        3,
        1,
        1,
        1,
    )
    waits: list[float] = []
    members, stats = download(client_for(clean_emulator, waits), tmp_path)
    assert members == expected
    assert [r.status for r in clean_emulator.requests] == [429, 429, 500, 200, 200, 200]
    assert waits[:2] == [3.0, 3.0] and stats.requests == 6
    assert list(tmp_path.iterdir()) == []


def parses(text: str) -> bool:
    for layout in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            dt.datetime.strptime(text, layout)
        except ValueError:
            continue
        return True
    return False


def test_malformed_lines_on_request(world: World, tmp_path: Path) -> None:
    settings = GenerationSettings(events_per_day=400, invalid_json_lines=4, malformed_timestamps=3)
    summary = write_day_files(world, DAY, tmp_path, settings)
    files = sorted(tmp_path.rglob("*.json.gz"))
    assert [f"{p.parent.name}/{p.name}" for p in files] == sorted(summary.members)
    invalid, bad_times = 0, 0
    for path in files:
        for line in gzip.decompress(path.read_bytes()).splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                invalid += 1
                continue
            bad_times += not parses(event["event_time"])
    assert (invalid, bad_times) == (4, 3)
    assert summary.invalid_json_lines == 4 and summary.malformed_timestamps == 3


def test_parallel_generation_writes_the_same_bytes(world: World, tmp_path: Path) -> None:
    settings = GenerationSettings(events_per_day=600, events_per_part=20)
    serial = write_day_files(world, DAY, tmp_path / "serial", settings, workers=1)
    parallel = write_day_files(world, DAY, tmp_path / "parallel", settings, workers=2)
    assert serial == parallel
    for member in serial.members:
        assert (tmp_path / "serial" / member).read_bytes() == (tmp_path / "parallel" / member).read_bytes()


def test_a_cache_dir_is_created_and_reused_across_emulators(world: World, tmp_path: Path) -> None:
    cache = tmp_path / "not-yet"
    first = AmplitudeEmulator(world, events_per_day=200, cache_dir=cache)
    summary = first.day_summary(DAY)
    generated = {path: path.stat().st_mtime_ns for path in cache.rglob("*.json.gz")}
    assert len(generated) == len(summary.members)
    second = AmplitudeEmulator(world, events_per_day=200, cache_dir=cache)
    assert second.day_summary(DAY) == summary
    regenerated = {path: path.stat().st_mtime_ns for path in cache.rglob("*.json.gz")} != generated
    assert not regenerated
