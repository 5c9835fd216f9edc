"""The E3 checks' verdicts, from landings and typed days built by hand."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from dagster import AssetCheckSeverity

from event_platform.sources.optimizely.client import DayListing, E3Object
from event_platform.sources.optimizely.defs import checks
from event_platform.sources.optimizely.load import DayStats, LandedPart, Landing, RowCounter, TypedDay
from event_platform.sources.optimizely.schema import E3_TYPES, SchemaDifference

DAY = dt.date(2026, 11, 1)
EXACT = SchemaDifference((), (), ())


def landing(
    listed: dict[str, int], landed: dict[str, int], *, schema: SchemaDifference = EXACT, success: bool = True
) -> Landing:
    parts = [E3Object(f"v1/account_id=1/{name}", name, size, "etag") for name, size in listed.items()]
    return Landing(
        E3_TYPES["decisions"],
        DAY,
        DayListing("decisions", DAY, parts, success),
        [LandedPart(name, f"raw/{name}", size, 10, schema) for name, size in landed.items()],
        "raw/optimizely/type=decisions/date=2026-11-01",
    )


def typed(staged: int, rows: int, streamed: int) -> TypedDay:
    stats = DayStats(staged, rows, {}, (None, None), (None, None), None, None, [])
    return TypedDay(pa.RecordBatchReader.from_batches(pa.schema([]), []), stats, RowCounter(streamed))


def test_files_landed_compares_names_and_sizes() -> None:
    assert checks.files_landed(landing({"a": 5, "b": 7}, {"a": 5, "b": 7})).passed
    assert not checks.files_landed(landing({"a": 5, "b": 7}, {"a": 5})).passed
    assert not checks.files_landed(landing({"a": 5}, {"a": 4})).passed


def test_rows_reconcile_counts_what_really_left() -> None:
    two_parts = landing({"a": 1, "b": 1}, {"a": 1, "b": 1})  # 10 rows each

    assert checks.rows_reconcile(two_parts, typed(staged=20, rows=18, streamed=18)).passed
    assert not checks.rows_reconcile(two_parts, typed(staged=20, rows=18, streamed=17)).passed
    assert not checks.rows_reconcile(two_parts, typed(staged=19, rows=18, streamed=18)).passed, "a lost row"


def test_schema_extra_columns_warn_and_missing_columns_are_errors() -> None:
    extra = checks.schema_matches_e3(landing({"a": 1}, {"a": 1}, schema=SchemaDifference((), ("new",), ())))
    missing = checks.schema_matches_e3(
        landing({"a": 1}, {"a": 1}, schema=SchemaDifference(("uuid",), (), ()))
    )

    assert checks.schema_matches_e3(landing({"a": 1}, {"a": 1})).passed
    assert (extra.passed, extra.severity) == (False, AssetCheckSeverity.WARN)
    assert (missing.passed, missing.severity) == (False, AssetCheckSeverity.ERROR)
    assert "missing columns uuid" in str(missing.description)


def test_success_marker_is_expected_once_the_date_is_two_days_old() -> None:
    without = landing({"a": 1}, {"a": 1}, success=False)

    assert checks.success_marker(without, DAY + dt.timedelta(days=1)).passed
    late = checks.success_marker(without, DAY + dt.timedelta(days=2))
    assert (late.passed, late.severity) == (False, AssetCheckSeverity.WARN)
    assert checks.success_marker(landing({"a": 1}, {"a": 1}), DAY + dt.timedelta(days=9)).passed
