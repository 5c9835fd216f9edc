"""The REST client for experiment metadata against `responses`: auth, every error status, both paging
styles, retries with Retry-After, throttling, and ids that must not pass through a float."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import responses

from event_platform.retry import NO_WAIT, RetriesExhaustedError
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform.sources.optimizely.experiments import read_snapshot
from event_platform.sources.optimizely.rest_client import (
    DEFAULT_REST_URL,
    NotFoundError,
    OptimizelyAuthError,
    OptimizelyRestClient,
    OptimizelyRestError,
    Throttle,
    as_id,
)
from event_platform.sources.optimizely.settings import OptimizelySettings

TOKEN = "pat-7c1d-rest-very-secret"
BASE = DEFAULT_REST_URL
BIG_ID = 9_100_649_732_601_953
"""Above 2**53: a float would turn it into ...952."""


def client(per_page: int = 2, sleeps: list[float] | None = None) -> OptimizelyRestClient:
    recorded = sleeps if sleeps is not None else []
    return OptimizelyRestClient(
        TOKEN,
        per_page=per_page,
        backoff=NO_WAIT,
        sleep=recorded.append,
        throttle=Throttle(1000.0, sleep=recorded.append),
    )


def of_project(project_id: str) -> Any:
    return responses.matchers.query_param_matcher({"project_id": project_id}, strict_match=False)


def raw_json(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": status, "body": body, "content_type": "application/json", "headers": headers or {}}


@responses.activate
def test_link_headers_are_followed_and_ids_stay_exact_digit_strings() -> None:
    second = f"{BASE}/v2/events?project_id=1&page=2&per_page=2"
    # Written as raw JSON so the 16-digit id is exactly what Optimizely sends.
    responses.get(
        f"{BASE}/v2/events",
        match=[responses.matchers.query_param_matcher({"project_id": "1", "page": "1", "per_page": "2"})],
        **raw_json(
            200,
            f'[{{"id": {BIG_ID}, "key": "purchase"}}, {{"id": 2, "key": "b"}}]',
            {"Link": f'<{second}>; rel="next"'},
        ),
    )
    responses.get(second, **raw_json(200, '[{"id": 3, "key": "c"}]'))

    events = client().events("1")

    assert [as_id(event["id"]) for event in events] == [str(BIG_ID), "2", "3"]
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(responses.calls) == 2


@responses.activate
def test_without_link_headers_a_short_page_ends_the_list() -> None:
    pages = {"1": [{"id": 1}, {"id": 2}], "2": [{"id": 3}]}
    for page, items in pages.items():
        responses.get(
            f"{BASE}/v2/experiments",
            match=[
                responses.matchers.query_param_matcher({"project_id": "7", "page": page, "per_page": "2"})
            ],
            json=items,
        )

    assert [e["id"] for e in client().experiments("7")] == [1, 2, 3]
    assert len(responses.calls) == 2


@responses.activate
def test_without_link_headers_an_empty_page_ends_a_list_of_full_pages() -> None:
    for page, items in {"1": [{"id": 1}, {"id": 2}], "2": []}.items():
        responses.get(
            f"{BASE}/v2/projects",
            match=[responses.matchers.query_param_matcher({"page": page, "per_page": "2"})],
            json=items,
        )

    assert [p["id"] for p in client().projects()] == [1, 2]
    assert len(responses.calls) == 2


@responses.activate
def test_flags_api_rules_page_by_cursor_until_no_next_url() -> None:
    url = f"{BASE}/flags/v1/projects/5/rules"
    responses.get(
        url,
        match=[responses.matchers.query_param_matcher({"per_page": "2"})],
        json={"items": [{"key": "a"}, {"key": "b"}], "page": 1, "total_pages": 2,
              "next_url": "/projects/5/rules?page_token=abc&per_page=2"},
    )  # fmt: skip
    responses.get(
        url,
        match=[responses.matchers.query_param_matcher({"page_token": "abc", "per_page": "2"})],
        json={"items": [{"key": "c"}], "page": 2, "total_pages": 2},
    )

    assert [rule["key"] for rule in client().rules("5")] == ["a", "b", "c"]


@responses.activate
def test_flags_api_stops_at_the_last_page_even_when_a_next_url_is_sent() -> None:
    responses.get(
        f"{BASE}/flags/v1/projects/5/rules",
        json={"items": [{"key": "a"}, {"key": "b"}], "page": 1, "total_pages": 1,
              "next_url": "/projects/5/rules?page_token=again&per_page=2"},
    )  # fmt: skip

    assert len(client().rules("5")) == 2
    assert len(responses.calls) == 1


@responses.activate
def test_401_names_the_token_setting_and_never_shows_the_token(caplog: pytest.LogCaptureFixture) -> None:
    responses.get(f"{BASE}/v2/projects", status=401, json={"code": "UNAUTHORIZED", "message": f"no {TOKEN}"})
    rest = client()

    with caplog.at_level(logging.DEBUG), pytest.raises(OptimizelyAuthError) as raised:
        rest.projects()

    assert "401" in str(raised.value) and "OPTIMIZELY_API_TOKEN" in str(raised.value)
    assert TOKEN not in str(raised.value) + repr(rest) + caplog.text


@responses.activate
def test_403_on_the_account_is_a_refused_token() -> None:
    responses.get(
        f"{BASE}/v2/projects", status=403, json={"code": "FORBIDDEN", "message": "Authentication Failed"}
    )

    with pytest.raises(OptimizelyAuthError, match=r"token was refused.*OPTIMIZELY_API_TOKEN") as raised:
        client().projects()
    assert "Authentication Failed" in str(raised.value)


@responses.activate
def test_403_on_one_project_skips_it_and_the_others_load() -> None:
    responses.get(f"{BASE}/v2/projects", json=[{"id": 1, "name": "Web"}, {"id": 2, "name": "Finance"}])
    responses.get(f"{BASE}/v2/events", match=[of_project("1")], json=[])
    responses.get(
        f"{BASE}/v2/events",
        match=[of_project("2")],
        status=403,
        json={"code": "FORBIDDEN", "message": "You do not have access to this project."},
    )
    responses.get(
        f"{BASE}/v2/experiments",
        json=[{"id": 11, "name": "hero", "variations": [{"variation_id": 21, "name": "a", "weight": 10000}]}],
    )

    snapshot = read_snapshot(client(per_page=100))

    assert [row["experiment_id"] for row in snapshot.experiments] == ["11"]
    assert [skipped["id"] for skipped in snapshot.skipped_projects] == ["2"]
    reason = snapshot.skipped_projects[0]["reason"]
    assert "project 2" in reason and "OPTIMIZELY_PROJECT_IDS" in reason


@responses.activate
def test_configured_project_ids_read_only_those_and_a_forbidden_one_is_skipped() -> None:
    responses.get(f"{BASE}/v2/projects/1", json={"id": 1, "name": "Web"})
    responses.get(f"{BASE}/v2/projects/2", status=403, json={"code": "FORBIDDEN", "message": "no access"})
    responses.get(f"{BASE}/v2/events", json=[])
    responses.get(f"{BASE}/v2/experiments", json=[])

    snapshot = read_snapshot(client(), ["1", "2"])

    assert [project["id"] for project in snapshot.projects] == ["1"]
    assert snapshot.skipped_projects[0]["id"] == "2"


@responses.activate
def test_404_says_what_was_not_found_and_what_to_check() -> None:
    responses.get(
        f"{BASE}/v2/projects/99", status=404, json={"code": "NOT_FOUND", "message": "Project not found"}
    )
    responses.get(f"{BASE}/v2/experiments/5", status=404, json={"code": "NOT_FOUND", "message": "Not found"})
    rest = client()

    with pytest.raises(NotFoundError, match=r"project 99.*OPTIMIZELY_PROJECT_IDS"):
        rest.project("99")
    with pytest.raises(NotFoundError, match=r"experiment 5.*Check the id"):
        rest.experiment("5")


@responses.activate
def test_429_waits_at_least_retry_after_and_5xx_are_retried() -> None:
    url = f"{BASE}/v2/experiments/5"
    responses.get(url, status=429, headers={"Retry-After": "7"}, json={"message": "slow down"})
    responses.get(url, status=503, body="<html>maintenance</html>")
    responses.get(url, **raw_json(200, "<html>a proxy page</html>"))  # a 200 that is not JSON
    responses.get(url, json={"id": 5})
    sleeps: list[float] = []

    assert client(sleeps=sleeps).experiment("5") == {"id": 5}
    assert len(responses.calls) == 4
    assert 7.0 in sleeps


@responses.activate
def test_an_outage_that_outlasts_the_retries_says_so() -> None:
    responses.get(f"{BASE}/v2/projects", status=500, json={"message": "down"})

    with pytest.raises(RetriesExhaustedError, match="Optimizely REST request for the project list"):
        client().projects()


@responses.activate
def test_other_statuses_are_errors_with_the_vendors_words() -> None:
    responses.get(
        f"{BASE}/flags/v1/projects/5/rules/6",
        status=400,
        json={"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "invalid id"},
    )

    with pytest.raises(OptimizelyRestError, match=r"HTTP 400.*Bad Request; invalid id"):
        client().rule("5", "6")


def test_ids_never_pass_through_a_float() -> None:
    assert json.loads(f'{{"id": {BIG_ID}}}')["id"] == BIG_ID  # what requests' .json() gives
    assert as_id(BIG_ID) == str(BIG_ID)
    assert as_id("0042") == "0042"
    assert as_id(None) is None
    with pytest.raises(OptimizelyRestError, match="float"):
        as_id(float(BIG_ID))


def test_requests_are_spaced_to_the_configured_rate() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    throttle = Throttle(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        throttle.wait()

    assert now[0] == pytest.approx(2.0)  # five requests at 2/s: the last one 2 s after the first
    assert sleeps == pytest.approx([0.5] * 4)


def test_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPTIMIZELY_PROJECT_IDS", "OPTIMIZELY_REST_REQUESTS_PER_SECOND"):
        monkeypatch.delenv(name, raising=False)
    assert OptimizelyResource(project_ids=" 12, 34 ,").rest_project_ids() == ["12", "34"]
    assert OptimizelyResource().rest_project_ids() == []
    with pytest.raises(ValueError, match="OPTIMIZELY_PROJECT_IDS"):
        OptimizelyResource(project_ids="12,web").rest_project_ids()
    assert OptimizelySettings.read().rest_requests_per_second == 2.0
    monkeypatch.setenv("OPTIMIZELY_REST_REQUESTS_PER_SECOND", "fast")
    with pytest.raises(ValueError, match="OPTIMIZELY_REST_REQUESTS_PER_SECOND"):
        OptimizelySettings.read()
    with pytest.raises(OptimizelyAuthError, match="OPTIMIZELY_API_TOKEN"):
        OptimizelyRestClient("")
