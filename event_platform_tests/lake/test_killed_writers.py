"""Writers killed with SIGKILL leave nothing that breaks readers of the raw layout (issue 17, item 8).

Typed tables are Delta tables; a killed Delta writer is tested in `test_delta.py`."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pytest
import requests

from event_platform import scratch
from event_platform.lake import publish
from event_platform.lake.filesystem import Lake
from event_platform.lake.layout import STAGING_ROOT
from event_platform.sources.tracking import landed

RAW = "raw/amplitude/date=2026-11-01"
MEMBER = "374182/374182_2026-11-01_0#0.json.gz"
LINES = b"".join(b'{"uuid": "%d"}\n' % n for n in range(100))

KILLED_WRITER = """
import gzip, sys, time
from event_platform.lake.filesystem import Lake
lake = Lake.from_uri(sys.argv[1])
with lake.write_partition(sys.argv[2]) as partition, partition.open(sys.argv[3]) as stream:
    data = gzip.compress(b"".join(b'{"uuid": "%d"}\\n' % n for n in range(100)))
    stream.write(data[: len(data) // 2])
    print("writing", flush=True)
    time.sleep(120)
"""


def kill_mid_write(lake_root: Path, partition: str, name: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(lake_root), partition, name],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)


def test_a_killed_landing_leaves_the_partition_readable_by_any_engine(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = Lake.from_uri(str(root))
    with lake.write_partition(RAW) as partition, partition.open(MEMBER) as stream:
        stream.write(gzip.compress(LINES))
    committed = sorted(lake.list_files(RAW))

    kill_mid_write(root, RAW, MEMBER)

    assert sorted(lake.list_files(RAW)) == committed
    glob = str(root / "raw/amplitude/*/*/*.json.gz")
    assert duckdb.sql(f"SELECT count(*) FROM read_json('{glob}', format='newline_delimited')").fetchall() == [
        (100,)
    ]

    # The killed writer's half file waits under _staging, outside every table, until they are old.
    assert lake.list_files(STAGING_ROOT)
    publish.STRAY_AGE, kept_for = publish.dt.timedelta(seconds=-60), publish.STRAY_AGE
    try:
        with lake.write_partition(RAW) as partition, partition.open("again.txt") as stream:
            stream.write(b"x")
    finally:
        publish.STRAY_AGE = kept_for
    assert lake.list_files(STAGING_ROOT) == []


def test_a_killed_collector_loses_no_acknowledged_event_and_leaves_no_half_file(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "EVENT_PLATFORM_LAKE": str(root), "TRACKING_FLUSH_AGE_SECONDS": "0.01"}
    collector = subprocess.Popen(
        [sys.executable, "-m", "event_platform.cli", "tracking", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/tracking"
    headers = {"Content-Type": "application/json", "X-Anon-Username": "learner-000001"}
    acknowledged: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        started = time.monotonic()
        while time.monotonic() - started < 3:
            event_uuid = str(uuid.uuid4())
            body = {
                "uuid": event_uuid,
                "event_type": "kinesinlms.course.home.page_view",
                "event_data": {"page": "p"},
            }
            if requests.post(url, json=body, headers=headers, timeout=10).status_code == 201:
                acknowledged.append(event_uuid)
    finally:
        collector.send_signal(signal.SIGKILL)
        collector.wait(30)

    lake = Lake.from_uri(str(root))
    days = [path.name.removeprefix("date=") for path in (root / "raw/tracking").iterdir()]
    landed_uuids = [
        json.loads(line)["uuid"]
        for day in days
        for relative in landed.landed_files(lake, day)
        for line in gzip.decompress(lake.read_bytes(relative)).splitlines()
    ]
    assert acknowledged and set(acknowledged) <= set(landed_uuids)
    # Only whole files reach the partition (a glob reads them all); half-written ones stay in staging.
    for data_file in (root / "raw/tracking").rglob("*.ndjson.gz"):
        gzip.decompress(data_file.read_bytes())
    glob = str(root / "raw/tracking/*/*.ndjson.gz")
    [(rows,)] = duckdb.sql(f"SELECT count(*) FROM read_json('{glob}', format='newline_delimited')").fetchall()
    assert rows >= len(acknowledged)


def test_scratch_directories_of_dead_processes_go_at_the_next_start(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    orphan = tmp_path / f"{scratch.PREFIX}amplitude-events-2026-11-01-{dead.stdout.strip()}-abc123"
    orphan.mkdir()
    (orphan / "typed.arrow").write_bytes(b"742 MB, once")
    with scratch.scratch_dir("tracking-events", tmp_path) as mine:
        assert mine.name.startswith(f"{scratch.PREFIX}tracking-events-{os.getpid()}-")
        assert not orphan.exists()
        assert mine.exists()
    assert not mine.exists()


@pytest.mark.parametrize("name", ["event-platform-x-1-a", "event-platform-not-a-pid-a"])
def test_a_live_process_keeps_its_scratch(tmp_path: Path, name: str) -> None:
    live = tmp_path / name.replace("-1-", f"-{os.getpid()}-")
    live.mkdir()
    scratch.remove_orphans(tmp_path)
    assert live.exists()


def test_the_local_instance_ends_runs_whose_process_died(tmp_path: Path) -> None:
    """The default run launcher cannot see a dead worker; run monitoring ends such runs after
    max_runtime_seconds instead of leaving them STARTED."""
    from dagster import DagsterInstance

    (tmp_path / "dagster.yaml").write_text((Path(__file__).parents[2] / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert 0 < instance.run_monitoring_max_runtime_seconds <= 24 * 3600
        assert instance.run_monitoring_start_timeout_seconds > 0
