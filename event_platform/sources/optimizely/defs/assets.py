"""optimizely/decisions and optimizely/conversions: one E3 processing date per daily partition.

Each run lands the date's part files byte-identical under raw/optimizely/type=<t>/date=<d>/, then
writes the typed, de-duplicated rows through the Parquet IO manager and evaluates its checks.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    Output,
    asset,
)

from event_platform import metadata
from event_platform.defs.empty_days import empty_day_result
from event_platform.lake.io_manager import LakeResource
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    failing_plainly,
    only_outages_retry,
    only_outages_retry_while_reading,
)
from event_platform.sources.optimizely import SOURCE
from event_platform.sources.optimizely.defs import checks
from event_platform.sources.optimizely.defs.resources import OptimizelyResource
from event_platform.sources.optimizely.load import (
    E3NotReadyError,
    Landing,
    SchemaMismatchError,
    TypedDay,
    land_day,
    type_day,
)
from event_platform.sources.optimizely.schema import E3_TYPES, E3Type

SOURCE_NAME = SOURCE.name


def e3_asset(e3: E3Type) -> AssetsDefinition:
    key = AssetKey([SOURCE_NAME, e3.asset_name])

    @asset(
        key=key,
        partitions_def=daily_partitions,
        **SOURCE_ASSET,
        group_name=SOURCE_NAME,
        kinds={"s3", "parquet"},
        check_specs=checks.check_specs(key),
        description=f"Optimizely E3 `type={e3.name}` for one processing date (`date=`), typed to the E3 "
        f"schema and de-duplicated on the case-folded uuid; raw parts under raw/optimizely/type={e3.name}/.",
    )
    def e3_day(
        context: AssetExecutionContext, optimizely: OptimizelyResource, lake: LakeResource
    ) -> Iterator[Output[Any] | AssetCheckResult]:
        with only_outages_retry(), failing_plainly(E3NotReadyError):
            day = dt.date.fromisoformat(context.partition_key)
            store = lake.lake()
            client = optimizely.client()
            landing = land_day(client, store, e3, day, optimizely.pseudonymiser())
            context.log.info(
                "Landed %d parts (%d B) of %s %s", len(landing.parts), landing.bytes, e3.name, day
            )
            try:
                typed = type_day(store, landing)
            except SchemaMismatchError:
                yield checks.schema_matches_e3(landing)
                raise
            if landing.extra_columns:
                context.log.warning(
                    "E3 %s %s has extra vendor columns %s", e3.name, day, landing.extra_columns
                )
            yield Output(
                only_outages_retry_while_reading(typed.reader),
                metadata=day_metadata(landing, typed, store.uri(landing.raw_dir)),
            )
            yield checks.files_landed(landing)
            yield checks.rows_reconcile(landing, typed)
            yield checks.schema_matches_e3(landing)
            yield checks.success_marker(landing, dt.datetime.now(dt.UTC).date())
            yield empty_day_result(SOURCE.empty_day, typed.streamed.rows, context.partition_key)

    return e3_day


def day_metadata(landing: Landing, typed: TypedDay, raw_uri: str) -> dict[str, Any]:
    """What landing and typing found; the rows themselves are the IO manager's `dagster/row_count`."""
    stats = typed.stats
    folder_label = "experiment_id" if landing.e3.folder_key == "experiment" else "event_name"
    preview_schema = pa.schema(
        [landing.e3.schema.field(name) for name in stats.preview[0]] if stats.preview else []
    )
    values: dict[str, Any] = {
        "raw_files": MetadataValue.int(len(landing.parts)),
        "raw_size": metadata.size(landing.bytes),
        "raw_uri": MetadataValue.path(raw_uri),
        "part_rows": MetadataValue.int(landing.part_rows),
        "duplicates": MetadataValue.int(stats.duplicates),
        "has_success_marker": MetadataValue.bool(landing.listing.has_success),
        f"rows_per_{landing.e3.folder_key}": metadata.counts(stats.rows_by_folder, label=folder_label),
        "extra_vendor_columns": MetadataValue.json(landing.extra_columns),
        "preview": metadata.table(stats.preview, preview_schema),
    }
    for label, value in (
        ("first_timestamp", stats.timestamp_range[0]),
        ("last_timestamp", stats.timestamp_range[1]),
        ("first_process_timestamp", stats.process_timestamp_range[0]),
        ("last_process_timestamp", stats.process_timestamp_range[1]),
    ):
        if value is not None:
            values[label] = MetadataValue.timestamp(value)
    if stats.lag_seconds_p50 is not None and stats.lag_seconds_max is not None:
        values["processing_lag_median"] = metadata.duration(stats.lag_seconds_p50)
        values["processing_lag_max"] = metadata.duration(stats.lag_seconds_max)
    return values


decisions = e3_asset(E3_TYPES["decisions"])
conversions = e3_asset(E3_TYPES["events"])
