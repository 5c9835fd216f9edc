"""Checks of the Amplitude assets, each computed from the lake alone so it can run on its own:

- raw_export `files_match_zip`: the members landed are the ZIPs' `.json.gz` members, each with a line count;
- events `lines_reconcile` (blocking): Parquet rows + duplicates + quarantined lines == lines landed, and
  the events were typed from the landing now in the lake;
- events `uuid_unique` (blocking): the primary key is unique in the partition;
- events `not_empty` (ERROR): a project with traffic always exports events, so an empty day is a fault.

Every check is partitioned by day: its result belongs to the day it checked.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
)

from event_platform.defs.empty_days import not_empty_check
from event_platform.lake.delta import read_partition
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.partitions import daily_asset_check
from event_platform.sources.amplitude import SOURCE
from event_platform.sources.amplitude.transform import SOURCE_NAME, TABLE
from event_platform.staging import scratch_duckdb

RAW_EXPORT = AssetKey([SOURCE_NAME, "raw_export"])
EVENTS = AssetKey([SOURCE_NAME, "events"])
CHECK_MEMORY_LIMIT = "256MB"


@daily_asset_check(
    asset=RAW_EXPORT, description="Every .json.gz member of the export's ZIPs is landed, with its lines."
)
def files_match_zip(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    manifest = lake.lake().read_manifest(raw_path(SOURCE_NAME, context.partition_key))
    if manifest is None:
        return AssetCheckResult(passed=False, description="Nothing is landed for this day.")
    in_zip = int(manifest.metadata.get("zip_members", -1))
    without_lines = [entry.name for entry in manifest.files if "lines" not in entry.extra]
    return AssetCheckResult(
        passed=len(manifest.files) == in_zip and not without_lines,
        metadata={
            "files_landed": MetadataValue.int(len(manifest.files)),
            "zip_members": MetadataValue.int(in_zip),
            "files_without_line_count": MetadataValue.json(without_lines),
        },
    )


@daily_asset_check(
    asset=EVENTS,
    blocking=True,
    description="Parquet rows + duplicates removed + lines quarantined == lines landed, for the landing "
    "now in the lake: no line is lost or counted twice.",
)
def lines_reconcile(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    day, store = context.partition_key, lake.lake()
    raw = store.read_manifest(raw_path(SOURCE_NAME, day))
    quarantine = store.read_manifest(quarantine_path(TABLE, day))
    if raw is None or quarantine is None:
        missing = "raw landing" if raw is None else "quarantine record"
        return AssetCheckResult(passed=False, description=f"The day's {missing} is missing from the lake.")
    landed = sum(int(entry.extra["lines"]) for entry in raw.files)
    rows = read_partition(store, TABLE, day).count_rows()
    duplicates = int(quarantine.metadata.get("duplicates", 0))
    quarantined = sum(int(entry.extra["lines"]) for entry in quarantine.files)
    same_landing = quarantine.metadata.get("raw_version") == raw.version
    passed = same_landing and rows + duplicates + quarantined == landed
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if same_landing
        else "The day was re-landed after it was typed: re-materialize events.",
        metadata={
            "lines_landed": MetadataValue.int(landed),
            "rows": MetadataValue.int(rows),
            "duplicates": MetadataValue.int(duplicates),
            "quarantined": MetadataValue.int(quarantined),
            "difference": MetadataValue.int(landed - rows - duplicates - quarantined),
        },
    )


@daily_asset_check(
    asset=EVENTS, blocking=True, description="`uuid`, Amplitude's primary key, is unique in the day."
)
def uuid_unique(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    dataset = read_partition(lake.lake(), TABLE, context.partition_key)
    with scratch_duckdb(memory_limit=CHECK_MEMORY_LIMIT) as con:
        con.register("events", dataset)
        row = con.execute("SELECT count(*), count(DISTINCT uuid), count(uuid) FROM events").fetchone()
    rows, distinct, present = row if row else (0, 0, 0)
    return AssetCheckResult(
        passed=rows == distinct == present,
        metadata={
            "rows": MetadataValue.int(rows),
            "distinct_uuids": MetadataValue.int(distinct),
            "rows_without_uuid": MetadataValue.int(rows - present),
        },
    )


not_empty = not_empty_check(SOURCE, "events")
