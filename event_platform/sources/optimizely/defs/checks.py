"""The E3 assets' checks: evaluated by the asset itself from what it landed and typed, every partition.

- files_landed:      every part file S3 listed for the date is in the raw landing, at its size;
- rows_reconcile:    rows written == rows in the part files - duplicates removed;
- schema_matches_e3: columns equal E3's (an extra vendor column WARNs, a missing one is an ERROR);
- success_marker:    `_SUCCESS` is there once the date is two days old (WARN: the docs don't promise it);
- not_empty:         the date has rows (WARN: a date without a running experiment or conversion is quiet).

The checks are partitioned by day, so each result belongs to the date it checked.
"""

from __future__ import annotations

import datetime as dt

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from event_platform.defs.empty_days import NOT_EMPTY
from event_platform.partitions import daily_check_spec
from event_platform.sources.optimizely import SOURCE
from event_platform.sources.optimizely.load import Landing, TypedDay

FILES_LANDED = "files_landed"
ROWS_RECONCILE = "rows_reconcile"
SCHEMA_MATCHES_E3 = "schema_matches_e3"
SUCCESS_MARKER = "success_marker"
SUCCESS_MARKER_GRACE = dt.timedelta(days=2)


def check_specs(asset_key: AssetKey) -> list[AssetCheckSpec]:
    return [
        daily_check_spec(FILES_LANDED, asset=asset_key, description="Every listed part file was landed."),
        daily_check_spec(ROWS_RECONCILE, asset=asset_key, description="Rows == part rows - duplicates."),
        daily_check_spec(SCHEMA_MATCHES_E3, asset=asset_key, description="Columns and types equal E3's."),
        daily_check_spec(SUCCESS_MARKER, asset=asset_key, description="_SUCCESS present from day+2."),
        daily_check_spec(NOT_EMPTY, asset=asset_key, description=SOURCE.empty_day.describe()),
    ]


def files_landed(landing: Landing) -> AssetCheckResult:
    """S3's listing against the committed raw manifest: same files, same sizes."""
    listed = {part.relative_path: part.size for part in landing.listing.parts}
    landed = {part.name: part.bytes for part in landing.parts}
    return AssetCheckResult(
        check_name=FILES_LANDED,
        passed=listed == landed,
        metadata={
            "listed_files": len(listed),
            "landed_files": len(landed),
            "listed_bytes": sum(listed.values()),
            "landed_bytes": sum(landed.values()),
        },
    )


def rows_reconcile(landing: Landing, typed: TypedDay) -> AssetCheckResult:
    """Call once the output has been written: `typed.streamed` counts the rows that really left."""
    expected = landing.part_rows - typed.stats.duplicates
    return AssetCheckResult(
        check_name=ROWS_RECONCILE,
        passed=typed.streamed.rows == expected,
        metadata={
            "part_rows": landing.part_rows,
            "duplicates": typed.stats.duplicates,
            "written": typed.streamed.rows,
            "expected": expected,
        },
    )


def schema_matches_e3(landing: Landing) -> AssetCheckResult:
    problems = landing.schema_problems
    extra = landing.extra_columns
    if problems:
        severity, description = AssetCheckSeverity.ERROR, "; ".join(f"{n}: {p}" for n, p in problems.items())
    else:
        severity, description = AssetCheckSeverity.WARN, f"extra vendor columns: {', '.join(extra)}"
    return AssetCheckResult(
        check_name=SCHEMA_MATCHES_E3,
        passed=not problems and not extra,
        severity=severity,
        description=None if not problems and not extra else description,
        metadata={"extra_columns": MetadataValue.json(extra), "parts_with_problems": len(problems)},
    )


def success_marker(landing: Landing, today: dt.date) -> AssetCheckResult:
    due = today - landing.day >= SUCCESS_MARKER_GRACE
    return AssetCheckResult(
        check_name=SUCCESS_MARKER,
        passed=landing.listing.has_success or not due,
        severity=AssetCheckSeverity.WARN,
        metadata={"has_success": landing.listing.has_success, "due": due},
    )
