"""Profile Store reading cost: requests per 10,000 events against the minimum, and events/s.

    .venv/bin/python benchmarks/profile_store.py [--page-size P]

The emulator runs in its own process (loopback HTTP on 127.0.0.1), so the client does not share its
interpreter. For each scenario the client reads one UTC day; "minimum requests" is ceil(N / page size),
what paging would cost without the API's $skip + $top < 10000 rule. Every request the emulator saw is
checked against the rule, and the events read are checked complete and unique. A last scenario times
the asset's whole path without Dagster's bookkeeping (read, pseudonymise, land gzip pages, type,
deduplicate into Parquet) into a local lake under benchmarks/.work/. Results go to
benchmarks/results/profile_store.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import shutil
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from event_platform import ingest
from event_platform.lake.filesystem import Lake
from event_platform.pseudonymise import Pseudonymiser
from event_platform.retry import NO_WAIT
from event_platform.sandbox.profile_store import Burst, ProfileStoreSandbox
from event_platform.sandbox.world import World
from event_platform.sources.profile_store import landing
from event_platform.sources.profile_store.client import ProfileStoreClient
from event_platform.sources.profile_store.transform import event_key

from measure import describe_machine

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "profile_store"
RESULTS = HERE / "results" / "profile_store.json"
DAY = dt.date(2026, 11, 1)
START = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)

SCENARIOS: dict[str, dict[str, Any]] = {
    "uniform day, 30,000 events": {"events_per_day": 30_000, "bursts": ()},
    "burst: 2,000 + 25,000 in one hour, 3,000 sharing one EventTime": {
        "events_per_day": 2_000,
        "bursts": (Burst(DAY, hour=14, count=25_000, tied=3_000),),
    },
    "worst case: 12,000 events in one 100 ns tick (split by EventType)": {
        "events_per_day": 1_000,
        "bursts": (Burst(DAY, count=12_000, tied=12_000, tied_event_types=("pageview", "search", "video")),),
    },
}


def serve_sandbox(options: dict[str, Any], channel: Connection) -> None:
    """Child process: run the emulator until told to stop, then report the requests it saw."""
    with ProfileStoreSandbox(World(), **options) as sandbox:
        expected = len(sandbox.events_on(DAY))  # generated before the clock starts
        channel.send({"url": sandbox.url, "api_key": sandbox.api_key, "expected": expected})
        channel.recv()
        listed = [r for r in sandbox.requests if r.method == "GET"]
        channel.send(
            {
                "requests": len(listed),
                "max_skip_plus_top": max((r.skip_plus_top for r in listed), default=0),
                "refused": sum(r.status != 200 for r in listed),
            }
        )


def with_sandbox(options: dict[str, Any], work: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=serve_sandbox, args=(options, child), daemon=True)
    process.start()
    try:
        server = parent.recv()
        result = work(server)
        parent.send("stop")
        seen = parent.recv()
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
    return result, server, seen


def read_day(server: dict[str, Any], page_size: int) -> dict[str, Any]:
    client = ProfileStoreClient(server["url"], server["api_key"], page_size=page_size, backoff=NO_WAIT)
    keys: set[str] = set()
    events = 0
    started = time.perf_counter()
    for batch in client.track_events(START, END):
        events += len(batch)
        keys.update(event_key(event) for event in batch)
    seconds = time.perf_counter() - started
    return {"events": events, "unique": len(keys), "seconds": seconds, "stats": client.stats}


def land_and_type(server: dict[str, Any], page_size: int) -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    lake = Lake.from_uri(str(WORK / "lake"))
    client = ProfileStoreClient(server["url"], server["api_key"], page_size=page_size, backoff=NO_WAIT)
    started = time.perf_counter()
    landed = landing.land_day(client, Pseudonymiser("benchmark-key"), lake, DAY.isoformat())
    landed_at = time.perf_counter()
    typed = ingest.read_day(landing.SPEC, lake, DAY.isoformat(), tmp_dir=WORK)
    rows = sum(batch.num_rows for batch in typed.reader)
    finished = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)
    return {
        "events": landed.events,
        "rows": rows,
        "land_seconds": landed_at - started,
        "type_seconds": finished - landed_at,
        "requests": client.stats.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--page-size", type=int, default=1000)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    page_size = arguments.page_size
    results: list[dict[str, Any]] = []
    for name, options in SCENARIOS.items():
        read, server, seen = with_sandbox(options, lambda server: read_day(server, page_size))
        stats = read["stats"]
        events = read["events"]
        minimum = math.ceil(events / page_size)
        assert events == read["unique"] == server["expected"], f"{name}: incomplete or duplicated read"
        assert seen["max_skip_plus_top"] < 10_000 and seen["refused"] == 0, f"{name}: window rule broken"
        results.append(
            {
                "scenario": name,
                "events": events,
                "page_size": page_size,
                "requests": stats.requests,
                "minimum_requests": minimum,
                "requests_over_minimum": round(stats.requests / minimum, 3),
                "requests_per_10k_events": round(stats.requests / events * 10_000, 2),
                "minimum_requests_per_10k_events": round(minimum / events * 10_000, 2),
                "windows_split": stats.windows_split,
                "instants_read": stats.instants_read,
                "instants_split_by_type": stats.instants_split_by_type,
                "max_skip_plus_top_seen": seen["max_skip_plus_top"],
                "seconds": round(read["seconds"], 3),
                "events_per_second": round(events / read["seconds"]),
            }
        )
        print(json.dumps(results[-1]))
    burst = SCENARIOS["burst: 2,000 + 25,000 in one hour, 3,000 sharing one EventTime"]
    pipeline, _, _ = with_sandbox(burst, lambda server: land_and_type(server, page_size))
    total_seconds = pipeline["land_seconds"] + pipeline["type_seconds"]
    pipeline_result = {
        "scenario": "asset path on the burst day: read + pseudonymise + land + type + deduplicate",
        "events": pipeline["events"],
        "rows": pipeline["rows"],
        "requests": pipeline["requests"],
        "land_seconds": round(pipeline["land_seconds"], 3),
        "type_seconds": round(pipeline["type_seconds"], 3),
        "events_per_second": round(pipeline["events"] / total_seconds),
    }
    print(json.dumps(pipeline_result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "profile_store",
                "command": f".venv/bin/python benchmarks/profile_store.py --page-size {page_size}",
                "machine": describe_machine(load_before),
                "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "note": "events/s of the read is bounded by the emulator (Python, one process) serving JSON",
                "reading": results,
                "pipeline": pipeline_result,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
