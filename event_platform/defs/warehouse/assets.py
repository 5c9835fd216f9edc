"""The warehouse's assets: thin wiring of `models.py` / `results.py` / `catalog.py` to Dagster.

Inputs arrive from the lake's Parquet IO manager as lazy datasets; outputs go back through it.

Optional sources: the ins of `identity_links` and `events` on the four source tables carry the IO
manager's `allow_missing_partitions` flag, so a source never materialized for a day (or not
configured at all) reads as absent: the day's events are built from the sources present, and the
metadata lists the absent ones. The same flag lets the lookback windows (identity links, exposures)
start before the first materialized day.

Cross-day correctness and cost:
- `experiment_exposures` holds, per day, each person's first decision of that day (compact: one row
  per person and experiment); `experiment_results` takes the earliest over all days, so a visitor
  exposed on two days is one unit, and anyone shown two variations on any days is excluded.
- `experiment_conversions` for day D joins D's events with the exposures of D-window-1 .. D: its cost
  grows with one day of events plus a window of compact exposures, never with all history.
  `experiment_results` re-checks each conversion against the first exposure of all time. Two limits
  follow from partitioning by arrival day: a decision that E3 processes on a later day than the
  conversion it precedes is attributed only when that conversion's day is re-materialized, and an
  event arriving more than a day late can miss an exposure older than the lookback.
- `events` for day D resolves people through the identity links of D-lookback .. D.
"""

import warnings
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    BetaWarning,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from event_platform.defs.warehouse import catalog, models, results
from event_platform.defs.warehouse.identity import IdentityMap, configured_rules
from event_platform.defs.warehouse.resources import (
    WarehouseResource,
    attribution_window_days,
    identity_lookback_days,
)
from event_platform.lake.io_manager import ALLOW_MISSING_PARTITIONS, LakeResource
from event_platform.partitions import daily_partitions

GROUP = "warehouse"
OPTIONAL_INPUT = {ALLOW_MISSING_PARTITIONS: True}
WINDOW_DAYS = attribution_window_days()
IDENTITY = IdentityMap(configured_rules())


def _source_ins() -> dict[str, AssetIn]:
    return {
        source.relation: AssetIn(key=AssetKey(list(source.asset_path)), metadata=OPTIONAL_INPUT)
        for source in models.EVENT_SOURCES
    }


def _lookback(days: int) -> TimeWindowPartitionMapping:
    """Day D reads D-days .. D; days before the first partition simply do not exist."""
    with warnings.catch_warnings():
        # allow_nonexistent_upstream_partitions is "beta" in Dagster 1.13; it is what a lookback needs.
        warnings.simplefilter("ignore", BetaWarning)
        return TimeWindowPartitionMapping(
            start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
        )


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata values: the preview as markdown, lists and mappings as JSON."""
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name == "preview":
            converted[name] = MetadataValue.md(value)
        elif isinstance(value, list | dict):
            converted[name] = MetadataValue.json(value)
        elif value is None:
            converted[name] = MetadataValue.text("")
        else:
            converted[name] = value
    return converted


def _finish(context: AssetExecutionContext, output: models.ModelOutput) -> pa.RecordBatchReader:
    context.add_output_metadata(_metadata(output.metadata))
    return output.rows


DAILY = {"partitions_def": daily_partitions, "key_prefix": [GROUP], "group_name": GROUP, "kinds": {"duckdb"}}


@asset(**DAILY, ins=_source_ins())
def identity_links(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    amplitude_events: ds.Dataset,
    optimizely_conversions: ds.Dataset,
    profile_store_events: ds.Dataset,
    tracking_events: ds.Dataset,
) -> pa.RecordBatchReader:
    """Identity references seen together on one row of a day (a device with a user id): the links
    `events` and `experiment_exposures` resolve people through."""
    sources = {
        "amplitude": amplitude_events,
        "optimizely": optimizely_conversions,
        "profile_store": profile_store_events,
        "tracking": tracking_events,
    }
    with warehouse.engine() as engine:
        return _finish(context, models.identity_links(engine, IDENTITY, sources))


@asset(
    **DAILY,
    ins={
        **_source_ins(),
        "links": AssetIn(
            key=AssetKey([GROUP, "identity_links"]),
            partition_mapping=_lookback(identity_lookback_days()),
            metadata=OPTIONAL_INPUT,
        ),
    },
)
def events(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    amplitude_events: ds.Dataset,
    optimizely_conversions: ds.Dataset,
    profile_store_events: ds.Dataset,
    tracking_events: ds.Dataset,
    links: ds.Dataset,
) -> pa.RecordBatchReader:
    """Every source's events of a day in one schema, with a pseudonymous `person_key` from the
    identity map."""
    sources = {
        "amplitude": amplitude_events,
        "optimizely": optimizely_conversions,
        "profile_store": profile_store_events,
        "tracking": tracking_events,
    }
    with warehouse.engine() as engine:
        return _finish(context, models.events(engine, IDENTITY, sources, links))


@asset(
    **DAILY,
    ins={
        "decisions": AssetIn(key=AssetKey(["optimizely", "decisions"])),
        "links": AssetIn(
            key=AssetKey([GROUP, "identity_links"]),
            partition_mapping=_lookback(identity_lookback_days()),
            metadata=OPTIONAL_INPUT,
        ),
    },
)
def experiment_exposures(
    context: AssetExecutionContext, warehouse: WarehouseResource, decisions: ds.Dataset, links: ds.Dataset
) -> pa.RecordBatchReader:
    """Per experiment and person, the first Optimizely decision of the day; holdbacks flagged, every
    variation shown kept (people in two variations are excluded from the results and counted)."""
    with warehouse.engine() as engine:
        return _finish(context, models.experiment_exposures(engine, IDENTITY, decisions, links))


@asset(
    **DAILY,
    ins={
        "events": AssetIn(key=AssetKey([GROUP, "events"])),
        "exposures": AssetIn(
            key=AssetKey([GROUP, "experiment_exposures"]),
            partition_mapping=_lookback(WINDOW_DAYS + 1),
            metadata=OPTIONAL_INPUT,
        ),
    },
)
def experiment_conversions(
    context: AssetExecutionContext, warehouse: WarehouseResource, events: ds.Dataset, exposures: ds.Dataset
) -> pa.RecordBatchReader:
    """Events of the day by exposed people, at or after their first exposure and within the
    attribution window (EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS, default 7)."""
    with warehouse.engine() as engine:
        return _finish(context, models.experiment_conversions(engine, events, exposures, WINDOW_DAYS))


@asset(**DAILY, ins={"events": AssetIn(key=AssetKey([GROUP, "events"]))})
def daily_active_users(
    context: AssetExecutionContext, warehouse: WarehouseResource, events: ds.Dataset
) -> pa.RecordBatchReader:
    """Distinct people active per source and across all sources (`all`), each counted once."""
    with warehouse.engine() as engine:
        return _finish(context, models.daily_active_users(engine, events))


@asset(
    key_prefix=[GROUP],
    group_name=GROUP,
    kinds={"duckdb"},
    ins={
        "exposures": AssetIn(key=AssetKey([GROUP, "experiment_exposures"]), metadata=OPTIONAL_INPUT),
        "conversions": AssetIn(key=AssetKey([GROUP, "experiment_conversions"]), metadata=OPTIONAL_INPUT),
    },
)
def experiment_results(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    exposures: ds.Dataset,
    conversions: ds.Dataset,
) -> pa.Table:
    """Per experiment x variation x metric over the experiment's whole window: units, conversions,
    rate or mean, lift against the control (lowest variation id) with a 95% interval, p-value, and a
    sample-ratio-mismatch test. See `results.py` for the definitions."""
    with warehouse.engine() as engine:
        output = results.experiment_results(
            engine, exposures, conversions, warehouse.results_settings(WINDOW_DAYS)
        )
    context.add_output_metadata(_metadata(output.metadata))
    return output.table


@asset(
    name="catalog",
    key_prefix=[GROUP],
    group_name=GROUP,
    kinds={"duckdb"},
    pool="warehouse",
    deps=[
        *(AssetKey(table.lake_path.split("/")) for table in catalog.CATALOG_TABLES),
    ],
)
def publish_catalog(context: AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource) -> None:
    """Views over every lake table and the marts in the analysts' warehouse.duckdb
    (EVENT_PLATFORM_WAREHOUSE). The only writer of that file, hence the `warehouse` pool (limit 1)."""
    path = warehouse.warehouse_path()
    report = catalog.publish(lake.lake(), path)
    context.add_output_metadata(
        _metadata(
            {
                "path": str(path.resolve()),
                "views": report.views,
                "tables": report.tables,
                "empty": report.empty,
                "not_published": report.not_published,
            }
        )
    )
