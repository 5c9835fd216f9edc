"""Checks of `profile_store/events`, read back from the lake after each materialization, per day."""

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, MetadataValue

from event_platform.defs.empty_days import not_empty_check
from event_platform.lake.delta import read_partition
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path, raw_path
from event_platform.partitions import daily_asset_check
from event_platform.pseudonymise import find_personal_data
from event_platform.sources.profile_store import SOURCE, landing
from event_platform.staging import gzip_lines, raw_files, scratch_duckdb

if TYPE_CHECKING:
    import duckdb

EVENTS = AssetKey([SOURCE.name, "events"])

SAMPLE_KEYS = 10


def _count(connection: "duckdb.DuckDBPyConnection", sql: str) -> tuple[int, ...]:
    row = connection.execute(sql).fetchone()
    assert row is not None  # an aggregate always returns one row
    return tuple(int(value) for value in row)


@daily_asset_check(
    asset=EVENTS,
    description="Rows equal the `total` the Profile Store API reported for the day (kept in the raw "
    "partition's manifest); a shortfall means events were lost, quarantined or read incompletely.",
)
def rows_match_reported_total(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    day = context.partition_key
    store = lake.lake()
    raw_manifest = store.read_manifest(raw_path(landing.SOURCE_NAME, day))
    total = int(raw_manifest.metadata.get(landing.TOTAL_REPORTED, 0)) if raw_manifest else 0
    quarantine = store.read_manifest(quarantine_path(landing.TABLE, day))
    quarantined = int(quarantine.metadata.get("lines", 0)) if quarantine else 0
    with scratch_duckdb() as connection:
        connection.register("stored", read_partition(store, landing.TABLE, day))
        (rows,) = _count(connection, "SELECT count(*) FROM stored")
    hint = (
        "Counts agree."
        if rows == total
        else f"{quarantined} event(s) are in quarantine."
        if rows + quarantined == total
        else "Rows and the API's total disagree: re-materialize the day; if it persists, the API's order "
        "among events sharing an EventTime is not stable between requests (see client.py)."
    )
    return AssetCheckResult(
        passed=raw_manifest is not None and rows == total,
        metadata={
            "rows": MetadataValue.int(rows),
            "total_reported": MetadataValue.int(total),
            "quarantined": MetadataValue.int(quarantined),
            "hint": MetadataValue.text(hint if raw_manifest else "No raw landing for the day."),
        },
    )


@daily_asset_check(
    asset=EVENTS,
    description="No clear-text e-mail or IP address anywhere in the day: every string column of the "
    "typed rows (Payload and User.Info JSON included) and every line of the raw pages.",
)
def no_clear_personal_data(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    scan = scan_for_personal_data(lake.lake(), context.partition_key)
    # Only keys and column names go into the metadata: the values are what must not spread.
    return AssetCheckResult(
        passed=not scan.event_keys and scan.raw_lines == 0,
        metadata={
            "values_with_personal_data": MetadataValue.int(len(scan.event_keys)),
            "columns": MetadataValue.text(", ".join(sorted(scan.columns)) or "none"),
            "raw_lines_with_personal_data": MetadataValue.int(scan.raw_lines),
            "sample_event_keys": MetadataValue.text(", ".join(scan.event_keys[:SAMPLE_KEYS]) or "none"),
        },
    )


@dataclass
class PersonalDataScan:
    columns: Counter[str] = field(default_factory=Counter)
    """Typed column -> values holding an address."""
    event_keys: list[str] = field(default_factory=list)
    """The event_key of each such value."""
    raw_lines: int = 0


def scan_for_personal_data(lake: Lake, day: str) -> PersonalDataScan:
    """Every string column of the day's typed rows and every line of its raw pages, by regex."""
    scan = PersonalDataScan()
    for batch in read_partition(lake, landing.TABLE, day).to_batches():
        keys = batch.column("event_key").to_pylist()
        for field_ in batch.schema:
            if not pa.types.is_string(field_.type):
                continue
            for index, value in enumerate(batch.column(field_.name).to_pylist()):
                if value and next(find_personal_data(value), None) is not None:
                    scan.columns[field_.name] += 1
                    scan.event_keys.append(keys[index])
    for line in gzip_lines(lake, raw_files(lake, landing.SOURCE_NAME, day)):
        if next(find_personal_data(line.decode("utf-8", "replace")), None) is not None:
            scan.raw_lines += 1
    return scan


@daily_asset_check(asset=EVENTS, description="Each event_key (TrackId, or a content hash) occurs once.")
def event_keys_unique(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    with scratch_duckdb() as connection:
        connection.register("stored", read_partition(lake.lake(), landing.TABLE, context.partition_key))
        rows, distinct = _count(connection, "SELECT count(*), count(DISTINCT event_key) FROM stored")
    return AssetCheckResult(
        passed=rows == distinct,
        metadata={"rows": MetadataValue.int(rows), "distinct_event_keys": MetadataValue.int(distinct)},
    )


not_empty = not_empty_check(SOURCE, "events")
