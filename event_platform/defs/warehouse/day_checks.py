"""A warehouse day built from no source data is never a good day: `has_source_data`, per day.

Sources are optional to the warehouse (a day is built from whichever have landed), so a daily model
materializes even for a day no source has landed; it is then empty and the day's check says so as an
ERROR naming the sources to materialize. A day whose sources landed but hold no rows is a WARN (their
own `not_empty` checks say why). The daily models run over ranges of days in one run, so the check
evaluates every day of its run and files each result under its day.
"""

from collections.abc import Iterator, Sequence

import dagster as dg

from event_platform import metadata
from event_platform.defs.empty_days import rows_of_day
from event_platform.partitions import daily_asset_check
from event_platform.warehouse import models

HAS_SOURCE_DATA = "has_source_data"
DECISIONS = dg.AssetKey(["optimizely", "decisions"])


def source_rows(instance: dg.DagsterInstance, sources: Sequence[dg.AssetKey], day: str) -> dict[str, int]:
    """Rows of each source table that has landed `day` (by its latest materialization of the day)."""
    rows = {key.to_user_string(): rows_of_day(instance, key, day) for key in sources}
    return {name: count for name, count in rows.items() if count is not None}


def verdict(
    model: dg.AssetKey, sources: Sequence[dg.AssetKey], rows: dict[str, int], day: str
) -> dg.AssetCheckEvaluation:
    """The day's result: ERROR without any source, WARN with only empty ones."""
    absent = [key.to_user_string() for key in sources if key.to_user_string() not in rows]
    if not rows:
        severity, description = (
            dg.AssetCheckSeverity.ERROR,
            f"No source has landed {day}, so this day is empty, not complete: materialize "
            f"{' or '.join(absent)} for {day}; the warehouse day is rebuilt when one lands.",
        )
    elif not any(rows.values()):
        severity, description = (
            dg.AssetCheckSeverity.WARN,
            f"The sources of {day} landed without rows ({', '.join(rows)}): see their not_empty checks.",
        )
    else:
        severity, description = dg.AssetCheckSeverity.ERROR, None
    return dg.AssetCheckEvaluation(
        asset_key=model,
        check_name=HAS_SOURCE_DATA,
        passed=any(rows.values()),
        severity=severity,
        description=description,
        metadata={
            "rows_per_source": metadata.counts(rows, label="source"),
            "sources_absent": dg.MetadataValue.json(absent),
        },
        partition=day,
    )


def has_source_data_check(model: dg.AssetKey, sources: Sequence[dg.AssetKey]) -> dg.AssetChecksDefinition:
    names = ", ".join(key.to_user_string() for key in sources)

    @daily_asset_check(
        asset=model,
        name=HAS_SOURCE_DATA,
        description=f"The day was built from source data: at least one of {names} landed it with rows "
        "(ERROR when none has landed the day, WARN when they landed it empty).",
    )
    def has_source_data(
        context: dg.AssetCheckExecutionContext,
    ) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        for day in context.partition_keys:
            yield verdict(model, sources, source_rows(context.instance, sources, day), day)
        # A check that files its results per day still owes its step the (empty) output of a check.
        yield dg.Output(None)

    return has_source_data


def source_day_checks(feeds: Sequence[models.EventSource]) -> list[dg.AssetChecksDefinition]:
    """`has_source_data` on each daily model, counting the rows of the sources it is built from."""
    tables = [dg.AssetKey(list(source.asset_path)) for source in feeds]
    return [
        has_source_data_check(dg.AssetKey(["warehouse", "identity_links"]), tables),
        has_source_data_check(dg.AssetKey(["warehouse", "events"]), tables),
        has_source_data_check(dg.AssetKey(["warehouse", "experiment_exposures"]), [DECISIONS]),
        has_source_data_check(dg.AssetKey(["warehouse", "experiment_conversions"]), tables),
        has_source_data_check(dg.AssetKey(["warehouse", "daily_active_users"]), tables),
    ]
