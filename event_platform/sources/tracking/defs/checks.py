"""Checks of `tracking/events`, read back from the lake after each materialization, per day."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, MetadataValue

from event_platform.defs.empty_days import not_empty_check
from event_platform.lake.delta import read_partition
from event_platform.lake.filesystem import Lake
from event_platform.lake.io_manager import LakeResource
from event_platform.lake.layout import quarantine_path
from event_platform.partitions import daily_asset_check
from event_platform.sources.tracking import SOURCE, landed
from event_platform.sources.tracking.events import CONTEXT_FIELDS, EMAIL_PATTERN, PERSONAL_KEY_ALTERNATIVES
from event_platform.staging import scratch_duckdb

EVENTS = AssetKey([SOURCE.name, "events"])

PERSONAL_KEY_PATTERN = f'(?i)"({PERSONAL_KEY_ALTERNATIVES})":' + r'\s*("[^"]|[-0-9tf\[{])'
"""A personal key (`"email":`) holding a value other than null or "" in event_data's JSON text."""

TEXT_COLUMNS = ("anon_username", *CONTEXT_FIELDS, "event_data")


@daily_asset_check(
    asset=EVENTS,
    description="Rows equal the events the collector acknowledged (the landed manifest's line counts) "
    "minus the duplicates the materialization recorded with its quarantine and the quarantined lines, "
    "and no uuid repeats.",
)
def rows_match_landed_events(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    store, day = lake.lake(), context.partition_key
    return compare_rows_with_landing(store, day, recorded_duplicates(store, day))


def compare_rows_with_landing(store: Lake, day: str, duplicates: int) -> AssetCheckResult:
    """The stored day against its landing: acknowledged events - duplicates - quarantined = rows."""
    landed_events = landed.landed_line_count(store, day)
    quarantined = landed.quarantined_line_count(store, day)
    with scratch_duckdb() as connection:
        connection.register("stored", read_partition(store, landed.TABLE, day))
        rows, distinct = connection.execute("SELECT count(*), count(DISTINCT uuid) FROM stored").fetchone()
    expected = landed_events - duplicates - quarantined
    if rows == expected == distinct:
        hint = "Counts agree."
    elif rows < expected:
        hint = "More events landed since the materialization: run it again."
    else:
        hint = "The table holds rows, or repeats uuids, that the landing does not account for."
    return AssetCheckResult(
        passed=rows == expected == distinct,
        metadata={
            "rows": MetadataValue.int(rows),
            "distinct_uuids": MetadataValue.int(distinct),
            "landed_events": MetadataValue.int(landed_events),
            "duplicates": MetadataValue.int(duplicates),
            "quarantined": MetadataValue.int(quarantined),
            "expected_rows": MetadataValue.int(expected),
            "hint": MetadataValue.text(hint),
        },
    )


@daily_asset_check(
    asset=EVENTS,
    description="No stored text holds an email address, and event_data holds no key that names a person.",
)
def no_personal_data(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    emails = " OR ".join(f"regexp_matches({column}, $email)" for column in TEXT_COLUMNS)
    with scratch_duckdb() as connection:
        connection.register("stored", read_partition(lake.lake(), landed.TABLE, context.partition_key))
        offending = connection.execute(
            f"SELECT uuid FROM stored WHERE {emails} OR regexp_matches(event_data, $key) ORDER BY uuid",
            {"email": EMAIL_PATTERN.pattern, "key": PERSONAL_KEY_PATTERN},
        ).fetchall()
    # Only uuids go into the metadata: the offending values are the very data that must not spread.
    return AssetCheckResult(
        passed=not offending,
        metadata={
            "rows_with_personal_data": MetadataValue.int(len(offending)),
            "sample_uuids": MetadataValue.text(", ".join(row[0] for row in offending[:10]) or "none"),
        },
    )


def recorded_duplicates(store: Lake, day: str) -> int:
    """The duplicates the day's materialization dropped, from the reconciliation record it keeps with
    the quarantine (`ingest.reconciliation_record`): the lake alone, as for every source."""
    quarantine = store.read_manifest(quarantine_path(landed.TABLE, day))
    return int(quarantine.metadata.get("duplicates", 0)) if quarantine else 0


not_empty = not_empty_check(SOURCE, "events")
