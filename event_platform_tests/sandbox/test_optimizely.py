"""The Optimizely sandbox: the Authentication API, and E3 data drawn from the world as E3 writes it."""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from collections.abc import Iterator

import boto3
import pyarrow.parquet as pq
import pytest
import requests
from botocore.exceptions import ClientError

from event_platform.sandbox.optimizely import OptimizelySandbox, generate_day
from event_platform.sandbox.world import World
from event_platform.sources.optimizely.schema import CONVERSIONS, DECISIONS

DAY = dt.date(2026, 11, 1)
SPARK_PART = re.compile(
    r"part-\d{5}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.c000\.snappy\.parquet"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(world: World, clock: Clock) -> Iterator[OptimizelySandbox]:
    with OptimizelySandbox(
        world, bucket=f"e3-{uuid.uuid4().hex[:12]}", clock=clock, credential_seconds=60
    ) as box:
        yield box


def get_credentials(sandbox: OptimizelySandbox, token: str | None, duration: str = "1h") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(sandbox.auth_url, params={"duration": duration}, headers=headers, timeout=10)


def test_environment_points_the_platform_at_the_sandbox(sandbox: OptimizelySandbox) -> None:
    assert sandbox.environment() == {
        "OPTIMIZELY_API_TOKEN": sandbox.token,
        "OPTIMIZELY_AUTH_URL": sandbox.auth_url,
        "OPTIMIZELY_S3_ENDPOINT_URL": sandbox.s3_endpoint_url,
        "OPTIMIZELY_REST_URL": sandbox.rest_url,
        "OPTIMIZELY_REST_REQUESTS_PER_SECOND": "20",
    }
    assert sandbox.auth_url.startswith("http://127.0.0.1:") and sandbox.auth_url.endswith(
        "/v2/export/credentials"
    )
    assert sandbox.s3_endpoint_url.startswith("http://127.0.0.1:")


def test_the_authentication_api_answers_like_optimizelys(sandbox: OptimizelySandbox, clock: Clock) -> None:
    assert get_credentials(sandbox, None).status_code == 401
    assert get_credentials(sandbox, "").status_code == 401
    assert get_credentials(sandbox, "wrong").status_code == 403
    assert get_credentials(sandbox, sandbox.token, "2h").status_code == 400

    first, second = (
        get_credentials(sandbox, sandbox.token).json(),
        get_credentials(sandbox, sandbox.token).json(),
    )

    assert set(first["credentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}
    assert first["credentials"]["expiration"] == int((clock.now + 60) * 1000), "the configured short expiry"
    assert first["credentials"]["accessKeyId"] != second["credentials"]["accessKeyId"]
    assert {first["s3Path"], second["s3Path"]} == {
        f"s3://{sandbox.bucket}/v1/account_id={sandbox.world.account_id}",
        f"s3://{sandbox.bucket}/v1/account_id={sandbox.world.account_id}/",
    }, "the trailing slash varies, as the real API's does"


def test_s3_refuses_issued_keys_once_expired(sandbox: OptimizelySandbox, clock: Clock) -> None:
    sandbox.publish_day(DAY)
    credentials = get_credentials(sandbox, sandbox.token).json()["credentials"]
    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
    )
    assert s3.list_objects_v2(Bucket=sandbox.bucket)["KeyCount"] > 0
    clock.now += 60

    with pytest.raises(ClientError, match="ExpiredToken"):
        s3.list_objects_v2(Bucket=sandbox.bucket)


def test_a_published_day_has_e3s_layout_schema_markers_and_case_duplicates(
    sandbox: OptimizelySandbox,
) -> None:
    counts = sandbox.publish_day(DAY)
    keys = sandbox.keys()

    assert f"type=decisions/date={DAY}/_SUCCESS" in keys and f"type=events/date={DAY}/_SUCCESS" in keys
    parts = [key for key in keys if key.endswith(".parquet")]
    assert all(SPARK_PART.fullmatch(key.rsplit("/", 1)[1]) for key in parts)
    experiments = {f"experiment={e.id}" for e in sandbox.world.experiments}
    assert {key.split("/")[2] for key in parts if key.startswith("type=decisions/")} == experiments
    tables = {key: pq.read_table(io.BytesIO(sandbox.read_object(key))) for key in parts}
    for key, table in tables.items():
        expected = DECISIONS if key.startswith("type=decisions/") else CONVERSIONS
        assert table.schema.equals(expected), key
    uuids = [u for table in tables.values() for u in table["uuid"].to_pylist()]
    assert len(uuids) == counts["decisions"] + counts["events"]
    assert len({u.lower() for u in uuids}) == len(uuids) - counts["duplicates"] and counts["duplicates"] > 0
    assert any(u != u.lower() for u in uuids), "duplicates differ from their original in case"


def test_days_are_deterministic_and_follow_the_world(world: World) -> None:
    decisions, conversions = generate_day(world, DAY)

    assert (decisions, conversions) == generate_day(world, DAY)
    assert decisions != generate_day(world, DAY + dt.timedelta(days=1))[0]
    active = {person.user_id: person for person in world.active_people(DAY)}
    by_id = {experiment.id: experiment for experiment in world.experiments}
    for folder, rows in decisions.items():
        experiment = by_id[folder.removeprefix("experiment=")]
        met = {user_id for user_id, person in active.items() if world.meets(experiment, person, DAY)}
        assert {row["visitor_id"] for row in rows} == met
        assert experiment.exposure_share == 1.0 or len(met) < len(active)
        for row in rows:
            assert row["variation_id"] == world.assign(experiment, active[row["visitor_id"]]).id
            assert row["process_timestamp"].date() == DAY and row["session_id"] is None
    assert {
        "event=homepage_view",
        "event=detail_page_view",
        "event=purchase",
        "event=enroll",
        "event=lesson_complete",
    } <= set(conversions)
    revenues = {row["revenue"] for row in conversions["event=purchase"]}
    assert revenues <= {
        v.revenue_cents for e in world.experiments for v in e.variations if e.metric_event == "purchase"
    }
    assert all(row["experiments"] is None for rows in conversions.values() for row in rows)


def test_before_2023_10_09_sessions_and_experiments_are_filled() -> None:
    world = World(people_count=200, start=dt.date(2023, 1, 1))

    decisions, conversions = generate_day(world, dt.date(2023, 6, 1))

    assert all(row["session_id"] is not None for rows in decisions.values() for row in rows)
    assert all(row["experiments"] for rows in conversions.values() for row in rows)


def test_the_planted_conversion_rates_and_sample_ratio_mismatch_come_through() -> None:
    world = World(people_count=8_000)
    exposed: dict[str, int] = {}
    converted: dict[str, int] = {}
    decisions, conversions = generate_day(world, DAY)
    for rows in decisions.values():
        for row in rows:
            exposed[row["variation_id"]] = exposed.get(row["variation_id"], 0) + 1
    enrolled = {row["visitor_id"] for row in conversions["event=enroll"]}
    layout = next(e for e in world.experiments if e.metric_event == "enroll")
    for row in decisions[f"experiment={layout.id}"]:
        if row["visitor_id"] in enrolled:
            converted[row["variation_id"]] = converted.get(row["variation_id"], 0) + 1

    for variation in layout.variations:
        assert converted[variation.id] / exposed[variation.id] == pytest.approx(
            variation.conversion_rate, abs=0.03
        )
    pricing = next(e for e in world.experiments if e.sample_ratio_mismatch)
    control_share = exposed[pricing.control.id] / sum(exposed[v.id] for v in pricing.variations)
    assert control_share == pytest.approx(0.56, abs=0.03)
