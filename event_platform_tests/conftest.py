"""Fixtures every test module shares: the vendors' real samples, a small world, lakes on disk and S3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from event_platform.lake.io_manager import LakeResource
from event_platform.sandbox.world import World

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
STARTED_FIRST = ("browser/test_ui.py", "deploy/test_backfill.py")
"""The slowest modules, five to eight minutes each, most of it waiting on dagster-daemon (its backfill
loop looks every 30 s, and each stage of a backfill waits for the next look). First in the order, so
that with `pytest -n` (a file per worker) each starts at once on a worker of its own while another
worker runs the rest, instead of last, when everything else would wait for them."""
TEST_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """STARTED_FIRST's tests first, everything else in the order pytest collected it."""

    def started_later(item: pytest.Item) -> bool:
        path = item.path
        return not (path.is_relative_to(TESTS) and path.relative_to(TESTS).as_posix() in STARTED_FIRST)

    items.sort(key=started_later)


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
    """An S3 endpoint on 127.0.0.1 (moto's server, a real HTTP peer in its own process): its URL.

    Its own process, because delta-rs holds the GIL through some of its S3 calls: a server thread of
    this process would then never answer them."""
    saved = {name: os.environ.get(name) for name in TEST_AWS_ENVIRONMENT}
    os.environ.update(TEST_AWS_ENVIRONMENT)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _wait_until_listening(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto_server exited with {server.returncode} before it listened on {url}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto_server did not listen on {url} within {timeout:.0f} s")


@pytest.fixture
def s3_bucket(moto_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the moto server for one test."""
    name = f"lake-{abs(hash(request.node.nodeid)) % 10**10}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_lake_resource(moto_server: str, s3_bucket: str) -> LakeResource:
    return LakeResource(root=f"s3://{s3_bucket}/lake", s3_endpoint_url=moto_server)
