"""The collector under hostile input and slow clients (issue 17's probes, on 127.0.0.1, bounded)."""

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import uvicorn

from event_platform.lake.filesystem import Lake
from event_platform.sandbox.loopback import LoopbackServer, serve
from event_platform.sources.tracking import landed
from event_platform.sources.tracking.collector import IDENTITY_HEADER, Collector, CollectorSettings
from event_platform.sources.tracking.server import ServerLimits, uvicorn_config
from event_platform.sources.tracking.tracker import Tracker
from event_platform_tests.sources.tracking.conftest import DAY, FAST_BACKOFF, fixed_clock, landed_events

JSON = {"Content-Type": "application/json", IDENTITY_HEADER: "learner-000042"}
PAGE = b'{"event_type": "kinesinlms.course.home.page_view", "event_data": '
PAGE_VIEW = {"event_type": "kinesinlms.course.home.page_view", "event_data": {"page": "home"}}


def event(**overrides: object) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "time": "2026-11-01T11:59:00.000001+00:00",
        "anon_username": "learner-000007",
        **PAGE_VIEW,
        **overrides,
    }


def post_raw(
    server: LoopbackServer, body: bytes, path: str = "/api/tracking", **headers: str
) -> requests.Response:
    return requests.post(f"{server.url}{path}", data=body, headers={**JSON, **headers}, timeout=10)


def refusal(response: requests.Response) -> tuple[int, str, str]:
    answer = response.json()
    return response.status_code, answer["problem"], answer["reason"]


# -- every malformed body is a 400 naming the problem ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (PAGE + b'{"page": "\xff\xfe"}}', "UTF-8"),
        (PAGE + b'{"page": "\\ud800"}}', "surrogate"),
        (PAGE + b'{"page": "a", "\\udfff": 1}}',
         "surrogate"),
        (PAGE + b'{"page": "a", "n": '
         + b"9" * 5000 + b"}}", "5000 digits"),
        (PAGE + b'{"page": "a", "x": '
         + b"[" * 5000 + b"]" * 5000 + b"}}", "nest"),
        (PAGE + b'{"page": "a", "x": '
         + b"[" * 40 + b"]" * 40 + b"}}", "nests deeper than 32"),
        (PAGE + b'{"page": "a", "v": NaN}}', "NaN"),
        (PAGE + b'{"page": "a", "v": -Infinity}}',
         "-Infinity"),
        (PAGE + b'{"page": "a", "v": 1e999}}',
         "infinity"),
        (b'{"event_type": "kinesinlms.course.home.page_view", "time": "0001-01-01T00:00:00+14:00", '
         b'"event_data": {"page": "a"}}', "time is out of range"),
        (b"{oops", "not JSON"),
    ],
    # NaN and Infinity used to land as invalid JSON lines; now nothing of a refused event lands.
    ids=["invalid-utf8", "lone-surrogate-value", "lone-surrogate-key", "huge-integer", "5000-nested-arrays",
         "40-nested-arrays", "nan", "infinity", "float-overflow", "time-out-of-range", "not-json"],
)  # fmt: skip
def test_a_malformed_event_is_a_400_naming_the_problem(
    server: LoopbackServer, lake: Lake, body: bytes, words: str
) -> None:
    assert len(body) < 64 * 1024
    status, problem, reason = refusal(post_raw(server, body))
    assert status == 400 and problem in ("malformed", "value_not_allowed")
    assert words in reason
    assert landed_events(lake) == []


def test_in_a_batch_only_the_bad_events_are_refused(server: LoopbackServer, lake: Lake) -> None:
    good_first, good_last = event(), event()
    bad = [
        b'{"uuid": "%s", "event_type": "kinesinlms.course.home.page_view", "anon_username": "a1", '
        b'"time": "2026-11-01T11:59:00+00:00", "event_data": {"page": %s}}'
        % (str(uuid.uuid4()).encode(), value)
        for value in (b"NaN", b'"\\ud800"', b'"\xff"', b"1" * 30, b"[" * 40 + b"]" * 40)
    ]
    body = b'{"events": [' + b",".join(
        [json.dumps(good_first).encode(), *bad, json.dumps(good_last).encode()]
    )
    response = post_raw(server, body + b"]}", path="/api/tracking/batch")
    assert response.status_code == 200
    answer = response.json()
    assert [result["status"] for result in answer["results"]] == ["accepted", *["rejected"] * 5, "accepted"]
    assert answer["accepted"] == 2 and len(answer["rejected"]) == 5
    assert all(result["problem"] == "malformed" for result in answer["rejected"])
    assert sorted(str(e["uuid"]) for e in landed_events(lake)) == sorted(
        [good_first["uuid"], good_last["uuid"]]
    )


# -- who may post -------------------------------------------------------------------------------------


def test_only_json_is_accepted(server: LoopbackServer) -> None:
    body = json.dumps(PAGE_VIEW).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        status, _, reason = refusal(post_raw(server, body, **{"Content-Type": content_type}))
        assert status == 415 and "Content-Type must be application/json" in reason
    assert post_raw(server, body, **{"Content-Type": "application/json; charset=utf-8"}).status_code == 201


def test_cross_site_pages_post_only_from_allowed_origins(lake: Lake) -> None:
    settings = CollectorSettings(flush_age_seconds=0.02, allowed_origins=("https://lms.example.org",))
    collector = Collector(lake, settings=settings, clock=fixed_clock())
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with serve(collector.app) as server:
        allowed = requests.options(
            f"{server.url}/api/tracking",
            headers={**preflight, "Origin": "https://lms.example.org"},
            timeout=10,
        )
        refused = requests.options(
            f"{server.url}/api/tracking", headers={**preflight, "Origin": "https://evil.example"}, timeout=10
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://lms.example.org"
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_a_shared_secret_is_required_when_set(lake: Lake, tmp_path: object) -> None:
    settings = CollectorSettings(flush_age_seconds=0.02, shared_secret="s3cr3t-value")
    collector = Collector(lake, settings=settings, clock=fixed_clock())
    body = json.dumps(PAGE_VIEW).encode()
    with serve(collector.app) as server:
        missing = post_raw(server, body)
        wrong = post_raw(server, body, Authorization="Bearer guess")
        right = post_raw(server, body, Authorization="Bearer s3cr3t-value")
        with Tracker(
            server.url, f"{tmp_path}/spool", backoff=FAST_BACKOFF, shared_secret="s3cr3t-value"
        ) as tracker:
            tracker.track("kinesinlms.core.user.login", "learner-000001")
            assert tracker.flush(10)
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 201)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert "s3cr3t" not in missing.text + wrong.text
    assert len(landed_events(lake)) == 2


# -- a commit costs the same however full the day -----------------------------------------------------


def test_a_commit_reads_and_lists_nothing_day_wide(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(50):
        landed.commit_events(
            lake, DAY.isoformat(), b"x", lines=1, first_received=f"{index}", last_received=""
        )
    assert landed.compact_day(lake, DAY.isoformat()) == 50

    def day_wide(*_: object, **__: object) -> None:
        raise AssertionError("a commit must not list the day or read its index")

    for name in ("file_infos", "list_files", "list_dirs", "read_manifest", "read_bytes"):
        monkeypatch.setattr(Lake, name, day_wide)
    landed.commit_events(lake, DAY.isoformat(), b"y", lines=3, first_received="", last_received="")
    monkeypatch.undo()

    entries = landed.landed_entries(lake, DAY.isoformat())
    assert len(entries) == 51 and landed.landed_line_count(lake, DAY.isoformat()) == 53


# -- slow clients -------------------------------------------------------------------------------------


@contextmanager
def served(lake: Lake, limits: ServerLimits) -> Iterator[tuple[str, int]]:
    """The collector as `tracking serve` runs it, with `limits`."""
    collector = Collector(lake, settings=CollectorSettings(flush_age_seconds=0.02, body_seconds=1.0),
                          clock=fixed_clock())  # fmt: skip
    config = uvicorn_config(collector.app, host="127.0.0.1", port=0, limits=limits, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def limited_server(lake: Lake) -> Iterator[tuple[str, int]]:
    """Short deadlines and a small connection limit."""
    with served(
        lake, ServerLimits(header_seconds=1.0, keep_alive_seconds=1.0, max_connections=20)
    ) as address:
        yield address


def closed_within(connection: socket.socket, seconds: float, trickle: bytes) -> bool:
    """Send `trickle` a byte at a time (every 0.2 s) until the server closes the connection or time is up."""
    deadline = time.monotonic() + seconds
    connection.settimeout(0.2)
    for byte in trickle:
        if time.monotonic() > deadline:
            return False
        try:
            connection.sendall(bytes([byte]))
            if connection.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_client_sending_its_head_byte_by_byte_is_cut_off(limited_server: tuple[str, int]) -> None:
    with socket.create_connection(limited_server) as slow:
        started = time.monotonic()
        assert closed_within(slow, 8.0, b"POST /api/tracking HTTP/1.1\r\nHost: x\r\n" * 10)
    assert time.monotonic() - started < 5.0


def test_a_body_that_trickles_in_is_408(limited_server: tuple[str, int]) -> None:
    body = json.dumps(PAGE_VIEW).encode()
    head = (
        f"POST /api/tracking HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{IDENTITY_HEADER}: learner-000001\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(limited_server) as slow:
        slow.sendall(head + body[:5])
        slow.settimeout(5.0)
        answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and b"too_slow" in answer


def test_a_flood_of_slow_connections_does_not_lock_out_valid_posts(limited_server: tuple[str, int]) -> None:
    host, port = limited_server
    flood = [socket.create_connection(limited_server) for _ in range(60)]  # three times the limit
    try:
        for connection in flood:
            connection.sendall(b"POST /api/tracking HTTP/1.1\r\n")
        time.sleep(1.5)  # past the head deadline: the server has dropped them
        response = requests.post(
            f"http://{host}:{port}/api/tracking", data=json.dumps(PAGE_VIEW), headers=JSON, timeout=10
        )
        assert response.status_code == 201
    finally:
        for connection in flood:
            connection.close()


def test_a_head_past_its_size_limit_is_cut_off(lake: Lake) -> None:
    patient = ServerLimits(header_seconds=60.0, max_head_bytes=16 * 1024)
    with served(lake, patient) as address, socket.create_connection(address) as greedy:
        greedy.sendall(b"POST /api/tracking HTTP/1.1\r\nX-Padding: " + b"a" * 8192)
        greedy.settimeout(5.0)
        greedy.sendall(b"a" * 16384)
        assert greedy.recv(4096) == b""  # closed for its size: the deadline is a minute away
