"""Fixtures of the Optimizely tests: a sandbox with a controllable clock, a client, the real samples on S3."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_platform.retry import NO_WAIT
from event_platform.sandbox.optimizely import OptimizelySandbox
from event_platform.sandbox.world import World
from event_platform.sources.optimizely.client import CredentialsApi, E3Client

SAMPLE_DAY = dt.date(2020, 9, 14)
SPARK_EXAMPLE_DAY = dt.date(2020, 9, 15)


class FakeClock:
    """Wall-clock time that a test moves forward; shared by the sandbox and the client."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def running_e3_sandbox(world: World) -> Iterator[OptimizelySandbox]:
    # moto keeps buckets process-wide: this session's bucket is its own.
    with OptimizelySandbox(world, bucket=f"e3-{uuid.uuid4().hex[:12]}") as sandbox:
        yield sandbox


@pytest.fixture
def e3_sandbox(running_e3_sandbox: OptimizelySandbox, clock: FakeClock) -> OptimizelySandbox:
    """The session's sandbox, emptied for each test and running on the test's clock."""
    running_e3_sandbox.reset(clock=clock.timestamp)
    return running_e3_sandbox


@pytest.fixture
def e3_client(e3_sandbox: OptimizelySandbox, clock: FakeClock) -> E3Client:
    api = CredentialsApi(e3_sandbox.token, auth_url=e3_sandbox.auth_url, backoff=NO_WAIT)
    return E3Client.from_token(api, s3_endpoint_url=e3_sandbox.s3_endpoint_url, clock=clock, backoff=NO_WAIT)


@pytest.fixture
def samples_on_s3(e3_sandbox: OptimizelySandbox, vendor_samples: Path) -> dict[str, Path]:
    """The real E3 files in the sandbox bucket, as E3 lays them out; name below the account -> sample file.

    covid_test_data keeps its own tree (one date, `_SUCCESS`); spark_example's bare parts go into one
    folder of the next date.
    """
    placed: dict[str, Path] = {}
    covid = vendor_samples / "optimizely" / "covid_test_data"
    for path in sorted(covid.rglob("*")):
        if path.is_file():
            placed[path.relative_to(covid).as_posix()] = path
    spark = vendor_samples / "optimizely" / "spark_example"
    for type_name, folder in (("decisions", "experiment=spark_example"), ("events", "event=spark_example")):
        for path in sorted((spark / f"type={type_name}").glob("*.parquet")):
            placed[f"type={type_name}/date={SPARK_EXAMPLE_DAY}/{folder}/{path.name}"] = path
    for name, path in placed.items():
        e3_sandbox.put_object(name, path.read_bytes())
    return placed
