"""The sandbox's Optimizely REST API: what a real account's metadata endpoints answer, with paging, a
forbidden project, the Flags API's cursor, and faults on request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.world import World, optimizely_event_id

WEB, APP, FORBIDDEN = "21000000001", "21000000002", "21000000003"


@pytest.fixture(scope="module")
def sandbox(world: World) -> Iterator[OptimizelySandbox]:
    with OptimizelySandbox(world, bucket=f"rest-{uuid.uuid4().hex[:12]}") as box:
        yield box


def get(sandbox: OptimizelySandbox, path: str, token: str | None = "", **params: object) -> requests.Response:
    token = sandbox.token if token == "" else token
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{sandbox.rest_url}{path}", params=params, headers=headers, timeout=10)


def test_auth_answers_401_without_a_token_and_403_for_a_wrong_one(sandbox: OptimizelySandbox) -> None:
    assert get(sandbox, "/v2/projects", token=None).status_code == 401
    refused = get(sandbox, "/v2/projects", token="wrong")
    assert (refused.status_code, refused.json()["message"]) == (403, "Authentication Failed")
    problem = get(sandbox, f"/flags/v1/projects/{APP}/rules", token=None)
    assert problem.status_code == 401 and problem.headers["content-type"] == "application/problem+json"


def test_v2_lists_page_with_link_headers_and_cap_per_page(sandbox: OptimizelySandbox) -> None:
    first = get(sandbox, "/v2/events", project_id=WEB, per_page=4)
    assert len(first.json()) == 4 and "next" in first.links
    second = requests.get(
        first.links["next"]["url"], headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=10
    )
    assert len(second.json()) == 3 and "next" not in second.links
    assert len(get(sandbox, "/v2/events", project_id=WEB, per_page=500).json()) == 7  # capped at 100
    assert get(sandbox, "/v2/events", project_id=WEB, per_page=0).status_code == 400


def test_experiments_carry_names_planned_weights_and_ordered_metrics(sandbox: OptimizelySandbox) -> None:
    experiments = {e["name"]: e for e in get(sandbox, "/v2/experiments", project_id=WEB).json()}
    assert set(experiments) == {
        "checkout_button_colour",
        "pricing_banner",
        "lesson_reminders",
        "footer_copy_aa",
    }
    pricing = experiments["pricing_banner"]
    assert [(v["name"], v["weight"]) for v in pricing["variations"]] == [
        ("control", 5000),
        ("annual_first", 5000),
    ]
    assert "Planted fault" in pricing["description"]
    checkout = get(sandbox, "/v2/experiments/9300000001").json()
    assert checkout["metrics"][0] == {
        "aggregator": "unique",
        "scope": "visitor",
        "winning_direction": "increasing",
        "event_id": int(optimizely_event_id("purchase")),
    }
    # The event ids are 16-digit int64s in the JSON text, the E3 entity_ids.
    raw = get(sandbox, "/v2/events", project_id=WEB).text
    assert f'"id":{optimizely_event_id("purchase")}' in raw.replace(" ", "")


def test_a_forbidden_project_and_unknown_ids(sandbox: OptimizelySandbox) -> None:
    assert get(sandbox, f"/v2/projects/{FORBIDDEN}").status_code == 403
    assert get(sandbox, "/v2/experiments", project_id=FORBIDDEN).status_code == 403
    assert get(sandbox, "/v2/experiments/1").status_code == 404
    assert get(sandbox, "/v2/experiments").status_code == 400
    # Feature Experimentation experiments are rules of the Flags API, not v2 experiments.
    assert get(sandbox, "/v2/experiments/9300000002").status_code == 404


def test_flags_api_rules_page_by_cursor(sandbox: OptimizelySandbox) -> None:
    first = get(sandbox, f"/flags/v1/projects/{APP}/rules", per_page=1).json()
    assert (first["total_count"], first["total_pages"], len(first["items"])) == (2, 2, 1)
    assert first["items"][0]["layer_experiment_id"] == 9300000002
    assert first["items"][0]["variations"]["video_first"]["percentage_included"] == 3333
    second = requests.get(
        f"{sandbox.rest_url}/flags/v1{first['next_url']}",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        timeout=10,
    ).json()
    assert second["items"][0]["type"] == "targeted_delivery" and "next_url" not in second
    rule = get(sandbox, f"/flags/v1/projects/{APP}/rules/9300000002").json()
    assert rule["baseline_variation_id"] == 9300002001
    assert get(sandbox, f"/flags/v1/projects/{APP}/rules", page_token="forged").status_code == 400


def test_faults_answer_429_with_retry_after_then_500(sandbox: OptimizelySandbox) -> None:
    sandbox.rest.faults.throttle, sandbox.rest.faults.server_errors = 1, 1
    throttled = get(sandbox, "/v2/projects")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert get(sandbox, "/v2/projects").status_code == 500
    assert get(sandbox, "/v2/projects").status_code == 200
