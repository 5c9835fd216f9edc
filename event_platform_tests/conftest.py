"""Fixtures every test module shares: the vendors' real samples, a small world, lakes on disk and S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from event_platform.lake.io_manager import LakeResource
from event_platform.sandbox.world import World

REPO = Path(__file__).resolve().parents[1]
TEST_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def table_records(value: object) -> list[dict[str, object]]:
    """The rows of a table metadata value (`dagster.MetadataValue.table`), as dicts."""
    return [record.data for record in value.records]  # type: ignore[attr-defined]


def table_counts(value: object) -> dict[object, object]:
    """A two-column breakdown table (`event_platform.metadata.counts`) as {label: count}."""
    return {row[0]: row[1] for row in (tuple(record.values()) for record in table_records(value))}


@pytest.fixture(scope="session")
def vendor_samples() -> Path:
    """The real export files and events in ../shared beside the repo, used as they are."""
    path = REPO.parent / "shared" / "fixtures" / "vendor-samples"
    if not path.is_dir():
        pytest.fail(f"The vendors' samples are missing: expected them at {path}")
    return path


@pytest.fixture(scope="session")
def world() -> World:
    return World(people_count=300)


@pytest.fixture
def lake_resource(tmp_path: Path) -> LakeResource:
    return LakeResource(root=str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """An S3 endpoint on 127.0.0.1 (moto's server, a real HTTP peer): its URL."""
    saved = {name: os.environ.get(name) for name in TEST_AWS_ENVIRONMENT}
    os.environ.update(TEST_AWS_ENVIRONMENT)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(moto_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the moto server for one test."""
    name = f"lake-{abs(hash(request.node.nodeid)) % 10**10}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_lake_resource(moto_server: str, s3_bucket: str) -> LakeResource:
    return LakeResource(root=f"s3://{s3_bucket}/lake", s3_endpoint_url=moto_server)
