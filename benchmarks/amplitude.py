"""Amplitude ingest throughput: a landed day to typed Parquet, against `gzip -dc` and plain Python.

    .venv/bin/python benchmarks/amplitude.py [--events 1000000 4000000] [--python-sample-events N]
        [--repeat 3]

For each size the sandbox emulator generates one day (deterministic; cached under benchmarks/.work, so
a second run skips it). Then, each in a fresh process so its peak memory is its own:
- landing: the real client downloads the day's ZIP from the emulator on 127.0.0.1 and `land_export`
  commits its members to a local lake (download, gunzip, pseudonymisation of the personal fields, gzip);
  and, for what pseudonymising at the edge costs, the landing as it was before: download, a counting
  gunzip and a byte copy of each member;
- ingest: `write_events`, the events asset's code path (`read_events`: the shared ingestion path of
  `event_platform.ingest`, DuckDB typing, quarantine, dedupe) into the IO manager's Parquet writer, from
  the landed gzip members to the committed partition;
- parse: its first stage alone, the same members through DuckDB's `read_json` and the typing projection
  (`typed_batches`, same memory limit) drained as Arrow batches and dropped: what ingest costs before
  anything is spooled, deduplicated or encoded, so a reader sees which stage the time goes to;
- JSON reading: `read_json_sql` alone (no typing), drained, over the gzip members and over the same members
  decompressed beforehand (untimed): the difference is what DuckDB's own gunzip costs, the rest is JSON;
- gzip: `gzip -dc` of the same member files to /dev/null, one process on one core (the floor);
- python: gzip + `json.loads` per line, on the first members up to `--python-sample-events` lines (a
  per-line loop's rate does not depend on the day's size).
Ingest, parse and gzip run `--repeat` times, interleaved, and the run of median wall time is reported
(every run's seconds are kept): this shared machine's speed drifts by a third within minutes.
Events/s count the day's lines. Results go to benchmarks/results/amplitude.json, a table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import cpu_seconds, describe_machine, in_fresh_process, peak_rss_mb

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "amplitude"
RESULTS = HERE / "results" / "amplitude.json"
DAY = dt.date(2026, 11, 1)
EVENTS_PER_PART = 50_000
PEOPLE = 20_000
BENCH_KEY = "benchmark-pseudonym-key"


def land(base_url: str, api_key: str, secret_key: str, lake_root: str) -> dict[str, Any]:
    from event_platform.lake.filesystem import Lake
    from event_platform.pseudonymise import Pseudonymiser
    from event_platform.sources.amplitude.defs.resources import build_client
    from event_platform.sources.amplitude.landing import land_export

    client = build_client(api_key=api_key, secret_key=secret_key, region="us", base_url=base_url)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="amplitude-bench-download-") as downloads:
        landed = land_export(
            client,
            DAY,
            Lake.from_uri(lake_root),
            pseudonymiser=Pseudonymiser(BENCH_KEY),
            tmp_dir=Path(downloads),
        )
    return {
        "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "lines": landed.lines,
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def land_vendor_bytes(base_url: str, api_key: str, secret_key: str, lake_root: str) -> dict[str, Any]:
    """The landing before personal data was pseudonymised at the edge: a counting gunzip, then the
    member's gzip bytes copied as received (the baseline of what pseudonymising costs)."""
    from event_platform.lake.filesystem import Lake
    from event_platform.sources.amplitude.client import ExportWindow, iter_members
    from event_platform.sources.amplitude.defs.resources import build_client

    client = build_client(api_key=api_key, secret_key=secret_key, region="us", base_url=base_url)
    window, lake, lines = ExportWindow.for_day(DAY), Lake.from_uri(lake_root), 0
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="amplitude-bench-download-") as downloads,
        lake.write_partition(f"vendor-bytes/date={DAY}") as writer,
    ):
        for archive in client.export(window.start, window.end, Path(downloads)):
            for member in iter_members(archive.path, budget=client.budget(), day=DAY):
                lines += member.scan().lines
                with writer.open(member.name) as target:
                    for chunk in member.chunks():
                        target.write(chunk)
            archive.path.unlink()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "lines": lines}


def ingest(lake_root: str) -> dict[str, Any]:
    from event_platform.lake.filesystem import Lake
    from event_platform.sources.amplitude.transform import write_events

    started = time.perf_counter()
    summary = write_events(Lake.from_uri(lake_root), DAY)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds(),
        "rows": summary.rows,
        "duplicates": summary.duplicates,
        "quarantined": summary.quarantined,
        "reconciles": summary.reconciles,
        "peak_rss_mb": peak_rss_mb(),
    }


def parse(lake_root: str) -> dict[str, Any]:
    from event_platform.ingest import DEFAULT_MEMORY_LIMIT, typed_batches
    from event_platform.lake.filesystem import Lake
    from event_platform.sources.amplitude.transform import SPEC, raw_members
    from event_platform.staging import scratch_duckdb

    lake = Lake.from_uri(lake_root)
    members = raw_members(lake, DAY.isoformat()).files
    local = [Path(lake.path(member.path)) for member in members]
    started = time.perf_counter()
    rows = 0
    with scratch_duckdb(memory_limit=DEFAULT_MEMORY_LIMIT, preserve_insertion_order=False) as con:
        for batch in typed_batches(con, SPEC, members, local):
            rows += batch.num_rows
    return {
        "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def json_reading(paths: list[str], compression: str) -> dict[str, Any]:
    from event_platform.ingest import BATCH_ROWS, DEFAULT_MEMORY_LIMIT, read_json_sql
    from event_platform.sources.amplitude.transform import SPEC
    from event_platform.staging import scratch_duckdb

    started = time.perf_counter()
    rows = 0
    with scratch_duckdb(memory_limit=DEFAULT_MEMORY_LIMIT, preserve_insertion_order=False) as con:
        query = f"SELECT * FROM {read_json_sql(SPEC, paths, compression)}"
        for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
            rows += batch.num_rows
    return {"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "rows": rows}


def json_reading_with_and_without_gzip(files: list[str]) -> dict[str, dict[str, Any]]:
    """`json_reading` over the members, then over decompressed copies of them (written untimed)."""
    with tempfile.TemporaryDirectory(prefix="amplitude-bench-plain-", dir=WORK) as directory:
        plain = [Path(directory) / f"{index}.json" for index in range(len(files))]
        for member, copy in zip(files, plain, strict=True):
            with gzip.open(member, "rb") as source, copy.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        return {
            "gzip": in_fresh_process(json_reading, files, "gzip"),
            "plain": in_fresh_process(json_reading, [str(path) for path in plain], "none"),
        }


def python_baseline(files: list[str], sample_events: int) -> dict[str, Any]:
    started = time.perf_counter()
    lines = 0
    for name in files:
        with gzip.open(name, "rb") as stream:
            for line in stream:
                json.loads(line)
                lines += 1
        if lines >= sample_events:
            break
    return {
        "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds(), "lines": lines,
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def gzip_floor(files: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of `gzip -dc` over `files`."""
    started, cpu_before = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run(["gzip", "-dc", *files], stdout=subprocess.DEVNULL, check=True)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before,
    }


def median_sample(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample of median wall time: one slow spell of a shared machine does not decide the result."""
    return sorted(samples, key=lambda sample: sample["seconds"])[len(samples) // 2]


def run_size(events: int, python_sample_events: int, repeat: int) -> dict[str, Any]:
    from event_platform.lake.filesystem import Lake
    from event_platform.lake.layout import raw_path
    from event_platform.sandbox.amplitude import AmplitudeEmulator
    from event_platform.sandbox.world import World

    emulator = AmplitudeEmulator(
        World(people_count=PEOPLE), events_per_day=events, events_per_part=EVENTS_PER_PART,
        cache_dir=WORK / "emulator",
    )  # fmt: skip
    lake_root = WORK / f"lake-{events}"
    shutil.rmtree(lake_root, ignore_errors=True)
    with emulator:
        started = time.perf_counter()
        served = emulator.day_summary(DAY)  # generates the day unless cached
        generation_seconds = time.perf_counter() - started
        credentials = emulator.environment()
        print(f"{events:,} events: {served.lines:,} lines in {len(served.members)} files "
              f"({generation_seconds:.0f} s to generate or load)", flush=True)  # fmt: skip
        access = (emulator.url, credentials["AMPLITUDE_API_KEY"], credentials["AMPLITUDE_SECRET_KEY"])
        landing = in_fresh_process(land, *access, str(lake_root))
        unpseudonymised = in_fresh_process(land_vendor_bytes, *access, str(lake_root))
    # The landed members are the served lines, addresses hashed: the baselines read them too.
    lake = Lake.from_uri(str(lake_root))
    files = [lake.path(path) for path in lake.current_files(raw_path("amplitude", DAY.isoformat()))]
    # Interleaved, so that a change in the machine's speed touches each stage alike.
    samples: dict[str, list[dict[str, Any]]] = {"ingest": [], "parse": [], "gzip": []}
    for _ in range(repeat):
        samples["ingest"].append(in_fresh_process(ingest, str(lake_root)))
        samples["parse"].append(in_fresh_process(parse, str(lake_root)))
        samples["gzip"].append(gzip_floor(files))
    python = in_fresh_process(python_baseline, files, python_sample_events)
    reading = json_reading_with_and_without_gzip(files)
    shutil.rmtree(lake_root, ignore_errors=True)
    typed, parsed, unzipped = (median_sample(samples[stage]) for stage in ("ingest", "parse", "gzip"))
    if (
        landing["lines"] != served.lines
        or not all(sample["reconciles"] for sample in samples["ingest"])
        or any(sample["rows"] != served.lines for sample in [*samples["parse"], *reading.values()])
    ):
        raise RuntimeError(f"counts do not reconcile: served {served}, landed {landing}, typed {typed}")
    lines = served.lines
    return {
        "events": lines,
        "uncompressed_bytes": served.uncompressed_bytes,
        "gzip_bytes": served.gzip_bytes,
        "files": len(files),
        "ingest_events_per_s": round(lines / typed["seconds"]),
        "parse_events_per_s": round(lines / parsed["seconds"]),
        "gzip_events_per_s": round(lines / unzipped["seconds"]),
        "python_events_per_s": round(python["lines"] / python["seconds"]),
        "landing_events_per_s": round(lines / landing["seconds"]),
        "landing_without_pseudonymisation_events_per_s": round(lines / unpseudonymised["seconds"]),
        "landing_cpu_seconds": round(landing["cpu_seconds"], 2),
        "landing_without_pseudonymisation_cpu_seconds": round(unpseudonymised["cpu_seconds"], 2),
        "peak_rss_mb": typed["peak_rss_mb"],
        "landing_peak_rss_mb": landing["peak_rss_mb"],
        "parse_peak_rss_mb": parsed["peak_rss_mb"],
        "seconds": {
            "ingest": round(typed["seconds"], 2),
            "parse": round(parsed["seconds"], 2),
            "gzip": round(unzipped["seconds"], 2),
            "python_sample": round(python["seconds"], 2),
            "landing": round(landing["seconds"], 2),
            "generation_or_cache": round(generation_seconds, 2),
        },
        "cpu_seconds": {
            "ingest": round(typed["cpu_seconds"], 2),
            "parse": round(parsed["cpu_seconds"], 2),
            "gzip": round(unzipped["cpu_seconds"], 2),
            "python_sample": round(python["cpu_seconds"], 2),
            "landing": round(landing["cpu_seconds"], 2),
            "json_reading_gzip": round(reading["gzip"]["cpu_seconds"], 2),
            "json_reading_plain": round(reading["plain"]["cpu_seconds"], 2),
        },
        "repeats_seconds": {
            stage: [round(sample["seconds"], 2) for sample in stage_samples]
            for stage, stage_samples in samples.items()
        },
        "python_sample_lines": python["lines"],
        "rows": typed["rows"],
        "duplicates": typed["duplicates"],
        "quarantined": typed["quarantined"],
    }


def markdown(runs: list[dict[str, Any]]) -> str:
    header = ("events", "uncompressed MB", "ingest ev/s", "parse stage ev/s", "gzip -dc ev/s",
              "ingest / gzip", "python ev/s", "landing ev/s", "landing unpseudonymised ev/s",
              "ingest peak RSS MB")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for run in runs:
        cells = (
            f"{run['events']:,}", f"{run['uncompressed_bytes'] / 1e6:,.0f}",
            f"{run['ingest_events_per_s']:,}", f"{run['parse_events_per_s']:,}",
            f"{run['gzip_events_per_s']:,}",
            f"{run['ingest_events_per_s'] / run['gzip_events_per_s']:.2f}", f"{run['python_events_per_s']:,}",
            f"{run['landing_events_per_s']:,}", f"{run['landing_without_pseudonymisation_events_per_s']:,}",
            f"{run['peak_rss_mb']:,.0f}",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--python-sample-events", type=int, default=300_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ingest, parse and gzip; the median counts"
    )
    arguments = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    runs = [run_size(events, arguments.python_sample_events, arguments.repeat) for events in arguments.events]
    result = {
        "benchmark": "amplitude: a landed day (gzip NDJSON members) to typed, deduplicated Parquet",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(load_before),
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(runs))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
