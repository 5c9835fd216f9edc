"""The Profile Store emulator speaks the vendor's protocol, including its refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from event_platform.sandbox.profile_store import Burst, ProfileStoreSandbox
from event_platform.sandbox.world import World

DAY = dt.date(2026, 11, 1)
DAY_FILTER = "EventTime ge 2026-11-01T00:00:00 and EventTime lt 2026-11-02T00:00:00Z"


@pytest.fixture
def sandbox(world: World) -> Iterator[ProfileStoreSandbox]:
    with ProfileStoreSandbox(world, events_per_day=300, bursts=(Burst(DAY, count=400, tied=50),)) as running:
        yield running


def get(sandbox: ProfileStoreSandbox, **params: Any) -> requests.Response:
    return requests.get(
        f"{sandbox.url}/api/v2.0/TrackEvents",
        params={"$filter": DAY_FILTER, **params},
        headers={"Authorization": f"epi-single {sandbox.api_key}"},
        timeout=10,
    )


def test_environment_names_the_settings(sandbox: ProfileStoreSandbox) -> None:
    assert sandbox.environment() == {
        "PROFILE_STORE_BASE_URL": sandbox.url,
        "PROFILE_STORE_API_KEY": sandbox.api_key,
    }


def test_requires_epi_single_auth(sandbox: ProfileStoreSandbox) -> None:
    response = requests.get(
        f"{sandbox.url}/api/v2.0/TrackEvents",
        params={"$filter": DAY_FILTER},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10,
    )
    assert response.status_code == 401


def test_defaults_and_envelope(sandbox: ProfileStoreSandbox) -> None:
    body = get(sandbox).json()
    assert body["total"] == 700 and body["count"] == 100 and len(body["items"]) == 100


def test_refuses_skip_plus_top_of_ten_thousand(sandbox: ProfileStoreSandbox) -> None:
    refused = get(sandbox, **{"$skip": "9000", "$top": "1000"})
    assert refused.status_code == 400 and "less than 10000" in refused.json()["message"]
    assert get(sandbox, **{"$skip": "8999", "$top": "1000"}).status_code == 200
    assert [r.status for r in sandbox.requests] == [400, 200]


def test_events_belong_to_the_worlds_people_and_repeat_per_date(world: World) -> None:
    first = ProfileStoreSandbox(world, events_per_day=200).events_on(DAY)
    again = ProfileStoreSandbox(world, events_per_day=200).events_on(DAY)
    assert first == again
    people = {person.device_id: person for person in world.people}
    for event in first:
        person = people[event["DeviceId"]]
        assert event["User"]["Email"] == person.email and event["User"]["Name"] == person.name
        assert event["RemoteAddress"] == person.ip_address
        assert event["EventTime"].startswith("2026-11-01T") and len(event["EventTime"]) == 28
    assert any(event["TrackId"] == "" for event in ProfileStoreSandbox(world).events_on(DAY))


def test_burst_plants_ties_in_one_hour(world: World) -> None:
    events = ProfileStoreSandbox(world, events_per_day=0, bursts=(Burst(DAY, hour=3, count=500, tied=120),))
    times = [event["EventTime"] for event in events.events_on(DAY)]
    assert len(times) == 500 and all(time.startswith("2026-11-01T03:") for time in times)
    assert max(times.count(time) for time in set(times)) == 120


def test_orders_ties_the_same_way_on_every_request(sandbox: ProfileStoreSandbox) -> None:
    pages = [get(sandbox, **{"$top": "700", "$orderby": "EventTime"}).json()["items"] for _ in range(2)]
    assert pages[0] == pages[1]
    times = [item["EventTime"] for item in pages[0]]
    assert times == sorted(times)
    descending = get(sandbox, **{"$top": "700", "$orderby": "EventTime desc"}).json()["items"]
    assert descending == pages[0][::-1]


def test_filters_by_time_type_and_nested_fields(sandbox: ProfileStoreSandbox) -> None:
    events = sandbox.events_on(DAY)
    email = events[0]["User"]["Email"]
    by_email = get(sandbox, **{"$filter": f"{DAY_FILTER} and User.Email eq '{email}'", "$top": "999"}).json()
    assert by_email["items"] == [e for e in events if e["User"]["Email"] == email]
    by_type = get(sandbox, **{"$filter": f"EventType eq search and {DAY_FILTER}", "$top": "999"}).json()
    assert by_type["total"] == sum(e["EventType"] == "search" for e in events) > 0
    moment = events[5]["EventTime"]
    at = get(sandbox, **{"$filter": f"EventTime eq {moment}"}).json()
    assert at["items"] == [e for e in events if e["EventTime"] == moment]
    after = get(sandbox, **{"$filter": f"EventTime gt {moment} and EventTime le 2026-11-02T00:00:00"}).json()
    assert after["total"] == sum(e["EventTime"] > moment for e in events)
    assert get(sandbox, **{"$filter": "EventType eq search"}).status_code == 400  # no time range


def test_time_suffix_policy(world: World) -> None:
    with ProfileStoreSandbox(world, events_per_day=5, time_suffix_z=False) as strict:
        refused = get(strict)
        assert refused.status_code == 400 and "remove the trailing Z" in refused.json()["message"]


def test_pascal_case_envelope(world: World) -> None:
    with ProfileStoreSandbox(world, events_per_day=5, envelope_casing="pascal") as pascal:
        assert set(get(pascal).json()) == {"Items", "Total", "Count"}


def test_kql_preview_caps_results_at_1000(world: World) -> None:
    with ProfileStoreSandbox(world, events_per_day=1500) as sandbox:

        def preview(query: str) -> requests.Response:
            return requests.post(
                f"{sandbox.url}/api/v2.0/TrackEvents/preview",
                json={"Query": query},
                headers={"Authorization": f"epi-single {sandbox.api_key}"},
                timeout=10,
            )

        between = (
            "EventTime between (datetime(2026-11-01T00:00:00Z) .. datetime(2026-11-01T23:59:59.9999999Z))"
        )
        assert len(preview(f"Events | where {between}").json()["items"]) == 1000
        two = preview(f"Events | where {between} and EventType == 'search' | take 2").json()["items"]
        assert len(two) == 2 and all(item["EventType"] == "search" for item in two)
        assert preview("Events | take 3").status_code == 400


def test_delete_then_unknown_and_gone_from_listing(sandbox: ProfileStoreSandbox) -> None:
    target = next(event for event in sandbox.events_on(DAY) if event["TrackId"])
    url = f"{sandbox.url}/api/v2.0/TrackEvents/{target['Scope']}/{target['TrackId']}"
    headers = {"Authorization": f"epi-single {sandbox.api_key}"}
    assert requests.delete(url, headers=headers, timeout=10).status_code == 200
    assert requests.delete(url, headers=headers, timeout=10).status_code == 404
    assert get(sandbox, **{"$top": "999"}).json()["total"] == 699
    assert target not in sandbox.events_on(DAY)


def test_injected_faults(sandbox: ProfileStoreSandbox) -> None:
    sandbox.fail_next(429, retry_after=3)
    sandbox.fail_next(500)
    throttled = get(sandbox)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert get(sandbox).status_code == 500
    assert get(sandbox).status_code == 200
