"""What an empty day means, declared per source, and the check that says it on the day's partition.

A source table's day with no rows is stored (the source did answer, with nothing) but never shown as a
good day: its `not_empty` check fails on that partition, as a WARN where the source can legitimately
have a quiet day and as an ERROR where an empty day can only mean something went wrong, with what the
source's empty day most likely means and what to do.
"""

import dagster as dg

from event_platform.partitions import daily_asset_check
from event_platform.sources.registry import EmptyDay, Source

NOT_EMPTY = "not_empty"
ROW_COUNT = "dagster/row_count"


def severity(empty_day: EmptyDay) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if empty_day.possible else dg.AssetCheckSeverity.ERROR


def empty_day_result(empty_day: EmptyDay, rows: int, day: str) -> dg.AssetCheckResult:
    """`not_empty` for a day of `rows` rows."""
    return dg.AssetCheckResult(
        check_name=NOT_EMPTY,
        passed=rows > 0,
        severity=severity(empty_day),
        description=None if rows else f"No rows for {day}: {empty_day.meaning}",
        metadata={"rows": dg.MetadataValue.int(rows)},
    )


def rows_of_day(instance: dg.DagsterInstance, asset: dg.AssetKey, day: str) -> int | None:
    """The rows the IO manager recorded on `asset`'s latest materialization of `day`; None if never."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[day]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return None
    counted = materialization.metadata.get(ROW_COUNT)
    return int(counted.value) if counted else 0  # type: ignore[arg-type]


def not_empty_check(source: Source, table: str) -> dg.AssetChecksDefinition:
    """The `not_empty` check of a source table stored through the IO manager: it reads the row count
    the IO manager recorded on the day's materialization."""
    asset, empty_day = dg.AssetKey([source.name, table]), source.empty_day

    @daily_asset_check(asset=asset, name=NOT_EMPTY, description=empty_day.describe())
    def not_empty(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        day = context.partition_key
        return empty_day_result(empty_day, rows_of_day(context.instance, asset, day) or 0, day)

    return not_empty
