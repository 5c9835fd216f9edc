import contextlib
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses

from event_platform.lake.filesystem import Lake
from event_platform.sandbox.loopback import serve
from event_platform.sources.tracking.collector import Collector
from event_platform.sources.tracking.events import InvalidEventError, Problem
from event_platform.sources.tracking.tracker import REJECTED_FILE, SpoolInUseError, Tracker
from event_platform_tests.sources.tracking.conftest import (
    FAST_BACKOFF,
    FAST_COLLECTOR,
    fixed_clock,
    landed_events,
)

LOGIN = "kinesinlms.core.user.login"
FAKE_COLLECTOR = "http://collector.test"


def unused_port_url() -> str:
    """A URL where nothing listens: the collector is down."""
    with serve(Collector(Lake.from_uri("/nonexistent")).app) as server:
        url = server.url
    return url


def tracker(url: str, spool: Path, **options: object) -> Tracker:
    return Tracker(url, spool, backoff=FAST_BACKOFF, poll_seconds=0.01, **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def tracker_while_down(spool: Path) -> Iterator[Tracker]:
    """A Tracker whose collector is down; closing it gives up at once, leaving the spool as it is."""
    down = tracker(unused_port_url(), spool)
    try:
        yield down
    finally:
        down.close(timeout=0)


def spooled_uuids(spool: Path) -> list[str]:
    return [
        json.loads(line)["uuid"]
        for path in sorted(spool.glob("segment-*.ndjson"))
        for line in path.read_bytes().splitlines()
    ]


def test_track_returns_once_the_event_is_on_disk(tmp_path: Path) -> None:
    with tracker_while_down(tmp_path) as down:
        event_uuid = down.track(LOGIN, "learner-000001", course_slug="intro-data")
        assert spooled_uuids(tmp_path) == [event_uuid]
        assert down.pending == 1
        assert down.flush(timeout=0.05) is False
    # Closing with the collector still down keeps the event for the next Tracker.
    assert spooled_uuids(tmp_path) == [event_uuid]


def test_the_event_carries_its_stamps_and_context(tmp_path: Path) -> None:
    moment = dt.datetime(2026, 11, 1, 9, 30, 0, 5, tzinfo=dt.UTC)
    with tracker_while_down(tmp_path) as down:
        down.track(LOGIN, "learner-000001", time=moment, course_slug="intro-data", course_run="2025")
    [line] = next(tmp_path.glob("segment-*.ndjson")).read_bytes().splitlines()
    event = json.loads(line)
    assert event["time"] == "2026-11-01T09:30:00.000005+00:00"
    assert (event["course_slug"], event["course_run"], event["event_data"]) == ("intro-data", "2025", {})
    uuid.UUID(event["uuid"])


def test_invalid_events_raise_and_are_not_spooled(tmp_path: Path) -> None:
    with tracker_while_down(tmp_path) as down:
        with pytest.raises(InvalidEventError) as raised:
            down.track(LOGIN, "learner-000001", {"note": "write to ada@example.org"})
        assert raised.value.problem is Problem.PERSONAL_DATA
        with pytest.raises(InvalidEventError, match="video_id is required"):
            down.track("kinesinlms.course.video.activity", "learner-1", {"video_event_type": "x"})
        with pytest.raises(ValueError, match="timezone-aware"):
            down.track(LOGIN, "learner-000001", time=dt.datetime(2026, 11, 1))
        with pytest.raises(InvalidEventError, match="event 1: anon_username"):
            down.track_many(
                [
                    {"event_type": LOGIN, "anon_username": "learner-1"},
                    {"event_type": LOGIN, "anon_username": "Ada Lovelace"},
                ]
            )
        assert down.pending == 0
    assert spooled_uuids(tmp_path) == []


def test_a_new_tracker_on_the_same_spool_delivers_what_the_old_one_acknowledged(
    tmp_path: Path, lake: Lake
) -> None:
    spool = tmp_path / "spool"
    with tracker_while_down(spool) as first:
        acknowledged = [first.track(LOGIN, f"learner-{n:06d}") for n in range(25)]
        acknowledged += first.track_many({"event_type": LOGIN, "anon_username": "x"} for _ in range(5))
    collector = Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock())
    with serve(collector.app) as server, tracker(server.url, spool) as second:
        assert second.pending == 30
        assert second.flush(timeout=10)
    assert sorted(event["uuid"] for event in landed_events(lake)) == sorted(acknowledged)
    assert list(spool.glob("segment-*")) == []  # delivered segments are removed


def test_a_torn_last_line_was_never_acknowledged_and_is_dropped(tmp_path: Path, lake: Lake) -> None:
    spool = tmp_path / "spool"
    with tracker_while_down(spool) as first:
        kept = first.track(LOGIN, "learner-000001")
    segment = next(spool.glob("segment-*.ndjson"))
    with segment.open("ab") as stream:
        stream.write(b'{"uuid": "half-writ')  # a crash in the middle of track()
    collector = Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock())
    with serve(collector.app) as server, tracker(server.url, spool) as second:
        assert second.pending == 1
        assert second.flush(timeout=10)
    assert [event["uuid"] for event in landed_events(lake)] == [kept]


def test_one_tracker_per_spool(tmp_path: Path) -> None:
    with tracker_while_down(tmp_path), pytest.raises(SpoolInUseError, match="own spool_dir"):
        Tracker(FAKE_COLLECTOR, tmp_path)


def test_stopping_the_collector_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, lake: Lake) -> None:
    first = serve(Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock()).app, name="first")
    port = int(first.url.rsplit(":", 1)[1])
    acknowledged: list[str] = []
    sending, stopped = threading.Event(), threading.Event()
    with tracker(first.url, tmp_path / "spool") as producer:

        def produce() -> None:
            for n in range(300):
                acknowledged.append(producer.track(LOGIN, f"learner-{n:06d}"))
                if n == 100:
                    sending.set()
                if n == 200:
                    # The last hundred come after the collector is gone, however fast it stopped.
                    stopped.wait(10)

        thread = threading.Thread(target=produce)
        thread.start()
        sending.wait(10)
        first.stop()  # while events keep coming and batches are in flight
        stopped.set()
        thread.join()
        assert producer.pending > 0
        # The same address again, as after a restart; a fresh collector remembers no uuid.
        with serve(Collector(lake, settings=FAST_COLLECTOR, clock=fixed_clock()).app, port=port):
            assert producer.flush(timeout=20)
    landed = [str(event["uuid"]) for event in landed_events(lake)]
    assert sorted(landed) == sorted(acknowledged)
    assert len(landed) == len(set(landed)) == 300


def batch_uuids(request: requests.PreparedRequest) -> list[str]:
    return [event["uuid"] for event in json.loads(request.body or b"{}")["events"]]  # type: ignore[arg-type]


@responses.activate
def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    answers = iter([(503, {}, "busy"), (429, {"Retry-After": "0"}, "slow down"), (500, {}, "<html>")])

    def collector(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        answer = next(answers, None)
        return answer or (200, {}, json.dumps({"accepted": len(batch_uuids(request)), "rejected": []}))

    responses.add_callback(responses.POST, f"{FAKE_COLLECTOR}/api/tracking/batch", callback=collector)
    with tracker(FAKE_COLLECTOR, tmp_path) as sender:
        sender.track(LOGIN, "learner-000001")
        assert sender.flush(timeout=10)
    assert len(responses.calls) == 4


@responses.activate
def test_a_200_that_is_not_an_acknowledgement_is_retried(tmp_path: Path) -> None:
    bodies = iter(["<html>proxy</html>"])

    def collector(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        return 200, {}, next(bodies, json.dumps({"accepted": 1, "rejected": []}))

    responses.add_callback(responses.POST, f"{FAKE_COLLECTOR}/api/tracking/batch", callback=collector)
    with tracker(FAKE_COLLECTOR, tmp_path) as sender:
        sender.track(LOGIN, "learner-000001")
        assert sender.flush(timeout=10)
    assert len(responses.calls) == 2


@responses.activate
def test_refused_events_are_kept_aside_except_personal_data(tmp_path: Path) -> None:
    uuids: list[str] = []

    def collector(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        rejected = [
            {"uuid": uuids[0], "problem": "unknown_event_type", "reason": "unknown event_type"},
            {"uuid": uuids[1], "problem": "personal_data", "reason": "personal data is refused"},
        ]
        return 200, {}, json.dumps({"accepted": 1, "duplicates": 0, "rejected": rejected})

    responses.add_callback(responses.POST, f"{FAKE_COLLECTOR}/api/tracking/batch", callback=collector)
    with tracker(FAKE_COLLECTOR, tmp_path, batch_max_events=3) as sender:
        uuids.extend(sender.track_many({"event_type": LOGIN, "anon_username": "learner-1"} for _ in range(3)))
        assert sender.flush(timeout=10)
    records = [json.loads(line) for line in (tmp_path / REJECTED_FILE).read_bytes().splitlines()]
    assert [(r["uuid"], r["problem"]) for r in records] == [
        (uuids[0], "unknown_event_type"),
        (uuids[1], "personal_data"),
    ]
    assert records[0]["event"]["uuid"] == uuids[0]
    assert records[1]["event"] is None  # what was refused as personal is not kept


@responses.activate
def test_a_refused_batch_is_split_to_find_the_culprit(tmp_path: Path) -> None:
    culprit: list[str] = []

    def collector(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        sent = batch_uuids(request)
        if culprit[0] in sent:
            return 400, {}, json.dumps({"problem": "too_large", "reason": "too large"})
        return 200, {}, json.dumps({"accepted": len(sent), "rejected": []})

    responses.add_callback(responses.POST, f"{FAKE_COLLECTOR}/api/tracking/batch", callback=collector)
    with tracker(FAKE_COLLECTOR, tmp_path) as sender:
        uuids = sender.track_many({"event_type": LOGIN, "anon_username": "learner-1"} for _ in range(8))
        culprit.append(uuids[5])
        sender.track(LOGIN, "learner-000002")
        assert sender.flush(timeout=10)
    [record] = [json.loads(line) for line in (tmp_path / REJECTED_FILE).read_bytes().splitlines()]
    assert (record["uuid"], record["problem"]) == (uuids[5], "too_large")
    delivered = {
        uuid
        for call in responses.calls
        if call.response.status_code == 200
        for uuid in batch_uuids(call.request)
    }
    assert len(delivered) == 8


def test_collector_credentials_stay_out_of_reprs_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = unused_port_url().replace("http://", "http://ingest:s3cr3t-token@")
    caplog.set_level(logging.WARNING)
    down = tracker(url, tmp_path)
    down.track(LOGIN, "learner-000001")
    down.flush(timeout=0.2)
    down.close(timeout=0)
    assert "s3cr3t" not in repr(down)
    assert "collector" in caplog.text and "unavailable" in caplog.text
    assert "s3cr3t" not in caplog.text
