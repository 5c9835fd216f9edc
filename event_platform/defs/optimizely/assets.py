"""optimizely/decisions and optimizely/conversions: one E3 processing date per daily partition.

Each run lands the date's part files byte-identical under raw/optimizely/type=<t>/date=<d>/, then
writes the typed, de-duplicated rows through the Parquet IO manager and evaluates its checks.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    Output,
    asset,
)

from event_platform.defs.optimizely import checks
from event_platform.defs.optimizely.load import Landing, SchemaMismatchError, TypedDay, land_day, type_day
from event_platform.defs.optimizely.resources import OptimizelyResource
from event_platform.defs.optimizely.schema import E3_TYPES, E3Type
from event_platform.lake.io_manager import LakeResource
from event_platform.markdown import markdown_table
from event_platform.partitions import daily_partitions
from event_platform.policies import (
    SOURCE_ASSET,
    only_outages_retry,
    only_outages_retry_while_reading,
)

SOURCE = "optimizely"


def e3_asset(e3: E3Type) -> AssetsDefinition:
    key = AssetKey([SOURCE, e3.asset_name])

    @asset(
        key=key,
        partitions_def=daily_partitions,
        **SOURCE_ASSET,
        group_name=SOURCE,
        kinds={"s3", "parquet"},
        check_specs=checks.check_specs(key),
        description=f"Optimizely E3 `type={e3.name}` for one processing date (`date=`), typed to the E3 "
        f"schema and de-duplicated on the case-folded uuid; raw parts under raw/optimizely/type={e3.name}/.",
    )
    def e3_day(
        context: AssetExecutionContext, optimizely: OptimizelyResource, lake: LakeResource
    ) -> Iterator[Output[Any] | AssetCheckResult]:
        with only_outages_retry():
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

    return e3_day


def day_metadata(landing: Landing, typed: TypedDay, raw_uri: str) -> dict[str, Any]:
    stats = typed.stats
    folder_label = "experiment" if landing.e3.folder_key == "experiment" else "event name"
    metadata: dict[str, Any] = {
        "raw_files": MetadataValue.int(len(landing.parts)),
        "raw_bytes": MetadataValue.int(landing.bytes),
        "raw_uri": MetadataValue.path(raw_uri),
        "part_rows": MetadataValue.int(landing.part_rows),
        "duplicates": MetadataValue.int(stats.duplicates),
        "has_success_marker": MetadataValue.bool(landing.listing.has_success),
        f"rows_per_{landing.e3.folder_key}": MetadataValue.md(
            markdown_table([{folder_label: key, "rows": rows} for key, rows in stats.rows_by_folder.items()])
        ),
        f"rows_per_{landing.e3.folder_key}_json": MetadataValue.json(stats.rows_by_folder),
        "extra_vendor_columns": MetadataValue.json(landing.extra_columns),
        "preview": MetadataValue.md(markdown_table(stats.preview)),
    }
    for label, value in (
        ("timestamp_min", stats.timestamp_range[0]),
        ("timestamp_max", stats.timestamp_range[1]),
        ("process_timestamp_min", stats.process_timestamp_range[0]),
        ("process_timestamp_max", stats.process_timestamp_range[1]),
    ):
        if value is not None:
            metadata[label] = MetadataValue.timestamp(value)
    if stats.lag_seconds_p50 is not None and stats.lag_seconds_max is not None:
        metadata["processing_lag_p50_seconds"] = MetadataValue.float(stats.lag_seconds_p50)
        metadata["processing_lag_max_seconds"] = MetadataValue.float(stats.lag_seconds_max)
    return metadata


decisions = e3_asset(E3_TYPES["decisions"])
conversions = e3_asset(E3_TYPES["events"])
