"""The E3 client: the Authentication API (responses), credential refresh and the S3 layout (sandbox)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses
from botocore.response import StreamingBody
from botocore.stub import Stubber

from event_platform.retry import NO_WAIT, RetriesExhaustedError
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sources.optimizely.client import (
    DEFAULT_AUTH_URL,
    CredentialsApi,
    E3AuthError,
    E3Client,
    E3Error,
    E3Location,
    E3Object,
    parse_duration,
)
from event_platform.sources.optimizely.schema import E3_TYPES
from event_platform_tests.sources.optimizely.conftest import SAMPLE_DAY, FakeClock

TOKEN = "pat-2f7c1d-very-secret"
DAY = dt.date(2026, 11, 1)


def credentials_body(s3_path: str = "s3://optimizely-events-data/v1/account_id=123/") -> dict[str, Any]:
    return {
        "credentials": {
            "accessKeyId": "ASIAEXAMPLE",
            "secretAccessKey": "secret-key-value",
            "sessionToken": "session-token-value",
            "expiration": 1_795_000_000_000,
        },
        "s3Path": s3_path,
    }


@responses.activate
@pytest.mark.parametrize(
    "s3_path",
    ["s3://optimizely-events-data/v1/account_id=123", "s3://optimizely-events-data/v1/account_id=123/"],
)
def test_credentials_are_parsed_and_the_s3_path_normalised(s3_path: str) -> None:
    route = responses.get(DEFAULT_AUTH_URL, json=credentials_body(s3_path))

    issued = CredentialsApi(TOKEN, duration="30m", backoff=NO_WAIT).fetch()

    assert issued.location == E3Location("optimizely-events-data", "v1/account_id=123")
    assert issued.location.s3_path == "s3://optimizely-events-data/v1/account_id=123"
    assert issued.credentials.expiration == dt.datetime(2026, 11, 18, 11, 6, 40, tzinfo=dt.UTC)
    request = route.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.url.endswith("?duration=30m")


@responses.activate
@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, "401: no API token reached it"), (403, "403: the API token was refused")],
)
def test_401_and_403_say_what_is_wrong_and_never_show_the_token(status: int, expected: str) -> None:
    responses.get(DEFAULT_AUTH_URL, status=status, json={"message": f"bad token {TOKEN}"})
    api = CredentialsApi(TOKEN, backoff=NO_WAIT)

    with pytest.raises(E3AuthError) as raised:
        api.fetch()

    assert expected in str(raised.value)
    assert "OPTIMIZELY_API_TOKEN" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(api)
    assert len(responses.calls) == 1, "a refused token is not retried"


@responses.activate
def test_429_5xx_and_broken_bodies_are_retried() -> None:
    responses.get(DEFAULT_AUTH_URL, status=429, headers={"Retry-After": "0"})
    responses.get(DEFAULT_AUTH_URL, status=503)
    responses.get(DEFAULT_AUTH_URL, status=200, body="<html>proxy error</html>")
    responses.get(DEFAULT_AUTH_URL, json=credentials_body())

    issued = CredentialsApi(TOKEN, backoff=NO_WAIT).fetch()

    assert issued.credentials.access_key_id == "ASIAEXAMPLE"
    assert len(responses.calls) == 4


@responses.activate
def test_retries_end_with_an_error_that_names_the_request_not_the_token() -> None:
    responses.get(DEFAULT_AUTH_URL, status=500)

    with pytest.raises(RetriesExhaustedError) as raised:
        CredentialsApi(TOKEN, backoff=NO_WAIT).fetch()

    assert DEFAULT_AUTH_URL in str(raised.value)
    assert TOKEN not in str(raised.value)


@responses.activate
def test_credentials_and_clients_hide_their_secrets_in_repr() -> None:
    responses.get(DEFAULT_AUTH_URL, json=credentials_body())
    api = CredentialsApi(TOKEN, backoff=NO_WAIT)
    issued = api.fetch()

    shown = repr(issued) + repr(api) + repr(E3Client.from_token(api, backoff=NO_WAIT))

    assert "ASIAEXAMPLE" in shown
    for secret in (TOKEN, "secret-key-value", "session-token-value"):
        assert secret not in shown


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("30m", 1800), ("1h", 3600), ("900s", 900)])
def test_duration_accepts_15_minutes_to_an_hour(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10m", "2h", "61m", "1d", "", "soon"])
def test_duration_outside_15m_to_1h_is_refused_before_any_request(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        CredentialsApi(TOKEN, duration=text)


def test_credentials_are_refreshed_before_they_expire_during_a_long_load(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, clock: FakeClock, tmp_path: Path
) -> None:
    """A load that outlives three sets of one-minute credentials finishes, each part signed with live keys."""
    e3_sandbox.publish_day(DAY)
    signed_with: list[str] = []

    def record_access_key(request: Any, **_: Any) -> None:
        signed_with.append(request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0])

    e3_client.s3.meta.events.register("before-send.s3", record_access_key)
    listing = e3_client.list_day(E3_TYPES["events"], DAY)
    for number, part in enumerate(listing.parts[:6]):
        e3_client.download(part, tmp_path / f"{number}.parquet")
        clock.advance(25)  # 150 s in all: well past the first and second credentials' 60 s

    assert e3_sandbox.issued_access_keys[:3] == [
        "ASIASANDBOX000000001",
        "ASIASANDBOX000000002",
        "ASIASANDBOX000000003",
    ]
    assert signed_with[0] == "ASIASANDBOX000000001"
    assert signed_with[-1] == e3_sandbox.issued_access_keys[-1] != signed_with[0]
    assert all(
        (tmp_path / f"{n}.parquet").stat().st_size == part.size for n, part in enumerate(listing.parts[:6])
    )


def test_without_a_refresh_the_load_would_fail_half_way(
    e3_sandbox: OptimizelySandbox, clock: FakeClock, tmp_path: Path
) -> None:
    """The control for the test above: the sandbox refuses expired keys, as S3 does."""
    e3_sandbox.publish_day(DAY)
    issued = CredentialsApi(e3_sandbox.token, auth_url=e3_sandbox.auth_url, backoff=NO_WAIT).fetch()
    static = boto3.client(
        "s3",
        endpoint_url=e3_sandbox.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=issued.credentials.access_key_id,
        aws_secret_access_key=issued.credentials.secret_access_key,
        aws_session_token=issued.credentials.session_token,
    )
    client = E3Client(issued.location, static, backoff=NO_WAIT)
    part = client.list_day(E3_TYPES["decisions"], DAY).parts[0]
    clock.advance(61)

    with pytest.raises(E3AuthError, match="ExpiredToken"):
        client.download(part, tmp_path / "late.parquet")


def test_listing_a_date_finds_folders_parts_and_the_success_marker(
    e3_sandbox: OptimizelySandbox, e3_client: E3Client, tmp_path: Path
) -> None:
    e3_sandbox.publish_day(DAY)
    e3_sandbox.publish_day(DAY + dt.timedelta(days=1), success_marker=False)
    decisions, events = E3_TYPES["decisions"], E3_TYPES["events"]

    assert e3_client.list_dates(decisions) == [DAY, DAY + dt.timedelta(days=1)]
    assert e3_client.list_folders(decisions, DAY) == [
        f"experiment={e.id}" for e in e3_sandbox.world.experiments
    ]
    assert {"event=purchase", "event=enroll", "event=homepage_view"} <= set(
        e3_client.list_folders(events, DAY)
    )
    listing = e3_client.list_day(events, DAY)
    assert listing.has_success
    assert not e3_client.list_day(events, DAY + dt.timedelta(days=1)).has_success
    assert all(
        part.relative_path.startswith("event=") and part.relative_path.endswith(".c000.snappy.parquet")
        for part in listing.parts
    )
    part = listing.parts[0]
    written = e3_client.download(part, tmp_path / "part.parquet")
    key = f"type=events/date={DAY}/{part.relative_path}"
    assert (tmp_path / "part.parquet").read_bytes() == e3_sandbox.read_object(key)
    assert written == part.size


def test_plain_aws_credentials_with_an_account_id(
    e3_sandbox: OptimizelySandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPLAIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plain-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    e3_sandbox.publish_day(DAY)

    client = E3Client.connect(
        token=None,
        account_id=e3_sandbox.world.account_id,
        bucket=e3_sandbox.bucket,
        s3_endpoint_url=e3_sandbox.s3_endpoint_url,
    )

    assert client.location.s3_path == f"s3://{e3_sandbox.bucket}/v1/account_id={e3_sandbox.world.account_id}"
    assert client.list_dates(E3_TYPES["decisions"]) == [DAY]


def test_no_token_and_no_account_id_is_a_clear_error() -> None:
    with pytest.raises(E3Error, match=r"OPTIMIZELY_API_TOKEN.*OPTIMIZELY_ACCOUNT_ID"):
        E3Client.connect(token=None, account_id=None)


def test_s3_throttling_and_5xx_are_retried_through_the_shared_helper(e3_client: E3Client) -> None:
    with Stubber(e3_client.s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
        stub.add_client_error("list_objects_v2", service_error_code="InternalError", http_status_code=500)
        prefix = e3_client.location.type_prefix(E3_TYPES["decisions"])
        stub.add_response("list_objects_v2", {"CommonPrefixes": [{"Prefix": f"{prefix}date={DAY}/"}]})

        assert e3_client.list_dates(E3_TYPES["decisions"]) == [DAY]


def test_a_short_download_is_retried_then_reported(e3_client: E3Client, tmp_path: Path) -> None:
    part = E3Object(
        key="v1/account_id=1/type=events/date=2026-11-01/event=a/part-0.parquet",
        relative_path="event=a/part-0.parquet",
        size=10,
        etag="x",
    )
    with Stubber(e3_client.s3) as stub:
        for _ in range(NO_WAIT.attempts):
            stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"PAR1"), 4)})
        with pytest.raises(RetriesExhaustedError, match="short read"):
            e3_client.download(part, tmp_path / "part.parquet")


def test_access_denied_names_the_fix(e3_client: E3Client) -> None:
    with Stubber(e3_client.s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(E3AuthError, match="expired or do not cover this account"):
            e3_client.list_day(E3_TYPES["decisions"], SAMPLE_DAY)
