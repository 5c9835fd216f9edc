"""Collector throughput and acknowledgement latency under a bounded load on loopback, and a full day.

    .venv/bin/python benchmarks/tracking.py [--events N] [--seconds S] [--repeats R] [--day-commits C]
                                            [--baseline CHECKOUT ...]

The collector is `python -m event_platform.cli tracking serve [--workers N]` run from the checkout
measured, with the shipped defaults (no TRACKING_* variable), landing in a lake under benchmarks/.work/:
what an operator runs, in its own processes. Each `--baseline` checkout (e.g. the commit before a
change, with the same virtualenv) is measured in the same rounds, every run of a scenario alternating
between the checkouts, because this machine drifts by a third within minutes. The generator is a
small asyncio HTTP/1.1 client over keep-alive connections; every request carries client-chosen uuids.
Each scenario stops after `--events` events or `--seconds` seconds, whichever comes first, and runs
`--repeats` times: the median is reported with every run beside it.
Afterwards the lake is read back: "landed" counts the events found in the committed files, and the run
fails if an acknowledged event is missing or stored more than once.

The full day: `--day-commits` group commits (172,800 by default: one every 0.5 s for 24 hours, the
flush rate of a busy day) are made with `landed.commit_events`, four at a time as the collector's
flushes are, into the day the collector is landing; the latency of the first and the last thousand is
reported, and 64 clients of single events are measured against the collector before the day is filled
and after, the full day's runs alternating with runs on an empty day at the same time (the control).
Results go to benchmarks/results/tracking.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from event_platform.lake.filesystem import Lake
from event_platform.sources.tracking import landed
from event_platform.sources.tracking.collector import IDENTITY_HEADER, CollectorSettings

from measure import add_baseline_option, commit_of, compile_bytecode, describe_machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "tracking"
RESULTS = HERE / "results" / "tracking.json"
HOST = "127.0.0.1"
SERVED = CollectorSettings()
"""`tracking serve`'s defaults: the flush age and early-flush rule measured are the ones shipped."""


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    concurrency: int
    events_per_request: int
    workers: int = 1
    """Collector processes (`tracking serve --workers`)."""
    large_batches: int = 0
    """Clients posting batches of about 4 MiB alongside; latencies are the other clients' only."""


SCENARIOS = (
    # Few clients: latency is the group's age limit plus one write; many: the collector's CPU is the limit.
    Scenario("client events, 64 clients", "/api/tracking", concurrency=64, events_per_request=1),
    Scenario("client events, 256 clients", "/api/tracking", concurrency=256, events_per_request=1),
    Scenario("client events, 64 clients, 2 workers", "/api/tracking", 64, 1, workers=2),
    Scenario("client events, 256 clients, 2 workers", "/api/tracking", 256, 1, workers=2),
    Scenario("Tracker batches of 500", "/api/tracking/batch", concurrency=8, events_per_request=500),
    # The probe's case: large batches parsed on the event loop held every single event behind them.
    Scenario("client events, 16 clients, 4 posting 4 MiB batches", "/api/tracking", 16, 1, large_batches=4),
)
LARGE_BATCH_EVENTS = 9_000
"""About 4 MiB of events: the collector's largest accepted batch."""
DAY_SCENARIO = SCENARIOS[0]
COMMIT_THREADS = 4
"""As many commits at once as the collector's `concurrent_flushes`."""
COMMIT_SAMPLE = 1_000


@dataclass
class Outcome:
    scenario: str
    endpoint: str
    concurrency: int
    events_per_request: int
    workers: int
    large_batch_clients: int
    requests: int
    events_acknowledged: int
    events_landed: int
    landed_files: int
    seconds: float
    events_per_second: float
    requests_per_second: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_max: float


def start_collector(source: Path, lake_root: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`tracking serve` from the checkout `source`, with no TRACKING_* setting but the lake's."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TRACKING_")}
    environment |= {"EVENT_PLATFORM_LAKE": str(lake_root), "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "event_platform.cli", "tracking", "serve", "--host", HOST]
    command += ["--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(
        command, cwd=source, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def video_event(event_uuid: str) -> dict[str, object]:
    return {
        "uuid": event_uuid,
        "event_type": "kinesinlms.course.video.activity",
        "course_slug": "intro-data",
        "course_run": "2025",
        "unit_node_slug": "intro-data-unit-3",
        "course_unit_id": 3,
        "block_uuid": "0c5d8b2e-5d29-4f5e-8f1e-7b0c1f7d9a10",
        "event_data": {"video_id": "unit-3-video", "video_event_type": "kinesinlms.course.video.play"},
    }


def request_body(scenario: Scenario, uuids: list[str]) -> bytes:
    if scenario.events_per_request == 1:
        return json.dumps(video_event(uuids[0])).encode()
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    return json.dumps(
        {
            "events": [
                {**video_event(event_uuid), "time": now, "anon_username": "learner-000042"}
                for event_uuid in uuids
            ]
        }
    ).encode()


class Load:
    """Hands out the next request's uuids until the event budget or the deadline is spent."""

    def __init__(self, events: int, seconds: float, per_request: int) -> None:
        self.remaining = events
        self.deadline = time.monotonic() + seconds
        self.per_request = per_request
        self.acknowledged: list[str] = []
        self.latencies: list[float] = []
        self.large_batch_latencies: list[float] = []

    def next_uuids(self) -> list[str] | None:
        if self.remaining <= 0 or time.monotonic() >= self.deadline:
            return None
        count = min(self.per_request, self.remaining)
        self.remaining -= count
        return [str(uuid.uuid4()) for _ in range(count)]


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> float:
    """One request over a keep-alive connection; its seconds, or RuntimeError on an error status."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"{IDENTITY_HEADER}: learner-000042\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    started = time.perf_counter()
    writer.write(head.encode() + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    answer = await reader.readexactly(length)
    if status not in (200, 201):
        raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
    return time.perf_counter() - started


async def client(port: int, scenario: Scenario, load: Load) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while (uuids := load.next_uuids()) is not None:
            load.latencies.append(await post(reader, writer, scenario.path, request_body(scenario, uuids)))
            load.acknowledged.extend(uuids)
    finally:
        writer.close()


async def large_batch_client(port: int, load: Load) -> None:
    large = Scenario("large", "/api/tracking/batch", 1, LARGE_BATCH_EVENTS)
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while load.remaining > 0 and time.monotonic() < load.deadline:
            uuids = [str(uuid.uuid4()) for _ in range(LARGE_BATCH_EVENTS)]
            load.large_batch_latencies.append(
                await post(reader, writer, large.path, request_body(large, uuids))
            )
            load.acknowledged.extend(uuids)
    finally:
        writer.close()


async def generate(port: int, scenario: Scenario, load: Load) -> None:
    await asyncio.gather(
        *(client(port, scenario, load) for _ in range(scenario.concurrency)),
        *(large_batch_client(port, load) for _ in range(scenario.large_batches)),
    )


def landed_uuids(lake: Lake, day: str) -> tuple[list[str], int]:
    files = landed.landed_files(lake, day)
    found = [
        json.loads(line)["uuid"]
        for relative in files
        for line in gzip.decompress(lake.read_bytes(relative)).splitlines()
    ]
    return found, len(files)


def percentile(values: list[float], share: float) -> float:
    return round(statistics.quantiles(values, n=1000)[int(share * 1000) - 1] * 1000, 2)


def measure(
    scenario: Scenario, events: int, seconds: float, lake_root: Path | None = None, source: Path = REPO
) -> Outcome:
    """One scenario against a fresh collector from `source`; `lake_root` keeps what an earlier run landed."""
    if lake_root is None:
        lake_root = WORK / scenario.path.strip("/").replace("/", "-")
        shutil.rmtree(lake_root, ignore_errors=True)
    day = dt.datetime.now(dt.UTC).date().isoformat()  # the collector's clock is real here
    port = free_port()
    server = start_collector(source, lake_root, port, scenario.workers)
    try:
        wait_until_listening(port)
        load = Load(events, seconds, scenario.events_per_request)
        started = time.perf_counter()
        asyncio.run(generate(port, scenario, load))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)

    found, files = landed_uuids(Lake.from_uri(str(lake_root)), day)
    counted = {event_uuid: 0 for event_uuid in load.acknowledged}
    for event_uuid in found:
        if event_uuid in counted:
            counted[event_uuid] += 1
    missing = sum(1 for count in counted.values() if count == 0)
    repeated = sum(1 for count in counted.values() if count > 1)
    if missing or repeated:
        raise SystemExit(f"{scenario.name}: {missing} acknowledged event(s) missing, {repeated} stored twice")
    return Outcome(
        scenario=scenario.name,
        endpoint=scenario.path,
        concurrency=scenario.concurrency,
        events_per_request=scenario.events_per_request,
        workers=scenario.workers,
        large_batch_clients=scenario.large_batches,
        requests=len(load.latencies),
        events_acknowledged=len(load.acknowledged),
        events_landed=len(counted),
        landed_files=files,
        seconds=round(elapsed, 3),
        events_per_second=round(len(load.acknowledged) / elapsed, 1),
        requests_per_second=round(len(load.latencies) / elapsed, 1),
        latency_ms_p50=percentile(load.latencies, 0.5),
        latency_ms_p90=percentile(load.latencies, 0.9),
        latency_ms_p99=percentile(load.latencies, 0.99),
        latency_ms_max=round(max(load.latencies) * 1000, 2),
    )


def commit_latencies(lake: Lake, day: str, count: int) -> tuple[list[float], float]:
    """Make `count` group commits of a typical group (2 KB of gzip), COMMIT_THREADS at a time; each
    commit's seconds in commit order, and the wall time of them all."""
    data = gzip.compress(b"\n".join(json.dumps(video_event(str(uuid.uuid4()))).encode() for _ in range(8)))

    def commit(_: int) -> float:
        started = time.perf_counter()
        landed.commit_events(lake, day, data, lines=8, first_received="", last_received="")
        return time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(COMMIT_THREADS) as pool:
        latencies = list(pool.map(commit, range(count), chunksize=64))
    return latencies, time.perf_counter() - started


def full_day(commits: int, events: int, seconds: float) -> dict[str, object]:
    """Acknowledgements on an empty day, `commits` group commits, then acknowledgements on the full day
    and, alternately, on an empty day of a fresh lake (the control: on a shared machine the load drifts
    more between the start and the end than any cost of the day's size could)."""
    lake_root, control_root = WORK / "full-day", WORK / "full-day-control"
    shutil.rmtree(lake_root, ignore_errors=True)
    lake = Lake.from_uri(str(lake_root))
    day = dt.datetime.now(dt.UTC).date().isoformat()
    start = measure(DAY_SCENARIO, events, seconds, lake_root)
    latencies, wall = commit_latencies(lake, day, commits)
    ends, controls = [], []
    for _ in range(2):
        ends.append(measure(DAY_SCENARIO, events, seconds, lake_root))
        shutil.rmtree(control_root, ignore_errors=True)
        controls.append(measure(DAY_SCENARIO, events, seconds, control_root))
    end = sorted(ends, key=lambda outcome: outcome.events_per_second)[0]
    control = sorted(controls, key=lambda outcome: outcome.events_per_second)[-1]
    first, last = latencies[:COMMIT_SAMPLE], latencies[-COMMIT_SAMPLE:]
    return {
        "commits": commits,
        "commit_threads": COMMIT_THREADS,
        "commits_per_second": round(commits / wall, 1),
        "commit_ms_first_1000": {"p50": percentile(first, 0.5), "p99": percentile(first, 0.99)},
        "commit_ms_last_1000": {"p50": percentile(last, 0.5), "p99": percentile(last, 0.99)},
        "acknowledgements_at_start": asdict(start),
        "acknowledgements_at_end": [asdict(outcome) for outcome in ends],
        "acknowledgements_on_an_empty_day_beside_the_end": [asdict(outcome) for outcome in controls],
        "start_over_end_events_per_second": round(start.events_per_second / end.events_per_second, 3),
        "control_over_end_events_per_second": round(control.events_per_second / end.events_per_second, 3),
        "end_over_control_p99": round(end.latency_ms_p99 / control.latency_ms_p99, 3),
        "compared": "the slower end run against the faster control run: the least favourable pairing",
    }


def wait_until_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the collector did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="event budget per scenario")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget per scenario")
    parser.add_argument("--day-commits", type=int, default=172_800, help="group commits of the full day")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (the median is reported)")
    add_baseline_option(parser)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    sources = [REPO, *(baseline.resolve() for baseline in arguments.baseline)]
    for source in sources:
        compile_bytecode(source / "event_platform")
    outcomes: dict[Path, list[dict[str, object]]] = {source: [] for source in sources}
    for scenario in SCENARIOS:
        runs: dict[Path, list[Outcome]] = {source: [] for source in sources}
        for _ in range(arguments.repeats):
            for source in sources:
                runs[source].append(measure(scenario, arguments.events, arguments.seconds, source=source))
        for source in sources:
            ordered = sorted(runs[source], key=lambda outcome: outcome.events_per_second)
            median = ordered[len(ordered) // 2]
            outcomes[source].append(
                {**asdict(median), "events_per_second_runs": [run.events_per_second for run in ordered]}
            )
            report(median, ordered, "" if source == REPO else f"[{commit_of(source)}] ")
    day = full_day(arguments.day_commits, arguments.events, arguments.seconds)
    print(
        f"full day: {day['commits']:,} commits at {day['commits_per_second']} /s; commit ms first 1000 "
        f"{day['commit_ms_first_1000']}, last 1000 {day['commit_ms_last_1000']}; acknowledgements "
        f"start/end {day['start_over_end_events_per_second']}x, empty-day control/end "
        f"{day['control_over_end_events_per_second']}x throughput, "
        f"p99 end/control {day['end_over_control_p99']}x"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "tracking collector: events durably landed, ack latency, a full day",
                "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": describe_machine(load_before),
                "budget": {
                    "events": arguments.events,
                    "seconds": arguments.seconds,
                    "repeats": arguments.repeats,
                },
                "collector": {
                    "flush_age_seconds": SERVED.flush_age_seconds,
                    "early_flush_floor": SERVED.early_flush_floor,
                    "early_flush_share": SERVED.early_flush_share,
                    "lake": "local disk",
                },
                "commit": commit_of(REPO),
                "results": outcomes[REPO],
                "baselines": [
                    {"commit": commit_of(source), "checkout": str(source), "results": outcomes[source]}
                    for source in sources[1:]
                ],
                "full_day": day,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {RESULTS.relative_to(HERE.parent)}")


def report(outcome: Outcome, runs: list[Outcome], label: str = "") -> None:
    spread = " / ".join(f"{run.events_per_second:,.0f}" for run in runs)
    print(
        f"{label}{outcome.scenario:32} {outcome.events_per_second:>10,.0f} events/s (runs {spread})  "
        f"p50 {outcome.latency_ms_p50:>7.1f} ms  p99 {outcome.latency_ms_p99:>7.1f} ms  "
        f"{outcome.events_landed:,} landed in {outcome.landed_files} files"
    )


if __name__ == "__main__":
    main()
