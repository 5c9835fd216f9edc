import asyncio
import concurrent.futures
import datetime as dt
import gzip
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import raw_path
from event_platform.sandbox.loopback import LoopbackServer, serve
from event_platform.sources.tracking.collector import IDENTITY_HEADER, Collector, CollectorSettings
from event_platform.sources.tracking.landed import landed_entries
from event_platform_tests.sources.tracking.conftest import DAY, FAST_COLLECTOR, fixed_clock, landed_events

VIDEO_PLAY = {
    "event_type": "kinesinlms.course.video.activity",
    "course_slug": "intro-data",
    "course_run": "2025",
    "unit_node_slug": "intro-data-unit-1",
    "course_unit_id": 11,
    "block_uuid": "0c5d8b2e-5d29-4f5e-8f1e-7b0c1f7d9a10",
    "event_data": {"video_id": "v1", "video_event_type": "kinesinlms.course.video.play"},
}
LEARNER = {IDENTITY_HEADER: "learner-000042"}
JSON = {"Content-Type": "application/json"}


def post(server: LoopbackServer, payload: object, headers: dict[str, str] | None = None) -> requests.Response:
    headers = LEARNER if headers is None else headers
    return requests.post(f"{server.url}/api/tracking", json=payload, headers=headers, timeout=10)


def full_event(**overrides: object) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "time": "2026-11-01T11:59:00.000001+00:00",
        "anon_username": "learner-000007",
        **VIDEO_PLAY,
        **overrides,
    }


def post_batch(server: LoopbackServer, events: list[dict[str, object]]) -> requests.Response:
    return requests.post(f"{server.url}/api/tracking/batch", json={"events": events}, timeout=10)


def test_a_valid_client_event_is_acknowledged_and_landed(server: LoopbackServer, lake: Lake) -> None:
    response = post(server, VIDEO_PLAY)
    assert response.status_code == 201
    assert response.json() == {"tracking_event_type": "kinesinlms.course.video.activity", "received": True}
    [landed] = landed_events(lake)
    assert landed["anon_username"] == "learner-000042"
    assert landed["course_unit_id"] == 11 and landed["event_data"] == VIDEO_PLAY["event_data"]
    # Stamped by the collector's clock: time and received_at, in the vendor's format.
    assert landed["time"] == landed["received_at"] == "2026-11-01T12:00:00.000000+00:00"
    uuid.UUID(str(landed["uuid"]))


def test_identity_may_come_in_the_body(server: LoopbackServer, lake: Lake) -> None:
    assert post(server, {**VIDEO_PLAY, "anon_username": "learner-000001"}, headers={}).status_code == 201
    assert [event["anon_username"] for event in landed_events(lake)] == ["learner-000001"]


def assert_refused(response: requests.Response, problem: str, words: str) -> None:
    assert response.status_code == 400
    answer = response.json()
    assert answer["received"] is False and answer["problem"] == problem
    assert words in answer["reason"]


def test_unknown_event_type_is_400(server: LoopbackServer) -> None:
    response = post(server, {**VIDEO_PLAY, "event_type": "kinesinlms.nope"})
    assert_refused(response, "unknown_event_type", "kinesinlms.nope")


def test_missing_required_field_is_400(server: LoopbackServer) -> None:
    payload = {**VIDEO_PLAY, "event_data": {"video_event_type": "kinesinlms.course.video.play"}}
    assert_refused(post(server, payload), "missing_field", "event_data.video_id is required")


def test_wrong_field_type_is_400(server: LoopbackServer) -> None:
    payload = {**VIDEO_PLAY, "event_data": {**VIDEO_PLAY["event_data"], "video_id": 5}}
    assert_refused(post(server, payload), "wrong_type", "event_data.video_id must be string, got integer")


def test_value_outside_the_enumeration_is_400(server: LoopbackServer) -> None:
    payload = {**VIDEO_PLAY, "event_data": {"video_id": "v", "video_event_type": "kinesinlms.video.skip"}}
    assert_refused(post(server, payload), "value_not_allowed", "event_data.video_event_type")


def test_payload_over_the_size_limit_is_400(lake: Lake) -> None:
    small = Collector(lake, settings=CollectorSettings(max_event_bytes=512), clock=fixed_clock())
    payload = {**VIDEO_PLAY, "event_data": {**VIDEO_PLAY["event_data"], "note": "x" * 1000}}
    with serve(small.app) as server:
        assert_refused(post(server, payload), "too_large", "over the limit of 512 bytes")
    assert landed_events(lake) == []


def test_personal_data_is_400_and_not_stored(server: LoopbackServer, lake: Lake) -> None:
    payload = {**VIDEO_PLAY, "page_url": "/u/?email=ada.lovelace@example.org"}
    response = post(server, payload)
    assert_refused(response, "personal_data", "$.page_url (an email address)")
    assert "lovelace" not in response.text
    assert landed_events(lake) == []


def test_a_name_field_is_400(server: LoopbackServer) -> None:
    payload = {**VIDEO_PLAY, "event_data": {**VIDEO_PLAY["event_data"], "full_name": "Ada Lovelace"}}
    assert_refused(post(server, payload), "personal_data", "a person's full_name")


def test_missing_identity_is_400(server: LoopbackServer) -> None:
    assert_refused(post(server, VIDEO_PLAY, headers={}), "identity", IDENTITY_HEADER)


def test_an_email_as_identity_is_400(server: LoopbackServer) -> None:
    response = post(server, VIDEO_PLAY, headers={IDENTITY_HEADER: "ada@example.org"})
    assert_refused(response, "personal_data", "email")


def test_header_and_body_identities_must_agree(server: LoopbackServer) -> None:
    payload = {**VIDEO_PLAY, "anon_username": "learner-000001"}
    assert_refused(post(server, payload), "identity", "disagree")


def test_a_body_that_is_not_json_is_400(server: LoopbackServer) -> None:
    headers = {**LEARNER, "Content-Type": "application/json"}
    response = requests.post(f"{server.url}/api/tracking", data=b"{oops", headers=headers, timeout=10)
    assert_refused(response, "malformed", "not JSON")


def test_a_resent_uuid_is_acknowledged_but_stored_once(server: LoopbackServer, lake: Lake) -> None:
    payload = {**VIDEO_PLAY, "uuid": str(uuid.uuid4())}
    assert [post(server, payload).status_code for _ in range(3)] == [201, 201, 201]
    assert len(landed_events(lake)) == 1


def test_a_batch_answers_per_event_and_lands_the_valid_ones(server: LoopbackServer, lake: Lake) -> None:
    good, again = full_event(), full_event()
    bad = full_event(event_type="kinesinlms.nope")
    response = post_batch(server, [good, bad, again, good])
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 2 and answer["duplicates"] == 1
    assert answer["rejected"] == [
        {"uuid": bad["uuid"], "problem": "unknown_event_type", "reason": answer["rejected"][0]["reason"]}
    ]
    landed = landed_events(lake)
    assert sorted(event["uuid"] for event in landed) == sorted([good["uuid"], again["uuid"]])
    # The Tracker's own time stays; received_at is the collector's.
    assert {event["time"] for event in landed} == {"2026-11-01T11:59:00.000001+00:00"}
    again_answer = post_batch(server, [good]).json()
    assert (again_answer["accepted"], again_answer["duplicates"], again_answer["rejected"]) == (0, 1, [])
    assert again_answer["results"] == [{"uuid": good["uuid"], "status": "duplicate"}]


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"events": {}}', b"not json"])
def test_a_malformed_batch_is_400(server: LoopbackServer, body: bytes) -> None:
    response = requests.post(f"{server.url}/api/tracking/batch", data=body, headers=JSON, timeout=10)
    assert response.status_code == 400 and response.json()["problem"] == "malformed"


def test_a_batch_over_its_size_limit_is_400(lake: Lake) -> None:
    small = Collector(lake, settings=CollectorSettings(max_batch_bytes=2048), clock=fixed_clock())
    with serve(small.app) as server:
        assert_refused(post_batch(server, [full_event() for _ in range(20)]), "too_large", "2048 bytes")


def test_concurrent_requests_share_group_commits(lake: Lake) -> None:
    collector = Collector(lake, settings=CollectorSettings(flush_age_seconds=0.2), clock=fixed_clock())
    with serve(collector.app) as server, concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: post(server, VIDEO_PLAY).status_code, range(64)))
    assert statuses == [201] * 64
    entries = landed_entries(lake, DAY.isoformat())
    assert sum(entry.extra["lines"] for entry in entries) == 64
    assert len(entries) < 16  # many events per file, not one file per request
    assert all(entry.path.endswith(".ndjson.gz") for entry in entries)


def test_a_full_group_is_written_before_its_age(lake: Lake) -> None:
    collector = Collector(
        lake, settings=CollectorSettings(flush_bytes=1, flush_age_seconds=3600), clock=fixed_clock()
    )
    with serve(collector.app) as server:
        assert post(server, VIDEO_PLAY).status_code == 201  # would hang for an hour if size did not flush
    assert len(landed_events(lake)) == 1


async def asgi_post(app: Callable[..., Awaitable[None]], body: bytes) -> int:
    """One POST straight through the ASGI app (no socket): the status it answers."""
    headers = [(b"content-type", b"application/json"), (IDENTITY_HEADER.lower().encode(), b"learner-1")]
    scope = {"type": "http", "method": "POST", "path": "/api/tracking", "headers": headers}
    scope |= {"http_version": "1.1", "scheme": "http", "query_string": b"", "root_path": ""}
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def test_clients_that_all_wait_are_committed_without_waiting_for_the_age(lake: Lake) -> None:
    # Run in one event loop, the 16 requests arrive before any commit ends: the first 8 (the floor)
    # are committed as soon as all wait, the next 8 (half of the 16 waiting) while that commit runs.
    settings = CollectorSettings(flush_age_seconds=3600, early_flush_floor=8, early_flush_share=0.5)
    collector = Collector(lake, settings=settings, clock=fixed_clock())
    bodies = [json.dumps(VIDEO_PLAY).encode() for _ in range(16)]

    async def post_all() -> list[int]:
        async with asyncio.timeout(60):  # an hour if only the age committed them
            return list(await asyncio.gather(*(asgi_post(collector.app, body) for body in bodies)))

    assert asyncio.run(post_all()) == [201] * 16
    assert sorted(entry.extra["lines"] for entry in landed_entries(lake, DAY.isoformat())) == [8, 8]


def test_events_land_by_the_day_they_were_received(lake: Lake) -> None:
    next_day = DAY + dt.timedelta(days=1)
    collector = Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock(next_day))
    with serve(collector.app) as server:
        assert post_batch(server, [full_event()]).status_code == 200
    [landed] = landed_events(lake, next_day)
    assert str(landed["time"]).startswith(DAY.isoformat())
    assert str(landed["received_at"]).startswith(next_day.isoformat())
    assert landed_events(lake, DAY) == []


def test_a_failed_landing_is_503_and_acknowledges_nothing(tmp_path: Path, lake: Lake) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the lake's directory should be")
    collector = Collector(Lake.from_uri(str(blocked)), settings=CollectorSettings(flush_age_seconds=0.01))
    event = full_event()
    with serve(collector.app) as server:
        response = post_batch(server, [event])
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "could not be stored" in response.json()["reason"]
        # Once the lake is back, the retry is stored: the failure made the collector forget the uuid.
        collector.lake = lake
        answer = post_batch(server, [event]).json()
        assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (1, 0, [])
    assert [landed["uuid"] for landed in landed_events(lake, collector.clock().date())] == [event["uuid"]]


def test_landed_files_are_gzip_ndjson_with_a_commit_record(server: LoopbackServer, lake: Lake) -> None:
    post_batch(server, [full_event(), full_event()])
    [entry] = landed_entries(lake, DAY.isoformat())
    assert (
        entry.path.startswith("events-") and entry.path.endswith(".ndjson.gz") and entry.extra["lines"] == 2
    )
    assert entry.extra["first_received"] <= entry.extra["last_received"]
    data = lake.read_bytes(f"{raw_path('tracking', DAY.isoformat())}/{entry.path}")
    lines = gzip.decompress(data).splitlines()
    assert [json.loads(line)["anon_username"] for line in lines] == ["learner-000007"] * 2


def test_the_idempotency_memory_is_bounded(lake: Lake) -> None:
    forgetful = CollectorSettings(flush_age_seconds=0.01, seen_uuids=2)
    collector = Collector(lake, settings=forgetful, clock=fixed_clock())
    first, second, third = full_event(), full_event(), full_event()
    with serve(collector.app) as server:
        for event in (first, second, third, third, first):
            post_batch(server, [event])
    # `third` was remembered; `first` had been forgotten (the asset's dedupe on uuid catches that copy).
    assert sorted(str(event["uuid"]) for event in landed_events(lake)) == sorted(
        [str(first["uuid"]), str(second["uuid"]), str(third["uuid"]), str(first["uuid"])]
    )


def test_a_batch_entry_that_is_not_an_object_is_rejected_alone(server: LoopbackServer, lake: Lake) -> None:
    answer = post_batch(server, [5, full_event()]).json()  # type: ignore[list-item]
    assert answer["accepted"] == 1
    [rejected] = answer["rejected"]
    assert rejected == {"uuid": "", "problem": "malformed", "reason": "an event must be a JSON object"}


def test_other_paths_and_methods_are_refused_as_http_says(server: LoopbackServer) -> None:
    assert requests.post(f"{server.url}/api/other", json={}, timeout=10).status_code == 404
    refused = requests.get(f"{server.url}/api/tracking", timeout=10)
    assert (refused.status_code, refused.headers["Allow"]) == (405, "POST")


def test_an_unexpected_failure_is_a_500_and_the_collector_goes_on(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock())
    validate = collector.registry.validate

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(collector.registry, "validate", validate)
        raise RuntimeError("a bug")

    monkeypatch.setattr(collector.registry, "validate", failing_once)
    with serve(collector.app) as server:
        failed = post(server, VIDEO_PLAY)
        assert (failed.status_code, failed.json()["received"]) == (500, False)
        assert post(server, VIDEO_PLAY).status_code == 201  # not held behind a request counted for ever
    assert len(landed_events(lake)) == 1
