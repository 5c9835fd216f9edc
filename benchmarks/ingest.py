"""The shared ingestion path (`event_platform.ingest`) on a tracking-shaped and a Profile Store-shaped
day, against the per-line Python path (`staging.stage_day` + `deduplicate`) it replaced.

    .venv/bin/python benchmarks/ingest.py [--events 100000] [--repeat 3]

Each day is generated from a seed, its events shaped like the sandbox's (flat `event_data` and `Payload`
of strings and integers; 1% of Profile Store events without a TrackId, so keyed by a content hash), and
landed as its source lands it: tracking as group commits of 500 lines with their commit records, the
Profile Store as gzip pages of 1,000 pseudonymised events. 1% of the events are sent twice (duplicates)
and a few lines are broken (quarantined). Then `read_day` types the day and the reader is drained, in
a fresh process each time so that its peak memory is its own, `--repeat` times, and the run of median
wall time counts. Events/s count the landed lines. The Python path no longer exists here: its numbers
(`PYTHON_PATH`) were measured once, on the same days, on the commit before it was removed (see
`PYTHON_PATH_COMMAND`).
Results go to benchmarks/results/ingest.json, a table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from measure import cpu_seconds, describe_machine, in_fresh_process, peak_rss_mb

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "ingest"
RESULTS = HERE / "results" / "ingest.json"
DAY = dt.date(2026, 11, 1)
LINES_PER_COMMIT = 500
EVENTS_PER_PAGE = 1_000
RESENT_SHARE = 0.01
BROKEN_LINES = 20
SOURCES = ("tracking", "profile_store")

PYTHON_PATH: dict[str, dict[str, float]] = {
    "tracking": {"events_per_s": 19_455, "cpu_seconds": 7.13, "peak_rss_mb": 341.6},
    "profile_store": {"events_per_s": 15_884, "cpu_seconds": 8.29, "peak_rss_mb": 389.0},
}
"""Per source, the Python path's events/s, CPU seconds and peak RSS on the same 100,000-event days
(median of 3; 2 cores, load 0.0-1.1), measured 2026-12-02 07:40 UTC on commit 5b6992b."""
PYTHON_PATH_COMMAND = (
    "on commit 5b6992b: stage_day + deduplicate of each day that land_day here lands, the reader drained, "
    "each run in a fresh process (--events 100000, 3 runs, median)"
)


EVENT_TYPES = (
    "kinesinlms.course.content.page_view",
    "kinesinlms.course.video.activity",
    "kinesinlms.core.user.login",
    "kinesinlms.course.assessment.answer_submitted",
)


def _tracking_event(rng: random.Random, number: int) -> dict[str, Any]:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    moment = start + dt.timedelta(microseconds=rng.randrange(86_400_000_000))
    received = moment + dt.timedelta(milliseconds=rng.randrange(1, 900))
    data: dict[str, Any] = (
        {"video_id": f"v{rng.randrange(300)}-video", "video_event_type": "play"}
        if rng.random() < 0.5
        else {"assessment_id": f"quiz-{rng.randrange(40)}", "answer_id": rng.randrange(10**6), "attempts": 2}
    )
    return {
        "uuid": f"{rng.getrandbits(128):032x}",
        "event_type": rng.choice(EVENT_TYPES),
        "time": moment.isoformat(timespec="microseconds"),
        "anon_username": f"learner-{rng.randrange(20_000):06d}",
        "course_slug": rng.choice(("intro-biology", "cell-signalling", "genetics")),
        "course_run": "2026",
        "unit_node_slug": f"unit-{rng.randrange(40)}",
        "course_unit_id": rng.randrange(1, 5_000),
        "course_unit_slug": f"lesson-{rng.randrange(200)}",
        "block_uuid": f"{rng.getrandbits(128):032x}",
        "page_url": f"/courses/intro/unit-{number % 40}/",
        "event_data": data,
        "received_at": received.isoformat(timespec="microseconds"),
    }


def _profile_store_event(rng: random.Random, number: int) -> dict[str, Any]:
    ticks = rng.randrange(86_400 * 10_000_000)
    seconds, fraction = divmod(ticks, 10_000_000)
    moment = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return {
        "TrackId": "" if rng.random() < 0.01 else f"{rng.getrandbits(64):016x}",
        "DeviceId": f"DEV-{rng.randrange(50_000)}",
        "EventType": rng.choice(("pageview", "search", "video", "click")),
        "EventTime": f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:07d}",
        "Value": rng.choice(("search on biology", "video_play on genetics")),
        "Scope": rng.choice(("shop", "learn")),
        "CountryCode": rng.choice(("SE", "NO", "DE", "US")),
        "PageUri": f"https://shop.example/p/{number % 500}",
        "PageTitle": f"Product {number % 500}",
        "RemoteAddress": f"pii1:{rng.getrandbits(128):032x}",
        "SessionId": f"s-{rng.randrange(100_000)}",
        "City": rng.choice(("Stockholm", "Oslo", "Berlin", None)),
        "User": {"Name": f"pii1:{rng.getrandbits(64):016x}", "Email": f"pii1:{rng.getrandbits(64):016x}",
                 "Info": {"Platform": rng.choice(("Web", "iOS")), "Visits": rng.randrange(100)}},
        "Payload": rng.choice(({"query": f"q{rng.randrange(1000)}", "results": rng.randrange(50)}, None)),
    }  # fmt: skip


def day_lines(source: str, events: int, seed: int = 20261101) -> list[bytes]:
    """The day's landed lines: every event once, 1% of them again later, a few broken lines."""
    rng = random.Random(seed)
    make = _tracking_event if source == "tracking" else _profile_store_event
    lines = [json.dumps(make(rng, number), ensure_ascii=False).encode() for number in range(events)]
    resent = rng.sample(range(events), int(events * RESENT_SHARE))
    lines += [lines[index] for index in resent]
    for _ in range(BROKEN_LINES):
        lines.insert(rng.randrange(len(lines)), b'{"broken": ')
    return lines


def land_day(source: str, lake_root: str, events: int) -> int:
    """Land the generated day in a local lake as the source lands it; its lines."""
    from event_platform.lake.filesystem import Lake

    lake = Lake.from_uri(lake_root)
    lines = day_lines(source, events)
    if source == "tracking":
        from event_platform.sources.tracking.landed import commit_events

        for first in range(0, len(lines), LINES_PER_COMMIT):
            chunk = lines[first : first + LINES_PER_COMMIT]
            data = gzip.compress(b"\n".join(chunk) + b"\n", compresslevel=6)
            commit_events(lake, DAY.isoformat(), data, lines=len(chunk), first_received="", last_received="")
    else:
        from event_platform.lake.layout import raw_path
        from event_platform.sources.profile_store.landing import write_lines

        with lake.write_partition(raw_path("profile_store", DAY.isoformat())) as partition:
            for first in range(0, len(lines), EVENTS_PER_PAGE):
                page = lines[first : first + EVENTS_PER_PAGE]
                write_lines(
                    partition.open, f"page-{first // EVENTS_PER_PAGE:06d}.json.gz", page, events=len(page)
                )
    return len(lines)


def ingest(source: str, lake_root: str) -> dict[str, Any]:
    """`read_day` of the landed day, the reader drained (what the asset hands the IO manager)."""
    from event_platform.ingest import read_day
    from event_platform.lake.filesystem import Lake
    from event_platform.sources.profile_store.landing import SPEC as PROFILE_STORE
    from event_platform.sources.tracking.landed import SPEC as TRACKING

    spec = TRACKING if source == "tracking" else PROFILE_STORE
    started = time.perf_counter()
    typed = read_day(spec, Lake.from_uri(lake_root), DAY.isoformat())
    rows = sum(batch.num_rows for batch in typed.reader)
    summary = typed.summary
    return {
        "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "peak_rss_mb": peak_rss_mb(),
        "rows": rows, "duplicates": summary.duplicates, "quarantined": summary.quarantined,
        "reconciles": summary.reconciles,
    }  # fmt: skip


def run_source(source: str, events: int, repeat: int) -> dict[str, Any]:
    lake_root = WORK / f"lake-{source}"
    shutil.rmtree(lake_root, ignore_errors=True)
    lines = land_day(source, str(lake_root), events)
    samples = [in_fresh_process(ingest, source, str(lake_root)) for _ in range(repeat)]
    shutil.rmtree(lake_root, ignore_errors=True)
    median = sorted(samples, key=lambda sample: sample["seconds"])[len(samples) // 2]
    if not all(sample["reconciles"] and sample["rows"] == median["rows"] for sample in samples):
        raise RuntimeError(f"{source}: counts do not reconcile: {samples}")
    result = {
        "source": source,
        "lines": lines,
        "rows": median["rows"],
        "duplicates": median["duplicates"],
        "quarantined": median["quarantined"],
        "events_per_s": round(lines / median["seconds"]),
        "seconds": round(median["seconds"], 2),
        "cpu_seconds": round(median["cpu_seconds"], 2),
        "peak_rss_mb": median["peak_rss_mb"],
        "repeats_seconds": [round(sample["seconds"], 2) for sample in samples],
    }
    if source in PYTHON_PATH:
        result["python_path"] = PYTHON_PATH[source]
        result["speedup"] = round(result["events_per_s"] / PYTHON_PATH[source]["events_per_s"], 2)
    return result


def markdown(runs: list[dict[str, Any]]) -> str:
    header = ("day", "lines", "shared path ev/s", "CPU-s", "peak RSS MB", "Python path ev/s", "CPU-s",
              "peak RSS MB", "speed-up")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for run in runs:
        old = run.get("python_path", {})
        cells = (
            run["source"], f"{run['lines']:,}", f"{run['events_per_s']:,}", f"{run['cpu_seconds']}",
            f"{run['peak_rss_mb']:,.0f}", f"{old.get('events_per_s', 0):,.0f}",
            f"{old.get('cpu_seconds', '')}", f"{old.get('peak_rss_mb', 0):,.0f}", f"{run.get('speedup', '')}",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="distinct events per day")
    parser.add_argument("--repeat", type=int, default=3, help="runs per day; the median counts")
    arguments = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    runs = [run_source(source, arguments.events, arguments.repeat) for source in SOURCES]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "ingest: a landed day of gzip JSON lines to typed, deduplicated rows",
                "command": f".venv/bin/python benchmarks/ingest.py --events {arguments.events} "
                f"--repeat {arguments.repeat}",
                "python_path_command": PYTHON_PATH_COMMAND,
                "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": describe_machine(load_before),
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(markdown(runs))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
