"""E3 load throughput against a plain copy of the same files from the same S3 endpoint.

    .venv/bin/python benchmarks/optimizely.py [--people N] [--rows-per-part R]

The sandbox publishes one E3 date drawn from a world of `--people` people (S3 = moto on 127.0.0.1).
Then, each in a fresh process so its peak memory is its own:
- "plain copy": every part file of both types downloaded to local disk, nothing else (the floor);
- "E3 load": what the assets do per date, without Dagster's bookkeeping: land the parts (download,
  full Parquet decode, `user_ip` hashed, commit to a local lake), type and de-duplicate them in DuckDB,
  and stream the result into the lake's Parquet (the IO manager's writer), for decisions and for
  conversions;
- "landing without pseudonymisation": the landing as it was before addresses were hashed at the edge
  (download, full decode, a byte copy), against the E3 load's landing phase: what pseudonymising costs.
Rows/s count the part files' rows; MB/s count the part files' bytes. Results go to
benchmarks/results/optimizely.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import describe_machine, in_fresh_process, peak_rss_mb

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "optimizely"
RESULTS = HERE / "results" / "optimizely.json"
DAY = dt.date(2026, 11, 1)
BENCH_KEY = "benchmark-pseudonym-key"


def client_from(environment: dict[str, str]) -> Any:
    from event_platform.sources.optimizely.client import E3Client

    return E3Client.connect(
        token=environment["OPTIMIZELY_API_TOKEN"],
        account_id=None,
        auth_url=environment["OPTIMIZELY_AUTH_URL"],
        s3_endpoint_url=environment["OPTIMIZELY_S3_ENDPOINT_URL"],
    )


def plain_copy(environment: dict[str, str], target: str) -> dict[str, Any]:
    from event_platform.sources.optimizely.schema import E3_TYPES

    client = client_from(environment)
    started = time.perf_counter()
    files = size = 0
    for e3 in E3_TYPES.values():
        for part in client.list_day(e3, DAY).parts:
            destination = Path(target) / e3.name / part.relative_path
            destination.parent.mkdir(parents=True, exist_ok=True)
            size += client.download(part, destination)
            files += 1
    return {
        "seconds": time.perf_counter() - started,
        "files": files,
        "bytes": size,
        "peak_rss_mb": peak_rss_mb(),
    }


def e3_load(environment: dict[str, str], lake_root: str) -> dict[str, Any]:
    from event_platform.lake import delta
    from event_platform.lake.filesystem import Lake
    from event_platform.pseudonymise import Pseudonymiser
    from event_platform.sources.optimizely.load import land_day, type_day
    from event_platform.sources.optimizely.schema import E3_TYPES

    client = client_from(environment)
    pseudonymiser = Pseudonymiser(BENCH_KEY)
    lake = Lake.from_uri(lake_root)
    phases = {"land": 0.0, "type": 0.0, "write": 0.0}
    totals = {"files": 0, "bytes": 0, "part_rows": 0, "rows_written": 0, "duplicates": 0}
    for e3 in E3_TYPES.values():
        started = time.perf_counter()
        landing = land_day(client, lake, e3, DAY, pseudonymiser)
        landed = time.perf_counter()
        typed = type_day(lake, landing)
        typed_at = time.perf_counter()
        rows = delta.write(lake, f"optimizely/{e3.asset_name}", typed.reader, partition=DAY.isoformat()).rows
        written = time.perf_counter()
        phases["land"] += landed - started
        phases["type"] += typed_at - landed
        phases["write"] += written - typed_at
        totals["files"] += len(landing.parts)
        totals["bytes"] += landing.bytes
        totals["part_rows"] += landing.part_rows
        totals["rows_written"] += rows
        totals["duplicates"] += typed.stats.duplicates
        if rows != landing.part_rows - typed.stats.duplicates:
            raise AssertionError(
                f"{e3.name}: {rows} rows written, expected {landing.part_rows - typed.stats.duplicates}"
            )
    rounded = {name: round(seconds, 3) for name, seconds in phases.items()}
    return {"seconds": sum(phases.values()), "phase_seconds": rounded, **totals, "peak_rss_mb": peak_rss_mb()}


def land_vendor_bytes(environment: dict[str, str], lake_root: str) -> dict[str, Any]:
    """The landing before addresses were hashed at the edge: download, decode every page, copy the bytes."""
    import pyarrow.parquet as pq

    from event_platform.lake.filesystem import Lake
    from event_platform.sources.optimizely.load import raw_dir
    from event_platform.sources.optimizely.schema import E3_TYPES

    client, lake = client_from(environment), Lake.from_uri(lake_root)
    started = time.perf_counter()
    files = size = 0
    for e3 in E3_TYPES.values():
        with tempfile.TemporaryDirectory() as scratch, lake.write_partition(raw_dir(e3, DAY)) as writer:
            local = Path(scratch) / "part.parquet"
            for part in client.list_day(e3, DAY).parts:
                size += client.download(part, local)
                for _ in pq.ParquetFile(local).iter_batches():
                    pass
                with local.open("rb") as source, writer.open(part.relative_path) as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                files += 1
    return {
        "seconds": time.perf_counter() - started,
        "files": files,
        "bytes": size,
        "peak_rss_mb": peak_rss_mb(),
    }


def rates(measured: dict[str, Any], rows: int) -> dict[str, Any]:
    seconds = measured["seconds"]
    return {
        **measured,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1),
        "megabytes_per_second": round(measured["bytes"] / seconds / 1e6, 2),
    }


def main() -> None:
    # Imported here, not at the top: the measuring processes re-import this module and should carry
    # only what they use (the sandbox's moto and web stack would inflate their peak memory).
    from event_platform.sandbox.optimizely import OptimizelySandbox
    from event_platform.sandbox.world import World

    options = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument("--people", type=int, default=100_000, help="world size (a third is active per day)")
    options.add_argument("--rows-per-part", type=int, default=25_000, help="rows per Spark part file")
    arguments = options.parse_args()
    load_before = os.getloadavg()[0]

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    world = World(people_count=arguments.people)
    with OptimizelySandbox(world, rows_per_part=arguments.rows_per_part, credential_seconds=3600) as sandbox:
        generated = time.perf_counter()
        published = sandbox.publish_day(DAY)
        print(f"published {published} in {time.perf_counter() - generated:.1f}s")
        environment = sandbox.environment()
        copy = in_fresh_process(plain_copy, environment, tempfile.mkdtemp(dir=WORK))
        load = in_fresh_process(e3_load, environment, str(WORK / "lake"))
        unpseudonymised = in_fresh_process(land_vendor_bytes, environment, str(WORK / "lake-vendor-bytes"))
    part_rows = load["part_rows"]
    results = {
        "benchmark": "optimizely E3: one date of decisions + conversions, loaded vs plainly copied",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(load_before),
        "data": {
            "people": arguments.people,
            "rows_per_part": arguments.rows_per_part,
            "part_rows": part_rows,
            "duplicates": load["duplicates"],
            "files": load["files"],
            "bytes": load["bytes"],
            "s3": "moto on 127.0.0.1 (the sandbox)",
            "lake": "local disk",
        },
        "plain_copy": rates(copy, part_rows),
        "e3_load": rates(load, part_rows),
    }
    results["landing_without_pseudonymisation"] = rates(unpseudonymised, part_rows)
    results["e3_load_vs_plain_copy_time"] = round(load["seconds"] / copy["seconds"], 2)
    results["landing_vs_landing_without_pseudonymisation_time"] = round(
        load["phase_seconds"]["land"] / unpseudonymised["seconds"], 2
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
