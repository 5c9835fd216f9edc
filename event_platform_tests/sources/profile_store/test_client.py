"""The Profile Store client against `responses` (exact HTTP) and against the sandbox (paging at scale)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from event_platform.retry import NO_WAIT, RetriesExhaustedError
from event_platform.sandbox.profile_store import Burst, ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.sources.profile_store.client import (
    MAX_READABLE,
    ProfileStoreClient,
    ProfileStoreError,
    format_ticks,
    parse_event_time,
    ticks_from_datetime,
)

BASE = "https://profilesapi-emea01.profilestore.example"
LIST_URL = f"{BASE}/api/v2.0/TrackEvents"
API_KEY = "ps-secret-key-123"
DAY = dt.date(2026, 11, 1)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def event(track_id: str, time: str = "2026-11-01T10:00:00.1234567Z") -> dict[str, object]:
    return {"TrackId": track_id, "EventTime": time, "EventType": "pageview", "Scope": "shop"}


def client(**options: object) -> ProfileStoreClient:
    waits: list[float] = []
    made = ProfileStoreClient(BASE, API_KEY, backoff=NO_WAIT, sleep=waits.append, **options)  # type: ignore[arg-type]
    made.waits = waits  # type: ignore[attr-defined]
    return made


def read_all(reader: ProfileStoreClient, **where: str) -> list[dict[str, object]]:
    return [item for batch in reader.track_events(START, END, where=where or None) for item in batch]


def query(call: responses.Call) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlparse(call.request.url).query).items()}


# ---- times --------------------------------------------------------------------------------------------


def test_event_time_keeps_all_seven_fractional_digits() -> None:
    ticks = parse_event_time("2026-11-01T10:00:00.1234567Z")
    assert ticks == ticks_from_datetime(dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)) + 1_234_567
    assert format_ticks(ticks, suffix_z=True) == "2026-11-01T10:00:00.1234567Z"
    assert format_ticks(ticks, suffix_z=False) == "2026-11-01T10:00:00.1234567"
    assert parse_event_time("2026-11-01T10:00:00") == parse_event_time("2026-11-01T10:00:00.0000000Z")
    with pytest.raises(ValueError, match="not a Profile Store EventTime"):
        parse_event_time("yesterday")


# ---- protocol -----------------------------------------------------------------------------------------


@responses.activate
def test_request_carries_auth_filter_order_and_page_size() -> None:
    responses.get(LIST_URL, json={"items": [event("a")], "total": 1, "count": 1})
    reader = client(page_size=250)
    assert [item["TrackId"] for item in read_all(reader)] == ["a"]
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == f"epi-single {API_KEY}"
    params = query(call)
    assert params["$filter"] == (
        "EventTime ge 2026-11-01T00:00:00.0000000 and EventTime lt 2026-11-02T00:00:00.0000000"
    )
    assert params["$orderby"] == "EventTime asc"
    assert (params["$top"], params["$skip"]) == ("250", "0")
    assert reader.stats.requests == 1 and reader.stats.total_reported == 1


@responses.activate
def test_trailing_z_is_a_setting() -> None:
    responses.get(LIST_URL, json={"items": [], "total": 0})
    read_all(client(time_suffix_z=True))
    assert query(responses.calls[0])["$filter"].endswith("EventTime lt 2026-11-02T00:00:00.0000000Z")


@responses.activate
def test_envelope_keys_are_read_case_insensitively() -> None:
    responses.get(LIST_URL, json={"Items": [event("a"), event("b")], "Total": 2, "Count": 2})
    reader = client()
    assert len(read_all(reader)) == 2
    assert reader.stats.total_reported == 2


@responses.activate
def test_429_waits_at_least_retry_after_then_500_and_timeout_are_retried() -> None:
    responses.get(LIST_URL, status=429, headers={"Retry-After": "7"}, json={"message": "slow down"})
    responses.get(LIST_URL, status=500, body="oops")
    responses.get(LIST_URL, body=requests.Timeout("read timed out"))
    responses.get(LIST_URL, body="<html>proxy</html>")  # a 200 whose body is not JSON: retried too
    responses.get(LIST_URL, json={"items": [event("a")], "total": 1})
    reader = client()
    assert len(read_all(reader)) == 1
    assert reader.waits[0] >= 7  # type: ignore[attr-defined]
    assert reader.stats.requests == 5 and reader.stats.retries == 4


@responses.activate
def test_without_a_total_a_full_page_means_more() -> None:
    full = [event(f"t{n}", f"2026-11-01T10:00:0{n}.0000000Z") for n in range(2)]
    responses.get(LIST_URL, json={"items": full})
    responses.get(LIST_URL, json={"items": [event("t2", "2026-11-01T11:00:00.0000000Z")]})
    assert [item["TrackId"] for item in read_all(client(page_size=2))] == ["t0", "t1", "t2"]
    assert query(responses.calls[1])["$skip"] == "2"


@responses.activate
def test_retries_give_up_with_the_cause() -> None:
    responses.get(LIST_URL, status=503, body="maintenance")
    with pytest.raises(RetriesExhaustedError, match="503"):
        read_all(client())


@responses.activate
def test_bad_credentials_are_fatal_and_name_the_settings_not_the_key() -> None:
    responses.get(LIST_URL, status=401, json={"message": f"bad key {API_KEY}"})
    reader = client()
    with pytest.raises(ProfileStoreError) as raised:
        read_all(reader)
    assert "PROFILE_STORE_API_KEY" in str(raised.value) and API_KEY not in str(raised.value)
    assert API_KEY not in repr(reader)
    assert len(responses.calls) == 1


@responses.activate
def test_refusals_never_echo_searched_personal_values() -> None:
    email = "ada.lovelace.1@example.org"
    responses.get(LIST_URL, status=400, json={"message": f"bad filter User.Email eq '{email}'"})
    with pytest.raises(ProfileStoreError) as raised:
        read_all(client(), **{"User.Email": email})
    assert email not in str(raised.value) and "<redacted>" in str(raised.value)


@responses.activate
def test_search_quotes_odata_strings() -> None:
    responses.get(LIST_URL, json={"items": [], "total": 0})
    read_all(client(), **{"User.Email": "o'brien@example.org"})
    assert query(responses.calls[0])["$filter"].endswith("and User.Email eq 'o''brien@example.org'")


@responses.activate
def test_delete_reports_deleted_unknown_and_retries_throttling() -> None:
    url = f"{LIST_URL}/shop/t-1"
    responses.delete(url, status=429, headers={"Retry-After": "2"})
    responses.delete(url, status=500)
    responses.delete(url, status=200)
    responses.delete(f"{LIST_URL}/shop/t-2", status=404)
    reader = client()
    assert reader.delete("shop", "t-1") is True
    assert reader.delete("shop", "t-2") is False
    assert reader.waits[0] >= 2  # type: ignore[attr-defined]


@responses.activate
def test_preview_posts_kql() -> None:
    responses.post(f"{LIST_URL}/preview", json={"items": [event("a")], "count": 1})
    kql = "Events | where EventType == 'pageview' | take 2"
    assert client().preview(kql) == [event("a")]
    assert json.loads(responses.calls[0].request.body) == {"Query": kql}


def test_page_size_must_fit_the_window_rule() -> None:
    with pytest.raises(ValueError, match="page size"):
        ProfileStoreClient(BASE, API_KEY, page_size=10_000)


# ---- paging at scale, against the sandbox --------------------------------------------------------------


@pytest.fixture
def burst_sandbox(world: World) -> Iterator[ProfileStoreSandbox]:
    """A day of 2,000 events plus 25,000 in one hour, 3,000 of which share one EventTime."""
    with ProfileStoreSandbox(world, bursts=(Burst(DAY, hour=14, count=25_000, tied=3_000),)) as sandbox:
        yield sandbox


def event_identity(item: dict[str, object]) -> str:
    return json.dumps(item, sort_keys=True)


def assert_window_rule_held(sandbox: ProfileStoreSandbox) -> None:
    listed = [request for request in sandbox.requests if request.method == "GET"]
    assert listed and all(request.status == 200 for request in listed)
    assert max(request.skip_plus_top for request in listed) < 10_000


def test_burst_day_is_read_completely_once_without_breaking_the_window_rule(
    burst_sandbox: ProfileStoreSandbox,
) -> None:
    reader = ProfileStoreClient(burst_sandbox.url, burst_sandbox.api_key, page_size=1000, backoff=NO_WAIT)
    items = read_all(reader)
    expected = burst_sandbox.events_on(DAY)
    assert len(expected) == 27_000
    assert len(items) == len(expected) == reader.stats.total_reported
    assert sorted(map(event_identity, items)) == sorted(map(event_identity, expected))
    assert Counter(item["EventTime"] for item in items).most_common(1)[0][1] == 3_000
    assert reader.stats.windows_split >= 2
    assert_window_rule_held(burst_sandbox)
    # The price of the rule: a few requests above ceil(27000 / 1000).
    assert reader.stats.requests <= 27 + 3 * reader.stats.windows_split


def test_tie_group_on_a_segment_edge_is_read_whole(world: World) -> None:
    """Here the 3,000 tied events straddle position 9,999, where the first segment must stop."""
    burst = Burst(DAY, hour=14, count=12_000, tied=3_000)
    with ProfileStoreSandbox(world, events_per_day=4_000, bursts=(burst,)) as sandbox:
        expected = sandbox.events_on(DAY)
        tied_time, _ = Counter(e["EventTime"] for e in expected).most_common(1)[0]
        first_tied = [e["EventTime"] for e in expected].index(tied_time)
        assert first_tied < MAX_READABLE < first_tied + 3_000
        reader = ProfileStoreClient(sandbox.url, sandbox.api_key, page_size=700, backoff=NO_WAIT)
        items = read_all(reader)
        assert sorted(map(event_identity, items)) == sorted(map(event_identity, expected))
        instant_filter = f"EventTime eq {tied_time.removesuffix('Z')}"
        assert any(r.params.get("$filter") == instant_filter for r in sandbox.requests)
        assert_window_rule_held(sandbox)


def test_instant_of_ten_thousand_events_is_split_by_event_type(world: World) -> None:
    burst = Burst(DAY, count=10_500, tied=10_500, tied_event_types=("pageview", "search", "video_play"))
    with ProfileStoreSandbox(world, events_per_day=50, bursts=(burst,)) as sandbox:
        reader = ProfileStoreClient(sandbox.url, sandbox.api_key, page_size=2000, backoff=NO_WAIT)
        items = read_all(reader)
        assert sorted(map(event_identity, items)) == sorted(map(event_identity, sandbox.events_on(DAY)))
        assert reader.stats.instants_split_by_type == 1
        assert_window_rule_held(sandbox)


def test_instant_of_ten_thousand_events_of_one_type_fails_clearly(world: World) -> None:
    burst = Burst(DAY, count=10_000, tied=10_000)
    with ProfileStoreSandbox(world, events_per_day=0, bursts=(burst,)) as sandbox:
        reader = ProfileStoreClient(sandbox.url, sandbox.api_key, page_size=5000, backoff=NO_WAIT)
        with pytest.raises(ProfileStoreError, match="10000 events of type 'pageview' share EventTime"):
            read_all(reader)
        assert_window_rule_held(sandbox)


def test_z_suffix_setting_matches_what_the_server_accepts(world: World) -> None:
    with ProfileStoreSandbox(world, events_per_day=10, time_suffix_z=True) as sandbox:
        without_z = ProfileStoreClient(sandbox.url, sandbox.api_key, backoff=NO_WAIT)
        with pytest.raises(ProfileStoreError, match="trailing Z"):
            read_all(without_z)
        with_z = ProfileStoreClient(sandbox.url, sandbox.api_key, time_suffix_z=True, backoff=NO_WAIT)
        assert len(read_all(with_z)) == 10


def test_search_by_nested_field_finds_one_persons_events(world: World) -> None:
    with ProfileStoreSandbox(world, events_per_day=3_000) as sandbox:
        someone = sandbox.events_on(DAY)[0]["User"]["Email"]
        reader = ProfileStoreClient(sandbox.url, sandbox.api_key, backoff=NO_WAIT)
        found = read_all(reader, **{"User.Email": someone})
        expected = [e for e in sandbox.events_on(DAY) if e["User"]["Email"] == someone]
        assert found == expected and found


def test_max_readable_is_below_the_vendor_limit() -> None:
    assert MAX_READABLE == 9_999
